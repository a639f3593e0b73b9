"""Intervals, paired comparisons and best(): the maths against a direct computation on fixed data,
and the summary's columns, notes and the chart on hand-built frames (no model calls)."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pandas as pd
import pytest

from eliza_nb.core.errors import ConfigError
from eliza_nb.core.tuning import stats
from eliza_nb.core.tuning.frame import SUMMARY_COLUMNS, BenchmarkFrame, LatencyScoreChart

CONFIG_COLUMNS = ["model", "preset", "prompt", "temperature"]


def row(temperature: float, case: str, repeat: int, score: float | None, *, prompt: str = "", latency: float = 1.0,
        cost: float = 0.0, error: str | None = None, model: str = "llama_local:small") -> dict:
    """One row in the contract's columns (the ones summary/compare read, plus a few others)."""
    label = f"{model} · none · temperature={temperature:g}" + (f" · prompt={prompt}" if prompt else "")
    failed = error is not None
    return {"config": label, "model": model, "preset": "none", "prompt": prompt, "temperature": temperature,
            "case_id": case, "repeat": repeat, "input": f"q {case}", "expected": "x", "output": None if failed else "x",
            "latency_s": latency, "ttft_s": latency / 4, "queue_s": 0.0, "prompt_tokens": 10, "completion_tokens": 5,
            "tokens_per_s": 5 / latency, "cost_usd": cost, "cache_hit": False,
            "score": math.nan if failed or score is None else score,
            "passed": None if failed or score is None else score >= 0.5,
            "checks": None, "reason": None, "error": error}


def frame(rows: list[dict], config_columns: list[str] | None = CONFIG_COLUMNS) -> BenchmarkFrame:
    f = BenchmarkFrame(pd.DataFrame(rows))
    f.config_columns = config_columns
    f.scorer_name = "exact"
    return f


# -- the maths, against a direct computation ----------------------------------------------------

def hand_bootstrap(values: list[float], n_boot: int, level: float, seed: int) -> tuple[float, float, float]:
    """The percentile bootstrap written out: one index at a time from the same generator, means by
    hand, the percentiles by linear interpolation between sorted resample means."""
    rng = np.random.default_rng(seed)
    n = len(values)
    means = []
    for _ in range(n_boot):
        means.append(sum(values[int(rng.integers(0, n))] for _ in range(n)) / n)
    means.sort()

    def pct(p: float) -> float:
        pos = p * (n_boot - 1)
        i = int(pos)
        return means[i] + (means[min(i + 1, n_boot - 1)] - means[i]) * (pos - i)

    alpha = (1 - level) / 2
    return sum(values) / n, pct(alpha), pct(1 - alpha)


def test_bootstrap_ci_matches_a_hand_written_bootstrap():
    values = [0.0, 1.0, 0.5, 0.25, 1.0, 0.75, 0.0, 1.0, 0.9, 0.3, 0.6]
    for seed, n_boot, level in ((0, 2000, 0.95), (7, 500, 0.9)):
        got = stats.bootstrap_ci(values, n_boot=n_boot, level=level, seed=seed)
        assert got == pytest.approx(hand_bootstrap(values, n_boot, level, seed), abs=1e-12)
    # another seed gives another (but close) interval; the same seed the same one
    assert stats.bootstrap_ci(values, seed=1) != stats.bootstrap_ci(values, seed=0)
    assert stats.bootstrap_ci(values, seed=3) == stats.bootstrap_ci(values, seed=3)


def test_bootstrap_ci_agrees_with_normal_theory_on_a_large_sample():
    x = np.random.default_rng(42).normal(0.6, 0.2, size=400)
    mean, lo, hi = stats.bootstrap_ci(x)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))  # ~0.0196
    assert mean == pytest.approx(x.mean())
    assert lo < mean < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert (lo + hi) / 2 == pytest.approx(mean, abs=0.2 * half)


def test_bootstrap_ci_edge_cases():
    nan = math.nan
    assert stats.bootstrap_ci([0.2, nan, None, 0.4, nan]) == stats.bootstrap_ci([0.2, 0.4])  # NaN and None dropped
    mean, lo, hi = stats.bootstrap_ci([0.7, nan])
    assert mean == 0.7 and math.isnan(lo) and math.isnan(hi)  # one value: no interval
    assert all(math.isnan(v) for v in stats.bootstrap_ci([nan, None]))
    assert all(math.isnan(v) for v in stats.bootstrap_ci([]))
    assert stats.bootstrap_ci([0.3] * 10) == (pytest.approx(0.3), pytest.approx(0.3), pytest.approx(0.3))
    m, lo, hi = stats.bootstrap_ci([0.1] * 7)  # 0.1 is not exact in binary: still lo <= mean <= hi
    assert lo <= m <= hi
    with pytest.raises(ValueError, match="level"):
        stats.bootstrap_ci([1, 2, 3], level=95)


