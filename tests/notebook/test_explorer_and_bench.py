"""EmbeddingExplorer and BenchmarkView, Python side: the maths, the synced state, the
offline ESM, and the static fallbacks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eliza_nb.notebook.widgets.benchview import BenchmarkView, summarize
from eliza_nb.notebook.widgets.benchview.table import decode_column
from eliza_nb.notebook.widgets.explorer import EmbeddingExplorer, nearest_neighbours, pca_2d

PKG = Path(__file__).resolve().parents[2] / "eliza_nb" / "notebook" / "widgets"
TEXTS = ["The cat sat on the mat.", "A cat is lying on a rug.", "Stock markets fell sharply today.",
         "Shares dropped on Wall Street.", "I like green apples."]


# -- maths -------------------------------------------------------------------------------

def test_pca_finds_the_main_direction():
    rng = np.random.default_rng(0)
    t = rng.normal(size=50)
    x = np.outer(t, [3.0, 4.0, 0.0]) + rng.normal(scale=0.01, size=(50, 3))
    xy, explained = pca_2d(x)
    assert xy.shape == (50, 2) and explained[0] > 0.99
    assert abs(abs(np.corrcoef(xy[:, 0], t)[0, 1]) - 1) < 1e-3
    again, _ = pca_2d(x)
    assert np.allclose(xy, again), "signs are fixed so a re-run draws the same picture"


@pytest.mark.parametrize("x", [np.zeros((0, 4)), np.ones((1, 4)), np.ones((3, 4)), np.arange(4.0).reshape(4, 1)])
def test_pca_degenerate_inputs(x):
    xy, explained = pca_2d(x)
    assert xy.shape == (len(x), 2) and np.isfinite(xy).all() and all(np.isfinite(explained))


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(37, 8)).astype(np.float32)
    idx, sim = nearest_neighbours(x, k=4, block=5)  # several blocks
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    full = unit @ unit.T
    np.fill_diagonal(full, -np.inf)
    want = np.argsort(-full, axis=1)[:, :4]
    assert (idx == want).all() and np.allclose(sim, np.take_along_axis(full, want, axis=1), atol=1e-5)
    assert nearest_neighbours(x[:1], k=3)[0].shape == (1, 0)


# -- explorer ------------------------------------------------------------------------------

def test_explorer_embeds_texts_through_the_runtime(rt):
    before = len(rt.ledger)
    ex = EmbeddingExplorer(TEXTS, k=2)
    assert len(rt.ledger) > before, "embedded through the runtime (ledger row)"
    assert len(ex) == 5 and ex.count == 5 and ex.title == "5 texts · 384-dim embeddings · PCA"
    assert ex.neighbours(0).text.iloc[0] == "A cat is lying on a rug."
    assert ex.neighbours(2).text.iloc[0] == "Shares dropped on Wall Street."


def test_explorer_from_an_embed_dataframe(run, ip):
    cell = run("%%eliza embed -o df\n" + "\n".join(TEXTS))
    assert cell.ok
    ex = EmbeddingExplorer(ip.user_ns["df"], labels=["pets", "pets", "money", "money", "food"])
    assert ex.texts == TEXTS and ex.label(3) == "money" and ex.legend == [["pets", 2], ["money", 2], ["food", 1]]


def test_click_from_the_front_end_selects_and_lists_neighbours():
    vecs = np.eye(4, dtype=np.float32) + 0.1
    ex = EmbeddingExplorer(["a", "b", "c", "d"], vectors=vecs, k=2)
    ex._handle_msg({"content": {"data": {"method": "update", "state": {"selected": 2}, "buffer_paths": []}}, "buffers": []})
    assert ex.selected == 2
    nn = ex.neighbours()
    assert list(nn.columns) == ["index", "text", "cosine"] and len(nn) == 2 and 2 not in set(nn["index"])
    with pytest.raises(IndexError):
        ex.neighbours(9)


def test_explorer_input_errors():
    with pytest.raises(ValueError, match="3 texts but vectors of shape"):
        EmbeddingExplorer(["a", "b", "c"], vectors=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="labels"):
        EmbeddingExplorer(["a", "b"], vectors=np.eye(2), labels=["x"])
    with pytest.raises(ValueError, match="no 'text' column"):
        EmbeddingExplorer(pd.DataFrame({"words": ["a"]}))


def test_explorer_state_and_fallback():
    ex = EmbeddingExplorer(["a", "b", "c"], vectors=np.eye(3))
    state = ex.get_state()
    assert "export default" in state["_esm"] and ".eliza-explorer-canvas" in state["_css"]
    assert isinstance(state["xy"], bytes) and len(state["xy"]) == 3 * 2 * 2, "uint16 x, y per point, binary"
    data, _ = ex._repr_mimebundle_()
    assert data["text/plain"].startswith("EmbeddingExplorer: 3 texts") and "showing 3 of 3 points" in data["text/html"]


@pytest.mark.parametrize("name", ["explorer.js", "benchview.js"])
def test_esm_is_offline(name):
    src = (PKG / name).read_text()
    assert "export default" in src and "function render" in src
    assert not re.search(r"^\s*import\b|\bimport\s*\(|https?://(?!www\.w3\.org/2000/svg)", src, re.M), "no imports, no CDN"


# -- benchmark view --------------------------------------------------------------------------

def bench_frame() -> pd.DataFrame:
    rows = []
    for model, lat, score in (("llama_local:small", 0.2, 0.9), ("openai:gpt-4o-mini", 0.8, 1.0)):
        for preset in ("precise", "creative"):
            for case in ("c1", "c2"):
                for rep in range(2):
                    err = "TransientError: boom" if (model.startswith("openai") and case == "c2" and rep == 1) else None
                    rows.append({"model": model, "preset": preset, "case_id": case, "repeat": rep,
                                 "output": "Paris" * (rep + 1), "latency_s": lat + 0.1 * rep, "ttft_s": lat / 4,
                                 "prompt_tokens": 20, "completion_tokens": 5, "tokens_per_s": 5 / lat,
                                 "cost_usd": 0.0 if model.startswith("llama") else np.nan if err else 1e-5,
                                 "cache_hit": rep == 1, "score": None if err else score, "error": err})
    return pd.DataFrame(rows)


def test_summary_per_model_and_preset():
    s = summarize(bench_frame())
    assert list(s[["model", "preset"]].itertuples(index=False, name=None)) == [
        ("llama_local:small", "precise"), ("llama_local:small", "creative"),
        ("openai:gpt-4o-mini", "precise"), ("openai:gpt-4o-mini", "creative")]
    row = s.iloc[2]
    assert row["runs"] == 4 and row["error_rate"] == 0.25 and row["mean_score"] == 1.0
    assert row["p50_latency_s"] == pytest.approx(0.85) and row["total_cost_usd"] == pytest.approx(3e-5)


def test_view_payload_sorting_and_front_end_clicks():
    view = BenchmarkView(bench_frame())
    t = view.tables["summary"]
    assert t["columns"][:2] == ["model", "preset"] and t["kinds"]["p50_latency_s"] == "low" and t["kinds"]["mean_score"] == "high"
    runs = view.tables["runs"]
    assert runs["n"] == 16 and runs["kinds"]["cache_hit"] == "bool"
    assert isinstance(runs["data"]["cost_usd"]["buf"], bytes), "numbers travel as binary buffers, not JSON"
    assert None in decode_column(runs["data"]["cost_usd"]), "NaN is a missing value"
    assert decode_column(runs["data"]["model"])[:2] == ["llama_local:small"] * 2
    # a header click in the browser: sort_by + ascending synced back
    view._handle_msg({"content": {"data": {"method": "update", "state": {"sort_by": "p50_latency_s", "ascending": False},
                                           "buffer_paths": []}}, "buffers": []})
    assert list(view.frame()["model"])[:2] == ["openai:gpt-4o-mini"] * 2
    view.view = "runs"
    view.sort_by, view.ascending = "score", True
    assert view.frame()["score"].isna().iloc[-1], "missing values sort last"
    with pytest.raises(Exception, match="summary' or 'runs"):
        view.view = "charts"


def test_uses_the_results_own_summary():
    class Frame(pd.DataFrame):
        @property
        def _constructor(self):
            return Frame

        def summary(self):
            return pd.DataFrame({"model": ["m"], "preset": ["p"], "mean_score": [0.5]})

    view = BenchmarkView(Frame(bench_frame()))
    assert view.tables["summary"]["columns"] == ["model", "preset", "mean_score"]


def test_bench_fallback_has_bars_and_text():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a bar over an all-zero column would divide by zero
        data, _ = BenchmarkView(bench_frame())._repr_mimebundle_()
        BenchmarkView(bench_frame().assign(cost_usd=0.0))._repr_mimebundle_()
    assert "linear-gradient" in data["text/html"] and "benchmark: 16 runs · 2 models" in data["text/html"]
    assert data["text/plain"].startswith("benchmark: 16 runs") and "p50_latency_s" in data["text/plain"]


def test_bench_title_counts_in_words():
    one = bench_frame()
    one = one[(one["model"] == one["model"].iloc[0])].head(1)
    assert BenchmarkView(one).title == "benchmark: 1 run · 1 model"  # not "1 models"
    assert BenchmarkView(bench_frame()).title == "benchmark: 16 runs · 2 models"


def test_bench_panel_magic(run, ip):
    ip.user_ns["results"] = bench_frame()
    cell = run("%eliza panel --bench results -o bv")
    assert cell.ok and isinstance(ip.user_ns["bv"], BenchmarkView)
    # the widget, then the note a reopened notebook without saved widget state shows instead of "model not found"
    widget, note = cell.outputs
    assert "application/vnd.jupyter.widget-view+json" in widget.data and widget.metadata["eliza_nb"]["widget"] == "BenchmarkView"
    assert "eliza-reconnect" in note.data["text/html"] and "Re-run the cell to reconnect" in note.data["text/html"]
    ip.user_ns["not_a_frame"] = 42
    assert "expected a benchmark DataFrame" in str(run("%eliza panel --bench not_a_frame").error)
