"""Benchmarks through the runtime: shape, plausible values, errors recorded, summary, chart."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from eliza_nb.core.errors import ConfigError
from eliza_nb.core.tuning import COLUMNS, benchmark, benchmark_embeddings, make_scorer

CASES = [
    {"id": "fr", "input": "What is the capital of France?", "expected": "Paris"},
    {"id": "de", "input": "What is the capital of Germany?", "expected": "Berlin"},
    {"id": "math", "input": "What is 2 + 2? Answer with a number.", "expected": "4"},
]


def test_local_model_two_presets_three_cases_two_repeats(local_runtime):
    df = benchmark(local_runtime, CASES, models=["llama_local:small"], presets=["precise", "creative"],
                   repeats=2, concurrency=2, progress=False, max_tokens=24, temperature=0)
    assert list(df.columns) == COLUMNS and len(df) == 2 * 3 * 2
    assert df.error.isna().all(), df.error.dropna().tolist()
    assert set(df.preset) == {"precise", "creative"} and set(df.case_id) == {"fr", "de", "math"}
    assert (df.latency_s > 0).all() and (df.latency_s < 30).all()
    assert (df.ttft_s <= df.latency_s).all() and (df.completion_tokens > 0).all()
    assert (df.tokens_per_s > 0).all() and df.tokens_per_s.median() > 1  # tens of tok/s on an idle machine
    assert (df.cost_usd == 0).all() and not df.cache_hit.any()
    assert df[df.case_id == "fr"].score.mean() > 0, "the model knows Paris at a low temperature"
    s = df.summary()
    assert list(s.columns) == ["config", "model", "preset", "prompt", "runs", "mean_score", "score_lo", "score_hi",
                               "pass_rate", "p50_latency_s", "p95_latency_s", "mean_ttft_s", "mean_queue_s",
                               "tokens_per_s", "cost_per_case_usd", "total_cost_usd", "error_rate", "note"]
    assert len(s) == 2 and (s.runs == 6).all() and (s.error_rate == 0).all()
    assert (s.p50_latency_s <= s.p95_latency_s).all()
    svg = df.chart()._repr_svg_()
    assert svg.startswith("<svg") and svg.count("<circle") == 2 and "precise" in svg
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", ""), "no network in the chart"
    # every call went through the runtime's ledger
    ledger = local_runtime.ledger.dataframe()
    assert (ledger.kind == "stream").sum() >= 12


def test_a_failing_model_records_its_errors_and_the_run_goes_on(scripted):
    cases = pd.DataFrame([{"input": "hello", "expected": "echo"}, {"input": "please FAIL", "expected": "x"}])
    df = benchmark(scripted, cases, models=["cheap:small", "groq:small"], repeats=1, concurrency=3, progress=False)
    assert len(df) == 4
    cheap = df[df.model == "cheap:small"].set_index("case_id")
    assert cheap.loc["0", "score"] == 1.0 and pd.isna(cheap.loc["0", "error"])
    assert cheap.loc["1", "error"].startswith("TransientError") and math.isnan(cheap.loc["1", "score"])
    groq = df[df.model == "groq:small"]
    assert groq.error.str.startswith("MissingKeyError: [groq] no API key: set GROQ_API_KEY").all()
    s = df.summary().set_index("model")
    assert s.loc["cheap:small", "error_rate"] == 0.5 and s.loc["groq:small", "error_rate"] == 1.0


def test_concurrency_overlaps_calls(scripted):
    scripted.scripted("cheap").delay_s = 0.2
    import time

    t0 = time.perf_counter()
    df = benchmark(scripted, [{"input": f"q{i}", "expected": "q"} for i in range(8)], models=["cheap:small"],
                   repeats=1, concurrency=8, progress=False)
    assert time.perf_counter() - t0 < 1.2, "8 calls of 0.2 s at concurrency 8 overlap"
    assert df.error.isna().all()
    assert (df.queue_s == 0).all() and (df.latency_s >= 0.2).all(), "a remote call waits for no model: its latency is all service"


@pytest.mark.parametrize("name, output, expected, score", [
    ("exact", "  Paris ", "paris", 1.0), ("exact", "Paris.", "Paris", 0.0),
    ("contains", "The capital is Paris.", "paris", 1.0), ("regex", "Answer: 42", r"\b4\d\b", 1.0),
    ("json-valid", '```json\n{"a": 1}\n```', None, 1.0), ("json-valid", "{a: 1}", None, 0.0),
])
def test_scorers(name, output, expected, score):
    assert make_scorer(name)(output, expected) == score


def test_embedding_similarity_scorer_and_custom_callable(local_runtime):
    sim = make_scorer("embedding-similarity", local_runtime)
    assert sim("A cat sits on the mat.", "A cat is on the mat.") > sim("A cat sits on the mat.", "Stocks fell.")
    df = benchmark(local_runtime, CASES[:1], repeats=1, progress=False, max_tokens=8, scorer=lambda out, exp: len(out))
    assert df.score.iloc[0] == len(df.output.iloc[0])


def test_bad_input_fails_fast_before_any_call(local_runtime):
    with pytest.raises(ConfigError, match="unknown provider"):
        benchmark(local_runtime, CASES, models=["nope:small"], progress=False)
    with pytest.raises(ConfigError, match="unknown preset"):
        benchmark(local_runtime, CASES, presets=["wild"], progress=False)
    with pytest.raises(ConfigError, match="has no 'input'"):
        benchmark(local_runtime, [{"question": "x"}], progress=False)
    with pytest.raises(ConfigError, match="unknown scorer"):
        benchmark(local_runtime, CASES, scorer="bleu", progress=False)


def test_benchmark_embeddings(local_runtime):
    df = benchmark_embeddings(local_runtime, ["a cat", "a dog", "stocks"], models=["llama_local", "openai"], repeats=2)
    rows = df.set_index("model")
    local = rows.loc["llama_local:all-minilm-l6-v2"]
    assert local.dims == 384 and local.ms_per_text > 0 and pd.isna(local.error)
    assert rows.loc["openai:text-embedding-3-small", "error"].startswith("MissingKeyError")
    with pytest.raises(ConfigError, match="groq has no embedding model; providers with one: openai"):
        benchmark_embeddings(local_runtime, ["x"], models=["groq"])


def test_chart_labels_stay_inside_the_chart():
    """The slowest point's label is drawn left of it, and a very long one is cut (full text in the tooltip)."""
    import re

    from eliza_nb.core.tuning import LatencyScoreChart

    long_model = "llama_local:" + "x" * 80
    summary = pd.DataFrame({"model": ["fast", "llama_local:smollm2-135m-instruct", long_model],
                            "preset": ["precise"] * 3, "p50_latency_s": [0.1, 2.0, 1.0], "mean_score": [0.5, 1.0, 0.7]})
    chart = LatencyScoreChart(summary)
    svg = chart._repr_svg_()
    labels = re.findall(r'<text x="([\d.]+)" y="[\d.]+"( text-anchor="end")?>([^<]*(?:· precise|…))</text>', svg)
    assert len(labels) == 3
    for x, anchored_end, text in labels:
        right = float(x) if anchored_end else float(x) + 6.2 * len(text)
        assert right <= chart.width, f"{text!r} runs off the chart"
    assert any(end for _, end, text in labels if text.startswith("llama_local:smollm2")), "the slowest point's label is on its left"
    assert any(text.endswith("…") for _, _, text in labels) and f"{long_model} · precise" in svg  # cut, full in the tooltip
