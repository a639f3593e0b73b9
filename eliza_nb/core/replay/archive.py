"""The replay archive on disk: a folder of JSON lines plus raw float32 vectors.

    NAME.replay/
      requests.jsonl   line 1: a header {"format": "eliza_nb.replay", "version": 1, "records": N, ...}
                       then one record per line: every generation, then every embedding,
                       each sorted by its request, so the file diffs cleanly in git
      vectors.f32      the embedding records' vectors, little-endian float32, in line order;
                       each embedding line holds its dims and the crc32 of its bytes

Writing is deterministic: sorted records, sorted JSON keys, Python's shortest round-trip
float repr, no timestamps, no latencies; recording the same session twice gives the same
bytes. Reading runs nothing from the archive: ``json.loads`` and ``numpy.frombuffer``
only, and every problem (bad JSON, a truncated file, a newer format, a vector whose
length or checksum is wrong) is a :class:`ReplayArchiveError` naming the line.

Sizes are checked before bytes are read, so a huge (or sparse) file is one line, not a
``MemoryError``: each file's size (``stat``) against a cap, and ``vectors.f32`` against
exactly what the records' ``dims`` add up to, before any vector byte is read.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cache.generations import generation_key
from ..errors import ReplayArchiveError
from ..settings import SETTINGS, ModelSettings
from ..types import Message, ModelClass, Request, Target

FORMAT = "eliza_nb.replay"
VERSION = 1
RECORDS = "requests.jsonl"
VECTORS = "vectors.f32"
#: the largest requests.jsonl read: the whole file is parsed into memory, several times its size
MAX_RECORDS_BYTES = 256 * 2**20
#: the largest vectors.f32 read (a million 256-dimension vectors)
MAX_VECTOR_BYTES = 2**30
MAX_DIMS = 65536


def dumps(obj: Any) -> str:
    """One archive line: sorted keys, real UTF-8 text, no NaN (not JSON)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False)


def settings_dict(settings: ModelSettings) -> dict[str, Any]:
    """Every setting as archive JSON: float settings as floats, so ``temperature=0`` from
    Python and ``-t 0`` from a magic are the same request; lists as lists; unset as null."""
    out: dict[str, Any] = {}
    for name, value in settings.as_dict(include_unset=True).items():
        if value is not None:
            value = list(value) if isinstance(value, tuple) else SETTINGS[name].kind(value)
        out[name] = value
    return out


def request_dict(request: Request) -> dict[str, Any]:
    """A generation Request as archive JSON."""
    t = request.target
    return {"provider": t.provider, "model": t.model, "model_class": t.model_class.value,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "settings": settings_dict(request.settings)}


def request_key(req: dict[str, Any]) -> str:
    """The archive key of a request dict: :func:`eliza_nb.core.cache.generations.generation_key` of the Request."""
    request = Request(Target(req["provider"], ModelClass(req["model_class"]), req["model"]),
                      tuple(Message(m["role"], m["content"]) for m in req["messages"]),
                      ModelSettings.from_mapping(req["settings"]))
    return generation_key(request)


def embedding_ident(provider: str, model: str, normalized: bool, text: str) -> tuple[str, str, bool, str]:
    return (str(provider), str(model), bool(normalized), text)


@dataclass
class GenRecord:
    """One generation: what was asked (the planned request), the n-th time, and what answered."""

    request: dict[str, Any]
    response: dict[str, Any]
    n: int = 0
    line: int = 0
    key: str = ""


@dataclass
class EmbRecord:
    """One text's embedding by one model."""

    provider: str
    model: str
    normalized: bool
    text: str
    vector: np.ndarray
    line: int = 0

    @property
    def ident(self) -> tuple[str, str, bool, str]:
        return embedding_ident(self.provider, self.model, self.normalized, self.text)


@dataclass
class Archive:
    """An archive in memory; :func:`load` reads one, :func:`save` writes one."""

    path: Path
    note: str | None = None
    generations: list[GenRecord] = field(default_factory=list)
    embeddings: list[EmbRecord] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


