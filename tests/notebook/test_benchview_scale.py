"""BenchmarkView at a hundred thousand runs, kernel side: the columns the browser gets
(binary buffers, dictionary-encoded texts), their size, the filter and sort the front end
mirrors (``frame()`` is what the page shows), the side by side's cap, and the reconnect note.
The browser half (virtualised rows, sorting, scrolling) is tests/ui/test_benchview_scale_browser.py."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pandas as pd
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from eliza_nb.notebook.widgets.benchview import BenchmarkView
from eliza_nb.notebook.widgets.benchview.grid import SIDE_ROWS
from eliza_nb.notebook.widgets.benchview.table import TEXT_CHARS, decode_column, filter_mask, shown_rows, table_payload
from eliza_nb.notebook.widgets.reconnect import RECONNECT_CSS, reconnect_note

CONFIGS = [f"llama_local:small · {p} · temperature={t}" for p in ("precise", "creative") for t in (0.0, 0.4, 0.8)]


def runs(n: int, seed: int = 0) -> pd.DataFrame:
    """A benchmark-shaped frame: 6 configurations, 997 cases, long outputs, some errors."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(CONFIGS), n)
    lat = rng.gamma(2.0, 0.3, n)
    err = rng.random(n) < 0.02
    score = np.where(err, np.nan, rng.random(n).round(3))
    return pd.DataFrame({
        "config": np.array(CONFIGS, dtype=object)[k], "model": "llama_local:small",
        "preset": np.where(k < 3, "precise", "creative"), "prompt": "", "temperature": np.array([0.0, 0.4, 0.8] * 2)[k],
        "case_id": [f"case{i % 997}" for i in range(n)], "repeat": (np.arange(n) // 997) % 3,
        "input": [f"question {i % 997}" for i in range(n)],
        "output": [f"answer {i} " + "x" * (i % 150) for i in range(n)],
        "latency_s": lat, "prompt_tokens": rng.integers(5, 500, n), "tokens_per_s": rng.random(n) * 100,
        "cost_usd": np.where(err, np.nan, lat * 1e-5), "cache_hit": rng.random(n) < 0.1,
        "score": score, "passed": score >= 0.5, "error": np.where(err, "TransientError: boom", None),
    })


@pytest.fixture(scope="module")
def big():
    df = runs(100_000)
    t0 = time.perf_counter()
    view = BenchmarkView(df)
    return df, view, time.perf_counter() - t0


def test_a_hundred_thousand_runs_go_as_columns_with_binary_numbers(big):
    df, view, build_s = big
    assert build_s < 15, f"{build_s:.1f}s: the frame is shaped with pandas, not a loop over rows (~0.7 s here)"
    t = view.tables["runs"]
    assert t["n"] == 100_000 and t["columns"] == list(df.columns)
    data = t["data"]
    itemsize = {"f8": 8, "i1": 1, "i2": 2, "i4": 4, "b1": 1, "u1": 1, "u2": 2, "u4": 4}
    for name, spec in data.items():
        raw = spec["codes"] if "codes" in spec else spec["buf"]
        assert isinstance(raw, bytes) and len(raw) == 100_000 * itemsize[spec["dtype"]], name
    assert data["latency_s"]["dtype"] == "f8" and data["prompt_tokens"]["dtype"] == "i2" and data["repeat"]["dtype"] == "i1"
    assert data["cache_hit"]["dtype"] == "b1" and data["config"]["dtype"] == "u1" and sorted(data["config"]["values"]) == sorted(CONFIGS)
    assert data["case_id"]["dtype"] == "u2" and len(data["case_id"]["values"]) == 997
    assert data["output"]["dtype"] == "u4"  # 100,000 distinct answers
    # the values round-trip (a sample of rows)
    rows = [0, 1, 4_999, 77_777, 99_999]
    lat = decode_column(data["latency_s"])
    assert [lat[i] for i in rows] == df["latency_s"].iloc[rows].tolist()
    score = decode_column(data["score"])
    assert [score[i] for i in rows] == [None if v != v else v for v in df["score"].iloc[rows]]
    err = decode_column(data["error"])
    assert err.count("TransientError: boom") == int(df["error"].notna().sum()) and err.count(None) == int(df["error"].isna().sum())
    out = decode_column(data["output"])
    assert max(len(s) for s in out) == TEXT_CHARS and out[149] == df["output"][149][:TEXT_CHARS - 1] + "…"


def test_the_saved_state_stays_bounded(big):
    """What a saved notebook holds: the buffers (base64 there) and JSON for the rest, bounded by
    the column types, never a JSON object per row."""
    df, view, _ = big
    state = view.get_state()
    rest, paths, buffers = _remove_buffers(state)
    assert len(buffers) == len(df.columns) + len(view.summary.columns)  # every column of both tables is one buffer
    n, numeric = len(df), 7  # latency, tokens_per_s, cost, score, temperature (f8) + prompt_tokens (i2) + repeat (i1)
    assert sum(len(b) for b in buffers) <= n * (8 * numeric + 4 * 10) + 100_000
    json_bytes = len(json.dumps(rest))
    texts = sum(len(v) for c in ("output", "input", "case_id") for v in view.tables["runs"]["data"][c]["values"])
    assert json_bytes < texts * 1.2 + 2_000_000, "beyond the distinct texts: the small views and the ESM"
    assert len(view.answers["rows"]) == SIDE_ROWS * len(CONFIGS) and view.answers["cut"] == n - SIDE_ROWS * len(CONFIGS)


@pytest.mark.parametrize("sort_by, ascending, query", [
    ("latency_s", True, ""), ("latency_s", False, ""), ("score", True, ""), ("score", False, ""),
    ("config", True, ""), ("cache_hit", False, ""), ("output", False, ""),
    ("", True, "creative"), ("tokens_per_s", True, "latency_s > 1; precise"), ("", True, "error = TransientError: boom"),
    ("case_id", True, "passed = true"), ("prompt_tokens", False, "score <= 0.25"), ("", True, "temperature != 0.4"),
])
def test_frame_is_what_the_page_shows(big, sort_by, ascending, query):
    """frame() filters and sorts as the front end: stable, missing values last either way."""
    df, view, _ = big
    view.view, view.sort_by, view.ascending, view.filter = "runs", sort_by, ascending, query
    shown = view.frame()
    want = df
    if query:
        want = want[filter_mask(df, query)]
    assert len(shown) == len(want) and set(shown.index) == set(want.index)
    if sort_by:
        values = shown[sort_by]
        present = values.dropna()
        assert values.isna().sum() == 0 or values.iloc[len(present):].isna().all(), "missing values last"
        if sort_by != "output":  # outputs sort by their shown (cut) text
            assert present.is_monotonic_increasing if ascending else present.is_monotonic_decreasing
        ties = shown[values == values.iloc[0]].index
        assert list(ties) == sorted(ties), "ties keep the frame's order (stable)"


def test_the_filter_language():
    df = pd.DataFrame({"model": ["a", "b", "A long name", None], "score": [0.1, 0.9, np.nan, 0.5],
                       "ok": [True, False, True, False], "error": [None, "Boom", None, "boom!"]})
    assert filter_mask(df, "").tolist() == [True] * 4
    assert filter_mask(df, "boom").tolist() == [False, True, False, True]  # any text column, any case
    assert filter_mask(df, "score > 0.4").tolist() == [False, True, False, True]  # missing never matches
    assert filter_mask(df, "score>=0.5; boom").tolist() == [False, True, False, True]
    assert filter_mask(df, "score != 0.9").tolist() == [True, False, False, True]
    assert filter_mask(df, "ok = true").tolist() == [True, False, True, False]
    assert filter_mask(df, "model = a").tolist() == [True, False, False, False]  # exact text
    assert filter_mask(df, "model != a").tolist() == [False, True, True, False]
    assert filter_mask(df, "score > x").tolist() == [False] * 4  # not a number: nothing
    assert filter_mask(df, "nobody = 1").tolist() == [False] * 4  # not a column: a text search for "nobody = 1"
    assert shown_rows(df, "score", False).index.tolist() == [1, 3, 0, 2]


def test_small_tables_and_objects_of_booleans():
    df = pd.DataFrame({"passed": [True, None, False], "n": pd.array([1, None, 3], dtype="Int64"),
                       "big": [2**40, 1, 2], "t": ["x", "y", "x"]})
    t = table_payload(df)
    assert t["kinds"] == {"passed": "bool", "n": "number", "big": "number", "t": "text"}
    assert decode_column(t["data"]["passed"]) == [True, None, False]
    assert t["data"]["n"]["dtype"] == "f8" and decode_column(t["data"]["n"]) == [1.0, None, 3.0]  # missing: float
    assert t["data"]["big"]["dtype"] == "f8" and decode_column(t["data"]["t"]) == ["x", "y", "x"]
    empty = table_payload(df.iloc[:0])
    assert empty["n"] == 0 and all(len(s.get("buf", s.get("codes"))) == 0 for s in empty["data"].values())


def test_a_reopened_notebook_without_widget_state_says_to_rerun():
    """The note after each widget: hidden inline (where <style> is stripped it stays hidden), shown by
    CSS only after jupyterlab-manager's "model not found" node, which it then hides."""
    note = reconnect_note("BenchmarkView (benchmark: 2 runs)")
    assert re.search(r"class='eliza-reconnect' style='display:none", note) and "Re-run the cell to reconnect" in note
    # the manager's error node: the output element itself carries `jupyter-widgets` (no data-mime-type there)
    assert ".jp-OutputArea-child:has(> .jp-OutputArea-output.jupyter-widgets)" in RECONNECT_CSS
    assert "display:block!important" in RECONNECT_CSS and f"<style>{RECONNECT_CSS}</style>" in note
    assert "<script" not in note


def test_kernel_bound_panels_carry_a_connection_guard(rt):
    from eliza_nb.notebook.widgets import ParameterPanel, Playground
    from eliza_nb.notebook.widgets.reconnect import ConnectionGuard

    for widget, host in ((ParameterPanel(rt), ".eliza-panel"), (Playground(rt), ".eliza-playground")):
        guard = widget.children[1]
        assert isinstance(guard, ConnectionGuard) and guard.host == host and "re-run the cell" in guard.message
        esm = guard.get_state()["_esm"]
        assert "jupyter-widgets-disconnected" in esm and not re.search(r"^\s*import\b|https?://", esm, re.M)
        widget.close()
