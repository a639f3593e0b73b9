"""The two-tier cache: memory (LRU + TTL) over a persistent SQLite store.

What is cached, and how it is keyed (exact hit or nothing, never fuzzy):

- embeddings, keyed by sha256 of (provider, model, dims, normalization, exact text), so a
  vector of one model can never come back for another;
- generations (opt-in), keyed by sha256 of the full request: provider, model, every
  message and every setting, seed included (generations.py; the key function is public).

Records are ``MAGIC | u32 header length | JSON header | payload``: raw little-endian
float32 for vectors (then a crc32 of them), JSON for generations. Nothing is pickled, so
a cache directory from someone else cannot run code when read (see disk.py for the disk tier's guards).
Texts themselves are not stored, only their hashes.

This module is stdlib only; numpy lives in embeddings/service.py, which decodes vectors in bulk.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..settings import check_number, config_table
from .memory import MemoryTier

if TYPE_CHECKING:
    import pandas as pd

POLICIES = ("least-recently-stored", "least-recently-used", "least-frequently-used", "none")
MAGIC = b"ENB1"
KEY_VERSION = 2  # bump to invalidate every key (when the canonical form or a record header changes)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_size(value: int | float | str) -> int:
    """``1073741824``, ``"1GB"``, ``"500 MiB"`` -> bytes (NaN, infinity and negatives are refused)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(check_number(value, "a size in bytes", minimum=0))
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value if isinstance(value, str) else "")
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"cannot read {value!r:.60} as a size; use bytes or e.g. '500MB', '2GB'")
    return int(check_number(float(m.group(1)) * _UNITS[m.group(2).lower()], "a size in bytes", minimum=0))


def parse_duration(value: int | float | str) -> float:
    """Seconds from a number or a string like ``"7d"``, ``"12h"``, ``"1d12h"``, ``"90s"``, ``"2w"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return check_number(value, "a duration in seconds", minimum=0)
    text = value.strip().lower().replace(" ", "") if isinstance(value, str) else ""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw]?)", text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"cannot read {value!r:.60} as a duration; use seconds or e.g. '7d', '12h', '30m'")
    return check_number(sum(float(n) * _SECONDS[u or "s"] for n, u in parts), "a duration in seconds", minimum=0)


@dataclass(frozen=True)
class CacheConfig:
    """The ``[cache]`` table of config.toml."""

    memory_ttl_s: float = 300.0  # the seed's NodeCache stdTTL; 0 = entries never expire
    memory_max_entries: int = 20_000  # about 30 MB of 384-dim vectors; 0 turns the memory tier off
    disk: bool = True  # False: memory tier only
    disk_size_limit: int = 2**30
    # Never writes on a read: least-recently-used rewrites the rows it reads to record the
    # access, which halves bulk-read speed.
    eviction_policy: str = "least-recently-stored"
    generation: bool = False  # cache generations unless a call says cache=False
    timeout_s: float = 60.0  # how long to wait for another process's write lock

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any] | None) -> CacheConfig:
        """Build from the ``[cache]`` table; one-line ConfigError naming the bad key."""
        table = config_table(table, "[cache]")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise ConfigError(f"[cache] in config.toml: unknown key(s) {', '.join(unknown)}; valid: {', '.join(names)}")
        out: dict[str, Any] = {}
        try:
            for key, value in table.items():
                if key == "disk_size_limit":
                    out[key] = parse_size(value)
                elif key == "eviction_policy":
                    if value not in POLICIES:
                        raise ConfigError(f"unknown eviction_policy {value!r}; choose one of: {', '.join(POLICIES)}")
                    out[key] = value
                elif key in ("disk", "generation"):
                    if not isinstance(value, bool):
                        raise ConfigError(f"{key} must be true or false, not {value!r}")
                    out[key] = value
                elif key == "memory_max_entries":
                    out[key] = check_number(value, "it", minimum=0, whole=True)
                else:  # the durations: memory_ttl_s, timeout_s
                    out[key] = parse_duration(value)
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"[cache] {key} in config.toml: {exc}") from None
        return cls(**out)


# -- keys and records ---------------------------------------------------------------------
def canonical_json(obj: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8 (the hashing form)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_record(header: Mapping[str, Any], payload: bytes = b"") -> bytes:
    """``MAGIC | u32 length | JSON header (space-padded so the payload is 8-byte aligned) | payload``."""
    head = canonical_json(dict(header))
    head += b" " * (-(len(MAGIC) + 4 + len(head)) % 8)
    return MAGIC + struct.pack("<I", len(head)) + head + payload


def decode_record(blob: bytes) -> tuple[dict[str, Any], memoryview]:
    """(header, payload) of a record; ValueError for anything that is not one."""
    if not isinstance(blob, bytes) or blob[:4] != MAGIC or len(blob) < 8:
        raise ValueError("not an eliza_nb cache record")
    (n,) = struct.unpack_from("<I", blob, 4)
    if 8 + n > len(blob):
        raise ValueError("truncated cache record")
    try:
        header = json.loads(blob[8:8 + n])
    except RecursionError:  # a crafted header nested deeper than json can follow
        raise ValueError("bad cache record header") from None
    if not isinstance(header, dict):
        raise ValueError("bad cache record header")
    return header, memoryview(blob)[8 + n:]


class EmbeddingSpace:
    """One (provider, model, dims, normalization): its key hasher, record header and tag.

    Vectors of two spaces can never share a key, so switching provider, model or dims
    can never return a vector made by another model.
    """

    def __init__(self, provider: str, model: str, dims: int, normalized: bool) -> None:
        self.provider, self.model, self.dims, self.normalized = provider, model, int(dims), bool(normalized)
        ident = ["embed", KEY_VERSION, provider, model, self.dims, self.normalized]
        self._hasher = hashlib.sha256(canonical_json(ident) + b"\n")
        self.tag = canonical_json(["embed", provider, model, self.dims, self.normalized]).decode()
        self.prefix = encode_record({"kind": "embed", "provider": provider, "model": model, "dims": self.dims,
                                     "normalized": self.normalized, "dtype": "<f4", "check": "crc32"})
        # prefix | dims little-endian float32 | crc32 of those bytes (SQLite checksums nothing)
        self.record_size = len(self.prefix) + 4 * self.dims + 4

    def record(self, vector: Any) -> bytes:
        """The disk record of one float32 vector of this space."""
        payload: bytes = vector.astype("<f4", copy=False).tobytes()
        return self.prefix + payload + zlib.crc32(payload).to_bytes(4, "little")

    def key(self, text: str) -> bytes:
        """The 32-byte key of one exact text in this space."""
        h = self._hasher.copy()
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.digest()

    def __repr__(self) -> str:
        return f"EmbeddingSpace({self.provider}:{self.model}, {self.dims}d, normalized={self.normalized})"


def embedding_key(provider: str, model: str, dims: int, normalized: bool, text: str) -> str:
    """The hex cache key of one text's embedding (the disk tier stores the 32 raw bytes)."""
    return EmbeddingSpace(provider, model, dims, normalized).key(text).hex()


