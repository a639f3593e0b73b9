"""Model-class selection, following the seed's guide.

    fast          -> SMALL   ("use SMALL for simple, quick answers")
    high complexity -> LARGE ("use LARGE for complex reasoning")
    otherwise     -> MEDIUM  ("MEDIUM balances performance and capability")

``budget="low"`` also picks SMALL (the cheapest class). With nothing given, the
requirements are inferred from the prompt (length and reasoning cues) so
``%%eliza generate --auto`` can choose; the reason is always returned for the footer.
"""

from __future__ import annotations

import re

from .errors import ConfigError
from .types import ModelClass

SPEEDS = ("fast", "normal")
COMPLEXITIES = ("low", "medium", "high")
BUDGETS = ("low", "normal", "high")

_REASONING = re.compile(
    r"\b(prove|derive|analy[sz]e|step[- ]by[- ]step|reason|compare|contrast|design|architect|plan|"
    r"optimi[sz]e|debug|refactor|evaluate|critique|trade-?offs?|why)\b",
    re.I,
)


def _check(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    v = str(value).strip().lower()
    if v not in allowed:
        raise ConfigError(f"{name} must be one of: {', '.join(allowed)} (got {value!r})")
    return v


def infer_requirements(prompt: str) -> tuple[str, str, str]:
    """(speed, complexity, why) guessed from a prompt."""
    words = len(prompt.split())
    cues = sorted({m.group(0).lower() for m in _REASONING.finditer(prompt)})
    if words > 1500 or len(cues) >= 2:
        return "normal", "high", f"long or reasoning-heavy prompt ({words} words{', cues: ' + ', '.join(cues[:3]) if cues else ''})"
    if words <= 40 and not cues:
        return "fast", "low", f"short, simple prompt ({words} words)"
    return "normal", "medium", f"{words} words" + (f", cue: {cues[0]}" if cues else "")


def select_model_class(speed: str | None = None, complexity: str | None = None, budget: str | None = None,
                       *, prompt: str | None = None, explain: bool = False) -> ModelClass | tuple[ModelClass, str]:
    """Pick a model class from requirements (or, failing those, from the prompt).

    Returns the ModelClass, or ``(ModelClass, reason)`` with ``explain=True``.
    """
    speed = _check("speed", speed, SPEEDS)
    complexity = _check("complexity", complexity, COMPLEXITIES)
    budget = _check("budget", budget, BUDGETS)
    why = ""
    if speed is None and complexity is None and budget is None and prompt is not None:
        speed, complexity, why = infer_requirements(prompt)
    if speed == "fast":
        choice, reason = ModelClass.SMALL, "speed=fast"
    elif complexity == "high":
        choice, reason = ModelClass.LARGE, "complexity=high"
    elif budget == "low":
        choice, reason = ModelClass.SMALL, "budget=low"
    else:
        choice, reason = ModelClass.MEDIUM, "balanced default"
    if why:
        reason = f"{reason} ({why})"
    return (choice, reason) if explain else choice