def two_configs(diff: float, *, cases: int = 10, repeats: int = 2, spread: float = 0.3, jitter: float = 0.0,
                seed: int = 5) -> BenchmarkFrame:
    """temperature=0 scores ``diff`` above temperature=0.8 on every case, around case-specific
    levels that vary a lot (``spread``); ``jitter`` adds noise to each run."""
    r = random.Random(seed)
    base = {f"c{i}": 0.2 + spread * r.random() for i in range(cases)}
    rows = []
    for t, shift in ((0.0, diff), (0.8, 0.0)):
        for case, level in base.items():
            for rep in range(repeats):
                rows.append(row(t, case, rep, level + shift + r.uniform(-jitter, jitter)))
    return frame(rows)


def test_identical_configs_differ_by_zero_and_are_not_distinguishable():
    f = two_configs(0.0)
    c = f.compare({"temperature": 0.0}, {"temperature": 0.8})
    assert c.diff == pytest.approx(0.0, abs=1e-12) and c.lo == pytest.approx(0.0, abs=1e-12)
    assert c.hi == pytest.approx(0.0, abs=1e-12) and c.n_cases == 10
    assert not c.distinguishable and c.winner is None
    assert c.verdict.startswith("No distinguishable difference") and "includes 0" in c.verdict


def test_better_on_every_case_by_half_is_distinguishable():
    f = two_configs(0.5, jitter=0.05)
    c = f.compare("temperature=0", "temperature=0.8")
    assert 0.4 < c.lo < c.diff < c.hi < 0.6
    assert c.distinguishable and c.winner == "llama_local:small · none · temperature=0"
    assert "is better than" in c.verdict and "distinguishable" in c.verdict and "excludes 0" in c.verdict
    flipped = f.compare("temperature=0.8", "temperature=0")
    assert flipped.diff == pytest.approx(-c.diff) and flipped.distinguishable and flipped.winner == c.winner


def test_pairing_by_case_sees_what_the_per_config_intervals_cannot():
    """A constant 0.1 advantage over cases whose own levels vary a lot: the summary's intervals
    overlap, the paired difference is 0.1 exactly and distinguishable."""
    f = two_configs(0.1, cases=12, spread=0.6)
    s = f.summary().set_index("temperature")
    assert s.loc[0.0, "score_lo"] < s.loc[0.8, "score_hi"], "the per-config intervals overlap"
    c = f.compare({"temperature": 0.0}, {"temperature": 0.8})
    assert c.diff == pytest.approx(0.1) and c.lo == pytest.approx(0.1) and c.distinguishable


def test_paired_comparison_matches_a_direct_computation():
    """Unequal repeats, a NaN score and a failed call: each case's mean over its scored repeats,
    cases both have, then the hand bootstrap of the differences over cases."""
    r = random.Random(11)
    rows = []
    for t in (0.0, 0.8):
        for i in range(9):
            for rep in range(1 + i % 3):  # 1, 2 or 3 repeats
                rows.append(row(t, f"c{i}", rep, r.random()))
    rows.append(row(0.8, "c0", 5, None))  # not scored: ignored
    rows.append(row(0.0, "c8", 7, None, error="TransientError: boom"))  # failed: ignored
    rows.extend(row(0.8, "c9", rep, 0.9) for rep in range(2))  # a case only b has: not paired
    f = frame(rows)

    def means(t: float) -> dict[str, float]:
        acc: dict[str, list[float]] = {}
        for rw in rows:
            if rw["temperature"] == t and not math.isnan(rw["score"]):
                acc.setdefault(rw["case_id"], []).append(rw["score"])
        return {k: sum(v) / len(v) for k, v in acc.items()}

    a, b = means(0.0), means(0.8)
    diffs = [a[k] - b[k] for k in a if k in b]
    want = hand_bootstrap(diffs, 2000, 0.95, 0)
    c = f.compare({"temperature": 0.0}, {"temperature": 0.8})
    assert (c.diff, c.lo, c.hi) == pytest.approx(want, abs=1e-12)
    assert c.n_cases == 9 and list(c.per_case["case_id"]) == [f"c{i}" for i in range(9)]
    assert c.per_case["diff"].tolist() == pytest.approx(diffs)
    # a row-level mean would weigh the 3-repeat cases more: the paired diff is not that
    row_level = np.nanmean([x["score"] for x in rows if x["temperature"] == 0.0 and x["case_id"] != "c9"]) - \
        np.nanmean([x["score"] for x in rows if x["temperature"] == 0.8 and x["case_id"] != "c9"])
    assert c.diff != pytest.approx(row_level, abs=1e-6)