def parse_tag(tag: str) -> dict[str, Any]:
    """kind / provider / model / dims of a tag (unknown parts None; never raises)."""
    try:
        parts = json.loads(tag)
    except (TypeError, ValueError, RecursionError):
        parts = None
    if not isinstance(parts, list) or not parts:
        return {"kind": "unknown", "provider": None, "model": None, "dims": None}
    parts = [*parts, None, None, None]
    dims = parts[3] if parts[0] == "embed" and isinstance(parts[3], int) else None
    return {"kind": str(parts[0]), "provider": parts[1], "model": parts[2], "dims": dims}


# -- both tiers ---------------------------------------------------------------------------
Decoder = Callable[[Mapping[bytes, bytes]], "tuple[dict[bytes, Any], list[bytes]]"]


class Cache:
    """Memory over disk, with hit/miss counts per tier and per tag, and the management calls.

    Values in memory are decoded objects (float32 vectors, generation dicts); on disk
    they are records. The disk tier opens on first use; when it cannot (an unwritable
    home, a store that stays broken) the cache says so once and works from memory.
    """

    def __init__(self, home: Path, config: CacheConfig | None = None, warn: Callable[[str], None] = lambda m: None) -> None:
        self.config = config or CacheConfig()
        self.directory = Path(home) / "cache" / "store"
        self.memory = MemoryTier(self.config.memory_max_entries, self.config.memory_ttl_s)
        self._warn = warn
        self._disk: Any = None
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], list[int]] = {}

    @property
    def disk(self) -> Any:
        """The DiskTier, or None when the disk tier is off or unusable."""
        if not self.config.disk:
            return None
        if self._disk is None:
            with self._lock:
                if self._disk is None:
                    from .disk import DiskTier

                    self._disk = DiskTier(self.directory, size_limit=self.config.disk_size_limit,
                                          policy=self.config.eviction_policy, timeout_s=self.config.timeout_s,
                                          warn=self._warn)
        return None if self._disk.disabled else self._disk

    def count(self, tier: str, tag: str, hits: int, misses: int) -> None:
        with self._lock:
            row = self._counts.setdefault((tier, tag), [0, 0])
            row[0] += hits
            row[1] += misses

    # -- lookups and stores ------------------------------------------------------------
    def lookup(self, keys: Sequence[bytes], tag: str, decode: Decoder) -> dict[bytes, Any]:
        """Values for the keys found in memory, then (in bulk) on disk; disk hits are promoted.

        ``decode(records) -> (values, bad_keys)`` validates disk records; bad ones are deleted.
        """
        found = self.memory.get_many(keys)
        self.count("memory", tag, len(found), len(keys) - len(found))
        missing = [k for k in keys if k not in found] if found else list(keys)
        disk = self.disk if missing else None
        if disk is not None:
            records = disk.get_many(missing)
            values, bad = decode(records) if records else ({}, [])
            if bad:
                disk.rejected += len(bad)
                disk.delete(bad)
                disk.verify_once()  # a record that fails its checks may be the sign of a damaged file
            if values:
                self.memory.put_many(values.items(), tag)
                found.update(values)
            self.count("disk", tag, len(values), len(missing) - len(values))
        return found

    def remember(self, values: Mapping[bytes, Any], tag: str) -> None:
        """Put decoded values in the memory tier."""
        self.memory.put_many(values.items(), tag)

    def persist(self, records: Iterable[tuple[bytes, bytes]], tag: str) -> int:
        """Write records to the disk tier in one transaction (no-op without a disk tier)."""
        disk = self.disk
        return disk.put_many(records, tag) if disk is not None else 0

    def persist_new(self, records: Iterable[tuple[bytes, bytes]], tag: str) -> dict[bytes, bytes]:
        """Write the records not on disk yet in one transaction; the stored records of the
        others (first writer wins across processes; nothing without a disk tier)."""
        disk = self.disk
        return disk.add_many(records, tag) if disk is not None else {}

    # -- management --------------------------------------------------------------------
    def stats(self) -> pd.DataFrame:
        """A DataFrame: one row per tier and per model (entries, bytes, hits, misses).

        ``.attrs`` holds the directory, whether the disk tier is on, its size and limit.
        """
        import pandas as pd

        rows: dict[tuple[str, str], dict[str, Any]] = {}

        def row(tier: str, tag: str) -> dict[str, Any]:
            if (tier, tag) not in rows:
                rows[(tier, tag)] = {"tier": tier, **parse_tag(tag), "entries": 0, "bytes": 0, "hits": 0, "misses": 0}
            return rows[(tier, tag)]

        for tag, (n, size) in self.memory.by_tag().items():
            row("memory", tag).update(entries=n, bytes=size)
        disk = self.disk
        for tag, n, size in disk.tag_stats() if disk is not None else []:
            row("disk", tag).update(entries=n, bytes=size)
        with self._lock:
            counts = {k: tuple(v) for k, v in self._counts.items()}
        for (tier, tag), (hits, misses) in counts.items():
            row(tier, tag).update(hits=hits, misses=misses)
        cols = ["tier", "kind", "provider", "model", "dims", "entries", "bytes", "hits", "misses"]
        df = pd.DataFrame([rows[k] for k in sorted(rows)], columns=cols)
        df = df[df.kind != "dims"].reset_index(drop=True)  # learned-dimension notes are bookkeeping
        df["dims"] = df["dims"].astype("Int64")
        df.attrs.update(directory=str(self.directory), disk=disk is not None,
                        disk_note=(self._disk.disabled if self._disk is not None and self._disk.disabled else None),
                        disk_bytes=disk.volume() if disk is not None else 0, size_limit=self.config.disk_size_limit,
                        eviction_policy=self.config.eviction_policy, memory_ttl_s=self.config.memory_ttl_s,
                        memory_max_entries=self.config.memory_max_entries,
                        rejected=self._disk.rejected if self._disk is not None else 0)
        return df

    def clear(self, model: str | None = None, *, provider: str | None = None, kind: str | None = None) -> dict[str, int]:
        """Remove entries (all, or those of a model / provider / kind). Returns counts per tier.

        ``model`` may be a model id or ``provider:model`` (model ids may hold colons too).
        """
        def match(tag: str) -> bool:
            t = parse_tag(tag)
            return ((model is None or model in (t["model"], f"{t['provider']}:{t['model']}"))
                    and (provider is None or t["provider"] == provider) and (kind is None or t["kind"] == kind))

        removed_memory = self.memory.remove_where(lambda tag, age: not match(tag))
        disk = self.disk
        removed_disk = 0
        if disk is not None:
            if model is None and provider is None and kind is None:
                removed_disk = disk.delete_where()
            else:
                removed_disk = disk.delete_where(tags=[t for t, _, _ in disk.tag_stats() if match(t)])
        return {"memory": removed_memory, "disk": removed_disk}

    def prune(self, older_than: float | str) -> dict[str, int]:
        """Remove entries stored more than ``older_than`` ago (seconds, or ``"7d"``, ``"12h"``...)."""
        age = parse_duration(older_than)
        removed_memory = self.memory.remove_where(lambda tag, at_age: at_age <= age)
        disk = self.disk
        removed_disk = 0
        if disk is not None:
            keep = [t for t, _, _ in disk.tag_stats() if parse_tag(t)["kind"] == "dims"]
            removed_disk = disk.delete_where(stored_before=time.time() - age, keep_tags=keep)
        return {"memory": removed_memory, "disk": removed_disk}

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
