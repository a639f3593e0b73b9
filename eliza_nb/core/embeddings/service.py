"""Batch embedding through the cache: dedupe, look up, send only the misses, store, reorder.

``Runtime.embed`` delegates here. For one call:

1. de-duplicate the texts and key each in its :class:`EmbeddingSpace` (provider, model,
   dims, normalization);
2. look every key up, memory first, then the disk in bulk (one query per 500 keys);
3. single-flight: a miss that another thread is already fetching is waited for, not
   fetched again; the rest are claimed by this call;
4. send the claimed texts in provider-sized batches, validate every vector (length,
   finiteness), normalize, and store each batch as it lands (memory, and disk in one
   transaction where the first writer of a key wins), so a later batch's failure keeps the
   paid-for vectors and the error says how many texts are done;
5. return vectors in input order; a ledger row counts the texts the cache answered.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from ..cache.tiers import Cache, EmbeddingSpace, canonical_json, decode_record, encode_record
from ..errors import ConfigError, ElizaError, EmbeddingDimensionError, InvalidEmbeddingError, TransientError
from ..ladder import Climb, Job
from ..types import Target, check_text
from .vectors import finite_rows, normalize_rows, validate_matrix

#: texts per provider request, by wire protocol; a catalog entry's ``embedding_batch_size`` wins
DEFAULT_BATCH = {"openai": 256, "google": 100, "llama_local": 64}
FALLBACK_BATCH = 64


class EmbedJob(Job):
    """A user's embedding call: through the cache, with only the misses sent (EmbedBatch)."""

    kind = "embed"

    def __init__(self, texts: Any, provider: str | None, model: str | None, options: Mapping[str, Any]) -> None:
        self.texts, self.provider, self.model, self.options = texts, provider, model, dict(options)

    def run(self, rt: Any) -> Climb:
        return rt.embeddings.embed(self.texts, self.provider, self.model, **self.options)
        yield  # a generator that yields nothing: embeddings do not stream


class EmbedBatch(Job):
    """One provider request for a batch of texts: the ladder's embedding job."""

    kind = "embed"

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)

    def fit(self, rt: Any, adapter: Any, target: Target, timeout_s: float) -> tuple[float, list[str], int]:
        return timeout_s, [], sum(len(t) for t in self.texts) // 4

    def call(self, rt: Any, adapter: Any, target: Target, payload: float, t0: float) -> Climb:
        return adapter.embed(self.texts, target.model, payload)
        yield  # a generator that yields nothing: embeddings do not stream

    def cost(self, entry: Any, target: Target, answer: Any) -> float:
        return 0.0 if entry.price(target.model)[0] == 0 else math.nan

    def items(self) -> int:
        return len(self.texts)


