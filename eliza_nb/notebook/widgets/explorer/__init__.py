"""EmbeddingExplorer: embedded texts as a 2-D scatter plot (PCA with numpy), an anywidget
that stays responsive at a million points.

What goes to the browser is small and binary: the 2-D positions quantised to uint16 (4 bytes
a point) and one label code per point (1 or 2 bytes), plus the legend. Texts stay in the
kernel and are fetched on demand with custom messages: the hovered point's text, the clicked
point's nearest neighbours (cosine in the full embedding space, computed for that one point
when it is clicked) and the indices of the texts matching a search. The front end
(explorer.js, plain ESM with no imports: works offline) draws with WebGL, or canvas 2D where
WebGL is missing, and hit-tests through a grid index.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from ..reconnect import display_with_note
from .maths import CosineIndex, TextSearch, nearest_neighbours, pca_2d
from .static import static_svg

__all__ = ["EmbeddingExplorer", "nearest_neighbours", "pca_2d", "static_svg"]

WIDGETS = Path(__file__).resolve().parent.parent  # explorer.js / .css sit with the other widgets' files
#: search results sent to the browser at most (the reply says when the list was cut)
SEARCH_CAP = 100_000
#: characters of a text sent for a hover / a neighbour row
HOVER_CHARS, ROW_CHARS = 1_000, 300


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


def _label_codes(labels: Sequence[Any] | None, n: int) -> tuple[np.ndarray | None, list[str]]:
    """Codes in order of first appearance (the colours follow that order) and the names."""
    if labels is None:
        return None, []
    if len(labels) != n:
        raise ValueError(f"{n} texts but {len(labels)} labels")
    import pandas as pd

    codes, names = pd.factorize(pd.Series(labels, dtype=object).map(str), sort=False)
    if len(names) > 65_535:
        raise ValueError(f"{len(names)} distinct labels; at most 65,535 can be coloured")
    return codes.astype(np.uint8 if len(names) <= 255 else np.uint16), [str(x) for x in names]


def _quantise(xy: np.ndarray) -> tuple[bytes, list[float]]:
    """Positions as interleaved uint16 over each axis's range (1/65,535 of the range is far
    below a pixel even zoomed in 50x), and that range."""
    if len(xy) == 0:
        return b"", [0.0, 0.0, 0.0, 0.0]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.rint((xy - lo) / span * 65_535)
    q[:, hi <= lo] = 32_768  # a flat axis: everything in the middle
    return q.astype("<u2").tobytes(), [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]


class EmbeddingExplorer(anywidget.AnyWidget):
    """Scatter plot of embedded texts: hover shows the text, click lists the nearest
    neighbours, the search box highlights matching texts; drag to pan, wheel to zoom.

    ``data``: a list of texts (embedded through the runtime), or a DataFrame with ``text``
    and ``vector`` columns (what ``%%eliza embed`` makes); or texts plus ``vectors=``.
    ``labels`` colour the points (one per text); ``k`` neighbours are listed on a click.
    ``coords``: an (n, 2) array of positions to draw instead of the PCA picture (e.g. from
    UMAP, computed by you); neighbours are still found in the full vectors.
    """

    _esm = WIDGETS / "explorer.js"
    _css = WIDGETS / "explorer.css"

    xy = traitlets.Bytes(b"").tag(sync=True)
    codes = traitlets.Bytes(b"").tag(sync=True)
    code_bytes = traitlets.Int(1).tag(sync=True)
    legend: traitlets.List[list[Any]] = traitlets.List().tag(sync=True)
    count = traitlets.Int(0).tag(sync=True)
    extent = traitlets.List([0.0, 0.0, 0.0, 0.0]).tag(sync=True)
    explained = traitlets.List([0.0, 0.0]).tag(sync=True)
    axes = traitlets.List(["x", "y"]).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    k = traitlets.Int(5).tag(sync=True)
    width = traitlets.Int(560).tag(sync=True)
    height = traitlets.Int(380).tag(sync=True)
    #: "auto": WebGL2, else WebGL1, else canvas 2D; "canvas2d" forces the latter (a broken GPU driver)
    renderer = traitlets.Enum(["auto", "canvas2d"], "auto").tag(sync=True)

    def __init__(self, data: Any = (), *, vectors: Any = None, labels: Sequence[Any] | None = None, k: int = 5,
                 text_column: str = "text", vector_column: str = "vector", title: str = "", runtime: Any = None,
                 coords: Any = None, **kwargs: Any) -> None:
        texts, vecs = _texts_and_vectors(data, vectors, text_column, vector_column, runtime)
        codes, names = _label_codes(labels, len(texts))
        self.texts, self.label_codes, self.label_names = texts, codes, names
        self._index = CosineIndex(vecs)
        bad = np.flatnonzero(~np.isfinite(self._index.norms))
        if len(bad):
            raise ValueError(f"NaN or infinity in the vectors of {len(bad)} row(s), e.g. {bad[:5].tolist()}: drop or fix them")
        self.vectors = self._index.vectors
        if coords is not None:
            xy = np.asarray(coords, dtype=np.float64)
            if xy.shape != (len(texts), 2) or not np.isfinite(xy).all():
                raise ValueError(f"coords must be {len(texts)} finite (x, y) pairs, got shape {xy.shape}")
            explained, axes, method = [0.0, 0.0], ["x", "y"], "given 2-D coordinates"
        else:
            xy, explained = pca_2d(self.vectors) if len(texts) else (np.zeros((0, 2)), [0.0, 0.0])
            axes = [f"PC1 ({100 * explained[0]:.0f}% of variance)", f"PC2 ({100 * explained[1]:.0f}%)"]
            method = "PCA"
        self.points_2d = xy
        packed, extent = _quantise(xy)
        counts = np.bincount(codes, minlength=len(names)).tolist() if codes is not None else []
        dims = self.vectors.shape[1] if len(texts) else 0
        super().__init__(xy=packed, codes=b"" if codes is None else codes.astype(f"<u{codes.itemsize}").tobytes(),
                         code_bytes=1 if codes is None else codes.itemsize, legend=[[s, c] for s, c in zip(names, counts, strict=True)],
                         count=len(texts), extent=extent, explained=explained, axes=axes, k=k,
                         title=title or f"{len(texts):,} text{'' if len(texts) == 1 else 's'} · {dims}-dim embeddings · {method}", **kwargs)
        self._search = TextSearch(texts)
        self._static: str | None = None
        self.on_msg(self._on_custom)

    def __len__(self) -> int:
        return len(self.texts)

    def label(self, i: int) -> str:
        """The label of point ``i`` ("" without labels)."""
        return "" if self.label_codes is None else self.label_names[int(self.label_codes[i])]

    def neighbours(self, i: int | None = None):
        """The ``k`` nearest neighbours of point ``i`` (default: the clicked one) as a
        DataFrame of index, text and cosine similarity, best first."""
        import pandas as pd

        i = self.selected if i is None else i
        if not 0 <= i < len(self.texts):
            raise IndexError(f"no point {i}; click one or pass an index below {len(self.texts)}")
        idx, sim = self._index.neighbours(i, self.k)
        rows = [{"index": int(j), "text": self.texts[j], "cosine": float(s)} for j, s in zip(idx, sim, strict=True)]
        return pd.DataFrame(rows, columns=["index", "text", "cosine"])

    def search(self, query: str, cap: int = SEARCH_CAP) -> np.ndarray:
        """Indices of the texts containing ``query`` (case-insensitive), at most ``cap``."""
        return self._search.search(query, cap)[0]

    # -- the front end's requests -------------------------------------------------------
    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        reply, buffers = self.answer(content)
        if reply is not None:
            self.send(reply, buffers)

    def answer(self, content: dict[str, Any]) -> tuple[dict[str, Any] | None, list[bytes]]:
        """The reply (and binary buffers) to one request from the front end:
        ``{"type": "text" | "neighbours", "i": int}`` or ``{"type": "search", "q": str}``;
        the request's ``id`` is echoed so the front end can match replies."""
        kind, rid = content.get("type"), content.get("id")
        n = len(self.texts)
        if kind in ("text", "neighbours"):
            i = content.get("i")
            if not isinstance(i, int) or not 0 <= i < n:
                return {"type": kind, "id": rid, "error": f"no point {i!r}"}, []
            reply: dict[str, Any] = {"type": kind, "id": rid, "i": i, "text": self.texts[i][:HOVER_CHARS],
                                     "label": self.label(i)}
            if kind == "neighbours":
                t0 = time.perf_counter()
                idx, sim = self._index.neighbours(i, self.k)
                reply["ms"] = round((time.perf_counter() - t0) * 1000, 1)
                reply["items"] = [[int(j), round(float(s), 4), self.texts[j][:ROW_CHARS], self.label(int(j))]
                                  for j, s in zip(idx, sim, strict=True)]
            return reply, []
        if kind == "search":
            q = str(content.get("q", ""))[:200]
            found, capped = self._search.search(q, SEARCH_CAP)
            return {"type": "search", "id": rid, "q": q, "count": len(found), "capped": capped}, [found.astype("<u4").tobytes()]
        return None, []

    # -- outside a live widget ----------------------------------------------------------
    def static_html(self) -> str:
        """The capped static picture (computed once; linear in the number of points)."""
        if self._static is None:
            self._static = static_svg(self.points_2d, self.label_codes, self.label_names, self.title)
        return self._static

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        assert bundle is not None  # anywidget returns None only for a widget without a view
        data, meta = bundle
        shown = self.texts[:5]
        data["text/plain"] = f"EmbeddingExplorer: {self.title}\n" + "\n".join(
            f"  {t[:70]}" for t in shown) + ("\n  …" if len(self.texts) > len(shown) else "")
        data["text/html"] = self.static_html()
        return data, meta

    def _ipython_display_(self) -> None:
        # Two outputs: the widget, then a note that shows only if a reopened notebook has no
        # state for it (one bundle cannot do that: the widget mime type always wins there).
        display_with_note(self, "EmbeddingExplorer")
