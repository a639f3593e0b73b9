"""``similar(query, texts_or_vectors, k)``: cosine top-k as a DataFrame(text, score), best first.

Texts are embedded through the runtime (so through the cache); vectors are used as
given. The candidates become one float32 (n, d) matrix and the top k come from
argpartition, so 100,000 candidates cost one matrix-vector product plus O(n).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, EmbeddingDimensionError
from .vectors import top_k_cosine, validate_matrix

if TYPE_CHECKING:
    import pandas as pd


def similar(rt: Any, query: Any, candidates: Any, k: int = 5, *, provider: str | None = None,
            model: str | None = None, normalized: bool | None = None) -> pd.DataFrame:
    """The ``k`` candidates most similar to ``query``: a DataFrame(text, score), best first.

    ``candidates``: a list / Series / 1-d array of texts (embedded through the cache), an
    (n, d) array or list of vectors, or a DataFrame with a ``vector`` column (and
    optionally ``text``) such as ``%%eliza embed`` makes. The frame's index is the
    candidates' index (positions for lists). ``normalized=True`` promises unit-length
    vectors and skips computing norms; texts embedded here always are.
    """
    import pandas as pd

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a whole number of at least 1, not {k!r}")
    texts, vectors, index = _split(candidates)
    options = {"provider": provider, "model": model}
    if vectors is None:
        matrix = rt.embed(texts, **options) if texts else np.zeros((0, 0), np.float32)
        normalized = True  # embed() returns unit vectors
    else:
        matrix = _as_matrix(vectors)
    q = rt.embed(query, **options) if isinstance(query, str) else validate_matrix([query], source="query")[0]
    if len(matrix) and q.shape[0] != matrix.shape[1]:
        raise EmbeddingDimensionError(
            f"the query has {q.shape[0]} dimensions but the candidates have {matrix.shape[1]}: "
            "embed both with the same provider and model"
        )
    idx, scores = top_k_cosine(q, matrix, int(k), normalized=bool(normalized))
    labels = index[idx] if index is not None else idx
    text_col = [texts[i] for i in idx] if texts is not None else [None] * len(idx)
    return pd.DataFrame({"text": text_col, "score": scores.astype(np.float64)}, index=labels)


def _split(candidates: Any) -> tuple[list[str] | None, Any, Any]:
    """(texts, vectors, index) from any accepted candidate form; texts or vectors may be None."""
    import pandas as pd

    if isinstance(candidates, pd.DataFrame):
        texts = [str(t) for t in candidates["text"]] if "text" in candidates.columns else None
        if "vector" in candidates.columns:
            return texts, np.stack(candidates["vector"].to_numpy()) if len(candidates) else np.zeros((0, 0)), candidates.index
        if texts is not None:
            return texts, None, candidates.index
        raise ConfigError("a DataFrame of candidates needs a 'text' or a 'vector' column")
    index = candidates.index if isinstance(candidates, pd.Series) else None
    if isinstance(candidates, np.ndarray) and candidates.dtype.kind in "fiu":
        return None, candidates, index
    items = list(candidates.to_numpy() if index is not None else candidates)
    if all(isinstance(t, str) for t in items):
        return items, None, index
    if any(isinstance(t, str) for t in items):
        raise ConfigError("candidates mix texts and vectors; pass one kind")
    return None, np.stack([np.asarray(v) for v in items]) if items else np.zeros((0, 0)), index


def _as_matrix(vectors: Any) -> np.ndarray:
    """An (n, d) float32 view (no copy when it already is one). Not checked for NaN here:
    that would cost a pass over n x d; top_k_cosine ranks non-finite rows last instead."""
    arr = np.asarray(vectors)
    if arr.dtype.kind not in "fiu" or arr.ndim != 2:
        raise ConfigError(f"candidate vectors must be an (n, d) array of numbers, not shape {arr.shape} dtype {arr.dtype}")
    return arr if arr.dtype == np.float32 else arr.astype(np.float32)
