"""Grids: models × presets × grid points × prompt variants × cases × repeats, each row
carrying its values; bad input refused before any call; the cost estimate against the calls
made; the cost guard; saved runs resumed."""

from __future__ import annotations

import math

import pytest

import eliza_nb
from eliza_nb.core.errors import ConfigError
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.tuning import benchmark
from eliza_nb.core.tuning.grid import GRID_LIMIT

CASES = [{"id": "fr", "input": "capital of France", "expected": "France"},
         {"id": "jp", "input": "capital of Japan", "expected": "Japan"}]
PROMPTS = {"terse": "One word: {input}", "steps": "Think step by step about {input}, then say {{it}}."}


@pytest.fixture
def lrt(bare_home, loopback):
    """A runtime whose provider ``lb`` is the loopback server answering 'echo: <prompt>' (priced, so costs show)."""
    loopback.reset()
    entry = {"protocol": "openai", "endpoint": f"{loopback.base}/echo/v1", "key_env": [],
             "models": {"small": "lb-small", "medium": "lb-medium", "large": "lb-medium"},
             "settings": {"temperature": 0.0, "max_output_tokens": 64},
             "prices": {"lb-small": {"input": 1.0, "output": 2.0}, "lb-medium": {"input": 3.0, "output": 6.0}}}
    rt = Runtime(bare_home, config={"providers": {"lb": entry}, "defaults": {"provider": "lb"}}, env={})
    yield rt
    rt.close()


def chat_hits(loopback) -> int:
    return sum(1 for _, path, _ in loopback.hits()["hits"] if path.endswith("/chat/completions"))


def test_a_grid_is_the_cross_product_and_each_row_carries_its_values(lrt, loopback):
    frame = benchmark(lrt, CASES, models=["lb:small", "lb:medium"], grid={"temperature": [0, 0.5]}, prompts=PROMPTS,
                      repeats=2, progress=False)
    assert len(frame) == 2 * 2 * 2 * 2 * 2 == chat_hits(loopback)
    assert list(frame.columns[:5]) == ["config", "model", "preset", "prompt", "temperature"]
    assert frame.config_columns == ["model", "preset", "prompt", "temperature"]
    assert frame["config"].nunique() == 8 and frame.groupby("config").size().eq(4).all()
    for row in frame.itertuples():
        template = PROMPTS[row.prompt]
        assert row.output == "echo: " + template.replace("{input}", row.input)[:40]  # only {input} is filled
        assert f"temperature={row.temperature:g}" in row.config and f"prompt={row.prompt}" in row.config
    assert frame["error"].isna().all()
    assert frame["score"].notna().all() and set(frame["passed"]) <= {True, False}


def test_grid_values_reach_the_call(lrt, monkeypatch):
    seen = []
    real = lrt.stream

    def spy(prompt, **kw):
        seen.append((prompt, kw.get("temperature"), kw.get("top_p"), kw.get("max_tokens")))
        return real(prompt, **kw)

    monkeypatch.setattr(lrt, "stream", spy)
    benchmark(lrt, CASES[:1], models=["lb:small"], grid={"temperature": [0.1, 0.9], "top_p": [0.5]}, repeats=1,
              max_tokens=12, progress=False)
    assert sorted(seen) == [("capital of France", 0.1, 0.5, 12), ("capital of France", 0.9, 0.5, 12)]


@pytest.mark.parametrize(("options", "message"), [
    ({"grid": {"temprature": [0, 1]}}, "'temprature' is not a setting"),
    ({"grid": {"temperature": [0, float("nan")]}}, "grid: temperature = nan"),
    ({"grid": {"temperature": []}}, "temperature has no values"),
    ({"grid": {"temperature": [0, 1]}, "temperature": 0.3}, "temperature both fixed and swept"),
    ({"prompts": {"bad": "no placeholder here"}}, "prompt 'bad' has no {input}"),
    ({"gird": {"temperature": [0]}}, "benchmark: unknown option(s) gird"),
    ({"scorer": "nonsense"}, "nonsense"),
])
def test_bad_input_is_one_line_before_any_call(lrt, loopback, options, message):
    with pytest.raises(ConfigError) as info:
        benchmark(lrt, CASES, models=["lb:small"], progress=False, **options)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert chat_hits(loopback) == 0 and len(lrt.ledger) == 0


