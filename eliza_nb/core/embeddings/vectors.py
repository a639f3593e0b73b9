"""Embedding vectors: validation, normalization and cosine top-k.

Every vector that enters or leaves the cache passes :func:`validate_embedding` (one) or
:func:`validate_matrix` (a batch): a wrong length, NaN/inf or a non-numeric value is
never stored and never returned, so a provider switch can never mix 384/768/1536-dim
vectors in one store.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EmbeddingDimensionError, InvalidEmbeddingError

#: rows whose norm is within this of 1 are left untouched (re-dividing only adds rounding)
UNIT_TOLERANCE = 1e-5


def validate_embedding(vec: Any, expected_dims: int | None = None, *, source: str = "") -> np.ndarray:
    """Check one vector and return it as a contiguous 1-d float32 array.

    Raises :class:`EmbeddingDimensionError` (naming both sizes) when its length is not
    ``expected_dims``, and :class:`InvalidEmbeddingError` when it is not a flat list of
    finite numbers. ``source`` (e.g. ``"openai:text-embedding-3-small"``) goes into the message.
    """
    row: np.ndarray = validate_matrix([vec], expected_dims, source=source)[0]
    return row


def is_valid_embedding(vec: Any, expected_dims: int | None = 1536) -> bool:
    """The seed's ``validateEmbedding``: True when ``vec`` is ``expected_dims`` finite numbers."""
    try:
        validate_embedding(vec, expected_dims)
    except (EmbeddingDimensionError, InvalidEmbeddingError):
        return False
    return True


def validate_matrix(rows: Any, expected_dims: int | None = None, *, source: str = "") -> np.ndarray:
    """Check a batch of vectors (vectorised) and return an (n, d) contiguous float32 array.

    Non-finite rows are an error for the whole batch; :func:`finite_rows` tells which rows
    are good when a caller wants to keep those.
    """
    where = f"{source} " if source else ""
    try:
        arr = np.asarray(rows)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise InvalidEmbeddingError(f"{where}embedding is not a flat list of numbers ({exc})") from None
    if arr.dtype.kind not in "fiu":  # bool, complex, str and object are not embeddings
        raise InvalidEmbeddingError(f"{where}embedding holds non-numeric values (dtype {arr.dtype})")
    if arr.ndim != 2:
        raise InvalidEmbeddingError(f"{where}embedding batch has shape {arr.shape}, expected (n, dims)")
    if expected_dims is not None and arr.shape[1] != expected_dims:
        raise EmbeddingDimensionError(
            f"{where}embedding has {arr.shape[1]} dimensions, expected {expected_dims}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and not np.isfinite(arr).all():
        bad = int((~finite_rows(arr)).sum())
        raise InvalidEmbeddingError(f"{where}{bad} of {len(arr)} embedding(s) hold NaN or infinite values")
    return arr


def finite_rows(arr: np.ndarray) -> np.ndarray:
    """A boolean mask: which rows of an (n, d) array are all finite."""
    mask: np.ndarray = np.isfinite(arr).all(axis=1)
    return mask


def normalize_rows(arr: np.ndarray) -> np.ndarray:
    """L2-normalize the rows of a float32 array in place (zero rows stay zero); returns it.

    Rows already of unit length are not touched, so a provider's normalized vectors are
    stored bit for bit as it sent them.
    """
    if not arr.size:
        return arr
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64))
    fix = (np.abs(norms - 1.0) > UNIT_TOLERANCE) & (norms > 0)
    if fix.any():
        arr[fix] /= norms[fix, None].astype(np.float32)
    return arr


def top_k_cosine(query: np.ndarray, matrix: np.ndarray, k: int, *, normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) of the ``k`` rows of ``matrix`` most cosine-similar to ``query``, best first.

    ``normalized=True`` says every row is already unit length (vectors from ``embed`` are),
    which skips one full pass over the matrix. Uses argpartition: O(n) plus O(k log k).
    A row holding NaN/inf, or a zero row, scores -inf: it ranks last instead of first.
    """
    n = matrix.shape[0]
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32).ravel()
    qn = float(np.linalg.norm(q))
    if qn > 0:
        q = q / qn
    scores = matrix @ q
    if not normalized:
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
        with np.errstate(divide="ignore", invalid="ignore"):
            scores /= norms  # a zero row gives nan (0/0) or inf, cleaned up below
    # Checking the (n,) scores finds every non-finite row: far cheaper than checking (n, d).
    bad = ~np.isfinite(scores)
    if bad.any():
        scores[bad] = -np.inf
    idx = np.argpartition(scores, n - k)[n - k:] if k < n else np.arange(n)
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return idx, scores[idx]
