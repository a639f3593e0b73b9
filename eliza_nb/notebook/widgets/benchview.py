"""BenchmarkView: a benchmark's results as sortable tables, a heatmap and a side-by-side (an anywidget).

Takes the benchmark runner's tidy DataFrame (one row per configuration x case x repeat:
``config, model, preset, prompt, <grid axes>, case_id, repeat, output, latency_s, ...,
score, passed, error``; older frames without ``config`` are labelled ``model · preset``)
and shows four tabs:

* **summary** per configuration (the result's own ``.summary()`` when it has one) and
  **runs**: sortable tables, numbers with bars (green: higher is better, amber: lower is);
* **heatmap**: configuration x metric (mean score, pass rate, p50 latency, tokens/s,
  cost per case), each column shaded on its own scale (darker = better), the mean score's
  95% interval as an error bar; with exactly two grid axes, also axis x axis of mean score;
* **side by side**: two configurations' answers to the same cases, in two columns.

Where widgets cannot render, a pandas Styler table with the same bars and the heatmap as
shaded HTML stand in.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import anywidget
import traitlets

HERE = Path(__file__).parent

#: columns where a higher value is better / worse (bar colour and the default sort)
HIGHER_IS_BETTER = ("score", "mean_score", "score_lo", "score_hi", "pass_rate", "tokens_per_s", "mean_tokens_per_s")
#: numeric columns that are counts or ids, not measurements: no bars
NO_BARS = ("repeat", "runs", "case_id", "prompt_tokens")
LOWER_IS_BETTER = ("latency_s", "ttft_s", "queue_s", "mean_ttft_s", "mean_queue_s", "cost_usd", "p50_latency_s", "p95_latency_s",
                   "total_cost_usd", "cost_per_case_usd", "error_rate")


def _as_frame(results: Any):
    import pandas as pd

    if isinstance(results, pd.DataFrame):
        return results
    for name in ("dataframe", "df", "frame", "runs", "results"):
        value = getattr(results, name, None)
        value = value() if callable(value) else value
        if isinstance(value, pd.DataFrame):
            return value
    raise TypeError(f"expected a benchmark DataFrame, got {type(results).__name__}")


def summarize(df: Any):
    """Per model x preset: runs, p50/p95 latency, mean score, total cost, error rate, tokens/s."""
    import pandas as pd

    if not len(df):
        return pd.DataFrame(columns=["model", "preset", "runs", "p50_latency_s", "p95_latency_s", "mean_score",
                                     "total_cost_usd", "error_rate"])
    d = df.copy()
    d["preset"] = d["preset"].fillna("—") if "preset" in d else "—"
    failed = d["error"].notna() & (d["error"].astype(str) != "") if "error" in d else pd.Series(False, index=d.index)
    d["_failed"] = failed.astype(float)
    agg: dict[str, Any] = {
        "runs": ("model", "size"),
        "p50_latency_s": ("latency_s", lambda s: s.quantile(0.5)),
        "p95_latency_s": ("latency_s", lambda s: s.quantile(0.95)),
        "mean_score": ("score", "mean"),
        "total_cost_usd": ("cost_usd", lambda s: s.sum(min_count=1)),
        "error_rate": ("_failed", "mean"),
    }
    if "tokens_per_s" in d:
        agg["mean_tokens_per_s"] = ("tokens_per_s", "mean")
    agg = {k: v for k, v in agg.items() if v[0] in d}
    return d.groupby(["model", "preset"], sort=False).agg(**agg).reset_index()


def summary_of(results: Any):
    """The result's own ``.summary()`` when it has one, else :func:`summarize`."""
    method = getattr(type(results), "summary", None)
    if callable(method):
        summary = results.summary()
        return _as_frame(summary)
    return summarize(_as_frame(results))


def _count(n: int, noun: str) -> str:
    """"1 model", "3 models"."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _cell(value: Any) -> Any:
    """A JSON-safe cell: NaN/NaT -> None, numpy scalars -> Python."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def table_payload(df: Any) -> dict[str, Any]:
    """Columns, rows and per-column kinds for the front end."""
    import pandas as pd

    kinds = {}
    for col in df.columns:
        if pd.api.types.is_bool_dtype(df[col]):
            kinds[col] = "bool"
        elif col in NO_BARS and pd.api.types.is_numeric_dtype(df[col]):
            kinds[col] = "count"
        elif pd.api.types.is_numeric_dtype(df[col]):
            kinds[col] = "high" if col in HIGHER_IS_BETTER else "low" if col in LOWER_IS_BETTER else "number"
        else:
            kinds[col] = "text"
    rows = [[_cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in df.columns], "kinds": kinds, "rows": rows}


