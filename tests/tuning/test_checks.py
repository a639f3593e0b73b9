"""Several checks per case (core/tuning/checks.py): each assertion type scored, the combined
score and pass, the scorer when a case has none, and every bad input refused by
build_checker in one line before any call; the ledger's purpose marks (core/ledger.py)."""

from __future__ import annotations

import math
import sys
import threading

import pytest

from eliza_nb.core.errors import ConfigError
from eliza_nb.core.ledger import Ledger
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.tuning.checks import ASSERTIONS, build_checker, make_scorer, parse_check
from eliza_nb.core.types import ModelClass, Target


@pytest.fixture
def rt(home):
    """A fresh runtime (its ledger starts empty: build_checker must leave it so)."""
    r = Runtime(home, config={}, env={})
    yield r
    r.close()


def case(checks, expected=None, cid="c1", text="What is the capital of France?"):
    return {"id": cid, "input": text, "expected": expected, "checks": checks}


def check_one(rt, item, output, **row):
    """The result of one check on one answer."""
    c = case([item])
    return build_checker("contains", rt, [c])(c, {"output": output, "latency_s": 1.0, "cost_usd": 0.0, **row})


@pytest.mark.parametrize("item, output, row, label, score", [
    ("contains:Paris", "It is paris.", {}, "contains:Paris", 1.0),  # case and spacing do not matter
    ({"contains": "Paris"}, "It is Lyon.", {}, "contains:Paris", 0.0),
    ({"type": "contains", "value": "Paris"}, "Paris", {}, "contains:Paris", 1.0),  # promptfoo's shape
    ("exact:Paris", " paris ", {}, "exact:Paris", 1.0),
    ("exact:Paris", "Paris.", {}, "exact:Paris", 0.0),
    ({"regex": r"^\d{4}$"}, "1789", {}, r"regex:^\d{4}$", 1.0),
    ("regex:^[a-z]+:[0-9]+$", "ab:12", {}, "regex:^[a-z]+:[0-9]+$", 1.0),  # only the first colon splits
    ({"regex": r"^\d{4}$"}, "the year 1789", {}, r"regex:^\d{4}$", 0.0),
    ("json-valid", '{"a": 1}', {}, "json-valid", 1.0),
    ("is-json", "```json\n[1, 2]\n```", {}, "json-valid", 1.0),
    ("json-valid", "{a: 1}", {}, "json-valid", 0.0),
    ({"json-schema": {"type": "object", "required": ["city"]}}, '{"city": "Paris"}', {}, "json-schema", 1.0),
    ({"json-schema": {"type": "object", "required": ["city"]}}, '{"town": "Paris"}', {}, "json-schema", 0.0),
    ({"json-schema": '{"type": "array"}'}, "not json", {}, "json-schema", 0.0),
    ({"max-latency": 2.0}, "x", {"latency_s": 1.5}, "latency≤2s", 1.0),
    ("max-latency:2s", "x", {"latency_s": 2.5}, "latency≤2s", 0.0),
    ({"max-cost": 0.001}, "x", {"cost_usd": 0.0005}, "cost≤$0.001", 1.0),
    ({"max-cost": 0.001}, "x", {"cost_usd": 0.002}, "cost≤$0.001", 0.0),
])
def test_each_assertion_type_is_scored(rt, item, output, row, label, score):
    out = check_one(rt, item, output, **row)
    assert out["checks"] == {label: score}
    assert out["score"] == score and out["passed"] is (score == 1.0) and out["reason"] is None
    assert len(rt.ledger) == 0  # none of these calls a model


def test_a_measure_that_is_missing_is_nan_and_fails(rt):
    out = check_one(rt, {"max-cost": 0.01}, "x", cost_usd=math.nan)
    assert math.isnan(out["checks"]["cost≤$0.01"]) and math.isnan(out["score"]) and out["passed"] is False
    assert "not measured" in out["reason"]


def test_similarity_is_scored_by_embedding_and_passes_at_its_min(local_runtime):
    near, far = {"similar": "The capital of France is Paris.", "min": 0.7}, {"similar": "Stock markets fell sharply.", "min": 0.7}
    c = case([near, far])
    out = build_checker("contains", local_runtime, [c])(c, {"output": "Paris is the capital of France.", "latency_s": 1.0})
    s_near = out["checks"]["similar≥0.7:The capital of France is Paris."]
    s_far = out["checks"]["similar≥0.7:Stock markets fell sharply."]
    assert 0.7 < s_near <= 1.0 and 0.0 <= s_far < 0.5  # MiniLM: a paraphrase vs an unrelated sentence
    assert out["score"] == pytest.approx((s_near + s_far) / 2) and out["passed"] is False
    # the same pair, checked directly: the score is the cosine of the two vectors
    a, b = local_runtime.embed(["Paris is the capital of France.", "The capital of France is Paris."])
    assert s_near == pytest.approx(float(a @ b), abs=1e-4)


