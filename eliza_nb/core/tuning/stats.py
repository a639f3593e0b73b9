"""Intervals and paired comparisons for benchmark results (numpy only; no scipy).

    bootstrap_ci     the mean of some values with a percentile-bootstrap interval
    per_case         one value per case: a metric's mean over that case's repeats
    paired_diff      the mean per-case difference of two configurations, with its interval
    Comparison       what ``BenchmarkFrame.compare`` returns: the difference, its interval, a verdict
    Best             what ``BenchmarkFrame.best`` returns: the pick and a sentence about the runner-up

The summary's interval resamples runs (cases x repeats); a comparison pairs the two
configurations by case (each case's mean over its repeats first) and resamples cases, so
that the case-to-case spread, which both configurations share, cancels out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError

#: below this many scored runs the summary gives no interval and says so
MIN_RUNS = 5
#: below this many cases in common a comparison says it is too few to tell
MIN_CASES = 5
#: per-row metrics a comparison can use, and whether higher is better
METRICS: dict[str, bool] = {"score": True, "passed": True, "tokens_per_s": True, "latency_s": False, "ttft_s": False,
                            "queue_s": False, "cost_usd": False, "completion_tokens": False}
#: summary column names accepted for the per-row metric they summarise
ALIASES = {"mean_score": "score", "pass_rate": "passed", "p50_latency_s": "latency_s", "p95_latency_s": "latency_s",
           "mean_ttft_s": "ttft_s", "mean_queue_s": "queue_s", "cost_per_case_usd": "cost_usd",
           "total_cost_usd": "cost_usd", "latency": "latency_s", "cost": "cost_usd", "ttft": "ttft_s"}
#: metrics taken from successful rows only (a failed call's latency or speed says nothing)
OK_ONLY = ("latency_s", "ttft_s", "queue_s", "tokens_per_s", "completion_tokens")


def bootstrap_ci(values: Iterable[Any], *, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of ``values`` and its percentile-bootstrap interval.

    NaN/None are dropped; fewer than 2 values give ``(mean, nan, nan)`` (``mean`` is NaN for
    none). The resamples are drawn as one ``(n_boot, n)`` block of indices from
    ``numpy.random.default_rng(seed)``, so the same data and seed give the same interval.
    """
    x = np.asarray([float(v) for v in values if v is not None], dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return (mean, math.nan, math.nan)
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    # a constant sample's resample means can differ from its mean by rounding: keep lo <= mean <= hi
    return (mean, min(float(lo), mean), max(float(hi), mean))


def metric_name(metric: str) -> str:
    """The per-row column for ``metric`` (``"mean_score"`` -> ``"score"``); a one-line error for an unknown one."""
    name = ALIASES.get(metric, metric)
    if name not in METRICS:
        known = ", ".join(sorted(METRICS))
        raise ConfigError(f"unknown metric {metric!r}; use one of: {known} (or a summary column such as mean_score)")
    return name


def metric_values(rows: pd.DataFrame, metric: str) -> pd.Series:
    """The per-row values of ``metric`` as floats (NaN where there is none: failed call, not scored)."""
    name = metric_name(metric)
    if name not in rows:
        return pd.Series(np.nan, index=rows.index, dtype=float)
    col = rows[name]
    if name == "passed":
        values = pd.Series([1.0 if v is True or v == 1 else 0.0 if v is False or v == 0 else np.nan for v in col],
                           index=rows.index, dtype=float)
    else:
        values = pd.to_numeric(col, errors="coerce").astype(float)
    if name in OK_ONLY and "error" in rows:
        values = values.where(~failed(rows))
    return values


def failed(rows: pd.DataFrame) -> pd.Series:
    """True where the row's call failed (an ``error`` that is set and not empty)."""
    if "error" not in rows:
        return pd.Series(False, index=rows.index)
    err = rows["error"]
    return err.notna() & (err.astype(str) != "")


def per_case(rows: pd.DataFrame, metric: str = "score") -> pd.Series:
    """One value per ``case_id``: the metric's mean over that case's repeats (cases with no value left out)."""
    values = metric_values(rows, metric)
    cases = rows["case_id"].astype(str) if "case_id" in rows else pd.Series("0", index=rows.index)
    means = values.groupby(cases, sort=False).mean()
    return means.dropna()


def paired_diff(a: pd.Series, b: pd.Series, *, n_boot: int = 2000, level: float = 0.95,
                seed: int = 0) -> tuple[float, float, float, pd.DataFrame]:
    """(diff, lo, hi, per-case table): mean of ``a - b`` over the cases both have, bootstrapped over cases.

    ``a`` and ``b`` are per-case values (:func:`per_case`) indexed by case id; the table has
    columns ``case_id, a, b, diff`` in ``a``'s case order.
    """
    common = [c for c in a.index if c in b.index]
    table = pd.DataFrame({"case_id": common, "a": [float(a[c]) for c in common], "b": [float(b[c]) for c in common]})
    table["diff"] = table["a"] - table["b"]
    diff, lo, hi = bootstrap_ci(table["diff"], n_boot=n_boot, level=level, seed=seed)
    return diff, lo, hi, table


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:+.{digits}f}"