def styled(df: Any):
    """A pandas Styler of ``df`` with bars on the numeric columns (the static fallback)."""
    import pandas as pd

    styler = df.style.format(precision=3, na_rep="—").hide(axis="index")
    for col in df.columns:
        if col in NO_BARS or pd.api.types.is_bool_dtype(df[col]) or not pd.api.types.is_numeric_dtype(df[col]):
            continue
        if not (df[col].abs().max() > 0):  # all zero or missing: a bar would divide by zero
            continue
        colour = "#bbf7d0" if col in HIGHER_IS_BETTER else "#fde68a" if col in LOWER_IS_BETTER else "#bfdbfe"
        styler = styler.bar(subset=[col], color=colour, vmin=0)
    return styler


# -- heatmap, intervals, side by side ----------------------------------------------------------

VIEWS = ("summary", "runs", "heatmap", "side")
#: the heatmap's metrics: (key, label, "high"/"low" is better, summary columns to take it from)
METRICS = (
    ("mean_score", "mean score", "high", ("mean_score",)),
    ("pass_rate", "pass rate", "high", ("pass_rate",)),
    ("p50_latency_s", "p50 latency (s)", "low", ("p50_latency_s",)),
    ("tokens_per_s", "tokens/s", "high", ("tokens_per_s", "mean_tokens_per_s")),
    ("cost_per_case_usd", "cost per case ($)", "low", ("cost_per_case_usd",)),
)
#: config columns that are not grid axes
NOT_AXES = ("model", "preset", "prompt")
#: a side-by-side answer longer than this is cut (the payload stays small)
ANSWER_CHARS = 4000


def pd_frame(*args: Any, **kwargs: Any):
    import pandas as pd

    return pd.DataFrame(*args, **kwargs)


def config_labels(df: Any) -> list[str]:
    """Each row's configuration: the ``config`` column, else ``model · preset``."""
    if "config" in df:
        return [str(c) for c in df["config"]]
    models = df["model"] if "model" in df else [""] * len(df)
    presets = df["preset"] if "preset" in df else [None] * len(df)
    return [f"{m} · {'—' if p is None or p != p else p}" for m, p in zip(models, presets, strict=True)]


def config_columns_of(results: Any, runs: Any) -> list[str]:
    """The frame's ``config_columns``; else the columns between ``prompt`` and ``case_id`` plus model/preset."""
    cols = getattr(results, "config_columns", None) or getattr(runs, "config_columns", None)
    if cols:
        return [str(c) for c in cols]
    names = [str(c) for c in runs.columns]
    if "prompt" in names and "case_id" in names and names.index("prompt") < names.index("case_id"):
        return [c for c in ("model", "preset") if c in names] + names[names.index("prompt"):names.index("case_id")]
    return [c for c in ("model", "preset") if c in names]


def shades(values: list[Any], better: str) -> list[float | None]:
    """0 (worst) .. 1 (best) per value on the column's own scale; None for a missing value."""
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not nums:
        return [None] * len(values)
    lo, hi = min(nums), max(nums)
    out: list[float | None] = []
    for v in values:
        if v is None or isinstance(v, bool):
            out.append(None)
        elif hi == lo:
            out.append(1.0)  # all equal: all best
        else:
            t = (v - lo) / (hi - lo)
            out.append(round(t if better == "high" else 1.0 - t, 4))
    return out


def _per_config(runs: Any, labels: list[str]) -> dict[str, dict[str, Any]]:
    """The metrics computed from the runs, per configuration (used where the summary lacks them)."""
    import pandas as pd

    if not len(runs):
        return {}
    d = pd.DataFrame(runs).copy()
    d["_config"] = config_labels(d)
    ok = d[d["error"].isna() | (d["error"].astype(str) == "")] if "error" in d else d
    out: dict[str, dict[str, Any]] = {label: {} for label in labels}
    for label, g in d.groupby("_config", sort=False):
        row = out.setdefault(str(label), {})
        good = ok[ok["_config"] == label]
        if "score" in g:
            row["mean_score"] = pd.to_numeric(g["score"], errors="coerce").mean()
        if "passed" in g:
            passed = g["passed"].dropna()
            row["pass_rate"] = float(passed.astype(bool).mean()) if len(passed) else None
        if "latency_s" in good:
            row["p50_latency_s"] = pd.to_numeric(good["latency_s"], errors="coerce").median()
        if "tokens_per_s" in good:
            row["tokens_per_s"] = pd.to_numeric(good["tokens_per_s"], errors="coerce").mean()
        if "cost_usd" in g:
            row["cost_per_case_usd"] = pd.to_numeric(g["cost_usd"], errors="coerce").mean()
    return out