def test_a_function_check_gets_the_output_and_the_case(rt):
    seen = []

    def mentions_city(output, c):
        seen.append((output, c["id"], c["expected"]))
        return c["expected"] in output

    def half(output, c):
        return 0.5

    c = case([mentions_city, {"type": "contains", "value": "France"}, lambda o, c: 0.25], expected="Paris")
    out = build_checker("exact", rt, [c])(c, {"output": "Paris", "latency_s": 0.1})
    assert seen == [("Paris", "c1", "Paris")]
    assert out["checks"] == {"mentions_city": 1.0, "contains:France": 0.0, "function": 0.25}
    assert out["score"] == pytest.approx(1.25 / 3) and out["passed"] is False
    c2 = case([half])  # a function's score passes at 1.0
    assert build_checker("exact", rt, [c2])(c2, {"output": "x"}) == {"score": 0.5, "passed": False,
                                                                     "checks": {"half": 0.5}, "reason": None}


def test_a_function_returning_something_else_raises_for_that_row(rt):
    c = case([lambda o, c: 3])
    with pytest.raises(ValueError, match=r"returned 3; a check returns a bool or a number in \[0, 1\]"):
        build_checker("exact", rt, [c])(c, {"output": "x"})


def test_combined_score_is_the_mean_and_passed_needs_every_check(rt):
    checks = ["contains:Paris", {"regex": "^The"}, "json-valid", {"max-latency": 5}]
    c = case(checks, expected="Paris")
    check = build_checker("contains", rt, [c])
    out = check(c, {"output": "The capital is Paris.", "latency_s": 1.0, "cost_usd": 0.0})
    assert out["checks"] == {"contains:Paris": 1.0, "regex:^The": 1.0, "json-valid": 0.0, "latency≤5s": 1.0}
    assert out["score"] == 0.75 and out["passed"] is False
    c_ok = case(checks[:2] + checks[3:], expected="Paris")
    out = build_checker("contains", rt, [c_ok])(c_ok, {"output": "The capital is Paris.", "latency_s": 1.0})
    assert out["score"] == 1.0 and out["passed"] is True


def test_two_checks_of_one_label_are_both_reported(rt):
    c = case(["contains:a", {"contains": "a"}])
    out = build_checker("contains", rt, [c])(c, {"output": "b"})
    assert out["checks"] == {"contains:a": 0.0, "contains:a#2": 0.0}


def test_a_case_without_checks_uses_the_scorer(rt):
    cases = [{"id": "x", "input": "q", "expected": "Paris", "checks": None},
             {"id": "y", "input": "q", "expected": None, "checks": None}]
    check = build_checker("contains", rt, cases)
    assert check(cases[0], {"output": "It is Paris."}) == {"score": 1.0, "passed": True, "checks": None, "reason": None}
    assert check(cases[0], {"output": "Lyon"})["passed"] is False
    nothing = check(cases[1], {"output": "anything"})
    assert math.isnan(nothing["score"]) and nothing["passed"] is None and nothing["checks"] is None
    custom = build_checker(lambda output, expected: 0.6, rt, cases)
    assert custom(cases[0], {"output": "x"}) == {"score": 0.6, "passed": True, "checks": None, "reason": None}
    assert custom.judge_target is None and custom.judge_calls(cases[0]) == 0


def test_cases_not_seen_at_build_time_are_parsed_when_checked(rt):
    check = build_checker("contains", rt, [case(None)])
    later = case(["contains:x"], cid="later")
    assert check(later, {"output": "x"})["checks"] == {"contains:x": 1.0}


def test_judge_calls_and_target_for_the_estimate(rt):
    cases = [case(["contains:a", {"judge": "is polite"}, "llm-rubric:is short"], cid="a"), case(None, cid="b")]
    check = build_checker("contains", rt, cases)
    assert check.judge_calls(cases[0]) == 2 and check.judge_calls(cases[1]) == 0
    assert check.judge_target == Target("llama_local", ModelClass.SMALL, "smollm2-135m-instruct")
    judged = build_checker("judge", rt, cases, judge="llama_local:small")
    assert judged.judge_calls(cases[1]) == 1 and judged.judge_calls(cases[0]) == 2
    assert judged.judge_settings == {"temperature": 0.0, "max_tokens": 120}
    assert len(rt.ledger) == 0