def test_a_grid_over_the_limit_asks_for_confirm(lrt, loopback):
    many = [{"input": f"q{i}"} for i in range(GRID_LIMIT // 4 + 1)]
    with pytest.raises(ConfigError, match=r"this grid is 10,004 calls .* pass confirm=True"):
        benchmark(lrt, many, models=["lb:small"], repeats=4, progress=False)
    assert chat_hits(loopback) == 0
    estimate = benchmark(lrt, many, models=["lb:small"], repeats=4, dry_run=True)  # an estimate needs no confirm
    assert int(estimate["calls"].sum()) == 10_004


def test_dry_run_estimates_the_calls_and_bounds_the_cost_of_the_real_run(lrt, loopback):
    options = {"models": ["lb:small", "lb:medium"], "grid": {"temperature": [0, 0.5]}, "prompts": PROMPTS, "repeats": 2}
    est = benchmark(lrt, CASES, dry_run=True, **options)
    assert chat_hits(loopback) == 0 and len(lrt.ledger) == 0  # nothing sent
    assert set(est["model"]) == {"lb-small", "lb-medium"} and est["calls"].sum() == 32
    frame = benchmark(lrt, CASES, progress=False, **options)
    for model, spent in frame.assign(m=frame["model"].str.split(":").str[1]).groupby("m")["cost_usd"].sum().items():
        row = est[est["model"] == ("lb-small" if model == "small" else "lb-medium")].iloc[0]
        assert row["calls"] == (frame["model"] == f"lb:{model}").sum()
        assert 0 < spent <= row["est_cost_usd"]  # a ceiling: completions counted at max_output_tokens
    real_prompt = frame["prompt_tokens"].sum()
    assert 0.3 * real_prompt <= est["est_prompt_tokens"].sum() <= 3 * real_prompt


def test_max_cost_refuses_a_grid_estimated_above_it(lrt, loopback):
    with pytest.raises(ConfigError, match=r"estimated at \$.*over max_cost_usd \$1e-06"):
        benchmark(lrt, CASES, models=["lb:small"], max_cost_usd=1e-6, progress=False)
    assert chat_hits(loopback) == 0


def test_the_cost_guard_stops_a_run_that_spends_past_it_and_resume_finishes_it(lrt, loopback, monkeypatch):
    cases = [{"id": str(i), "input": f"question {i}", "expected": "question"} for i in range(12)]
    per_call = benchmark(lrt, cases[:1], models=["lb:small"], repeats=1, progress=False, save=False)["cost_usd"].iloc[0]
    loopback.reset()
    from eliza_nb.core.tuning import estimate as est_module

    # the estimate (a ceiling) would refuse this grid up front: the guard on real spend is what is tested here
    monkeypatch.setattr(est_module, "estimate", lambda *a, **k: est_module.pd.DataFrame({"est_cost_usd": [0.0]}))
    with pytest.warns(RuntimeWarning, match="stopped: spent"):
        stopped = benchmark(lrt, cases, models=["lb:small"], repeats=1, concurrency=1, max_cost_usd=per_call * 3.5,
                            progress=False)
    assert 4 <= len(stopped) < 12 and "of 12 calls done" in stopped.attrs["stopped"]
    assert chat_hits(loopback) == len(stopped)
    run_id = stopped.run_id
    loopback.reset()
    finished = benchmark(lrt, cases, models=["lb:small"], repeats=1, concurrency=1, resume=run_id, progress=False)
    assert len(finished) == 12 and chat_hits(loopback) == 12 - len(stopped)
    assert list(finished["case_id"]) == [str(i) for i in range(12)]
    assert not math.isnan(finished["cost_usd"].sum())
    assert len(eliza_nb.core.tuning.runs.load(lrt.home, run_id)) == 12


def test_a_judges_calls_are_costed_on_the_row_and_marked_in_the_ledger(lrt, loopback):
    cases = [{"id": "fr", "input": "capital of France", "checks": ["contains:France", {"judge": "names the country"}]}]
    frame = benchmark(lrt, cases, models=["lb:small"], judge="lb:medium", repeats=1, progress=False)
    row = frame.iloc[0]
    assert row["checks"]["contains:France"] == 1.0 and "judge" in row["checks"]
    assert row["passed"] is not None and not row["passed"]  # the echo is no verdict: the judge check fails
    judged = [r for r in lrt.ledger.rows() if r.purpose == "judge"]
    assert len(judged) == 1 and judged[0].model == "lb-medium"
    assert row["judge_cost_usd"] == pytest.approx(judged[0].cost_usd) and row["judge_cost_usd"] > 0
    est = benchmark(lrt, cases, models=["lb:small"], judge="lb:medium", repeats=1, dry_run=True)
    assert list(est["purpose"]) == ["call", "judge"] and list(est["calls"]) == [1, 1]


def test_an_interrupted_run_keeps_its_rows_and_resume_finishes_it(lrt, loopback):
    cases = [{"id": str(i), "input": f"question {i}", "checks": [stop_at_the_fifth]} for i in range(8)]
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        benchmark(lrt, cases, models=["lb:small"], repeats=1, concurrency=1, progress=False)
    (saved,) = eliza_nb.core.tuning.runs.list_runs(lrt.home).itertuples()
    assert saved.status == "interrupted" and saved.rows == 4  # the four finished before the stop button
    loopback.reset()
    finished = benchmark(lrt, cases, models=["lb:small"], repeats=1, concurrency=1, progress=False, resume=saved.run_id)
    assert len(finished) == 8 and finished["passed"].all()
    assert chat_hits(loopback) == 4  # only what was missing was sent again
    assert eliza_nb.core.tuning.runs.list_runs(lrt.home).iloc[0]["status"] == "finished"


calls: list[str] = []


def stop_at_the_fifth(output: str, case: dict) -> bool:
    """A check that plays the stop button once, on the fifth answer it sees."""
    calls.append(output)
    if len(calls) == 5:
        raise KeyboardInterrupt
    return True
