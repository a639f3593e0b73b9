"""Scoring an answer: the named scorers and user functions (``f(output, expected) -> float``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConfigError

SCORERS = ("exact", "contains", "regex", "json-valid", "embedding-similarity")


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
    raise ConfigError(f"unknown scorer {scorer!r}; choose one of: {', '.join(SCORERS)}, or pass a function")


