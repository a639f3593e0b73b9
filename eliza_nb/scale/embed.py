"""Embeddings of a Dask collection, partition by partition on the workers.

``eliza_nb.embed(ddf["text"])`` returns a dask Series of vectors (``as_array=True``: a dask
array of shape (n, d), rows in order, chunk sizes unknown until computed). Each partition
is one task: the worker's runtime (workers.py) embeds it through the ordinary path
(dedupe, cache look-up, only the misses sent, each batch stored as it lands) against the
cache store in the shared home, where the first writer of a key wins. So a text cached by
any earlier run, on one machine or many, is never sent again, a partition run twice (a
worker died) gets back the vectors its first run stored, and a failing partition keeps
every batch it finished.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..core.embeddings.service import as_texts, progress_note
from ..core.errors import (
    ConfigError,
    ContentBlocked,
    ContextTooLongError,
    ElizaError,
    InvalidEmbeddingError,
    InvalidRequestError,
)
from ..core.runtime import Runtime
from .workers import WorkerSpec, attach, runtime_for, use_here

#: errors that may come from one text in a batch: the failed batch is retried text by text to name it
TEXT_ERRORS = (InvalidRequestError, ContextTooLongError, InvalidEmbeddingError, ContentBlocked)
SHOWN_CHARS = 80


def embed_collection(rt: Runtime, texts: Any, provider: str | None = None, model: str | None = None, *,
                     as_array: bool | None = None, normalize: bool = True, regenerate: bool = False,
                     client: Any = None) -> Any:
    """A dask Series of vectors (same index and partitions as ``texts``), or with
    ``as_array=True`` a dask array (n, d) float32. Nothing runs until it is computed."""
    import dask
    import dask.array as da
    import dask.dataframe as dd

    if client is not None and not dask.is_dask_collection(texts):
        return _embed_here_on(client, rt, texts, provider, model, as_array=as_array, normalize=normalize, regenerate=regenerate)
    if not isinstance(texts, dd.Series):
        raise ConfigError(f"embed takes a dask Series of texts (ddf['text']), not a dask {type(texts).__name__}")
    target = rt.resolve_embedding(provider, model)
    client = client if client is not None else _current_client()
    if client is not None:
        spec = attach(client, rt)
    else:  # dask's local schedulers: tasks run in this process, on this runtime
        spec = WorkerSpec.of(rt)
        use_here(spec, rt)
    space = rt.embeddings.space(target, normalize)
    if space is None:  # a model of unknown size: its first text tells us (and is cached)
        first = texts.head(1, npartitions=-1)
        if len(first) == 0:
            raise ConfigError("the dask Series holds no texts")
        rt.embed(list(first)[:1], target.provider, target.model, normalize=normalize)
        space = rt.embeddings.space(target, normalize)
        assert space is not None
    n = texts.npartitions
    args = (spec, target.provider, target.model, normalize, regenerate, n)
    if as_array:
        parts = texts.to_delayed()
        blocks = [da.from_delayed(dask.delayed(embed_partition, pure=True)(part, *args, number=i, series=False),
                                  shape=(np.nan, space.dims), dtype=np.float32)
                  for i, part in enumerate(parts)]
        return da.concatenate(blocks, axis=0)
    return texts.map_partitions(embed_partition, *args, series=True, meta=pd.Series([], dtype=object, name=texts.name))


def _embed_here_on(client: Any, rt: Runtime, texts: Any, provider: str | None, model: str | None, *,
                   as_array: bool | None, normalize: bool, regenerate: bool) -> Any:
    """A list or pandas Series embedded on ``client``'s workers and returned as the
    single-process call returns it ((n, d) array, or a Series of vectors). The look-ups and
    stores go through this process's cache, so it holds for any cluster, shared store or
    not: texts cached here are never sent, and every vector computed lands here."""
    import dask.dataframe as dd

    if isinstance(texts, str):
        raise ConfigError("embed(..., client=) is for many texts: pass a list, a pandas Series or a dask Series")
    items = as_texts(texts)
    if not items:
        return rt.embed(texts, provider, model, as_array=as_array, normalize=normalize, regenerate=regenerate)
    target = rt.resolve_embedding(provider, model)
    unique = list(dict.fromkeys(items))
    found = {} if regenerate else rt.embeddings.cached(unique, target, normalize)
    todo = [t for t in unique if t not in found]
    if todo:
        threads = sum(client.nthreads().values()) or 1
        batch = rt.embeddings.batch_size(target)
        parts = max(1, min(4 * threads, -(-len(todo) // batch)))  # a few tasks per thread, none under a batch
        lazy = embed_collection(rt, dd.from_pandas(pd.Series(todo, dtype=object), npartitions=parts, sort=False),
                                target.provider, target.model, as_array=True, normalize=normalize,
                                regenerate=regenerate, client=client)
        found.update(rt.embeddings.keep(todo, client.compute(lazy).result(), target, normalize))
    matrix = np.stack([found[t] for t in items])
    if isinstance(texts, pd.Series) and not as_array:
        return pd.Series(list(matrix), index=texts.index, name=texts.name, dtype=object)
    return list(matrix) if as_array is False else matrix


def embed_partition(part: pd.Series, spec: WorkerSpec, provider: str, model: str, normalize: bool, regenerate: bool,
                    partitions: int, number: int | None = None, series: bool = True, partition_info: Any = None) -> Any:
    """One partition's vectors (the task body; runs on a worker)."""
    if number is None:
        number = int((partition_info or {}).get("number", 0))
    rt = runtime_for(spec)
    try:
        matrix = rt.embed(part, provider, model, as_array=True, normalize=normalize, regenerate=regenerate)
    except ElizaError as exc:
        raise partition_error(rt, exc, part, number, partitions, provider, model, normalize) from None
    if not series:
        return np.asarray(matrix, dtype=np.float32)
    return pd.Series(list(matrix), index=part.index, name=part.name, dtype=object)


