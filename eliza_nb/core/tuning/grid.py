"""What a benchmark runs: the cases, and the grid of calls they expand to.

models × presets × grid points × prompt variants × cases × repeats, each call a *job*
that carries the values that produced it and a *config* label naming everything but the
case and the repeat. Everything here is checked before any call: a setting the grid
sweeps, a template without ``{input}``, an unknown option, a grid larger than
``GRID_LIMIT`` without ``confirm=True`` — one line each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import pandas as pd

from ..errors import ConfigError

#: calls a grid may have before it needs confirm=True
GRID_LIMIT = 10_000
#: the config columns every grid has; the grid's axes follow them
BASE_CONFIG = ["model", "preset", "prompt"]


def parse_cases(cases: Any) -> list[dict[str, Any]]:
    """A list of dicts or a DataFrame with ``input`` (and ``expected``, optional ``id`` and
    ``checks``: a list of assertions, also accepted as ``assert``)."""
    if isinstance(cases, pd.DataFrame):
        records = cases.to_dict("records")
    elif isinstance(cases, (Mapping, str)):
        raise ConfigError("cases must be a list of dicts or a DataFrame with an 'input' column")
    else:
        records = list(cases)
    out = []
    for i, case in enumerate(records):
        if isinstance(case, str):
            case = {"input": case}
        if not isinstance(case, Mapping) or "input" not in case:
            raise ConfigError(f"case {i} has no 'input' (got {type(case).__name__}); each case needs input, and expected for scoring")
        cid = case.get("id")
        checks = case.get("checks", case.get("assert"))
        if checks is not None and not isinstance(checks, (list, tuple)):
            checks = None if isinstance(checks, float) and math.isnan(checks) else [checks]
        out.append({"id": str(cid) if cid is not None and cid == cid else str(i), "input": str(case["input"]),
                    "expected": case.get("expected"), "checks": list(checks) if checks is not None else None})
    if not out:
        raise ConfigError("no cases to run")
    return out


def parse_grid(grid: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """``{"temperature": [0, 0.4], ...}``: every name a setting (aliases allowed), every value
    checked by the setting's own rule; a scalar is a one-point axis."""
    if not grid:
        return {}
    if not isinstance(grid, Mapping):
        raise ConfigError(f"grid must be a dict of setting -> list of values, not {type(grid).__name__}")
    from ..settings import ALIASES, SETTINGS, ModelSettings

    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        name = ALIASES.get(key, key)
        if name not in SETTINGS:
            raise ConfigError(f"grid: {key!r} is not a setting; valid: {', '.join(SETTINGS)}")
        if name in out:
            raise ConfigError(f"grid: {name} given twice")
        points = list(values) if isinstance(values, (list, tuple, range)) else [values]
        if not points:
            raise ConfigError(f"grid: {name} has no values")
        for value in points:
            try:
                ModelSettings.from_mapping({name: value})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"grid: {name} = {value!r}: {exc}") from None
        out[name] = points
    return out


def parse_prompts(prompts: Mapping[str, str] | None) -> dict[str, str]:
    """``{"terse": "Answer in one word: {input}", ...}``: each template must hold ``{input}``."""
    if not prompts:
        return {}
    if not isinstance(prompts, Mapping):
        raise ConfigError(f"prompts must be a dict of name -> template with {{input}}, not {type(prompts).__name__}")
    for name, template in prompts.items():
        if not isinstance(template, str) or "{input}" not in template:
            raise ConfigError(f"prompt {name!r} has no {{input}}: it would send the same text for every case")
    return {str(k): v for k, v in prompts.items()}


def render(template: str | None, text: str) -> str:
    """The text sent for a case: its input put in the template (only ``{input}`` is filled,
    so a template may hold other braces, JSON examples for instance)."""
    return text if template is None else template.replace("{input}", text)


def config_label(model: str, preset: str | None, point: Mapping[str, Any], prompt: str | None) -> str:
    parts = [model, preset or "none", *(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())]
    if prompt:
        parts.append(f"prompt={prompt}")
    return " · ".join(parts)


@dataclass(frozen=True)
class Grid:
    """The expanded grid: the jobs in order, and the columns that name a configuration."""

    jobs: list[dict[str, Any]]
    axes: list[str]
    prompts: dict[str, str]

    @property
    def config_columns(self) -> list[str]:
        return [*BASE_CONFIG, *self.axes]

    @property
    def configs(self) -> list[str]:
        return list(dict.fromkeys(job["config"] for job in self.jobs))


def expand(cases: list[dict[str, Any]], models: Sequence[str], presets: Sequence[str | None], grid: Mapping[str, list[Any]],
           prompts: Mapping[str, str], repeats: int, *, confirm: bool = False) -> Grid:
    """Every job of the cross product, in the order rows are reported."""
    axes = list(grid)
    points = [dict(zip(axes, values, strict=True)) for values in product(*grid.values())] if axes else [{}]
    variants: list[tuple[str | None, str | None]] = list(prompts.items()) or [(None, None)]
    size = len(models) * len(presets) * len(points) * len(variants) * len(cases) * repeats
    if size > GRID_LIMIT and not confirm:
        raise ConfigError(f"this grid is {size:,} calls (more than {GRID_LIMIT:,}); pass confirm=True to run it, "
                          "or dry_run=True to see its cost first")
    jobs = []
    for model, preset, point, (prompt, template) in product(models, presets, points, variants):
        config = config_label(model, preset, point, prompt)
        for case, repeat in product(cases, range(repeats)):
            jobs.append({"model": model, "preset": preset, "grid": dict(point), "prompt": prompt, "template": template,
                         "case": case, "repeat": repeat, "config": config})
    return Grid(jobs, axes, dict(prompts))
