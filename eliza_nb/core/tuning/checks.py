"""Scoring an answer: the named scorers and user functions (``f(output, expected) -> float``),
and a case's checks (several assertions, each scored, combined): :func:`build_checker`.

    checker = build_checker("contains", runtime, cases, judge="llama_local:small")  # all checked here
    checker(case, row)   # -> {"score": 0..1, "passed": bool, "checks": {label: score}, "reason": str | None}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, ElizaError
from .judge import DEFAULT_RUBRIC, JUDGE_SETTINGS, Judge

SCORERS = ("exact", "contains", "regex", "json-valid", "embedding-similarity", "judge")


# -- scorers ----------------------------------------------------------------------------
def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def score_exact(output: str, expected: Any) -> float:
    return float(_norm(output) == _norm(expected))


def score_contains(output: str, expected: Any) -> float:
    return float(_norm(expected) in _norm(output))


def score_regex(output: str, expected: Any) -> float:
    return float(re.search(str(expected), output, re.S | re.I) is not None)


def score_json_valid(output: str, expected: Any = None) -> float:
    text = output.strip()
    fenced = re.match(r"^```[\w-]*\s*\n(.*?)\n\s*```$", text, re.S)
    try:
        json.loads(fenced.group(1) if fenced else text)
        return 1.0
    except (ValueError, RecursionError):  # nested deeper than json follows: not usable JSON
        return 0.0


def make_scorer(scorer: str | Callable[[str, Any], float], runtime: Any = None) -> Callable[[str, Any], float]:
    """A scorer by name, or the callable itself (``f(output, expected) -> float``)."""
    if callable(scorer):
        return scorer
    named = {"exact": score_exact, "contains": score_contains, "regex": score_regex, "json-valid": score_json_valid}
    if scorer in named:
        return named[scorer]
    if scorer == "embedding-similarity":
        if runtime is None:
            raise ConfigError("the embedding-similarity scorer needs a runtime")

        def score_similarity(output: str, expected: Any) -> float:
            a, b = runtime.embed([output or " ", str(expected)])
            return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))

        return score_similarity
    if scorer == "judge":
        raise ConfigError("the judge scorer grades a question's answer: use build_checker(\"judge\", runtime, cases)")
    raise ConfigError(f"unknown scorer {scorer!r}; choose one of: {', '.join(SCORERS)}, or pass a function")




# -- checks: several assertions per case -----------------------------------------------------
#: the assertion types a case's ``checks`` may hold (and a Python callable ``f(output, case)``)
ASSERTIONS = ("exact", "contains", "regex", "json-valid", "json-schema", "similar", "max-latency", "max-cost", "judge")
#: other spellings accepted (promptfoo's among them)
ASSERTION_ALIASES = {"embedding-similarity": "similar", "similarity": "similar", "is-json": "json-valid",
                     "llm-rubric": "judge", "latency": "max-latency", "cost": "max-cost", "equals": "exact"}
#: checks that need no value ("json-valid"); the rest need one ("contains:Paris")
_NO_VALUE = {"json-valid"}
#: checks scored on a scale, so a threshold (``min``) means something, and its default
_SCALED = {"similar": 0.8, "judge": 0.5, "function": 1.0}
#: what passes with ``scorer=`` (no checks on the case): a 0/1 scorer needs 1, a scale its middle
_SCORER_PASS = {"embedding-similarity": 0.8, "judge": 0.5}


def _where(case_id: str, i: int) -> str:
    return f"case {case_id!r} check {i + 1}"


def _number(value: Any, what: str, lo: float = 0.0, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        bound = f"between {lo:g} and {hi:g}" if math.isfinite(hi) else f"at least {lo:g}"
        raise ConfigError(f"{what} must be a number {bound}, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Check:
    """One parsed assertion: its type, value, pass threshold and the label it is reported under."""

    kind: str
    value: Any
    threshold: float
    label: str
    compiled: Any = None  # a regex's pattern, a JSON schema's validator, a callable


def parse_check(item: Any, where: str = "check") -> Check:
    """``"contains:Paris"``, ``"json-valid"``, ``{"regex": "..."}``, ``{"similar": "text", "min": 0.8}``,
    ``{"type": "contains", "value": "Paris"}``, ``{"judge": "rubric"}``, or a callable -> a Check;
    anything else is a one-line ConfigError naming ``where``."""
    if callable(item):
        name = getattr(item, "__name__", type(item).__name__)
        return Check("function", item, 1.0, name if name != "<lambda>" else "function", item)
    threshold: Any = None
    value: Any = None
    if isinstance(item, str):
        kind, sep, value = item.partition(":")
        kind, value = kind.strip(), (value if sep else None)
    elif isinstance(item, Mapping):
        item = dict(item)
        if "type" in item:
            kind, value = str(item.pop("type")), item.pop("value", None)
        else:
            names = [k for k in item if k not in ("min", "threshold")]
            known = [k for k in names if ASSERTION_ALIASES.get(str(k), str(k)) in ASSERTIONS]
            if len(names) != 1 and len(known) != 1:
                raise ConfigError(f"{where}: a check is one assertion like {{'contains': 'Paris'}}, not {sorted(map(str, item))}")
            key = names[0] if len(names) == 1 else known[0]
            kind, value = str(key), item.pop(key)
        threshold = item.pop("min", item.pop("threshold", None))
        extra = sorted(map(str, item))
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)} in {kind!r}; a check takes its value and 'min'")
    else:
        raise ConfigError(f"{where}: a check is a string, a dict or a function, not {type(item).__name__}")
    kind = ASSERTION_ALIASES.get(kind, kind)
    if kind not in ASSERTIONS:
        raise ConfigError(f"{where}: unknown assertion {kind!r}; choose one of: {', '.join(ASSERTIONS)}, or a function")
    if kind in _NO_VALUE:
        if value not in (None, "", True):
            raise ConfigError(f"{where}: {kind} takes no value")
    elif value is None or (isinstance(value, str) and not value.strip() and kind != "judge"):
        raise ConfigError(f"{where}: {kind} needs a value, e.g. {_EXAMPLE[kind]}")
    if threshold is not None and kind not in _SCALED:
        raise ConfigError(f"{where}: {kind} passes or fails; 'min' applies to similar, judge and functions")
    return _build(kind, value, threshold, where)


_EXAMPLE = {"exact": "'exact:Paris'", "contains": "'contains:Paris'", "regex": "{'regex': '^\\\\d+$'}",
            "json-schema": "{'json-schema': {'type': 'object'}}", "similar": "{'similar': 'the answer', 'min': 0.8}",
            "max-latency": "{'max-latency': 2.0} (seconds)", "max-cost": "{'max-cost': 0.001} (USD)",
            "judge": "{'judge': 'the answer names the capital'}"}


def _build(kind: str, value: Any, threshold: Any, where: str) -> Check:
    min_ = 1.0 if threshold is None and kind not in _SCALED else (
        _SCALED[kind] if threshold is None else _number(threshold, f"{where}: {kind} min", 0.0, 1.0))
    if kind in ("exact", "contains"):
        return Check(kind, str(value), min_, f"{kind}:{value}")
    if kind == "regex":
        try:
            pattern = re.compile(str(value), re.S | re.I)
        except re.error as exc:
            raise ConfigError(f"{where}: regex {str(value)!r} does not compile: {exc}") from None
        return Check(kind, str(value), min_, f"regex:{value}", pattern)
    if kind == "json-valid":
        return Check(kind, None, min_, "json-valid")
    if kind == "json-schema":
        return Check(kind, value, min_, "json-schema", _schema_validator(value, where))
    if kind in ("max-latency", "max-cost"):
        if isinstance(value, str):
            try:
                value = float(value.strip().lstrip("$").rstrip("s"))
            except ValueError:
                pass
        limit = _number(value, f"{where}: {kind}", 0.0)
        return Check(kind, limit, min_, f"latency≤{limit:g}s" if kind == "max-latency" else f"cost≤${limit:g}")
    if kind == "similar":
        return Check(kind, str(value), min_, f"similar≥{min_:g}:{value}")
    rubric = DEFAULT_RUBRIC if value is True or not str(value).strip() else str(value)
    return Check("judge", rubric, min_, "judge")


def _schema_validator(schema: Any, where: str) -> Any:
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            raise ConfigError(f"{where}: json-schema is not JSON: {schema[:60]!r}") from None
    if not isinstance(schema, (Mapping, bool)):
        raise ConfigError(f"{where}: json-schema must be a schema (a dict), not {type(schema).__name__}")
    try:
        import jsonschema
    except ImportError:
        raise ConfigError("json-schema checks need the jsonschema package: pip install 'eliza-nb[notebook]' "
                          "(or pip install jsonschema)") from None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"{where}: not a valid JSON schema: {' '.join(str(exc.message).split())}") from None
    return cls(schema)


def _loads(output: str) -> Any:
    """The JSON in an answer (a ```json fence allowed); raises ValueError when there is none."""
    text = output.strip()
    fenced = re.match(r"^```[\w-]*\s*\n(.*?)\n\s*```$", text, re.S)
    return json.loads(fenced.group(1) if fenced else text)


class Checker:
    """Scores one finished row: its case's checks when it has some, else the ``scorer``.

    Built by :func:`build_checker` (everything validated there, before any call). Called as
    ``checker(case, row)`` with the row's ``output``, ``latency_s`` and ``cost_usd`` set, it
    returns ``{"score", "passed", "checks", "reason"}``: score in [0, 1] (NaN when there is
    nothing to score), passed True/False (None when not scored), checks ``{label: score}``
    (None without checks), reason the judge's one line (None without a judge). Without
    checks, ``scorer`` scores against ``expected`` (NaN when there is none, except the judge,
    which grades against the question alone) and passes at 1.0 for the 0/1 scorers, 0.8 for
    embedding-similarity, 0.5 for the judge and a user's function.
    """

    def __init__(self, runtime: Any, scorer: str | Callable[[str, Any], float], score: Callable[[str, Any], float] | None,
                 judge: Judge | None, parsed: dict[str, tuple[Any, list[Check]]]) -> None:
        self.runtime = runtime
        self.scorer = scorer
        self.scorer_name = scorer if isinstance(scorer, str) else getattr(scorer, "__name__", "custom")
        self._score = score
        self.judge = judge
        self._parsed = parsed

    @property
    def judge_target(self) -> Any:
        """The judge's Target when any row will be graded by it (for cost estimates), else None."""
        return self.judge.target if self.judge is not None and self._uses_judge() else None

    @property
    def judge_settings(self) -> dict[str, Any]:
        """The settings every judge call is sent with (temperature 0, its max_tokens), for estimates."""
        return dict(self.judge.settings if self.judge is not None else JUDGE_SETTINGS)

    def _uses_judge(self) -> bool:
        return self.scorer == "judge" or any(c.kind == "judge" for _, checks in self._parsed.values() for c in checks)

    def checks_for(self, case: Mapping[str, Any]) -> list[Check]:
        """The parsed checks of ``case`` (parsed now if the case was not among build_checker's)."""
        raw = case.get("checks")
        if not raw:
            return []
        known = self._parsed.get(str(case.get("id")))
        if known is not None and known[0] is raw:
            return known[1]
        return [parse_check(item, _where(str(case.get("id")), i)) for i, item in enumerate(raw)]

    def judge_calls(self, case: Mapping[str, Any]) -> int:
        """How many judge calls grading one answer to ``case`` makes (for cost estimates)."""
        checks = self.checks_for(case)
        if checks:
            return sum(c.kind == "judge" for c in checks)
        return int(self.scorer == "judge")

    def __call__(self, case: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
        output = row.get("output")
        output = "" if output is None else str(output)
        checks = self.checks_for(case)
        if not checks:
            return self._by_scorer(case, output)
        scores: dict[str, float] = {}
        reasons: list[str] = []
        passed = True
        for check in checks:
            score, reason = self._run(check, case, row, output)
            label = check.label
            n = 2
            while label in scores:  # two checks of one kind and value: both reported
                label, n = f"{check.label}#{n}", n + 1
            scores[label] = score
            passed = passed and not math.isnan(score) and score >= check.threshold - 1e-12
            if reason:
                reasons.append(reason)
        known = [s for s in scores.values() if not math.isnan(s)]
        return {"score": float(np.mean(known)) if known else math.nan, "passed": passed, "checks": scores,
                "reason": " | ".join(reasons) if reasons else None}

    def _by_scorer(self, case: Mapping[str, Any], output: str) -> dict[str, Any]:
        expected = case.get("expected")
        if self.scorer == "judge":
            assert self.judge is not None
            v = self.judge.grade(str(case.get("input", "")), output, expected)
            return {"score": v.score, "passed": None if math.isnan(v.score) else v.score >= _SCORER_PASS["judge"],
                    "checks": None, "reason": v.reason}
        if expected is None or (isinstance(expected, float) and math.isnan(expected)):
            return {"score": math.nan, "passed": None, "checks": None, "reason": None}
        assert self._score is not None
        score = float(self._score(output, expected))
        need = _SCORER_PASS.get(self.scorer_name, 1.0) if isinstance(self.scorer, str) else 0.5
        return {"score": score, "passed": None if math.isnan(score) else score >= need, "checks": None, "reason": None}

    def _run(self, check: Check, case: Mapping[str, Any], row: Mapping[str, Any], output: str) -> tuple[float, str | None]:
        kind = check.kind
        if kind == "exact":
            return score_exact(output, check.value), None
        if kind == "contains":
            return score_contains(output, check.value), None
        if kind == "regex":
            return float(check.compiled.search(output) is not None), None
        if kind == "json-valid":
            return score_json_valid(output), None
        if kind == "json-schema":
            try:
                doc = _loads(output)
            except (ValueError, RecursionError):
                return 0.0, None
            return float(check.compiled.is_valid(doc)), None
        if kind in ("max-latency", "max-cost"):
            measured = row.get("latency_s" if kind == "max-latency" else "cost_usd")
            if not isinstance(measured, (int, float)) or math.isnan(measured):
                return math.nan, f"{check.label}: not measured"
            return float(measured <= check.value), None
        if kind == "similar":
            a, b = self.runtime.embed([output or " ", check.value])
            return float(np.clip(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0), 0.0, 1.0)), None
        if kind == "judge":
            assert self.judge is not None
            v = self.judge.grade(str(case.get("input", "")), output, case.get("expected"), check.value)
            return v.score, v.reason
        value = check.compiled(output, dict(case))
        if isinstance(value, (bool, np.bool_)):
            return float(value), None
        if not isinstance(value, (int, float, np.floating, np.integer)) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"check {check.label!r} returned {value!r}; a check returns a bool or a number in [0, 1]")
        return float(value), None


def build_checker(scorer: str | Callable[[str, Any], float], runtime: Any, cases: Sequence[Mapping[str, Any]],
                  judge: str | None = None) -> Checker:
    """The scorer and every case's checks, validated before any call: an unknown scorer or
    assertion, a bad threshold or regex or schema, a judge model that does not resolve, each
    a one-line ConfigError. ``judge``: the judge model (default ``llama_local:small``), used
    by ``scorer="judge"`` and by ``{"judge": rubric}`` checks."""
    score = None if scorer == "judge" else make_scorer(scorer, runtime)
    parsed: dict[str, tuple[Any, list[Check]]] = {}
    wants_judge = scorer == "judge"
    wants_embed = scorer == "embedding-similarity"
    for case in cases:
        cid, raw = str(case.get("id")), case.get("checks")
        if not raw:
            continue
        checks = [parse_check(item, _where(cid, i)) for i, item in enumerate(raw)]
        parsed.setdefault(cid, (raw, checks))
        wants_judge = wants_judge or any(c.kind == "judge" for c in checks)
        wants_embed = wants_embed or any(c.kind == "similar" for c in checks)
    if judge is not None and not isinstance(judge, str):
        raise ConfigError(f"judge= names a model, e.g. 'llama_local:small' or 'openai:small', not {type(judge).__name__}")
    the_judge = Judge(runtime, judge) if (wants_judge or judge is not None) else None
    if wants_embed:
        try:
            runtime.resolve_embedding()
        except ElizaError as exc:
            raise ConfigError(f"similarity checks need an embedding model: {' '.join(str(exc).split())}") from None
    return Checker(runtime, scorer, score, the_judge, parsed)