def test_too_few_cases_to_tell():
    f = two_configs(0.5, cases=3, repeats=4)
    c = f.compare({"temperature": 0.0}, {"temperature": 0.8})
    assert c.diff == pytest.approx(0.5) and c.n_cases == 3
    assert not c.distinguishable, "three cases are too few, however large the difference"
    assert c.verdict.startswith("Too few to tell: only 3 cases in common (need 5)") and "repeats alone do not help" in c.verdict
    lone = frame([row(0.0, "a", 0, 1.0), row(0.8, "b", 0, 0.0)])
    none = lone.compare({"temperature": 0.0}, {"temperature": 0.8})
    assert none.n_cases == 0 and math.isnan(none.diff) and none.verdict.startswith("Nothing to compare")


def test_other_metrics_and_their_direction():
    rows = [row(t, f"c{i}", 0, 0.5, latency=lat + 0.01 * i, cost=cost)
            for t, lat, cost in ((0.0, 1.0, 2e-5), (0.8, 2.0, 1e-5)) for i in range(6)]
    f = frame(rows)
    lat = f.compare({"temperature": 0.0}, {"temperature": 0.8}, "latency_s")
    assert lat.diff == pytest.approx(-1.0) and lat.distinguishable and lat.winner.endswith("temperature=0")
    assert "lower is better" in lat.verdict
    cost = f.compare({"temperature": 0.0}, {"temperature": 0.8}, "cost_per_case_usd")  # a summary name works too
    assert cost.metric == "cost_usd" and cost.winner.endswith("temperature=0.8")
    assert f.compare({"temperature": 0.0}, {"temperature": 0.8}, "passed").diff == 0
    with pytest.raises(ConfigError, match="unknown metric 'bleu'"):
        f.compare({"temperature": 0.0}, {"temperature": 0.8}, "bleu")


# -- choosing configurations -------------------------------------------------------------------

def grid_frame() -> BenchmarkFrame:
    rows = [row(t, f"c{i}", 0, 0.5 + (0.3 if p == "steps" else 0) + 0.01 * i, prompt=p)
            for t in (0.0, 0.8) for p in ("terse", "steps") for i in range(6)]
    return frame(rows)


def test_compare_by_label_part_dict_and_rows_of_another_run():
    f = grid_frame()
    full = "llama_local:small · none · temperature=0 · prompt=steps"
    by_label = f.compare(full, "llama_local:small · none · temperature=0 · prompt=terse")
    by_parts = f.compare("temperature=0 · prompt=steps", "prompt=terse · temperature=0")
    by_dict = f.compare({"temperature": 0.0, "prompt": "steps"}, {"temperature": 0, "prompt": "terse"})
    for c in (by_label, by_parts, by_dict):
        assert c.a == full and c.diff == pytest.approx(0.3) and c.distinguishable
    # another run's rows (e.g. load_bench(run_id)) compare like a configuration
    other = f[(f.prompt == "steps") & (f.temperature == 0.8)].copy()
    assert f.compare(other, {"temperature": 0.0, "prompt": "terse"}).diff == pytest.approx(0.3)
    with pytest.raises(ConfigError, match=r"\{'temperature': 0.0\} matches 2 configurations .*: give more of model, preset"):
        f.compare({"temperature": 0.0}, full)
    with pytest.raises(ConfigError, match="'prompt=terse' matches 2 configurations"):
        f.compare("prompt=terse", full)
    with pytest.raises(ConfigError, match="'temperature=0.4' is not a configuration; configurations: llama_local"):
        f.compare("temperature=0.4", full)
    with pytest.raises(ConfigError, match="no column 'top_p'"):
        f.compare({"top_p": 0.9}, full)
    with pytest.raises(ConfigError, match="no configuration has"):
        f.compare({"temperature": 0.4}, full)


