"""EmbeddingExplorer: embedded texts as a 2-D scatter plot (PCA with numpy), an anywidget.

Hover a point to read its text; click it to list its nearest neighbours (cosine similarity
in the full embedding space, not in the 2-D picture). The neighbours are computed here in
Python and shipped with the points, so clicking needs no kernel round trip; the click is
still sent back as ``selected`` so Python can read it. The front end (explorer.js) is
plain ESM with no imports: it works offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

HERE = Path(__file__).parent


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Project rows to 2-D with PCA (SVD of the centred data); returns (n, 2) and the
    fraction of variance each axis explains. Degenerate inputs (one point, one dimension,
    identical vectors) give zeros rather than NaNs."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {x.shape}")
    n = x.shape[0]
    out = np.zeros((n, 2))
    if n < 2:
        return out, [0.0, 0.0]
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, vt.shape[0])
    out[:, :k] = centred @ vt[:k].T
    total = float((s ** 2).sum())
    explained = [float(s[i] ** 2 / total) if total > 0 and i < len(s) else 0.0 for i in range(2)]
    # Fix each axis's sign (SVD's is arbitrary) so re-running a cell draws the same picture.
    for j in range(k):
        col = out[:, j]
        if col[np.argmax(np.abs(col))] < 0:
            out[:, j] = -col
    return out, explained


def nearest_neighbours(vectors: np.ndarray, k: int = 5, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the indices and cosine similarities of its k nearest other rows.

    Computed in blocks so memory stays O(block x n), not O(n^2)."""
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
        s[rows, rows + start] = -np.inf  # never your own neighbour
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(s, part, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(part, order, axis=1)
        idx[start:start + block] = top
        sim[start:start + block] = np.take_along_axis(s, top, axis=1)
    return idx, sim


def _texts_and_vectors(data: Any, vectors: Any, text_column: str, vector_column: str,
                       runtime: Any) -> tuple[list[str], np.ndarray]:
    if vectors is None and hasattr(data, "columns"):  # a DataFrame, e.g. from %%eliza embed
        if text_column not in data.columns:
            raise ValueError(f"the DataFrame has no {text_column!r} column; pass text_column=")
        texts = [str(t) for t in data[text_column]]
        if vector_column in data.columns:
            return texts, np.stack([np.asarray(v, dtype=np.float32) for v in data[vector_column]])
        data = texts
    if isinstance(data, str):
        data = [data]
    texts = [str(t) for t in data]
    if vectors is None:
        import eliza_nb

        rt = eliza_nb.runtime() if runtime is None else runtime
        vectors = rt.embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise ValueError(f"{len(texts)} texts but vectors of shape {vectors.shape}")
    return texts, vectors


class EmbeddingExplorer(anywidget.AnyWidget):
    """Scatter plot of embedded texts; hover shows the text, click lists nearest neighbours.

    ``data``: a list of texts (embedded through the runtime), or a DataFrame with ``text``
    and ``vector`` columns (what ``%%eliza embed`` makes); or texts plus ``vectors=``.
    ``labels`` colour the points (one per text).
    """

    _esm = HERE / "explorer.js"
    _css = HERE / "explorer.css"

    points: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    explained = traitlets.List([0.0, 0.0]).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    width = traitlets.Int(560).tag(sync=True)
    height = traitlets.Int(380).tag(sync=True)

    def __init__(self, data: Any = (), *, vectors: Any = None, labels: Sequence[Any] | None = None, k: int = 5,
                 text_column: str = "text", vector_column: str = "vector", title: str = "", runtime: Any = None,
                 **kwargs: Any) -> None:
        texts, vecs = _texts_and_vectors(data, vectors, text_column, vector_column, runtime)
        if labels is not None and len(labels) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        self.texts, self.vectors = texts, vecs
        xy, explained = pca_2d(vecs) if len(texts) else (np.zeros((0, 2)), [0.0, 0.0])
        nn_idx, nn_sim = nearest_neighbours(vecs, k) if len(texts) else (np.zeros((0, 0), int), np.zeros((0, 0)))
        points = []
        for i, text in enumerate(texts):
            points.append({
                "x": round(float(xy[i, 0]), 5), "y": round(float(xy[i, 1]), 5), "text": text,
                "label": "" if labels is None else str(labels[i]),
                "nn": [[int(j), round(float(s), 4)] for j, s in zip(nn_idx[i], nn_sim[i], strict=True)],
            })
        dims = vecs.shape[1] if vecs.ndim == 2 else 0
        super().__init__(points=points, explained=explained,
                         title=title or f"{len(texts)} texts · {dims}-dim embeddings · PCA", **kwargs)
        self.xy = xy

    def neighbours(self, i: int | None = None):
        """The nearest neighbours of point ``i`` (default: the clicked one) as a DataFrame."""
        import pandas as pd

        i = self.selected if i is None else i
        if not 0 <= i < len(self.points):
            raise IndexError(f"no point {i}; click one or pass an index below {len(self.points)}")
        rows = [{"index": j, "text": self.texts[j], "cosine": s} for j, s in self.points[i]["nn"]]
        return pd.DataFrame(rows, columns=["index", "text", "cosine"])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # A static SVG of the same picture, for places where widgets do not render.
        bundle = super()._repr_mimebundle_(**kwargs)
        assert bundle is not None  # anywidget returns None only for a widget without a view
        data, meta = bundle
        data["text/plain"] = f"EmbeddingExplorer: {self.title}\n" + "\n".join(
            f"  ({p['x']:+.3f}, {p['y']:+.3f})  {p['text'][:70]}" for p in self.points[:20]
        ) + ("\n  …" if len(self.points) > 20 else "")
        data["text/html"] = static_svg(self.points, self.title)
        return data, meta


def static_svg(points: list[dict[str, Any]], title: str, w: int = 480, h: int = 320) -> str:
    """The scatter plot as a self-contained SVG (hover titles only)."""
    if not points:
        return f"<div>{html.escape(title)}: no points</div>"
    xs = [p["x"] for p in points]
    ys = [p["y"] for p in points]
    pad = 16

    def scale(v: float, lo: float, hi: float, size: int) -> float:
        return pad + (size - 2 * pad) * (0.5 if hi == lo else (v - lo) / (hi - lo))

    dots = "".join(
        f"<circle cx='{scale(p['x'], min(xs), max(xs), w):.1f}' cy='{h - scale(p['y'], min(ys), max(ys), h):.1f}' r='4' "
        f"fill='#2563eb' fill-opacity='0.7'><title>{html.escape(p['text'])}</title></circle>"
        for p in points
    )
    return (f"<div><div style='font-weight:600'>{html.escape(title)}</div>"
            f"<svg width='{w}' height='{h}' viewBox='0 0 {w} {h}' style='border:1px solid #ddd'>{dots}</svg></div>")