def heatmap_payload(summary: Any, runs: Any) -> dict[str, Any]:
    """Configuration x metric: values, shades (per column, 1 = best), the mean score's interval, notes.

    Values come from the summary's columns (``mean_score``, ``pass_rate``, ``p50_latency_s``,
    ``tokens_per_s``, ``cost_per_case_usd``, ``score_lo``/``score_hi``, ``note``) and, where
    it lacks one, are computed from the runs; a metric with no value anywhere is left out.
    """
    # a summary per model x preset (older frames) is coarser than the runs' configs: then use the runs only
    usable = len(summary) and ("config" in summary or "config" not in runs)
    labels = list(dict.fromkeys(config_labels(summary if usable else runs)))
    own = dict(zip(config_labels(summary), summary.to_dict("records"), strict=True)) if usable else {}
    computed = _per_config(runs, labels)
    metrics, columns = [], []
    for key, label, better, sources in METRICS:
        col = []
        for config in labels:
            row = own.get(config, {})
            value = next((row[s] for s in sources if s in row), computed.get(config, {}).get(key))
            col.append(_cell(value))
        if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in col):
            metrics.append({"key": key, "label": label, "better": better})
            columns.append(col)
    values = [list(r) for r in zip(*columns, strict=True)] if columns else [[] for _ in labels]
    shade_cols = [shades(col, m["better"]) for col, m in zip(columns, metrics, strict=True)]
    shade = [list(r) for r in zip(*shade_cols, strict=True)] if shade_cols else [[] for _ in labels]

    def own_col(name: str) -> list[Any]:
        return [_cell(own.get(c, {}).get(name)) for c in labels]

    return {"rows": labels, "metrics": metrics, "values": values, "shade": shade,
            "lo": own_col("score_lo"), "hi": own_col("score_hi"), "notes": own_col("note")}


def best_first(h: dict[str, Any]) -> list[str]:
    """The heatmap's configurations by mean score, best first (the side by side's default picks)."""
    keys = [m["key"] for m in h.get("metrics", [])]
    if "mean_score" not in keys:
        return list(h.get("rows", []))
    j = keys.index("mean_score")
    scored = [(-(v[j] if v[j] is not None else float("-inf")), i) for i, v in enumerate(h["values"])]
    return [h["rows"][i] for _, i in sorted(scored)]


def axes_payload(runs: Any, config_columns: list[str]) -> dict[str, Any]:
    """Grid axis x grid axis of mean score when the config columns hold exactly two grid axes, else {}."""
    import pandas as pd

    axes = [c for c in config_columns if c not in NOT_AXES and c in runs]
    if len(axes) != 2 or "score" not in runs or not len(runs):
        return {}
    y, x = axes
    d = pd.DataFrame({y: runs[y], x: runs[x], "score": pd.to_numeric(runs["score"], errors="coerce")})
    means = d.groupby([y, x], dropna=False)["score"].mean()
    ys = sorted(d[y].dropna().unique().tolist(), key=_sort_key)
    xs = sorted(d[x].dropna().unique().tolist(), key=_sort_key)
    values = [[_cell(means.get((vy, vx))) for vx in xs] for vy in ys]
    flat = shades([v for row in values for v in row], "high")
    shade = [flat[i * len(xs):(i + 1) * len(xs)] for i in range(len(ys))]
    others = [c for c in config_columns if c in NOT_AXES and c in runs and runs[c].nunique(dropna=False) > 1]
    return {"x": str(x), "y": str(y), "xs": [_cell(v) for v in xs], "ys": [_cell(v) for v in ys],
            "values": values, "shade": shade, "averaged_over": others}


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def answers_payload(runs: Any, order: list[str] | None = None) -> dict[str, Any]:
    """Per run, for the side by side: config, case_id, repeat, input, output, score (outputs cut long)."""
    labels = config_labels(runs)
    configs = list(dict.fromkeys([*(order or []), *labels]))
    configs = [c for c in configs if c in set(labels)]

    def col(name: str) -> list[Any]:
        return list(runs[name]) if name in runs else [None] * len(runs)

    rows = []
    for config, case, rep, inp, out, score, err in zip(labels, col("case_id"), col("repeat"), col("input"),
                                                       col("output"), col("score"), col("error"), strict=True):
        text = _cell(out)
        text = err if (text is None or text == "") and isinstance(err, str) and err else text
        if isinstance(text, str) and len(text) > ANSWER_CHARS:
            text = text[:ANSWER_CHARS - 1] + "…"
        rows.append([config, _cell(case), _cell(rep), _cell(inp), text, _cell(score)])
    return {"configs": configs, "columns": ["config", "case_id", "repeat", "input", "output", "score"], "rows": rows}