class EmbeddingService:
    """The embedding half of the runtime: one per Runtime, sharing its cache and ledger."""

    def __init__(self, runtime: Any, cache: Cache) -> None:
        self.rt = runtime
        self.cache = cache
        self._lock = threading.Lock()
        self._inflight: dict[bytes, Future[np.ndarray]] = {}
        self._probe_lock = threading.Lock()
        self._dims: dict[tuple[str, str], int | None] = {}  # learned sizes: a disk read each otherwise

    # -- public entry --------------------------------------------------------------------
    def embed(self, texts: Any, provider: str | None = None, model: str | None = None, *,
              regenerate: bool = False, as_array: bool | None = None, normalize: bool = True) -> Any:
        """Embed one text -> (d,) float32; a list -> (n, d); a pandas Series -> a Series of
        vectors (same index), or an (n, d) array with ``as_array=True``.

        ``regenerate=True`` ignores cached vectors, asks the provider again and stores the
        answer under the key of the dimension it actually returned.
        """
        single = isinstance(texts, str)
        target = self.rt.resolve_embedding(provider, model)
        space = self.space(target, normalize)
        series = _series_type()
        is_series = series is not None and isinstance(texts, series)
        items = as_texts(texts)
        if not items:
            return np.zeros((0, space.dims if space else 0), dtype=np.float32)
        matrix = self._embed_items(items, target, space, normalize, regenerate)
        if single:
            return matrix[0].copy()
        if is_series and not as_array:
            import pandas as pd

            return pd.Series(list(matrix), index=texts.index, name=texts.name, dtype=object)
        if as_array is False:
            return list(matrix)
        return matrix

    def space(self, target: Target, normalize: bool = True) -> EmbeddingSpace | None:
        """The key space of a target, or None while its dimension is not yet known."""
        dims = self.expected_dims(target)
        if dims is None:
            return None
        return _space(target.provider, target.model, dims, bool(normalize))

    def expected_dims(self, target: Target) -> int | None:
        """Dims learned for this model (first answer, or a ``regenerate=True``), else the
        catalog's ``embedding_dims`` when the model is the catalog's embedding model."""
        ident = (target.provider, target.model)
        if ident not in self._dims:
            learned = self._load_dims(*ident)
            if learned is None:
                entry = self.rt.catalog.get(target.provider)
                if entry.embedding_dims and entry.models.get(target.model_class) == target.model:
                    learned = int(entry.embedding_dims)
            self._dims[ident] = learned
        return self._dims[ident]

    def cached(self, texts: Sequence[str], target: Target, normalize: bool = True) -> dict[str, np.ndarray]:
        """The vectors this cache holds for ``texts`` (memory, then disk in bulk), by text."""
        space = self.space(target, normalize)
        if space is None:
            return {}
        text_of = {space.key(t): t for t in dict.fromkeys(texts)}
        hits = self.cache.lookup(list(text_of), space.tag, lambda recs: self._decode(recs, space))
        return {text_of[k]: v for k, v in hits.items()}

    def keep(self, texts: Sequence[str], vectors: Any, target: Target, normalize: bool = True) -> dict[str, np.ndarray]:
        """Store vectors computed elsewhere (a Dask worker) under this cache's keys, validated
        as if fetched here; returns them as stored (where a key was stored first, that vector)."""
        source = f"[{target.provider}] {target.model}"
        matrix = validate_matrix(np.asarray(vectors, dtype=np.float32), source=source)
        space = self.space(target, normalize)
        if space is None or matrix.shape != (len(texts), space.dims):
            raise InvalidEmbeddingError(f"{source}: got shape {matrix.shape} for {len(texts)} texts"
                                        f"{'' if space is None else f' of {space.dims} dimensions'}")
        matrix.flags.writeable = False
        got = dict(zip((space.key(t) for t in texts), matrix, strict=True))
        got.update(self._persist_first(got, space))
        self.cache.remember(got, space.tag)
        return {t: got[space.key(t)] for t in texts}

    # -- the batch algorithm ----------------------------------------------------------------
    def _embed_items(self, items: list[str], target: Target, space: EmbeddingSpace | None,
                     normalize: bool, regenerate: bool) -> np.ndarray:
        t0 = time.perf_counter()
        unique = list(dict.fromkeys(items))
        found: dict[bytes, np.ndarray] = {}
        fetched = 0
        if space is None:  # first use of a model of unknown size: its first batch tells us
            with self._probe_lock:  # one probe at a time; later callers find the size learned
                space = self.space(target, normalize)
                if space is None:
                    first = unique[: self.batch_size(target)]
                    vectors = self._fetch(first, target, None, normalize, accept_dims=True)
                    fetched = len(first)
                    space = self.space(target, normalize)
                    assert space is not None
                    fresh = dict(zip((space.key(t) for t in first), vectors, strict=True))
                    fresh.update(self._persist_first(fresh, space))
                    self.cache.remember(fresh, space.tag)
                    found.update(fresh)
        keys = [space.key(t) for t in unique]
        text_of = dict(zip(keys, unique, strict=True))
        todo = [k for k in keys if k not in found]
        if todo and not regenerate:
            hits = self.cache.lookup(todo, space.tag, lambda recs: self._decode(recs, space))
            found.update(hits)
            todo = [k for k in todo if k not in hits] if hits else todo
        owned, waiting = self._claim(todo, regenerate)
        served = len(keys) - fetched - len(owned)  # found here, or being fetched by another call
        if served and not regenerate:
            self._record_hits(target, served, time.perf_counter() - t0)
        error: BaseException | None = None
        try:
            self._fetch_owned(owned, text_of, target, space, normalize, regenerate, found)
        except ElizaError as exc:
            error = exc
            done = sum(1 for k in keys if k in found)
            exc.embedded = (done, len(keys))  # type: ignore[attr-defined]
            exc.detail = exc.args[0] if exc.args else str(exc)  # type: ignore[attr-defined]  # before the count
            if len(keys) > 1:
                exc.args = (f"{exc.detail}; {progress_note(done, len(keys))}",)  # type: ignore[attr-defined]
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._release(owned, error)
        for key, fut in waiting.items():
            try:
                found[key] = fut.result(timeout=self._wait_s())
            except FutureTimeout:
                raise TransientError(f"waited {self._wait_s():.0f} s for another call embedding the same text",
                                     provider=target.provider) from None
        matrix = np.stack([found[k] for k in keys])
        if len(unique) == len(items):
            return matrix
        index = {t: i for i, t in enumerate(unique)}
        return matrix[[index[t] for t in items]]

    def _claim(self, keys: list[bytes], regenerate: bool) -> tuple[dict[bytes, Future[np.ndarray] | None], dict[bytes, Future[np.ndarray]]]:
        """Split misses into those this call fetches (owned) and those another call is fetching.

        ``regenerate`` fetches everything itself and registers nothing (it must not
        answer, or be answered by, ordinary calls).
        """
        if regenerate or not keys:
            return dict.fromkeys(keys), {}
        owned: dict[bytes, Future[np.ndarray] | None] = {}
        waiting: dict[bytes, Future[np.ndarray]] = {}
        with self._lock:
            for key in keys:
                fut = self._inflight.get(key)
                if fut is not None:
                    waiting[key] = fut
                    continue
                # The owner puts vectors in memory before it lets go of a key, so this
                # re-check under the lock closes the gap between our lookup and now.
                hit = self.cache.memory.get(key)
                if hit is not None:
                    fut = Future()
                    fut.set_result(hit)
                    waiting[key] = fut
                    continue
                owned[key] = self._inflight[key] = Future()
        return owned, waiting

    def _release(self, owned: Mapping[bytes, Future[np.ndarray] | None], error: BaseException | None) -> None:
        """Let go of claimed keys; any still unresolved fail their waiters with this call's error."""
        with self._lock:
            for key, fut in owned.items():
                if fut is not None and self._inflight.get(key) is fut:
                    del self._inflight[key]
        for fut in owned.values():
            if fut is not None and not fut.done():
                fut.set_exception(error if isinstance(error, Exception) else
                                  TransientError("the call fetching this embedding was interrupted; try again"))

    def _fetch_owned(self, owned: Mapping[bytes, Future[np.ndarray] | None], text_of: Mapping[bytes, str], target: Target,
                     space: EmbeddingSpace, normalize: bool, regenerate: bool, found: dict[bytes, np.ndarray]) -> None:
        """Fetch the owned keys in provider-sized batches, each stored (memory, and disk in one
        transaction) before the next is asked for: a failure, or a process killed, loses at
        most the batch in flight. On disk the first writer of a key wins (processes and Dask
        workers share the store): a vector another process stored first is the one returned."""
        keys = list(owned)
        size = self.batch_size(target)
        store_space = space
        for start in range(0, len(keys), size):  # bounded: one request per batch
            batch = keys[start:start + size]
            try:
                vectors = self._fetch([text_of[k] for k in batch], target, store_space.dims, normalize,
                                      accept_dims=regenerate)
            except ElizaError as exc:
                exc.failed_texts = [text_of[k] for k in batch]  # type: ignore[attr-defined]
                raise
            if vectors.shape[1] != store_space.dims:  # regenerate accepted another size: its own key space
                learned = self.space(target, normalize)
                assert learned is not None  # _fetch has just learned its size
                store_space = learned
            got = dict(zip((store_space.key(text_of[k]) for k in batch), vectors, strict=True)) if store_space is not space \
                else dict(zip(batch, vectors, strict=True))
            if regenerate:
                self._persist(got, store_space)
            else:
                got.update(self._persist_first(got, store_space))
            self.cache.remember(got, store_space.tag)
            for key, vec in zip(batch, got.values(), strict=True):
                found[key] = vec
                fut = owned[key]
                if fut is not None and not fut.done():
                    fut.set_result(vec)

    def _fetch(self, texts: list[str], target: Target, dims: int | None, normalize: bool, *, accept_dims: bool) -> np.ndarray:
        """One provider request, validated: right shape, right size (or learned), finite, normalized."""
        source = f"[{target.provider}] {target.model}"
        raw = self.rt.embed_raw(texts, target)
        try:
            arr = np.asarray(raw)
        except (TypeError, ValueError) as exc:
            raise InvalidEmbeddingError(f"{source} returned something that is not a list of vectors ({exc})") from None
        if arr.ndim != 2 or arr.shape[0] != len(texts):
            raise InvalidEmbeddingError(f"{source} returned shape {arr.shape} for {len(texts)} texts")
        if dims is not None and arr.shape[1] != dims and not accept_dims:
            raise EmbeddingDimensionError(
                f"{source} returned {arr.shape[1]}-dimensional vectors, expected {dims}; nothing was stored. "
                f"Pass regenerate=True to accept {arr.shape[1]} dimensions for this model"
            )
        try:
            arr = validate_matrix(arr, source=source)
        except InvalidEmbeddingError as exc:
            raise InvalidEmbeddingError(f"{exc}; nothing from this batch of {len(texts)} was stored") from None
        if dims is None or arr.shape[1] != dims:
            self._learn_dims(target, int(arr.shape[1]))
        if normalize:
            normalize_rows(arr)
        arr.flags.writeable = False  # rows are shared with the memory tier; callers get copies
        return arr

    # -- records ------------------------------------------------------------------------
    def _persist(self, vectors: Mapping[bytes, np.ndarray], space: EmbeddingSpace) -> None:
        if vectors:
            self.cache.persist(((k, space.record(v)) for k, v in vectors.items()), space.tag)

    def _persist_first(self, vectors: Mapping[bytes, np.ndarray], space: EmbeddingSpace) -> dict[bytes, np.ndarray]:
        """Store the vectors whose key is not on disk yet; the stored vectors of the others."""
        if not vectors:
            return {}
        stored = self.cache.persist_new(((k, space.record(v)) for k, v in vectors.items()), space.tag)
        if not stored:
            return {}
        kept, bad = self._decode(stored, space)
        if bad:  # a damaged record under our key: ours replaces it
            self._persist({k: vectors[k] for k in bad}, space)
        return kept

    @staticmethod
    def _decode(records: Mapping[bytes, bytes], space: EmbeddingSpace) -> tuple[dict[bytes, np.ndarray], list[bytes]]:
        """Validate disk records in bulk: exact header for this space, exact length, checksum, finite values."""
        prefix, size, start, end = space.prefix, space.record_size, len(space.prefix), space.record_size - 4
        crc32 = zlib.crc32
        good_keys: list[bytes] = []
        payloads: list[memoryview] = []
        bad: list[bytes] = []
        for key, blob in records.items():
            if len(blob) == size and blob.startswith(prefix):
                payload = memoryview(blob)[start:end]
                if crc32(payload) == int.from_bytes(blob[end:], "little"):
                    good_keys.append(key)
                    payloads.append(payload)
                    continue
            bad.append(key)
        if not good_keys:
            return {}, bad
        matrix = np.frombuffer(b"".join(payloads), dtype="<f4").reshape(len(good_keys), space.dims)
        ok = finite_rows(matrix)
        if not ok.all():
            bad += [k for k, good in zip(good_keys, ok, strict=True) if not good]
        matrix = matrix.astype(np.float32, copy=False)  # a read-only view: callers get copies
        return {k: matrix[i] for i, (k, good) in enumerate(zip(good_keys, ok, strict=True)) if good}, bad

    def _learn_dims(self, target: Target, dims: int) -> None:
        ident = (target.provider, target.model)
        self._dims[ident] = dims
        key, tag = _dims_key(*ident)
        self.cache.remember({key: dims}, tag)
        record = encode_record({"kind": "dims", "provider": target.provider, "model": target.model, "dims": dims})
        self.cache.persist([(key, record)], tag)

    def _load_dims(self, provider: str, model: str) -> int | None:
        key, tag = _dims_key(provider, model)

        def decode(records: Mapping[bytes, bytes]) -> tuple[dict[bytes, int], list[bytes]]:
            out, bad = {}, []
            for k, blob in records.items():
                try:
                    header, _ = decode_record(blob)
                    dims = header.get("dims")
                    if header.get("kind") != "dims" or not isinstance(dims, int) or not 0 < dims <= 65536:
                        raise ValueError("bad dims record")
                    out[k] = dims
                except ValueError:
                    bad.append(k)
            return out, bad

        return self.cache.lookup([key], tag, decode).get(key)

    # -- small helpers ---------------------------------------------------------------------
    def batch_size(self, target: Target) -> int:
        """Texts per provider request: the catalog entry's ``embedding_batch_size``, else by protocol."""
        entry = self.rt.catalog.get(target.provider)
        value = entry.extra.get("embedding_batch_size") or DEFAULT_BATCH.get(entry.protocol, FALLBACK_BATCH)
        try:
            return max(1, int(value))
        except (TypeError, ValueError):
            raise ConfigError(f"provider {entry.id}: embedding_batch_size must be a whole number, not {value!r}") from None

    def _wait_s(self) -> float:
        # Another thread's fetch: bounded by the whole retry budget, never forever.
        return float(self.rt.retry.max_total_s) + float(self.rt.retry.timeout_s)

    def _record_hits(self, target: Target, n: int, latency: float) -> None:
        self.rt.ledger.log("embed", target, latency_s=latency, cost_usd=0.0, cache_hit=True, items=n)


