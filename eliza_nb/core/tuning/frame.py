"""The benchmark's tidy result: BenchmarkFrame (summary with intervals, compare, best, chart) and its chart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from ..errors import ConfigError
from . import stats

#: the summary's columns after the configuration's own (``config`` and the config columns)
SUMMARY_COLUMNS = ["runs", "mean_score", "score_lo", "score_hi", "pass_rate", "p50_latency_s", "p95_latency_s",
                   "mean_ttft_s", "mean_queue_s", "tokens_per_s", "cost_per_case_usd", "total_cost_usd", "error_rate",
                   "note"]


class BenchmarkFrame(pd.DataFrame):
    """The tidy result: one row per configuration x case x repeat, plus ``summary()``, ``compare()``,
    ``best()`` and ``chart()``.

    A configuration is everything but the case and the repeat: the ``config`` column names it
    (``"llama_local:small · precise · temperature=0.4 · prompt=terse"``) and ``config_columns``
    lists the columns it is made of (model, preset, prompt, the grid axes).
    """

    # pandas carries these attributes to derived frames (slices, copies)
    _metadata: ClassVar[list[str]] = ["scorer_name", "config_columns", "run_id"]
    scorer_name: str | None = None
    config_columns: list[str] | None = None
    run_id: str | None = None

    @property
    def _constructor(self) -> type[BenchmarkFrame]:
        return BenchmarkFrame

    # -- configurations ---------------------------------------------------------------

    def _config_cols(self) -> list[str]:
        """The columns naming a configuration: the metadata's, else model, preset and whatever
        lies between ``prompt`` and ``case_id`` (the grid axes), as present in the frame."""
        cols = list(self.config_columns or [])
        names = [str(c) for c in self.columns]
        if not cols:
            cols = ["model", "preset"]
            if "prompt" in names and "case_id" in names and names.index("prompt") < names.index("case_id"):
                cols += names[names.index("prompt"):names.index("case_id")]
        return [c for c in cols if c in names]

    def _labels(self) -> pd.Series:
        """Each row's configuration label: the ``config`` column, else its config columns joined by " · "."""
        if "config" in self.columns:
            return self["config"].astype(str)
        cols = self._config_cols()
        if not cols:
            return pd.Series("all", index=self.index)
        parts = [self[c].map(lambda v: "none" if v is None or v != v else str(v)) for c in cols]
        out = parts[0]
        for p in parts[1:]:
            out = out + " · " + p
        return out

    def configs(self) -> list[str]:
        """The configuration labels, in the order they first appear."""
        return list(dict.fromkeys(self._labels()))

    def _rows_of(self, which: str | Mapping[str, Any] | pd.DataFrame) -> tuple[str, pd.DataFrame]:
        """(label, rows) of one configuration given by label, by config-column values, or as rows."""
        frame = pd.DataFrame(self)
        if isinstance(which, pd.DataFrame):
            labels = BenchmarkFrame(which)._labels() if len(which) else pd.Series([], dtype=str)
            names = list(dict.fromkeys(labels))
            return (names[0] if len(names) == 1 else f"{len(names)} configurations"), pd.DataFrame(which)
        labels = self._labels()
        known = list(dict.fromkeys(labels))
        if isinstance(which, str):
            if which in known:
                return which, frame[(labels == which).to_numpy()]
            # a label's " · " parts ("temperature=0 · prompt=terse"), else a part of its text
            wanted = {w.strip() for w in which.split("·")}
            hits = [k for k in known if wanted <= {p.strip() for p in k.split("·")}] or [k for k in known if which in k]
            if len(hits) == 1:
                return hits[0], frame[(labels == hits[0]).to_numpy()]
            what = f"matches {len(hits)} configurations" if hits else "is not a configuration"
            raise ConfigError(f"{which!r} {what}; configurations: {'; '.join(hits or known)}")
        if isinstance(which, Mapping):
            cols = self._config_cols()
            unknown = [k for k in which if k not in self.columns]
            if unknown:
                raise ConfigError(f"no column {unknown[0]!r} to choose a configuration by; config columns: {', '.join(cols)}")
            mask = pd.Series(True, index=self.index)
            for key, value in which.items():
                col = self[key]
                if value is None or (key == "preset" and value == "none"):  # no preset: "none" in rows, None in older ones
                    mask &= col.isna() | (col == "none")
                else:
                    mask &= col == value
            hits = list(dict.fromkeys(labels[mask]))
            if len(hits) == 1:
                return hits[0], frame[(labels == hits[0]).to_numpy()]
            shown = dict(which)
            if not hits:
                raise ConfigError(f"no configuration has {shown}; configurations: {'; '.join(known)}")
            raise ConfigError(f"{shown} matches {len(hits)} configurations ({'; '.join(hits)}): give more of "
                              f"{', '.join(cols)}")
        raise ConfigError(f"choose a configuration by its label (str) or by config-column values (dict), "
                          f"not {type(which).__name__}")

    # -- summary ----------------------------------------------------------------------

    def summary(self, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
        """One row per configuration, in the order they first appear.

        Columns: ``config``, the config columns (model, preset, prompt, grid axes), then
        ``runs``, ``mean_score`` with ``score_lo``/``score_hi`` (its ``level`` percentile-bootstrap
        interval over the scored runs, cases x repeats), ``pass_rate``, ``p50_latency_s``,
        ``p95_latency_s``, ``mean_ttft_s``, ``mean_queue_s``, ``tokens_per_s`` (successful calls
        only), ``cost_per_case_usd`` (mean per run), ``total_cost_usd``, ``error_rate`` and
        ``note``: plain words when the runs are too few for an interval, all failed, or cover
        one case only. With fewer than ``stats.MIN_RUNS`` scored runs there is no interval.
        """
        cols = self._config_cols()
        if self.empty:
            return pd.DataFrame(columns=["config", *cols, *SUMMARY_COLUMNS])
        frame = pd.DataFrame(self)
        labels = self._labels()
        records = []
        for label, g in frame.groupby(labels.to_numpy(), sort=False):
            records.append({"config": str(label), **{c: g[c].iloc[0] for c in cols},
                            **_summarise(g, level=level, n_boot=n_boot, seed=seed)})
        return pd.DataFrame(records, columns=["config", *cols, *SUMMARY_COLUMNS])

    # -- comparisons ------------------------------------------------------------------

    def compare(self, a: str | Mapping[str, Any] | pd.DataFrame, b: str | Mapping[str, Any] | pd.DataFrame,
                metric: str = "score", *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> stats.Comparison:
        """Configuration ``a`` against ``b`` on ``metric``, paired on the cases they share.

        ``a``/``b``: a label from the ``config`` column (or a unique part of one), a dict of
        config-column values (``{"temperature": 0.4, "prompt": "terse"}``), or the rows of a
        configuration from another run (``load_bench(run_id)``). Each case's mean over its
        repeats is taken first, then the mean difference a - b is bootstrapped over cases.
        ``metric``: score, passed, latency_s, ttft_s, queue_s, tokens_per_s, cost_usd,
        completion_tokens (or the summary's name for one, e.g. mean_score).
        """
        label_a, rows_a = self._rows_of(a)
        label_b, rows_b = self._rows_of(b)
        return stats.compare_rows(rows_a, rows_b, label_a, label_b, metric, n_boot=n_boot, level=level, seed=seed)

    def best(self, metric: str = "score", *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> stats.Best:
        """The configuration with the best mean ``metric`` and a sentence saying whether it is
        distinguishable from the runner-up (and from every other configuration), paired by case.

        When it is not, the sentence says so, names the configurations it cannot be told from,
        and which of them is cheapest or fastest: with these cases they are equally good.
        """
        name = stats.metric_name(metric)
        higher = stats.METRICS[name]
        if self.empty:
            raise ConfigError("no results: nothing to pick the best of")
        labels = self._labels()
        frame = pd.DataFrame(self)
        groups = {str(k): g for k, g in frame.groupby(labels.to_numpy(), sort=False)}
        means = {k: float(stats.metric_values(g, name).mean()) for k, g in groups.items()}
        ranked = sorted((k for k in groups if means[k] == means[k]), key=lambda k: -means[k] if higher else means[k])
        if not ranked:
            raise ConfigError(f"no configuration has a {name} value (every call failed or none was scored)")
        top = ranked[0]
        cols = self._config_cols()
        values = {c: groups[top][c].iloc[0] for c in cols}
        if len(ranked) == 1:
            others = len(groups) - 1
            sentence = (f"{top} is the only configuration" + (f" with a {name} value ({others} other"
                        f"{'s' if others != 1 else ''} had none)" if others else "") + ": nothing to compare it with.")
            return stats.Best(top, values, name, means[top], None, None, [], sentence)
        comps = {k: stats.compare_rows(groups[top], groups[k], top, k, name, n_boot=n_boot, level=level, seed=seed)
                 for k in ranked[1:]}
        runner = ranked[1]
        comp = comps[runner]
        tied = [k for k in ranked[1:] if not comps[k].distinguishable]
        pct = f"{level:.0%}"
        stat = (f"a - b = {stats._num(comp.diff)}, {pct} interval [{stats._num(comp.lo)}, {stats._num(comp.hi)}] "
                f"over {comp.n_cases} cases")
        head = f"{top} has the best mean {name} ({means[top]:.3f}; runner-up {runner}: {means[runner]:.3f})"
        if not tied:
            sentence = (f"{head}, and it is distinguishably better than the runner-up ({stat}, which excludes 0)"
                        + (" and than every other configuration." if len(ranked) > 2 else "."))
        elif comp.n_cases < stats.MIN_CASES:
            sentence = (f"{head}, but only {comp.n_cases} case{'s' if comp.n_cases != 1 else ''} in common: too few "
                        f"to tell them apart (need {stats.MIN_CASES}; add cases, repeats alone do not help).")
        else:
            named = "; ".join(tied[:3]) + (f" and {len(tied) - 3} more" if len(tied) > 3 else "")
            lead = (f"it is distinguishably better than the runner-up ({stat}) but not from {named}"
                    if comp.distinguishable else
                    f"it is not distinguishable from {named} (vs the runner-up: {stat}, which includes 0)")
            sentence = f"{head}, but {lead}: with these cases they are as good. {_cheapest([top, *tied], groups)}"
        return stats.Best(top, values, name, means[top], runner, comp, tied, sentence.strip())

    def chart(self) -> LatencyScoreChart:
        """Latency (p50) against mean score per configuration, as inline SVG (no network)."""
        return LatencyScoreChart(self.summary())


def _summarise(g: pd.DataFrame, *, level: float, n_boot: int, seed: int) -> dict[str, Any]:
    """The summary's numbers and note for one configuration's rows."""
    bad = stats.failed(g)
    ok = g[~bad]
    scores = stats.metric_values(g, "score")
    n_scored = int(scores.notna().sum())
    mean, lo, hi = stats.bootstrap_ci(scores, n_boot=n_boot, level=level, seed=seed)
    if n_scored < stats.MIN_RUNS:
        lo = hi = float("nan")
    passed = stats.metric_values(g, "passed")

    def col(rows: pd.DataFrame, name: str) -> pd.Series:
        return pd.to_numeric(rows[name], errors="coerce") if name in rows else pd.Series(dtype=float)

    # a judge's calls are part of what a configuration costs to evaluate (the row's judge_cost_usd)
    cost = col(g, "cost_usd") + col(g, "judge_cost_usd").fillna(0.0) if "judge_cost_usd" in g else col(g, "cost_usd")
    cases = g["case_id"].nunique() if "case_id" in g else 0
    notes = []
    if len(g) and bool(bad.all()):
        notes.append(f"all {len(g)} runs failed")
    elif n_scored == 0:
        notes.append("no scored runs")
    elif n_scored < stats.MIN_RUNS:
        notes.append(f"{n_scored} scored run{'s' if n_scored != 1 else ''}: too few for an interval "
                     f"(need {stats.MIN_RUNS}); add cases or repeats")
    elif cases == 1:
        notes.append("1 case: the interval covers its repeats only, not other inputs")
    if bool(bad.any()) and not bool(bad.all()):
        notes.append(f"{int(bad.sum())} of {len(g)} runs failed (not scored)")
    return {
        "runs": len(g), "mean_score": mean, "score_lo": lo, "score_hi": hi,
        "pass_rate": float(passed.mean()) if passed.notna().any() else float("nan"),
        "p50_latency_s": col(ok, "latency_s").median(), "p95_latency_s": col(ok, "latency_s").quantile(0.95),
        "mean_ttft_s": col(ok, "ttft_s").mean(), "mean_queue_s": col(ok, "queue_s").mean(),
        "tokens_per_s": col(ok, "tokens_per_s").mean(),
        "cost_per_case_usd": cost.mean() if cost.notna().any() else float("nan"),
        "total_cost_usd": cost.sum(min_count=1), "error_rate": float(bad.mean()) if len(g) else float("nan"),
        "note": "; ".join(notes),
    }


def _cheapest(labels: list[str], groups: Mapping[str, pd.DataFrame]) -> str:
    """Which of equally good configurations costs least, else which is fastest ("" when no difference shows)."""
    def mean_of(label: str, name: str) -> float:
        return float(stats.metric_values(groups[label], name).mean())

    costs = {k: mean_of(k, "cost_usd") for k in labels}
    known = {k: v for k, v in costs.items() if v == v}
    if len(known) > 1 and len(set(known.values())) > 1:
        k = min(known, key=lambda x: known[x])
        return f"Of these, {k} costs least (${known[k]:.6f} per run)."
    lat = {k: float(stats.metric_values(groups[k], "latency_s").median()) for k in labels}
    known = {k: v for k, v in lat.items() if v == v}
    if len(known) > 1 and len(set(known.values())) > 1:
        k = min(known, key=lambda x: known[x])
        return f"Of these, {k} is fastest (p50 {known[k]:.3f} s)."
    return ""


#: a point label longer than this is cut (the full text is the point's tooltip); GLYPH_PX is the
#: rough advance of an 11 px sans-serif glyph, to tell whether a label fits right of its point
LABEL_CHARS, GLYPH_PX = 48, 6.2


def short_labels(labels: list[str]) -> list[str]:
    """The labels without the " · " parts every one of them shares (the full label stays in the tooltip):
    a grid over temperature on one model is labelled ``temperature=0.4``, not the model and preset again."""
    split = [label.split(" · ") for label in labels]
    if len(split) < 2 or len({len(p) for p in split}) != 1:
        return labels
    keep = [j for j in range(len(split[0])) if len({p[j] for p in split}) > 1]
    return [" · ".join(p[j] for j in keep) or label for p, label in zip(split, labels, strict=True)]


@dataclass
class LatencyScoreChart:
    summary: pd.DataFrame
    width: int = 560
    height: int = 320

    def __repr__(self) -> str:
        # What a static export or a terminal shows instead of the SVG.
        if self.summary.empty:
            return "LatencyScoreChart (no results)"
        label = ["config"] if "config" in self.summary else ["model", "preset"]
        cols = [c for c in (*label, "p50_latency_s", "mean_score", "score_lo", "score_hi") if c in self.summary]
        return "p50 latency vs mean score\n" + str(self.summary[cols].to_string(index=False))

    def _repr_svg_(self) -> str:
        from html import escape

        s = self.summary.dropna(subset=["p50_latency_s"]) if not self.summary.empty else self.summary
        w, h, pad = self.width, self.height, 48
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
                 f'<rect width="{w}" height="{h}" fill="white"/>',
                 f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#444"/>',
                 f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad}" stroke="#444"/>',
                 f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">p50 latency (s)</text>',
                 f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">mean score</text>']
        if not s.empty:
            xmax = float(s["p50_latency_s"].max()) * 1.15 or 1.0
            palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"]

            def to_y(v: float) -> float:
                return (h - pad) - (h - pad - 20) * max(0.0, min(1.0, v))

            records = s.to_dict("records")
            fulls = [str(r["config"]) if "config" in r else f"{r['model']} · {r['preset']}" for r in records]
            short = short_labels(fulls) if "config" in s else fulls  # grid labels repeat the model and preset
            for i, row in enumerate(records):
                score = 0.0 if row["mean_score"] != row["mean_score"] else float(row["mean_score"])
                latency = float(row["p50_latency_s"])
                x = pad + (w - pad - 20) * latency / xmax
                y = to_y(score)
                full = fulls[i]
                shown = short[i] if len(short[i]) <= LABEL_CHARS else short[i][:LABEL_CHARS - 1] + "…"
                lo, hi = row.get("score_lo", float("nan")), row.get("score_hi", float("nan"))
                interval = ""
                if lo is not None and hi is not None and lo == lo and hi == hi:  # the 95% interval as an error bar
                    interval = f" [{float(lo):.2f}, {float(hi):.2f}]"
                    parts.append(f'<line class="interval" x1="{x:.1f}" y1="{to_y(float(lo)):.1f}" x2="{x:.1f}" '
                                 f'y2="{to_y(float(hi)):.1f}" stroke="#555" stroke-width="1.5"/>')
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{palette[i % len(palette)]}"><title>'
                             f'{escape(full)}: {latency:.3f} s, score {score:.2f}{interval}</title></circle>')
                if x + 9 + GLYPH_PX * len(shown) > w - 4:  # would run off the right edge: left of the point
                    parts.append(f'<text x="{x - 9:.1f}" y="{y + 4:.1f}" text-anchor="end">{escape(shown)}</text>')
                else:
                    parts.append(f'<text x="{x + 9:.1f}" y="{y + 4:.1f}">{escape(shown)}</text>')
            for frac in (0, 0.5, 1):
                y = (h - pad) - (h - pad - 20) * frac
                parts.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{frac:g}</text>')
            parts.append(f'<text x="{w - 10}" y="{h - pad + 14}" text-anchor="end">{xmax:.2f}</text>')
        parts.append("</svg>")
        return "".join(parts)


# -- the runner -------------------------------------------------------------------------