# -- writing -------------------------------------------------------------------------------
def archive_lines(archive: Archive) -> tuple[list[str], bytes]:
    """(the JSONL lines, the vector bytes) of an archive, in their canonical order."""
    gens = sorted(archive.generations, key=lambda g: (dumps(g.request), g.n))
    embs = sorted(archive.embeddings, key=lambda e: (e.provider, e.model, e.normalized, e.text))
    header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "records": len(gens) + len(embs),
                              "vector_file": VECTORS, "vector_dtype": "<f4"}
    if archive.note:
        header["note"] = archive.note
    lines = [dumps(header)]
    lines += [dumps({"kind": "generate", "n": g.n, "request": g.request, "response": g.response}) for g in gens]
    chunks = []
    for e in embs:
        data = np.ascontiguousarray(e.vector, dtype="<f4").tobytes()
        chunks.append(data)
        lines.append(dumps({"kind": "embed", "provider": e.provider, "model": e.model, "normalized": e.normalized,
                            "text": e.text, "dims": int(e.vector.shape[0]), "crc32": f"{zlib.crc32(data):08x}"}))
    return lines, b"".join(chunks)


def save(archive: Archive, lines: Iterable[str] | None = None, vectors: bytes | None = None) -> None:
    """Write the archive folder: vectors first, then the lines that describe them, each
    file replaced atomically (a reader never sees half a file)."""
    if lines is None or vectors is None:
        lines, vectors = archive_lines(archive)
    folder = archive.path
    if folder.exists() and not folder.is_dir():
        raise ReplayArchiveError(f"{folder} is a file; a replay archive is a folder (e.g. {folder.stem}.replay)")
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / VECTORS, vectors)
    _write_atomic(folder / RECORDS, "".join(line + "\n" for line in lines).encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- reading -------------------------------------------------------------------------------
def archive_folder(path: str | Path) -> Path:
    """The archive folder for a user's path (the folder, or its requests.jsonl)."""
    p = Path(path).expanduser()
    return p.parent if p.name == RECORDS else p


def load(path: str | Path) -> Archive:
    """Read and check a whole archive; a :class:`ReplayArchiveError` naming the line on any problem."""
    folder = archive_folder(path)
    records_path = folder / RECORDS
    if not records_path.is_file():
        raise ReplayArchiveError(f"no replay archive at {path}: expected a folder holding {RECORDS} "
                                 f"(make one with %eliza record {path})")
    vectors_path = folder / VECTORS
    vector_bytes = _size(vectors_path, MAX_VECTOR_BYTES) if vectors_path.is_file() else 0
    data = _read_at_most(records_path, _size(records_path, MAX_RECORDS_BYTES))
    reader = _Reader(folder, data)
    archive = reader.read()
    reader.check_vector_file(vector_bytes)  # before reading it: its size is what the records add up to
    reader.attach_vectors(_read_at_most(vectors_path, reader.offset) if reader.offset else b"")
    return archive


def _size(path: Path, limit: int) -> int:
    """The file's size, or a one-line ReplayArchiveError when it is over ``limit``."""
    size = path.stat().st_size
    if size > limit:
        raise ReplayArchiveError(f"{path.parent.name}/{path.name} is {size:,} bytes, more than a replay archive "
                                 f"may hold ({limit:,} bytes): a damaged or foreign file, or a recording too large to replay")
    return size


def _read_at_most(path: Path, size: int) -> bytes:
    """The first ``size`` bytes (the file may have grown since it was measured; never read more)."""
    with path.open("rb") as f:
        return f.read(size)


_NO_VECTOR = np.zeros(0, dtype=np.float32)  # a record's vector until vectors.f32 is read


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class _Reader:
    def __init__(self, folder: Path, data: bytes) -> None:
        self.folder, self.data = folder, data
        self.offset = 0  # bytes of vectors.f32 the records read so far describe
        self.pending: list[tuple[EmbRecord, int, int, str]] = []  # (record, start, end, crc32) per vector
        self.last = 0  # the number of the last line
        self.dims: dict[tuple[str, str], tuple[int, int]] = {}  # (provider, model) -> (dims, line)
        self.keys: dict[Any, int] = {}

    def where(self, line: int) -> str:
        return f"{self.folder.name}/{RECORDS} line {line}"

    def fail(self, line: int, message: str) -> ReplayArchiveError:
        return ReplayArchiveError(f"{self.where(line)}: {message}")

    def read(self) -> Archive:
        # Split on "\n" only: str.splitlines would also split inside texts holding U+2028.
        lines = self.data.split(b"\n")
        ends_cleanly = self.data.endswith(b"\n")
        if ends_cleanly:
            lines.pop()
        if not lines or lines == [b""]:
            raise ReplayArchiveError(f"{self.folder.name}/{RECORDS} is empty: not even a header line (truncated?)")
        archive = Archive(self.folder)
        expected = 0
        for number, raw in enumerate(lines, 1):
            obj = self.parse(number, raw, cut=not ends_cleanly and number == len(lines))
            if number == 1:
                archive.note, expected = self.header(obj)
            elif obj.get("kind") == "generate":
                archive.generations.append(self.generation(number, obj))
            elif obj.get("kind") == "embed":
                archive.embeddings.append(self.embedding(number, obj))
            else:
                raise self.fail(number, f"unknown record kind {obj.get('kind')!r} (expected 'generate' or 'embed')")
        last = len(lines)
        found = last - 1
        if found != expected:
            raise self.fail(last, f"the header promises {expected} records but the file ends after {found}: "
                                  f"the archive is truncated or lines were removed by hand")
        self.last = last
        return archive

    def check_vector_file(self, size: int) -> None:
        """``vectors.f32`` must be exactly as long as the records' vectors add up to."""
        for record, start, end, _ in self.pending:
            if end > size:
                raise self.fail(record.line, f"{VECTORS} ends at byte {size}, before this record's vector "
                                             f"(bytes {start}-{end}): the archive is truncated")
        if size != self.offset:
            raise self.fail(self.last, f"{VECTORS} holds {size - self.offset} bytes after the last vector: "
                                       "records were removed by hand, or the two files come from different recordings")

    def attach_vectors(self, vectors: bytes) -> None:
        """Check each vector's bytes against its record's checksum and give it to the record."""
        self.check_vector_file(len(vectors))  # again: the file may have shrunk since it was measured
        for record, start, end, crc in self.pending:
            chunk = vectors[start:end]
            if f"{zlib.crc32(chunk):08x}" != crc.lower():
                raise self.fail(record.line, f"the vector's checksum does not match {VECTORS} bytes {start}-{end}: "
                                             "the archive was edited or damaged; record it again")
            vector = np.frombuffer(chunk, dtype="<f4").astype(np.float32)
            if not np.isfinite(vector).all():
                raise self.fail(record.line, "the vector holds NaN or infinity")
            vector.flags.writeable = False
            record.vector = vector

    def parse(self, number: int, raw: bytes, cut: bool) -> dict[str, Any]:
        try:
            obj = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
        except UnicodeDecodeError:
            raise self.fail(number, "not UTF-8 text") from None
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than json follows
            why = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            hint = "; the file ends mid-line: it is truncated" if cut else ""
            raise self.fail(number, f"not valid JSON ({why}){hint}") from None
        if not isinstance(obj, dict):
            raise self.fail(number, f"expected a JSON object, found {type(obj).__name__}")
        return obj

    def header(self, obj: dict[str, Any]) -> tuple[str | None, int]:
        if obj.get("format") != FORMAT:
            raise self.fail(1, f"not an eliza_nb replay archive (format {obj.get('format')!r}, expected {FORMAT!r})")
        version = obj.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self.fail(1, f"bad format version {version!r}")
        if version > VERSION:
            raise self.fail(1, f"format version {version} is newer than this eliza_nb reads (up to {VERSION}): "
                               "upgrade eliza_nb to replay it")
        if obj.get("vector_dtype", "<f4") != "<f4":
            raise self.fail(1, f"vector_dtype {obj.get('vector_dtype')!r} is not little-endian float32 ('<f4')")
        records = obj.get("records")
        if not isinstance(records, int) or isinstance(records, bool) or records < 0:
            raise self.fail(1, f"'records' should be a count, not {records!r}")
        note = obj.get("note")
        if note is not None and not isinstance(note, str):
            raise self.fail(1, "'note' should be text")
        return note, records

    def need(self, number: int, obj: dict[str, Any], path: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
        """``obj[a][b]`` for ``path="a.b"``, checked against ``kind``."""
        value: Any = obj
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                if optional:
                    return None
                raise self.fail(number, f"'{path}' is missing")
            value = value[part]
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))):
            names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.fail(number, f"'{path}' should be {names}, not {type(value).__name__}")
        return value

    def generation(self, number: int, obj: dict[str, Any]) -> GenRecord:
        n = self.need(number, obj, "n", int)
        req = self.need(number, obj, "request", dict)
        for name in ("provider", "model", "model_class"):
            self.need(number, obj, f"request.{name}", str)
        messages = self.need(number, obj, "request.messages", list)
        for i, m in enumerate(messages):
            if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                raise self.fail(number, f"'request.messages[{i}]' should be {{\"role\": text, \"content\": text}}")
        self.need(number, obj, "request.settings", dict)
        try:
            # Every setting of this version, so a request recorded before a setting existed
            # compares field by field with one made now.
            req["settings"] = settings_dict(ModelSettings.from_mapping(req["settings"]))
            key = request_key(req)
        except (TypeError, ValueError) as exc:
            raise self.fail(number, f"bad request: {exc}") from None
        resp = self.need(number, obj, "response", dict)
        for name in ("text", "provider", "model", "model_class"):
            self.need(number, obj, f"response.{name}", str)
        self.need(number, obj, "response.finish_reason", str, optional=True)
        for name in ("prompt_tokens", "completion_tokens"):
            self.need(number, obj, f"response.usage.{name}", int, optional=True)
        for name in ("settings",):
            self.need(number, obj, f"response.{name}", dict, optional=True)
        for name in ("notes", "attempts"):
            self.need(number, obj, f"response.{name}", list, optional=True)
        for i, a in enumerate(resp.get("attempts") or []):
            if not (isinstance(a, dict) and isinstance(a.get("target"), str) and isinstance(a.get("outcome"), str)):
                raise self.fail(number, f"'response.attempts[{i}]' should be {{\"target\": text, \"outcome\": text}}")
        if not all(isinstance(x, str) for x in resp.get("notes") or []):
            raise self.fail(number, "'response.notes' should be a list of text")
        self.unique(number, ("generate", key, n))
        return GenRecord(request=req, response=resp, n=n, line=number, key=key)

    def embedding(self, number: int, obj: dict[str, Any]) -> EmbRecord:
        provider = self.need(number, obj, "provider", str)
        model = self.need(number, obj, "model", str)
        normalized = self.need(number, obj, "normalized", bool)
        text = self.need(number, obj, "text", str)
        dims = self.need(number, obj, "dims", int)
        crc = self.need(number, obj, "crc32", str)
        if not 0 < dims <= MAX_DIMS:
            raise self.fail(number, f"dims {dims} is not a vector length")
        seen = self.dims.setdefault((provider, model), (dims, number))
        if seen[0] != dims:
            raise self.fail(number, f"a {dims}-dimensional vector, but line {seen[1]} recorded {seen[0]} dimensions "
                                    f"for {provider}:{model}: wrong vector length")
        start, end = self.offset, self.offset + 4 * dims
        record = EmbRecord(provider, model, normalized, text, _NO_VECTOR, line=number)
        self.pending.append((record, start, end, crc))  # its bytes are checked once the file's size is known
        self.offset = end
        self.unique(number, ("embed", *record.ident))
        return record

    def unique(self, number: int, ident: Any) -> None:
        first = self.keys.setdefault(ident, number)
        if first != number:
            raise self.fail(number, f"the same request as line {first}")
