"""The explorer's numerics: PCA to 2-D, exact cosine nearest neighbours, substring search.

Everything here is linear (or d x d) in the number of points, so a million 384-dim vectors
build in about a second: PCA estimates the covariance from a fixed-seed sample of rows
(d x d is cheap; a full SVD of n x d is not) and neighbours are looked up for one point at a
time, when it is clicked, never all pairs up front.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

#: rows used to estimate the covariance; below this PCA is exact (all rows)
PCA_SAMPLE = 16_384
#: rows per block in the neighbour scan (bounds the temporary memory)
BLOCK = 131_072


def _mean(x: np.ndarray) -> np.ndarray:
    # per block a BLAS vector-matrix product (memory-bound, one pass), summed in float64
    acc = np.zeros(x.shape[1])
    ones = np.ones(min(BLOCK, x.shape[0]), dtype=x.dtype)
    for start in range(0, x.shape[0], BLOCK):
        block = x[start:start + BLOCK]
        acc += ones[:len(block)] @ block
    return acc / max(1, x.shape[0])


def pca_2d(vectors: np.ndarray, sample: int = PCA_SAMPLE, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Project rows to 2-D with PCA; returns (n, 2) and the fraction of variance each axis
    explains.

    The principal axes are the top eigenvectors of the d x d covariance, estimated from at
    most ``sample`` rows drawn with a fixed seed (exact when n <= sample), so the cost is
    linear in n. Degenerate inputs (one point, one dimension, identical vectors) give zeros
    rather than NaNs; each axis's sign is fixed so a re-run draws the same picture."""
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {x.shape}")
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    n, d = x.shape
    out = np.zeros((n, 2))
    if n < 2 or d == 0:
        return out, [0.0, 0.0]
    mean = _mean(x)
    rows = x if n <= sample else x[np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))]
    centred = rows - mean.astype(rows.dtype)  # float32 stays float32: twice as fast, ample here
    cov = (centred.T @ centred).astype(np.float64) / len(rows)
    values, vecs = np.linalg.eigh(cov)  # ascending
    k = min(2, d)
    axes = vecs[:, ::-1][:, :k]
    top = np.clip(values[::-1][:k], 0, None)
    total = float(np.clip(values, 0, None).sum())
    explained = [float(top[i] / total) if total > 0 and i < k else 0.0 for i in range(2)]
    # (x - mean) @ axes without materialising the centred n x d copy; one matrix-vector
    # product per axis (BLAS gemv streams x once; an n x d by d x 2 gemm is several times slower)
    for j in range(k):
        out[:, j] = x @ np.ascontiguousarray(axes[:, j], dtype=x.dtype)
    out[:, :k] -= mean @ axes
    for j in range(k):
        if total <= 0 or top[j] <= 1e-12 * total:
            out[:, j] = 0.0  # no variance along this axis: rounding noise, not a direction
            continue
        col = out[:, j]
        if col[np.argmax(np.abs(col))] < 0:
            out[:, j] = -col
    return out, explained


class CosineIndex:
    """Exact cosine-similarity look-ups over float32 vectors, one query row at a time.

    Keeps the vectors as given (no normalised copy: a million 384-dim rows are 1.5 GB) and
    their inverse norms; a query is one blocked matrix-vector product plus argpartition."""

    def __init__(self, vectors: np.ndarray) -> None:
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        self.vectors = x
        norms = np.sqrt(np.einsum("ij,ij->i", x, x)) if x.size else np.zeros(len(x), np.float32)
        self.norms = norms
        self.inv_norm = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    def scores(self, q: np.ndarray) -> np.ndarray:
        """Cosine similarity of every row with the unit vector ``q``.

        numpy's own single-threaded loop (einsum), not BLAS: the product streams the whole
        matrix once and is memory-bound either way, and on a busy two-core machine (the kernel
        shares it with the browser) a threaded BLAS gemv measured 1.3-1.5x slower."""
        x = self.vectors
        q = np.ascontiguousarray(q, dtype=np.float32)
        out = np.empty(len(x), dtype=np.float32)
        for start in range(0, len(x), BLOCK):
            stop = start + BLOCK
            np.einsum("ij,j->i", x[start:stop], q, out=out[start:stop])
        out *= self.inv_norm
        return out

    def neighbours(self, i: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities of the k rows most similar to row i (not i itself),
        best first; ties broken by the lower index."""
        n = len(self.vectors)
        if not 0 <= i < n:
            raise IndexError(f"no point {i}; there are {n}")
        k = max(0, min(k, n - 1))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        s = self.scores(self.vectors[i] * self.inv_norm[i])
        s[i] = -np.inf  # never your own neighbour
        part = np.argpartition(-s, k - 1)[:k]
        order = np.lexsort((part, -s[part]))
        top = part[order].astype(np.int64)
        return top, s[top]


def nearest_neighbours(vectors: np.ndarray, k: int = 5, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the indices and cosine similarities of its k nearest other rows.

    All pairs: O(n^2) time (in blocks, so memory stays O(block x n)). Fine for thousands of
    rows; the explorer itself never calls it and asks :class:`CosineIndex` per click instead."""
    x = np.asarray(vectors, dtype=np.float32)
    n = x.shape[0]
    k = max(0, min(k, n - 1))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = x / np.where(norms == 0, 1, norms)
    idx = np.zeros((n, k), dtype=np.int64)
    sim = np.zeros((n, k), dtype=np.float32)
    if k == 0:
        return idx, sim
    for start in range(0, n, block):
        s = unit[start:start + block] @ unit.T
        rows = np.arange(s.shape[0])
        s[rows, rows + start] = -np.inf
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(s, part, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(part, order, axis=1)
        idx[start:start + block] = top
        sim[start:start + block] = np.take_along_axis(s, top, axis=1)
    return idx, sim


class TextSearch:
    """Case-insensitive substring search over the texts, built on first use.

    The lower-cased texts are joined into one string with NUL separators; each match jumps to
    the start of the next text, so a query costs one ``str.find`` per matching text."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._texts = texts
        self._blob: str | None = None
        self._starts: list[int] = []

    def _build(self) -> None:
        lowered = [t.lower().replace("\x00", " ") for t in self._texts]
        starts, pos = [], 0
        for t in lowered:
            starts.append(pos)
            pos += len(t) + 1
        self._starts = starts
        self._blob = "\x00".join(lowered)

    def search(self, query: str, cap: int = 100_000) -> tuple[np.ndarray, bool]:
        """Indices (uint32, ascending) of the texts containing ``query``, at most ``cap`` of
        them, and whether the cap cut the list short. An empty query matches nothing."""
        q = query.lower().replace("\x00", " ")
        if not q or not self._texts:
            return np.zeros(0, dtype=np.uint32), False
        if self._blob is None:
            self._build()
        blob, starts = self._blob, self._starts
        assert blob is not None
        found: list[int] = []
        pos = blob.find(q)
        while pos >= 0:
            i = bisect_right(starts, pos) - 1
            if len(found) == cap:
                return np.asarray(found, dtype=np.uint32), True
            found.append(i)
            if i + 1 >= len(starts):
                break
            pos = blob.find(q, starts[i + 1])
        return np.asarray(found, dtype=np.uint32), False
