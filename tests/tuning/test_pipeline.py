"""Budgets, truncate-and-retry, the spending cap and the ledger, through the real pipeline."""

from __future__ import annotations

import math

import pytest

from eliza_nb.core.errors import BudgetExceeded, ContextTooLongError


def test_a_long_prompt_is_truncated_to_the_local_window_with_a_note(tmp_path, models_home):
    import shutil

    from eliza_nb.core.runtime import Runtime

    shutil.copytree(models_home / "models", tmp_path / "models")
    rt = Runtime(tmp_path, config={"local": {"n_ctx": 1024}}, env={})  # a small window keeps the test fast
    long = " ".join(f"Fact {i}: {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(1000))
    r = rt.generate(long + "\nWhat is the capital of France?", temperature=0, max_tokens=16)
    assert r.usage.prompt_tokens + 16 <= 1024
    assert r.usage.prompt_tokens > 900, "truncation keeps as much as fits"
    assert any(n.startswith("truncated the prompt from") and "keep-recent" in n for n in r.notes)
    rt.close()


def test_truncation_off_refuses_with_one_line(local_runtime):
    long = "word " * 40000
    with pytest.raises(ContextTooLongError) as err:
        local_runtime.generate(long, truncation="off", max_tokens=5)
    assert "exceeds the" in str(err.value) and "truncation is off" in str(err.value) and "\n" not in str(err.value)


def test_provider_context_error_triggers_one_truncate_and_retry(scripted):
    paid = scripted.scripted("paid")
    paid.max_chars = 3000  # the provider's real limit is below what our estimate allows
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "x" * 400} for i in range(12)]
    r = scripted.generate(history, provider="paid")
    assert len(paid.calls) == 2, "one refused call, one truncated retry"
    assert sum(len(m.content) for m in paid.calls[1].messages) <= 3000
    assert paid.calls[1].messages[-1].content == history[-1]["content"], "the newest turn is kept"
    assert any("truncated the prompt" in n for n in r.notes)
    assert [a.outcome for a in r.attempts] == ["ContextTooLongError", "ok"]


def test_provider_context_error_without_numbers_tries_smaller_twice_then_gives_up(scripted):
    paid = scripted.scripted("paid")
    paid.max_chars, paid.vague = 1500, True  # no numbers, no window known: a quarter of what was sent fits
    history = [{"role": "user", "content": "y" * 1990}, {"role": "user", "content": "z" * 1990}]
    r = scripted.generate(history, provider="paid")
    assert len(paid.calls) == 2 and sum(len(m.content) for m in paid.calls[1].messages) <= 1500
    paid.calls.clear()
    paid.max_chars = 20  # below even a sixteenth: two smaller tries, then the provider's error
    with pytest.raises(ContextTooLongError):
        scripted.generate(history, provider="paid")
    assert len(paid.calls) == 3, "at most two smaller tries, never a loop"
    sizes = [sum(len(m.content) for m in c.messages) for c in paid.calls]
    assert sizes[0] > sizes[1] > sizes[2]
    assert [a.outcome for a in r.attempts] == ["ContextTooLongError", "ok"]
    paid.vague = False
    paid.calls.clear()
    paid.max_chars = 8  # nothing can fit: our own budget check refuses before a second call
    with pytest.raises(ContextTooLongError) as err:
        scripted.generate("a prompt that is far longer than eight characters", provider="paid")
    assert len(paid.calls) == 1 and "\n" not in str(err.value)


def test_a_stated_window_is_learned_for_later_calls(scripted):
    paid = scripted.scripted("paid")
    paid.max_chars = 3000
    history = [{"role": "user", "content": f"message {i} " + "x" * 400} for i in range(12)]
    scripted.generate(history, provider="paid")
    assert len(paid.calls) == 2 and scripted.windows.get("paid", scripted.resolve("paid").model).window == 750
    paid.calls.clear()
    r = scripted.stream(history, provider="paid")
    "".join(r)
    r = r.result
    assert len(paid.calls) == 1, "the window learned from the first refusal fits the next call before it is sent"
    assert any("truncated the prompt" in n for n in r.notes)


def test_spending_cap_refuses_paid_calls_and_failover_reaches_a_free_model(scripted):
    scripted.spending.set(0.05)
    r = scripted.generate("x" * 200, provider="paid", max_tokens=8)  # 50 prompt tokens at $1000/M = $0.05
    assert r.provider == "paid"
    with pytest.raises(BudgetExceeded) as err:
        scripted.generate("again", provider="paid")
    assert "spending cap reached" in str(err.value) and "eliza_nb.set_budget" in str(err.value)
    r = scripted.generate("again", provider="paid", failover=["llama_local:small"], temperature=0, max_tokens=4)
    assert r.provider == "llama_local" and [a.outcome for a in r.attempts] == ["BudgetExceeded", "ok"]
    scripted.spending.set(None)
    assert scripted.generate("free again", provider="paid").provider == "paid"


def test_ledger_records_successes_failures_and_costs(scripted):
    scripted.generate("hello there", provider="paid")
    scripted.generate("hello there", provider="cheap")
    with pytest.raises(Exception):
        scripted.generate("please FAIL", provider="cheap")
    df = scripted.ledger.dataframe()
    assert list(df.columns[:6]) == ["time", "kind", "provider", "model", "model_class", "preset"]
    paid_row = df[df.provider == "paid"].iloc[0]
    assert paid_row.cost_usd == pytest.approx((paid_row.prompt_tokens * 1000 + paid_row.completion_tokens * 2000) / 1e6)
    cheap = df[df.provider == "cheap"]
    assert math.isnan(cheap.iloc[0].cost_usd), "no price known: NaN, not 0"
    failures = cheap[cheap.error.notna()]
    assert len(failures) == scripted.retry.max_attempts and failures.error.str.startswith("TransientError").all()
    totals = scripted.ledger.totals("provider").set_index("provider")
    assert totals.loc["cheap", "calls"] == 1 + scripted.retry.max_attempts
    assert totals.loc["cheap", "errors"] == scripted.retry.max_attempts
    assert math.isnan(totals.loc["cheap", "cost_usd"]) and totals.loc["paid", "cost_usd"] > 0
    by_model = scripted.ledger.totals("model")
    assert set(by_model.model) == {"paid-1", "cheap-1"}
    by_kind = scripted.ledger.totals("kind").set_index("kind")  # the same groups as %eliza usage --by
    assert by_kind.loc["generate", "calls"] == len(df)
    assert set(scripted.ledger.totals("preset").preset) == {"—"}  # no preset: a group, not a dropped row