def test_best_when_it_is_distinguishable():
    f = grid_frame()
    best = f.best()
    assert best.config == "llama_local:small · none · temperature=0 · prompt=steps"  # first of two equal means
    assert best.values == {"model": "llama_local:small", "preset": "none", "prompt": "steps", "temperature": 0.0}
    assert best.tied == ["llama_local:small · none · temperature=0.8 · prompt=steps"]
    assert "not distinguishable from llama_local:small · none · temperature=0.8 · prompt=steps" in str(best)
    # with the 0.8 steps rows slightly worse, the best is distinguishable from every other configuration
    g = f.copy()
    g.loc[(g.prompt == "steps") & (g.temperature == 0.8), "score"] -= 0.05
    clear = g.best("mean_score")
    assert clear.distinguishable and clear.tied == [] and clear.runner_up.endswith("temperature=0.8 · prompt=steps")
    assert "distinguishably better than the runner-up (a - b = +0.050, 95% interval [+0.050, +0.050] over 6 cases" in repr(clear)
    assert repr(clear).endswith("and than every other configuration.")


def test_best_when_it_is_not_and_which_of_the_tied_is_cheapest():
    r = random.Random(3)
    rows = [row(t, f"c{i}", 0, r.random(), cost=cost) for t, cost in ((0.0, 3e-5), (0.8, 1e-5)) for i in range(20)]
    f = frame(rows)
    best = f.best()
    assert not best.distinguishable and best.comparison is not None and not best.comparison.distinguishable
    s = best.sentence
    assert "but it is not distinguishable from" in s and "which includes 0" in s and "they are as good" in s
    assert s.endswith("Of these, llama_local:small · none · temperature=0.8 costs least ($0.000010 per run).")
    few = frame([row(t, f"c{i}", 0, 0.5 + t) for t in (0.0, 0.8) for i in range(2)]).best()
    assert few.config.endswith("temperature=0.8") and "too few to tell them apart (need 5" in few.sentence
    fastest = frame(rows).best("latency_s")
    assert fastest.metric == "latency_s" and fastest.mean == pytest.approx(1.0)
    only = frame([row(0.0, "c", 0, 1.0)]).best()
    assert only.sentence.endswith("is the only configuration: nothing to compare it with.")
    assert "<p" in only._repr_html_()


# -- the summary -------------------------------------------------------------------------------

def test_summary_columns_order_and_values():
    rows = [row(t, f"c{i}", rep, (i + rep) / 10, latency=0.5 + i / 10 + t, cost=1e-5 * (1 + t))
            for t in (0.8, 0.0) for i in range(4) for rep in range(2)]
    f = frame(rows)
    s = f.summary()
    assert list(s.columns) == ["config", *CONFIG_COLUMNS, *SUMMARY_COLUMNS]
    assert SUMMARY_COLUMNS == ["runs", "mean_score", "score_lo", "score_hi", "pass_rate", "p50_latency_s", "p95_latency_s",
                               "mean_ttft_s", "mean_queue_s", "tokens_per_s", "cost_per_case_usd", "total_cost_usd",
                               "error_rate", "note"]
    assert s.temperature.tolist() == [0.8, 0.0], "configurations in the order they first appear"
    one = s.iloc[0]
    mine = pd.DataFrame(rows[:8])
    assert one.runs == 8 and one.mean_score == pytest.approx(mine.score.mean())
    assert (one.score_lo, one.score_hi) == pytest.approx(stats.bootstrap_ci(mine.score)[1:])
    assert one.pass_rate == pytest.approx((mine.score >= 0.5).mean())
    assert one.p50_latency_s == pytest.approx(mine.latency_s.median())
    assert one.p95_latency_s == pytest.approx(mine.latency_s.quantile(0.95))
    assert one.cost_per_case_usd == pytest.approx(1.8e-5) and one.total_cost_usd == pytest.approx(8 * 1.8e-5)
    assert one.error_rate == 0 and one.note == ""
    assert f.summary(level=0.5).score_hi.iloc[0] < one.score_hi, "a lower level, a narrower interval"