def progress_note(done: int, total: int) -> str:
    """How far a failed embedding call got, for its one-line error."""
    return f"{done} of {total} texts are embedded and cached, a re-run sends only the other {total - done}"


@functools.lru_cache(maxsize=256)
def _space(provider: str, model: str, dims: int, normalized: bool) -> EmbeddingSpace:
    # Building a space hashes and encodes its header, which costs a memory hit's own time
    # again; spaces are immutable and few, so every call for a model shares one.
    return EmbeddingSpace(provider, model, dims, normalized)


def _dims_key(provider: str, model: str) -> tuple[bytes, str]:
    import hashlib

    ident = canonical_json(["dims", provider, model])
    return hashlib.sha256(ident).digest(), ident.decode()


def _series_type() -> type | None:
    pd = sys.modules.get("pandas")  # a Series can only exist if pandas is already imported
    return getattr(pd, "Series", None) if pd is not None else None


def as_texts(texts: Any) -> list[str]:
    """A list of str from one text or a list / tuple / Series / array of texts; None and NaN
    are errors, and so is a text that cannot be sent (a lone surrogate)."""
    if isinstance(texts, str):
        return [check_text(texts, "the text")]
    if isinstance(texts, (bytes, bytearray)) or not hasattr(texts, "__iter__"):
        raise ConfigError(f"embed takes a text or a list of texts, not {type(texts).__name__}")
    if hasattr(texts, "__dask_graph__"):  # iterating would compute it here, partition by partition
        raise ConfigError("a Dask collection: use eliza_nb.embed(...), which computes it on the cluster (docs/scale.md)")
    pd = sys.modules.get("pandas")
    na = getattr(pd, "NA", None)  # a string column's missing value (dask makes text columns strings): not "<NA>"
    out = []
    for i, t in enumerate(texts):
        if isinstance(t, str):
            out.append(check_text(t, f"item {i}"))
        elif t is None or (isinstance(t, float) and t != t) or (na is not None and t is na):
            raise ConfigError(f"item {i} is missing (None/NaN); drop or fill missing texts before embedding")
        else:
            out.append(check_text(str(t), f"item {i}"))
    return out