@dataclass
class Comparison:
    """Configuration ``a`` minus configuration ``b`` on ``metric``, paired by case.

    ``diff`` is the mean over cases of (a's mean over repeats - b's), ``lo``/``hi`` its
    bootstrap interval over cases; ``distinguishable`` is True when the interval excludes 0
    and there were at least :data:`MIN_CASES` cases in common. ``verdict`` says it in words.
    """

    a: str
    b: str
    metric: str
    diff: float
    lo: float
    hi: float
    n_cases: int
    distinguishable: bool
    verdict: str
    mean_a: float = math.nan
    mean_b: float = math.nan
    higher_is_better: bool = True
    level: float = 0.95
    per_case: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def winner(self) -> str | None:
        """The better configuration's label when the difference is distinguishable, else None."""
        if not self.distinguishable:
            return None
        return self.a if (self.diff > 0) == self.higher_is_better else self.b

    def __repr__(self) -> str:
        pct = f"{self.level:.0%}"
        return (f"Comparison on {self.metric} ({self.n_cases} cases in common)\n"
                f"  a: {self.a}  mean {self.mean_a:.3f}\n  b: {self.b}  mean {self.mean_b:.3f}\n"
                f"  a - b: {_num(self.diff)}  {pct} interval [{_num(self.lo)}, {_num(self.hi)}]\n"
                f"{self.verdict}")

    def _repr_html_(self) -> str:
        pct = f"{self.level:.0%}"
        colour = "#15803d" if self.distinguishable else "#6b7280"
        rows = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in (
            ("a", self.a), ("b", self.b), (f"mean {self.metric} (a / b)", f"{self.mean_a:.3f} / {self.mean_b:.3f}"),
            ("a − b", _num(self.diff)), (f"{pct} interval", f"[{_num(self.lo)}, {_num(self.hi)}]"),
            ("cases in common", self.n_cases)))
        return (f"<div class='eliza-compare'><table>{rows}</table>{self._bar_svg()}"
                f"<p style='color:{colour};font-weight:600'>{escape(self.verdict)}</p></div>")

    def _bar_svg(self) -> str:
        """The difference and its interval on an axis through 0 (nothing when there is no interval)."""
        if self.lo != self.lo or self.hi != self.hi:
            return ""
        w, h, pad = 320, 36, 12
        span = max(abs(self.lo), abs(self.hi), abs(self.diff), 1e-9) * 1.1

        def x(v: float) -> float:
            return pad + (w - 2 * pad) * (v + span) / (2 * span)

        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
                f'font-size="10"><line x1="{x(0):.1f}" y1="2" x2="{x(0):.1f}" y2="{h - 12}" stroke="#9ca3af" '
                f'stroke-dasharray="3,2"/><text x="{x(0):.1f}" y="{h - 2}" text-anchor="middle">0</text>'
                f'<line x1="{x(self.lo):.1f}" y1="12" x2="{x(self.hi):.1f}" y2="12" stroke="#374151" stroke-width="2"/>'
                f'<circle cx="{x(self.diff):.1f}" cy="12" r="4" fill="#2563eb"/></svg>')


def compare_rows(rows_a: pd.DataFrame, rows_b: pd.DataFrame, label_a: str, label_b: str, metric: str = "score", *,
                 n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Comparison:
    """The paired comparison of two configurations' rows (any two frames with ``case_id``, e.g. from two runs)."""
    name = metric_name(metric)
    higher = METRICS[name]
    a, b = per_case(rows_a, name), per_case(rows_b, name)
    diff, lo, hi, table = paired_diff(a, b, n_boot=n_boot, level=level, seed=seed)
    n = len(table)
    pct = f"{level:.0%}"
    enough = n >= MIN_CASES
    excludes_zero = bool(lo == lo and hi == hi and (lo > 0 or hi < 0))
    distinguishable = enough and excludes_zero
    what = "higher" if higher else "lower"
    if n == 0:
        verdict = (f"Nothing to compare: {label_a} and {label_b} have no case with a {name} value in common "
                   "(different cases, or every call failed or went unscored).")
    elif not enough:
        verdict = (f"Too few to tell: only {n} case{'s' if n != 1 else ''} in common (need {MIN_CASES}); "
                   f"{label_a} - {label_b} on {name} is {_num(diff)} over those. Add cases (repeats alone do not "
                   "help: a comparison resamples cases).")
    elif distinguishable:
        better, worse = (label_a, label_b) if (diff > 0) == higher else (label_b, label_a)
        verdict = (f"{better} is better than {worse} on {name} ({what} is better): a - b = {_num(diff)}, "
                   f"{pct} interval [{_num(lo)}, {_num(hi)}] over {n} cases, which excludes 0: distinguishable.")
    else:
        verdict = (f"No distinguishable difference between {label_a} and {label_b} on {name}: a - b = {_num(diff)}, "
                   f"{pct} interval [{_num(lo)}, {_num(hi)}] over {n} cases includes 0. More cases would narrow it.")
    return Comparison(a=label_a, b=label_b, metric=name, diff=diff, lo=lo, hi=hi, n_cases=n,
                      distinguishable=distinguishable, verdict=verdict,
                      mean_a=float(metric_values(rows_a, name).mean()), mean_b=float(metric_values(rows_b, name).mean()),
                      higher_is_better=higher, level=level, per_case=table)


@dataclass
class Best:
    """The best configuration on ``metric`` and whether it is distinguishable from the others.

    ``config`` is its label, ``values`` its config-column values, ``mean`` its mean metric;
    ``runner_up`` the next best and ``comparison`` best vs runner-up; ``tied`` lists the
    configurations not distinguishable from the best. ``sentence`` says it in words.
    """

    config: str
    values: dict[str, Any]
    metric: str
    mean: float
    runner_up: str | None
    comparison: Comparison | None
    tied: list[str]
    sentence: str

    @property
    def distinguishable(self) -> bool:
        """True when the best is distinguishably better than every other configuration."""
        return self.runner_up is not None and not self.tied

    def __repr__(self) -> str:
        return self.sentence

    def __str__(self) -> str:
        return self.sentence

    def _repr_html_(self) -> str:
        return f"<p class='eliza-best'>{escape(self.sentence)}</p>"