def partition_error(rt: Runtime, exc: ElizaError, part: pd.Series, number: int, partitions: int, provider: str,
                    model: str, normalize: bool) -> ElizaError:
    """``exc`` with the partition and the text named in its one line (same type, so an
    ``except RateLimitedError`` still catches it)."""
    failed: Sequence[str] = getattr(exc, "failed_texts", None) or []
    culprit = None
    if isinstance(exc, TEXT_ERRORS) and len(failed) > 1:
        for text in failed:  # at most one batch of requests; each success is cached
            try:
                rt.embed([text], provider, model, normalize=normalize)
            except ElizaError:
                culprit = text
                break
    elif len(failed) == 1:
        culprit = failed[0]
    where = f"partition {number} of {partitions}"
    if culprit is not None:
        rows = part.index[part.astype(str) == culprit]
        label = f" (row {rows[0]!r})" if len(rows) else ""
        where += f", text {_short(culprit)!r}{label}"
    elif failed:
        where += f", a batch of {len(failed)} texts from {_short(failed[0])!r}"
    error = copy.copy(exc)
    message = exc.args[0] if exc.args else str(exc)
    embedded = getattr(exc, "embedded", None)
    if culprit is not None and embedded is not None and embedded[1] > 1:  # naming it cached a few more: count again
        texts = list(dict.fromkeys(str(t) for t in part))
        done = len(rt.embeddings.cached(texts, rt.resolve_embedding(provider, model), normalize))
        error.embedded = (done, len(texts))  # type: ignore[attr-defined]
        message = f"{getattr(exc, 'detail', message)}; {progress_note(done, len(texts))}"
    error.args = (f"{where}: {message}",)
    return error


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _current_client() -> Any:
    """The distributed Client dask would compute on, if there is one."""
    import sys

    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:  # no client: dask's local schedulers
        return None
