"""A judge: a model that grades an answer against a rubric and the expected answer.

    judge = Judge(runtime, "llama_local:small")          # checked here: a one-line ConfigError
    verdict = judge.grade("What is 2+2?", "4", expected="4")
    verdict.score, verdict.reason                        # 0..1 (NaN when unreadable), one line

The judge's calls go through ``runtime.generate`` like any call (settings, budgets, rate
limits, record/replay), at temperature 0 with the generation cache on, so the same answer is
graded once; they run inside ``ledger.purpose("judge")``, so the ledger tells them apart
from the calls they grade. The prompt shows two worked examples and asks for one line of
JSON ``{"score": 0-10, "reason": "..."}``; an answer in another shape is read by
:func:`parse_verdict` (``Score: 7/10``, ``7 out of 10``...), and one that holds no score is a
NaN whose reason says so, never an exception.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, ElizaError

#: the judge used when the benchmark names none: the local model, so grading needs no key
DEFAULT_JUDGE = "llama_local:small"
#: what every judge call is sent with (temperature 0: the same answer gets the same grade)
JUDGE_SETTINGS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 120}
#: the rubric of ``scorer="judge"`` and of a judge check given no text of its own
DEFAULT_RUBRIC = "The answer is correct, and agrees with the expected answer when one is given."

SYSTEM = ('You are a strict grader. You reply with one line of JSON and nothing else: '
          '{"score": <integer 0-10>, "reason": "<one sentence>"}.')


def _ask(question: str, answer: str, expected: Any, rubric: str) -> str:
    lines = [f"Question: {question}"]
    if expected is not None:
        lines.append(f"Expected answer: {expected}")
    lines += [f"Answer to grade: {answer}", f"Rubric: {rubric}", "Grade it."]
    return "\n".join(lines)


#: two worked examples (a right and a wrong answer): small models copy the shape they see
#: far more reliably than they follow a description of it
EXAMPLES: list[dict[str, str]] = [
    {"role": "user", "content": _ask("What colour is the sky on a clear day?", "The sky is blue.", "blue", DEFAULT_RUBRIC)},
    {"role": "assistant", "content": '{"score": 10, "reason": "The answer says blue, as expected."}'},
    {"role": "user", "content": _ask("How many legs does a spider have?", "A spider has six legs.", "8", DEFAULT_RUBRIC)},
    {"role": "assistant", "content": '{"score": 0, "reason": "The answer says six; the expected answer is eight."}'},
]


@dataclass(frozen=True)
class Verdict:
    """A grade: ``score`` in [0, 1] (the judge's 0-10 over 10; NaN when it gave none),
    a one-line ``reason``, and the judge's ``raw`` answer."""

    score: float
    reason: str
    raw: str = ""
    cached: bool = False


# -- reading an answer ---------------------------------------------------------------------
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_SCORE_PATTERNS = [  # most specific first; each gives (number, optional scale)
    re.compile(r'"?\b(?:score|grade|rating)\b"?\s*(?:[:=]|is)\s*"?' + _NUMBER + r'"?\s*(?:(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?',
               re.I),
    re.compile(_NUMBER + r"\s*(?:/|out\s+of)\s*(10|100)\b", re.I),
]
_REASON_PATTERNS = [
    re.compile(r'"reason"\s*:\s*"((?:[^"\\]|\\.)*)', re.S),  # JSON-ish, possibly cut off before its closing quote
    re.compile(r"\b(?:reason|because)\b\s*[:\-]?\s*(.+)", re.I),
]


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _scaled(value: float, scale: float | None) -> float:
    """A 0-10 score (or x/scale) as 0..1; NaN when out of range (a judge that says 12/10 is not read)."""
    top = scale if scale else (1.0 if 0 < value < 1 else 10.0)  # 0.7 is a 0-1 grade; 7 a 0-10 one
    if not math.isfinite(value) or top <= 0 or value < 0 or value > top:
        return math.nan
    return value / top


def _from_json(text: str) -> tuple[float, str] | None:
    """``{"score": .., "reason": ..}`` anywhere in the text (the first object that has a score)."""
    for match in re.finditer(r"\{[^{}]*\}", text, re.S):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        value = next((obj[k] for k in ("score", "grade", "rating") if k in obj), None)
        if isinstance(value, str):
            m = re.match(r"\s*" + _NUMBER + r"\s*(?:/\s*(\d+(?:\.\d+)?))?\s*$", value)
            value, scale = (float(m.group(1)), float(m.group(2)) if m.group(2) else None) if m else (None, None)
        else:
            scale = None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        return _scaled(float(value), scale), _one_line(obj.get("reason") or obj.get("explanation") or "")
    return None


def parse_verdict(text: str) -> Verdict:
    """Read a judge's answer: JSON ``{"score": 0-10, "reason": ...}``, else ``Score: 7/10``,
    ``score = 7``, ``7 out of 10`` with any reason line; no score in it -> NaN, and the
    reason says the answer could not be read (quoting its start)."""
    raw = str(text or "")
    found = _from_json(raw)
    if found is not None and not math.isnan(found[0]):
        score, reason = found
        return Verdict(score, reason or "the judge gave no reason", raw)
    score = math.nan
    for pattern in _SCORE_PATTERNS:
        m = pattern.search(raw)
        if m:
            score = _scaled(float(m.group(1)), float(m.group(2)) if m.group(2) else None)
            break
    if math.isnan(score):
        shown = _one_line(raw, 80) or "an empty answer"
        return Verdict(math.nan, f"could not read a score from the judge's answer: {shown!r}", raw)
    reason = ""
    for pattern in _REASON_PATTERNS:
        m = pattern.search(raw)
        if m:
            reason = _one_line(m.group(1).replace('\\"', '"'))
            break
    return Verdict(score, reason or "the judge gave no reason", raw)


# -- the judge -----------------------------------------------------------------------------
class Judge:
    """Grades answers with ``model`` ("provider", "provider:class" or "provider:model-id")
    through ``runtime``; a model that does not resolve is a one-line ConfigError here."""

    def __init__(self, runtime: Any, model: str | None = None) -> None:
        self.runtime = runtime
        self.spec = str(model or DEFAULT_JUDGE)
        self.target = resolve_judge(runtime, self.spec)
        self.settings = dict(JUDGE_SETTINGS)

    def messages(self, question: str, answer: str, expected: Any = None, rubric: str | None = None) -> list[dict[str, str]]:
        """What the judge is sent: the worked examples, then this answer to grade."""
        return [*EXAMPLES, {"role": "user", "content": _ask(question, answer, expected, rubric or DEFAULT_RUBRIC)}]

    def grade(self, question: str, answer: str | None, expected: Any = None, rubric: str | None = None) -> Verdict:
        """A Verdict for ``answer`` to ``question``; a failed judge call is a NaN score whose
        reason names the error (the row it grades keeps its answer)."""
        t = self.target
        try:
            with self.runtime.ledger.purpose("judge"):
                r = self.runtime.generate(self.messages(question, answer or "", expected, rubric), system=SYSTEM,
                                          provider=t.provider, model_class=t.model_class.value, model=t.model,
                                          failover=False, cache=True, **self.settings)
        except ElizaError as exc:
            return Verdict(math.nan, _one_line(f"the judge call failed: {type(exc).__name__}: {exc}"))
        v = parse_verdict(r.text)
        return Verdict(v.score, v.reason, v.raw, cached=bool(r.cached))

    def __repr__(self) -> str:
        return f"Judge({self.target})"


def resolve_judge(runtime: Any, spec: str) -> Any:
    """The judge's target, or a one-line ConfigError: an unknown provider, a class that is
    not a text class, a local model that is neither built in nor a .gguf file that exists."""
    try:
        target = runtime.resolve(spec)
    except ElizaError as exc:
        raise ConfigError(f"judge model {spec!r} does not resolve: {_one_line(str(exc), 200)}") from None
    if not target.model_class.is_text:
        raise ConfigError(f"judge model {spec!r} is a {target.model_class.value} model; a judge needs a text class "
                          "(small, medium, large)")
    entry = runtime.catalog.get(target.provider)
    if entry.protocol == "llama_local" and not _local_model_exists(target.model):
        raise ConfigError(f"judge model {spec!r}: no local model {target.model!r} (give a built-in name such as "
                          f"{entry.model_for(target.model_class, runtime.catalog)!r} or the path of a .gguf file)")
    return target


def _local_model_exists(model: str) -> bool:
    """A built-in text model, or a .gguf file that is there."""
    from pathlib import Path

    from ...adapters.local_models import BUILTINS

    builtin = BUILTINS.get(str(model).strip().lower())
    if builtin is None:  # what the adapter loads: local_models.resolve_model_path
        path = Path(str(model)).expanduser()
        return path.suffix.lower() == ".gguf" and path.is_file()
    return not builtin.embedding