def side_by_side(runs: Any, a: str, b: str):
    """Two configurations' answers to the same cases: case_id, repeat, input, output_a, score_a, output_b, score_b."""
    import pandas as pd

    d = pd.DataFrame(runs).copy()
    d["_config"] = config_labels(d)
    keep = [c for c in ("case_id", "repeat", "input", "output", "score") if c in d]
    left = d[d["_config"] == a][keep]
    right = d[d["_config"] == b][[c for c in keep if c != "input"]]
    on = [c for c in ("case_id", "repeat") if c in keep]
    return left.merge(right, on=on, how="outer", suffixes=("_a", "_b")).reset_index(drop=True)


def _bg(shade: float | None) -> tuple[str, str]:
    """A cell's background and text colour: pale (worst) to dark blue (best)."""
    if shade is None:
        return "transparent", "inherit"
    light, dark = (239, 246, 255), (30, 64, 175)
    rgb = tuple(round(lo + (hi - lo) * shade) for lo, hi in zip(light, dark, strict=True))
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})", "#fff" if shade > 0.55 else "#111"


def _num(value: Any, key: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.5f}" if "cost" in key else f"{value:.1f}" if key == "tokens_per_s" else f"{value:.3f}"
    return html.escape(str(value))


def interval_svg(mean: Any, lo: Any, hi: Any, width: int = 120) -> str:
    """The mean score (0..1) as a bar with its interval as a whisker, inline SVG."""
    if mean is None:
        return ""
    def x(v: float) -> float:
        return round(width * max(0.0, min(1.0, float(v))), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="14" class="eliza-bench-ci">',
             f'<rect x="0" y="3" width="{width}" height="8" fill="#e5e7eb"/>',
             f'<rect x="0" y="3" width="{x(mean)}" height="8" fill="#60a5fa"/>']
    if lo is not None and hi is not None:
        parts.append(f'<line x1="{x(lo)}" x2="{x(hi)}" y1="7" y2="7" stroke="#111" stroke-width="1.5"/>'
                     f'<line x1="{x(lo)}" x2="{x(lo)}" y1="2" y2="12" stroke="#111"/>'
                     f'<line x1="{x(hi)}" x2="{x(hi)}" y1="2" y2="12" stroke="#111"/>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap_html(h: dict[str, Any]) -> str:
    """The configuration x metric heatmap as shaded static HTML (the fallback)."""
    if not h or not h.get("rows") or not h.get("metrics"):
        return ""
    cell = "padding:2px 8px;text-align:right"
    head = "".join(f'<th style="{cell}">{html.escape(m["label"])}</th>' for m in h["metrics"])
    body = []
    mi = next((i for i, m in enumerate(h["metrics"]) if m["key"] == "mean_score"), None)
    for i, config in enumerate(h["rows"]):
        tds = []
        for j, m in enumerate(h["metrics"]):
            bg, fg = _bg(h["shade"][i][j])
            tds.append(f'<td style="{cell};background:{bg};color:{fg}">{_num(h["values"][i][j], m["key"])}</td>')
        mean = h["values"][i][mi] if mi is not None else None
        bar = interval_svg(mean, h["lo"][i], h["hi"][i])
        note = html.escape(h["notes"][i] or "")
        body.append(f'<tr><td style="padding:2px 8px">{html.escape(config)}</td>{"".join(tds)}<td>{bar}</td>'
                    f'<td style="padding:2px 8px;color:#555">{note}</td></tr>')
    return (f'<div style="margin-top:8px"><b>heatmap</b> (per column: darker = better)</div><table>'
            f'<tr><th style="padding:2px 8px">configuration</th>{head}<th>mean score, 95% interval</th><th></th></tr>'
            f'{"".join(body)}</table>')


def axes_html(a: dict[str, Any]) -> str:
    """The grid axis x grid axis heatmap of mean score as static HTML (the fallback)."""
    if not a:
        return ""
    head = "".join(f'<th style="padding:2px 8px">{html.escape(str(v))}</th>' for v in a["xs"])
    body = []
    for i, vy in enumerate(a["ys"]):
        tds = []
        for j in range(len(a["xs"])):
            bg, fg = _bg(a["shade"][i][j])
            tds.append(f'<td style="padding:2px 8px;text-align:right;background:{bg};color:{fg}">'
                       f'{_num(a["values"][i][j])}</td>')
        body.append(f'<tr><th style="padding:2px 8px">{html.escape(str(vy))}</th>{"".join(tds)}</tr>')
    return (f'<div style="margin-top:8px"><b>mean score: {html.escape(a["y"])} × {html.escape(a["x"])}</b></div>'
            f'<table><tr><th>{html.escape(a["y"])} \\ {html.escape(a["x"])}</th>{head}</tr>{"".join(body)}</table>')


class BenchmarkView(anywidget.AnyWidget):
    """Sortable summary and run tables of a benchmark result, with bars."""

    _esm = HERE / "benchview.js"
    _css = HERE / "benchview.css"

    tables = traitlets.Dict().tag(sync=True)
    view = traitlets.Unicode("summary").tag(sync=True)
    sort_by = traitlets.Unicode("").tag(sync=True)
    ascending = traitlets.Bool(True).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)

    heatmap = traitlets.Dict().tag(sync=True)  # heatmap_payload(): configuration x metric
    axes = traitlets.Dict().tag(sync=True)  # axes_payload(): grid axis x grid axis, {} unless two axes
    answers = traitlets.Dict().tag(sync=True)  # answers_payload(): for the side by side
    pick_a = traitlets.Unicode("").tag(sync=True)
    pick_b = traitlets.Unicode("").tag(sync=True)
    verdict = traitlets.Unicode("").tag(sync=True)  # the result's compare(pick_a, pick_b), when it has one

    def __init__(self, results: Any, *, title: str = "", view: str = "summary", **kwargs: Any) -> None:
        self.results = results
        self.runs = _as_frame(results)
        self.summary = summary_of(results)
        n_models = self.runs["model"].nunique() if "model" in self.runs else 0
        heat = heatmap_payload(self.summary, self.runs)
        answers = answers_payload(self.runs, order=heat["rows"])
        configs = best_first(heat) or answers["configs"]
        super().__init__(
            tables={"summary": table_payload(self.summary), "runs": table_payload(self.runs)},
            heatmap=heat, axes=axes_payload(self.runs, config_columns_of(results, self.runs)), answers=answers,
            pick_a=kwargs.pop("pick_a", configs[0] if configs else ""),
            pick_b=kwargs.pop("pick_b", configs[1] if len(configs) > 1 else ""),
            view=view, title=title or f"benchmark: {_count(len(self.runs), 'run')} · {_count(n_models, 'model')}", **kwargs,
        )
        self._compare()

    @traitlets.validate("view")
    def _valid_view(self, proposal: Any) -> str:
        if proposal["value"] not in VIEWS:
            raise traitlets.TraitError("view is 'summary' or 'runs', 'heatmap' or 'side'")
        return proposal["value"]

    @traitlets.observe("pick_a", "pick_b")
    def _picked(self, change: Any) -> None:
        self._compare()

    def _compare(self) -> None:
        """``verdict``: the result's own paired comparison of the two picks, when it offers one."""
        import pandas as pd

        compare = getattr(type(self.results), "compare", None)
        a, b = self.pick_a, self.pick_b
        if compare is pd.DataFrame.compare or not callable(compare) or not a or not b or a == b:
            self.verdict = ""
            return
        try:
            self.verdict = str(getattr(self.results.compare(a, b), "verdict", "") or "")
        except Exception as exc:  # a comparison that cannot be made must not break the view
            self.verdict = f"no comparison: {exc}"

    def side_by_side(self, a: str | None = None, b: str | None = None):
        """The answers of configurations ``a`` and ``b`` (default: the two picks) to the same cases."""
        return side_by_side(self.runs, a or self.pick_a, b or self.pick_b)

    def frame(self):
        """The table on show, sorted as on screen (the heatmap's values; the side by side's answers)."""
        if self.view == "heatmap":
            h = self.heatmap
            return pd_frame(h["values"], index=h["rows"], columns=[m["key"] for m in h["metrics"]])
        if self.view == "side":
            return self.side_by_side()
        df = self.summary if self.view == "summary" else self.runs
        if self.sort_by and self.sort_by in df.columns:
            df = df.sort_values(self.sort_by, ascending=self.ascending, na_position="last", kind="stable")
        return df

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        assert bundle is not None  # anywidget returns None only for a widget without a view
        data, meta = bundle
        data["text/plain"] = f"{self.title}\n{self.summary.to_string(index=False)}"
        try:
            table = styled(self.summary).to_html()
        except ImportError:  # Styler needs jinja2
            table = self.summary.to_html(index=False, na_rep="—")
        data["text/html"] = (f"<div><b>{html.escape(self.title)}</b></div>{table}"
                             f"{heatmap_html(self.heatmap)}{axes_html(self.axes)}")
        return data, meta