BAD = [
    (["nope:1"], r"case 'c1' check 1: unknown assertion 'nope'; choose one of: exact, contains"),
    ([{"contains": "a", "weight": 2}], r"unknown key\(s\) weight"),
    ([{"contains": "a", "regex": "b"}], r"a check is one assertion"),
    ([42], r"a check is a string, a dict or a function, not int"),
    (["contains"], r"contains needs a value"),
    (["contains:a", {"regex": "("}], r"case 'c1' check 2: regex '\(' does not compile"),
    ([{"similar": "x", "min": 1.5}], r"similar min must be a number between 0 and 1, not 1.5"),
    ([{"judge": "ok", "min": "high"}], r"judge min must be a number between 0 and 1, not 'high'"),
    ([{"similar": "x", "min": True}], r"similar min must be a number"),
    ([{"contains": "a", "min": 0.5}], r"contains passes or fails; 'min' applies to"),
    ([{"max-latency": -1}], r"max-latency must be a number at least 0, not -1"),
    ([{"max-cost": "cheap"}], r"max-cost must be a number at least 0, not 'cheap'"),
    ([{"max-latency": math.inf}], r"max-latency must be a number"),
    ([{"json-schema": {"type": "no-such-type"}}], r"not a valid JSON schema"),
    ([{"json-schema": "{not json"}], r"json-schema is not JSON"),
    (["json-valid:yes"], r"json-valid takes no value"),
]


@pytest.mark.parametrize("checks, message", BAD)
def test_bad_checks_are_one_line_errors_before_any_call(rt, checks, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_checker("contains", rt, [case(["contains:fine"], cid="c0"), case(checks)])
    assert "\n" not in str(err.value) and len(rt.ledger) == 0


@pytest.mark.parametrize("scorer, judge, message", [
    ("fuzzy", None, r"unknown scorer 'fuzzy'; choose one of: exact, contains, regex, json-valid, embedding-similarity, judge"),
    ("judge", "nosuch:small", r"judge model 'nosuch:small' does not resolve: .*nosuch"),
    ("contains", "llama_local:no-such-model", r"judge model 'llama_local:no-such-model': no local model 'no-such-model'"),
    ("contains", "llama_local:/nowhere/m.gguf", r"no local model '/nowhere/m.gguf'"),
    ("judge", "llama_local:embedding", r"is a embedding model; a judge needs a text class"),
    ("judge", "llama_local:all-minilm-l6-v2", r"no local model 'all-minilm-l6-v2'"),
    ("judge", 3, r"judge= names a model"),
])
def test_bad_scorer_or_judge_is_one_line_error_before_any_call(rt, scorer, judge, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_checker(scorer, rt, [case(None, expected="x")], judge=judge)
    assert "\n" not in str(err.value) and len(rt.ledger) == 0


def test_a_judge_check_with_a_bad_judge_model_fails_at_build(rt):
    with pytest.raises(ConfigError, match="judge model 'nosuchprovider' does not resolve"):
        build_checker("contains", rt, [case([{"judge": "polite"}])], judge="nosuchprovider")
    assert len(rt.ledger) == 0


def test_json_schema_without_jsonschema_names_the_package(rt, monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema -> ImportError
    with pytest.raises(ConfigError, match=r"json-schema checks need the jsonschema package: pip install") as err:
        build_checker("contains", rt, [case([{"json-schema": {"type": "object"}}])])
    assert "\n" not in str(err.value)
    assert build_checker("contains", rt, [case(["json-valid"])])  # the other checks do not need it


def test_make_scorer_still_works_and_knows_the_judge_needs_more():
    assert make_scorer("contains")("It is Paris", "paris") == 1.0
    with pytest.raises(ConfigError, match="use build_checker"):
        make_scorer("judge")
    assert "judge" in ASSERTIONS
    assert parse_check("llm-rubric:be brief").kind == "judge" and parse_check("embedding-similarity:x").kind == "similar"


# -- the ledger's purpose ------------------------------------------------------------------------
T = Target("p", ModelClass.SMALL, "m")


def test_ledger_purpose_marks_this_threads_rows_only_and_nests():
    ledger = Ledger()
    ledger.log("generate", T)
    other_done = threading.Event()
    go = threading.Event()

    def other():
        go.wait(5)
        ledger.log("generate", T)  # logged while the main thread is inside purpose("judge")
        other_done.set()

    th = threading.Thread(target=other)
    th.start()
    with ledger.capture() as captured, ledger.purpose("judge"):
        ledger.log("generate", T)
        go.set()
        assert other_done.wait(5)
        with ledger.purpose("probe"):
            ledger.log("embed", T)
        ledger.log("generate", T, purpose="explicit")
    th.join()
    ledger.log("generate", T)
    assert [r.purpose for r in ledger.rows()] == ["call", "judge", "call", "probe", "explicit", "call"]
    assert [r.purpose for r in captured] == ["judge", "probe", "explicit"]  # capture still collects this thread's rows
    df = ledger.dataframe()
    assert list(df["purpose"]) == ["call", "judge", "call", "probe", "explicit", "call"]
    totals = ledger.totals(by="purpose").set_index("purpose")["calls"].to_dict()
    assert totals == {"call": 3, "judge": 1, "probe": 1, "explicit": 1}


def test_ledger_purpose_is_restored_after_an_exception():
    ledger = Ledger()
    with pytest.raises(RuntimeError), ledger.purpose("judge"):
        raise RuntimeError("boom")
    ledger.log("generate", T)
    assert ledger.rows()[0].purpose == "call"
