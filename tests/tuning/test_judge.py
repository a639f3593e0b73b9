"""The judge (core/tuning/judge.py): reading its answers, grading with the real local model
(calls marked "judge" in the ledger, graded once thanks to the generation cache, recorded and
replayed like any call), and against a loopback provider whose answers are scripted."""

from __future__ import annotations

import json
import math

import fault_server as fs
import pytest

from eliza_nb.core.replay import tape
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.tuning.checks import build_checker
from eliza_nb.core.tuning.judge import DEFAULT_RUBRIC, JUDGE_SETTINGS, Judge, parse_verdict

CHAT = "/v1/chat/completions"


def chat(text: str) -> dict:
    return {"model": "m-small", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"}], "usage": {"prompt_tokens": 50, "completion_tokens": 12}}


# -- reading an answer ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, score, reason", [
    ('{"score": 8, "reason": "Names Paris."}', 0.8, "Names Paris."),
    ('Sure! {"score": 10, "reason": "Exactly right."} Hope that helps.', 1.0, "Exactly right."),
    ('```json\n{"score": "7/10", "reason": "close"}\n```', 0.7, "close"),
    ('{"score": 0.9, "reason": "a 0-1 grade"}', 0.9, "a 0-1 grade"),
    ("Score: 7/10\nReason: mostly right, misses the year.", 0.7, "mostly right, misses the year."),
    ("I would give it 3 out of 10 because it names the wrong city.", 0.3, "it names the wrong city."),
    ("score = 6", 0.6, "the judge gave no reason"),
    ('{"score": 4, "reason": "The answer is cut off and never', 0.4, "The answer is cut off and never"),  # truncated JSON
    ("Rating: 85/100. Reason: good", 0.85, "good"),
])
def test_parse_verdict_reads_json_and_the_fallback_forms(text, score, reason):
    v = parse_verdict(text)
    assert v.score == pytest.approx(score) and v.reason == reason and v.raw == text


@pytest.mark.parametrize("text", ["I cannot grade this answer.", "", "Score: 12/10", '{"score": "high", "reason": "x"}'])
def test_an_unreadable_answer_is_nan_with_a_reason_that_says_so(text):
    v = parse_verdict(text)
    assert math.isnan(v.score)
    assert v.reason.startswith("could not read a score from the judge's answer") and "\n" not in v.reason


# -- the real local model ----------------------------------------------------------------------
@pytest.fixture
def rt(home):
    r = Runtime(home, config={}, env={})
    yield r
    r.close()


def test_local_judge_grades_marks_its_calls_and_grades_once(rt):
    judge = Judge(rt)  # default: llama_local:small, no key needed
    assert str(judge.target) == "llama_local:smollm2-135m-instruct"
    first = judge.grade("What is the capital of France?", "The capital of France is Paris.", expected="Paris")
    assert 0.0 <= first.score <= 1.0, first  # the 135M model's grade is crude, but it is a grade
    assert first.reason and "\n" not in first.reason and not first.cached
    rows = rt.ledger.dataframe()
    assert list(rows["purpose"]) == ["judge"] and not rows["cache_hit"].iloc[0] and rows["status"].iloc[0] == "ok"

    again = judge.grade("What is the capital of France?", "The capital of France is Paris.", expected="Paris")
    assert (again.score, again.reason, again.cached) == (first.score, first.reason, True)
    rows = rt.ledger.dataframe()
    assert list(rows["purpose"]) == ["judge", "judge"] and list(rows["cache_hit"]) == [False, True]

    rt.generate("Say hi.", max_tokens=4)  # the user's own call, after: not a judge call
    assert list(rt.ledger.dataframe()["purpose"]) == ["judge", "judge", "call"]
    totals = rt.ledger.totals(by="purpose").set_index("purpose")["calls"].to_dict()
    assert totals == {"judge": 2, "call": 1}


def test_scorer_judge_and_judge_checks_through_the_checker(rt):
    cases = [{"id": "fr", "input": "What is the capital of France?", "expected": "Paris", "checks": None},
             {"id": "de", "input": "What is the capital of Germany?", "expected": "Berlin",
              "checks": ["contains:Berlin", {"judge": "The answer names Berlin.", "min": 0.0}]}]
    check = build_checker("judge", rt, cases)
    assert len(rt.ledger) == 0  # nothing is called to build it
    out = check(cases[0], {"output": "Paris.", "latency_s": 0.5, "cost_usd": 0.0})
    assert 0.0 <= out["score"] <= 1.0 and out["passed"] is (out["score"] >= 0.5) and out["reason"] and out["checks"] is None
    out = check(cases[1], {"output": "Berlin.", "latency_s": 0.5, "cost_usd": 0.0})
    assert set(out["checks"]) == {"contains:Berlin", "judge"} and out["checks"]["contains:Berlin"] == 1.0
    assert out["passed"] is True  # min 0.0: any grade passes, and contains passes
    assert out["score"] == pytest.approx((1.0 + out["checks"]["judge"]) / 2) and out["reason"]
    assert set(rt.ledger.dataframe()["purpose"]) == {"judge"}