def test_summary_says_when_runs_are_too_few_and_handles_failures():
    rows = [row(0.0, f"c{i}", 0, 1.0) for i in range(3)]  # 3 scored runs
    rows += [row(0.8, f"c{i}", 0, 0.5, latency=1.0) for i in range(6)]
    rows += [row(0.8, "c6", 0, None, latency=99.0, error="TransientError: boom")]  # a failure: not in latency
    rows += [row(0.8, "c7", 0, None)]  # not scored: NaN score, passed None
    rows += [row(0.4, f"c{i}", 0, None, error="MissingKeyError: no key") for i in range(2)]
    rows += [row(0.2, "c0", rep, 0.5 + rep / 10) for rep in range(6)]
    s = frame(rows).summary().set_index("temperature")
    few = s.loc[0.0]
    assert few.mean_score == 1.0 and math.isnan(few.score_lo) and math.isnan(few.score_hi)
    assert few.note == "3 scored runs: too few for an interval (need 5); add cases or repeats"
    mixed = s.loc[0.8]
    assert mixed.runs == 8 and mixed.mean_score == 0.5 and mixed.error_rate == pytest.approx(1 / 8)
    assert mixed.p50_latency_s == 1.0 and mixed.p95_latency_s == 1.0, "the failed call's latency is left out"
    assert mixed.pass_rate == 1.0, "an unscored run counts neither way"
    assert mixed.note == "1 of 8 runs failed (not scored)" and mixed.score_lo == pytest.approx(0.5)
    dead = s.loc[0.4]
    assert math.isnan(dead.mean_score) and math.isnan(dead.pass_rate) and math.isnan(dead.p50_latency_s)
    assert dead.error_rate == 1.0 and dead.note == "all 2 runs failed"
    one_case = s.loc[0.2]
    assert one_case.score_lo < one_case.score_hi and one_case.note == "1 case: the interval covers its repeats only, not other inputs"
    empty = BenchmarkFrame(pd.DataFrame(columns=list(rows[0])))
    assert empty.summary().empty and "mean_score" in empty.summary().columns


def test_older_frames_without_config_or_metadata():
    """Rows of model x preset only (an older frame, or one built by hand): labelled "model · preset"."""
    rows = [{"model": m, "preset": p, "case_id": f"c{i}", "repeat": 0, "latency_s": 1.0, "score": s + i / 100,
             "error": None} for m, s in (("a:small", 0.9), ("b:small", 0.4)) for p in ("precise", None) for i in range(5)]
    f = BenchmarkFrame(pd.DataFrame(rows))
    s = f.summary()
    assert list(s.columns[:3]) == ["config", "model", "preset"] and s.config.tolist() == [
        "a:small · precise", "a:small · none", "b:small · precise", "b:small · none"]
    assert math.isnan(s.pass_rate.iloc[0]) and math.isnan(s.mean_ttft_s.iloc[0]), "missing columns: NaN, not a crash"
    c = f.compare({"model": "a:small", "preset": "none"}, {"model": "b:small", "preset": None})
    assert c.diff == pytest.approx(0.5) and c.distinguishable
    assert f.best().config == "a:small · precise"


def test_metadata_travels_to_slices():
    f = grid_frame()
    f.run_id = "20261130-174800-ab12"
    part = f[f.prompt == "terse"]
    assert isinstance(part, BenchmarkFrame) and part.config_columns == CONFIG_COLUMNS
    assert part.scorer_name == "exact" and part.run_id == "20261130-174800-ab12"
    assert BenchmarkFrame(pd.DataFrame([row(0.0, "c", 0, 1.0)])).config_columns is None  # not set: None, not a column lookup


# -- what people see ---------------------------------------------------------------------------

def test_comparison_text_and_html():
    c = two_configs(0.5).compare({"temperature": 0.0}, {"temperature": 0.8})
    text = repr(c)
    assert text.startswith("Comparison on score (10 cases in common)") and "a - b: +0.500  95% interval [+0.500, +0.500]" in text
    assert text.endswith(c.verdict)
    html = c._repr_html_()
    assert "<svg" in html and "cases in common" in html and "distinguishable" in html
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")
    few = two_configs(0.5, cases=1).compare({"temperature": 0.0}, {"temperature": 0.8})
    assert "<svg" not in few._repr_html_(), "no interval, no bar"


def test_chart_labels_points_by_config_with_error_bars():
    f = grid_frame()
    svg = f.chart()._repr_svg_()
    assert svg.count("<circle") == 4 and svg.count('class="interval"') == 4
    labels = re.findall(r'<text x="[\d.]+" y="[\d.]+"(?: text-anchor="end")?>([^<]*)</text>', svg)
    # the parts all four share (model, preset) are left out of the labels; the full label is the tooltip
    assert {"temperature=0 · prompt=terse", "temperature=0.8 · prompt=steps"} <= set(labels)
    assert re.search(r"<title>llama_local:small · none · temperature=0 · prompt=terse: 1.000 s, score 0.5\d "
                     r"\[0.5\d, 0.5\d\]</title>", svg)
    assert "config" in repr(f.chart()) and "score_lo" in repr(f.chart())
    # a summary of model x preset only (older frames) still charts, labelled "model · preset"
    old = LatencyScoreChart(pd.DataFrame({"model": ["m"], "preset": ["p"], "p50_latency_s": [0.5], "mean_score": [0.7]}))
    assert ">m · p</text>" in old._repr_svg_() and 'class="interval"' not in old._repr_svg_()
