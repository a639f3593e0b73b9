"""The EmbeddingExplorer at scale, kernel side: build time and state size at 50,000 points,
the on-click neighbour look-up against a direct computation, the requests the front end
sends (hover text, neighbours, search) answered through the widget's message handler, the
static fallback's size cap and the reconnect note."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest

from eliza_nb.notebook.widgets.explorer import EmbeddingExplorer, pca_2d
from eliza_nb.notebook.widgets.explorer.maths import CosineIndex, TextSearch

N, D = 50_000, 64
NAMES = ["alpha", "beta", "gamma", "delta", "omega"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, D)).astype(np.float32) * 3
    topic = rng.integers(0, 5, N)
    vecs = centres[topic] + rng.normal(size=(N, D)).astype(np.float32)
    texts = [f"Point {i} about {NAMES[t]}" for i, t in enumerate(topic)]
    return texts, vecs, [NAMES[t] for t in topic]


@pytest.fixture(scope="module")
def ex(data):
    texts, vecs, labels = data
    return EmbeddingExplorer(texts, vectors=vecs, labels=labels, k=7)


def test_build_is_linear_not_all_pairs(data):
    texts, vecs, labels = data
    t = time.perf_counter()
    EmbeddingExplorer(texts, vectors=vecs, labels=labels)
    took = time.perf_counter() - t
    # ~0.3 s here; the all-pairs version took 47 s at this size. Only a generous bound.
    assert took < 20, f"building 50k points took {took:.1f} s"


def test_state_is_small_and_binary(ex):
    state = ex.get_state()
    assert isinstance(state["xy"], bytes) and len(state["xy"]) == N * 4, "uint16 x and y"
    assert isinstance(state["codes"], bytes) and len(state["codes"]) == N and state["code_bytes"] == 1
    labels = [ex.label(i) for i in range(N)]
    first_seen = list(dict.fromkeys(labels))
    assert state["legend"] == [[name, labels.count(name)] for name in first_seen], "names and counts, first seen first"
    rest = {k: v for k, v in state.items() if k not in ("xy", "codes", "_esm", "_css")}
    assert len(json.dumps(rest, default=str)) < 2_000, "nothing per point outside the two buffers"
    assert not any(isinstance(v, str) and "about omega" in v for v in state.values()), "no texts in the state"


def test_saved_widget_state_stays_within_bytes_per_point(ex):
    # what the front end saves in the notebook: JSON with base64 buffers (get_manager_state's form)
    from ipywidgets import Widget

    saved = Widget.get_manager_state(drop_defaults=True, widgets=[ex])
    model = saved["state"][ex.model_id]
    assert {b["path"][0] for b in model["buffers"]} == {"xy", "codes"}
    size = len(json.dumps(saved))
    per_point = (size - len(ex._esm) - len(ex._css)) / N
    assert per_point < 7.5, f"{per_point:.2f} bytes a point saved: a million points would be {per_point:.1f} MB"
    xy = np.frombuffer(base64.b64decode(next(b["data"] for b in model["buffers"] if b["path"] == ["xy"])), "<u2")
    assert xy.reshape(-1, 2).shape == (N, 2)


def test_positions_are_the_pca_picture(ex):
    assert ex.axes[0].startswith("PC1 (") and ex.axes[1].startswith("PC2 (") and ex.title.endswith("· PCA")
    xy = np.frombuffer(ex.xy, "<u2").reshape(-1, 2).astype(float) / 65535
    lo, hi = ex.points_2d.min(axis=0), ex.points_2d.max(axis=0)
    assert np.allclose(xy, (ex.points_2d - lo) / (hi - lo), atol=1 / 65535)
    assert ex.extent == [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]


def test_sampled_pca_agrees_with_the_exact_one():
    rng = np.random.default_rng(5)
    t = rng.normal(size=(60_000, 2)) * [5.0, 2.0]
    x = (t @ rng.normal(size=(2, 24)) + rng.normal(scale=0.3, size=(60_000, 24))).astype(np.float32)
    xy, explained = pca_2d(x, sample=8_192)
    exact, ex_explained = pca_2d(x, sample=60_000)
    for j in range(2):
        assert abs(np.corrcoef(xy[:, j], exact[:, j])[0, 1]) > 0.999
    assert np.allclose(explained, ex_explained, atol=0.01)


def test_neighbours_match_a_direct_computation(ex, data):
    _, vecs, _ = data
    unit = vecs.astype(np.float64) / np.linalg.norm(vecs.astype(np.float64), axis=1, keepdims=True)
    for i in (0, 1, 4_321, N - 1):
        sims = unit @ unit[i]
        sims[i] = -np.inf
        want = np.argsort(-sims, kind="stable")[:7]
        got = ex.neighbours(i)
        assert got["index"].tolist() == want.tolist()
        assert np.allclose(got["cosine"], sims[want], atol=1e-5)
        assert got["text"].tolist() == [ex.texts[j] for j in want]


def test_zero_vectors_and_tiny_inputs():
    idx = CosineIndex(np.array([[0, 0], [1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32))
    top, sim = idx.neighbours(1, 2)
    assert top.tolist() == [2, 0] and sim[0] > 0.99 and sim[1] == 0, "ties (0 and 3 score 0): lower index first"
    assert idx.neighbours(0, 5)[1].tolist() == [0, 0, 0], "a zero vector is similar to nothing"
    assert CosineIndex(np.ones((1, 3), np.float32)).neighbours(0, 5)[0].shape == (0,)
    with pytest.raises(IndexError):
        idx.neighbours(4, 1)


def _ask(ex, content):
    """What the front end receives for one custom message, through the real handler."""
    sent = []
    ex.send = lambda msg, buffers=None: sent.append((msg, buffers or []))
    try:
        ex._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})
    finally:
        del ex.send
    return sent


def test_hover_text_round_trip(ex):
    (msg, buffers), = _ask(ex, {"type": "text", "i": 42, "id": 7})
    assert msg == {"type": "text", "id": 7, "i": 42, "text": ex.texts[42], "label": ex.label(42)} and buffers == []
    (msg, _), = _ask(ex, {"type": "text", "i": N, "id": 8})
    assert msg["error"] == f"no point {N}"
    assert _ask(ex, {"type": "nonsense"}) == [] and _ask(ex, "not a dict") == []


def test_click_round_trip_lists_the_neighbours(ex):
    (msg, _), = _ask(ex, {"type": "neighbours", "i": 10, "id": 1})
    want = ex.neighbours(10)
    assert [row[0] for row in msg["items"]] == want["index"].tolist()
    assert [row[2] for row in msg["items"]] == want["text"].tolist()
    assert all(row[3] == ex.label(row[0]) for row in msg["items"])


def test_search_round_trip_is_binary_and_case_insensitive(ex):
    (msg, buffers), = _ask(ex, {"type": "search", "q": "ABOUT Omega", "id": 3})
    idx = np.frombuffer(buffers[0], "<u4")
    want = [i for i, t in enumerate(ex.texts) if "about omega" in t.lower()]
    assert idx.tolist() == want and msg["count"] == len(want) and not msg["capped"]
    (msg, buffers), = _ask(ex, {"type": "search", "q": "", "id": 4})
    assert msg["count"] == 0 and len(buffers[0]) == 0


def test_search_cap_and_text_boundaries():
    s = TextSearch(["abc", "cab", "ABCABC", "xyz", "b"])
    assert s.search("ab")[0].tolist() == [0, 1, 2], "each text once, whatever its count of matches"
    assert s.search("cc")[0].tolist() == [], "no match across two texts"
    found, capped = s.search("b", cap=2)
    assert found.tolist() == [0, 1] and capped
    assert s.search("b", cap=5)[1] is False


def test_fallback_is_capped_and_has_no_texts(ex):
    data, _ = ex._repr_mimebundle_()
    page = data["text/html"]
    assert "showing 2,000 of 50,000 points" in page
    assert len(page) < 40_000, f"{len(page)} characters of static fallback"
    assert "about omega" not in page and "omega" in page, "labels in the legend, no texts"
    assert len(data["text/plain"]) < 1_000 and data["text/plain"].startswith("EmbeddingExplorer: 50,000 texts")


def test_display_adds_the_reconnect_note(ex, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    ex._ipython_display_()
    assert len(shown) == 2 and "application/vnd.jupyter.widget-view+json" in shown[0]
    note = shown[1]["text/html"]
    assert "Re-run the cell to reconnect" in note and ".jupyter-widgets" in note and "display:none" in note


def test_non_finite_vectors_are_refused():
    with pytest.raises(ValueError, match=r"NaN or infinity in the vectors of 1 row\(s\), e\.g\. \[1\]"):
        EmbeddingExplorer(["a", "b", "c"], vectors=np.array([[1, 0], [np.nan, 1], [0, 1]]))


def test_given_coordinates_replace_pca_but_not_the_neighbours(data):
    texts, vecs, _ = data
    coords = np.column_stack([np.arange(N, dtype=float), np.zeros(N)])
    ex = EmbeddingExplorer(texts, vectors=vecs, coords=coords)
    xy = np.frombuffer(ex.xy, "<u2").reshape(-1, 2)
    assert xy[0].tolist() == [0, 32_768] and xy[-1, 0] == 65_535, "x spans the range; a flat y sits in the middle"
    assert ex.axes == ["x", "y"] and ex.title.endswith("given 2-D coordinates")
    assert ex.neighbours(3)["index"].tolist() == CosineIndex(vecs).neighbours(3, 5)[0].tolist(), "full vectors"
    with pytest.raises(ValueError, match="coords must be"):
        EmbeddingExplorer(texts[:3], vectors=vecs[:3], coords=[[0, 1], [2, 3]])