def test_judge_calls_are_recorded_and_replayed(home, tmp_path):
    archive = tmp_path / "judge.replay"
    author = Runtime(home, config={}, env={})
    try:
        tape.start_recording(author, archive)
        live = Judge(author).grade("What is 2 + 2?", "4", expected="4", rubric="The answer is the right number.")
        tape.stop(author)
    finally:
        author.close()
    reader = Runtime(tmp_path / "reader-home", config={}, env={})  # a fresh home: no cache, no model loaded
    try:
        tape.start_replay(reader, archive)  # strict: an unmatched request would be refused
        again = Judge(reader).grade("What is 2 + 2?", "4", expected="4", rubric="The answer is the right number.")
        rows = reader.ledger.dataframe()
    finally:
        reader.close()
    assert (again.score, again.reason, again.raw) == (live.score, live.reason, live.raw)
    assert list(rows["purpose"]) == ["judge"] and list(rows["replayed"]) == [True]


# -- a loopback provider, answers scripted ---------------------------------------------------------
def test_loopback_judge_sends_the_rubric_at_temperature_zero_and_reads_json(frt, server):
    server.script(CHAT, fs.json_reply(chat('{"score": 8, "reason": "Names Paris, skips the detail."}')))
    check = build_checker("contains", frt, [c := {"id": "q", "input": "Capital of France?", "expected": "Paris",
                                                  "checks": [{"judge": "Names the city and nothing else."}]}],
                          judge="fx:small")
    out = check(c, {"output": "Paris, of course.", "latency_s": 0.2, "cost_usd": 0.0})
    assert out == {"score": 0.8, "passed": True, "checks": {"judge": 0.8}, "reason": "Names Paris, skips the detail."}
    sent = server.requests_to(CHAT)
    assert len(sent) == 1
    body = sent[0].body
    assert body["model"] == "m-small" and body["temperature"] == 0
    last = body["messages"][-1]["content"]
    assert "Question: Capital of France?" in last and "Expected answer: Paris" in last
    assert "Answer to grade: Paris, of course." in last and "Rubric: Names the city and nothing else." in last
    assert body["messages"][0]["role"] == "system" and "JSON" in body["messages"][0]["content"]
    rows = frt.ledger.dataframe()
    assert list(rows["purpose"]) == ["judge"] and list(rows["provider"]) == ["fx"] and list(rows["cache_hit"]) == [False]

    again = check(c, {"output": "Paris, of course.", "latency_s": 0.2, "cost_usd": 0.0})  # same answer: the cache
    assert again == out and len(server.requests_to(CHAT)) == 1
    assert list(frt.ledger.dataframe()["cache_hit"]) == [False, True]


def test_loopback_judge_reads_the_score_out_of_ten_form(frt, server):
    server.script(CHAT, fs.json_reply(chat("Score: 7/10\nReason: right city, wrong spelling.")))
    v = Judge(frt, "fx").grade("Capital of France?", "Pariss", expected="Paris")
    assert v.score == pytest.approx(0.7) and v.reason == "right city, wrong spelling."


def test_loopback_judge_unreadable_answer_is_nan_and_fails_its_check(frt, server):
    server.script(CHAT, fs.json_reply(chat("As an AI grader I think this is a fine answer overall.")))
    c = {"id": "q", "input": "Capital of France?", "expected": "Paris", "checks": ["contains:Paris", {"judge": "correct"}]}
    out = build_checker("contains", frt, [c], judge="fx:small")(c, {"output": "Paris", "latency_s": 0.1, "cost_usd": 0.0})
    assert math.isnan(out["checks"]["judge"]) and out["checks"]["contains:Paris"] == 1.0
    assert out["score"] == 1.0 and out["passed"] is False  # the score of what could be read; not a pass
    assert out["reason"].startswith("could not read a score from the judge's answer: 'As an AI grader")


def test_loopback_judge_that_fails_is_nan_with_the_error_not_a_crash(frt, server):
    server.script(CHAT, fs.json_reply({"error": {"message": "boom"}}, 500))
    case = {"id": "q", "input": "Capital?", "expected": "Paris", "checks": None}
    out = build_checker("judge", frt, [case], judge="fx:small")(case, {"output": "Paris"})
    assert math.isnan(out["score"]) and out["passed"] is None
    assert out["reason"].startswith("the judge call failed:") and "\n" not in out["reason"]
    assert list(frt.ledger.dataframe()["purpose"]) == ["judge"]


def test_judge_request_shape_is_stable():
    """The prompt's parts the estimate and the docs rely on."""
    assert JUDGE_SETTINGS["temperature"] == 0.0 and DEFAULT_RUBRIC
    msgs = Judge.__new__(Judge).messages("q?", "a", None, None)
    assert msgs[-1]["content"] == f"Question: q?\nAnswer to grade: a\nRubric: {DEFAULT_RUBRIC}\nGrade it."
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert all(json.loads(m["content"])["reason"] for m in msgs if m["role"] == "assistant")
