"""The benchmark view's small views: configuration x metric heatmap, grid axis x grid axis,
the side by side of two configurations' answers, and their static HTML fallbacks.

These have one row per configuration (or per case of two picks), so they stay plain JSON;
what is computed from the runs is computed with pandas' groupby, never a loop over rows.
"""

from __future__ import annotations

import html
import math
from typing import Any

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
#: the side by side carries at most this many runs per configuration (the first ones)
SIDE_ROWS = 500


def cell(value: Any) -> Any:
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


def config_series(df: Any) -> Any:
    """Each row's configuration as a Series: the ``config`` column, else ``model · preset``."""
    import pandas as pd

    if "config" in df:
        return df["config"].astype(str)
    models = df["model"].astype(str) if "model" in df else pd.Series("", index=df.index)
    presets = df["preset"].astype(object).where(df["preset"].notna(), "—").astype(str) if "preset" in df \
        else pd.Series("—", index=df.index)
    return models + " · " + presets


def config_labels(df: Any) -> list[str]:
    """Each row's configuration: the ``config`` column, else ``model · preset``."""
    return config_series(df).tolist()


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


def per_config(runs: Any) -> dict[str, dict[str, Any]]:
    """The metrics computed from the runs, per configuration (used where the summary lacks them)."""
    import pandas as pd

    if not len(runs):
        return {}
    labels = config_series(runs).to_numpy()
    failed = (runs["error"].notna() & (runs["error"].astype(str) != "")).to_numpy() if "error" in runs else None
    cols: dict[str, Any] = {}
    if "score" in runs:
        cols["mean_score"] = pd.to_numeric(runs["score"], errors="coerce")
    if "passed" in runs:
        cols["pass_rate"] = pd.to_numeric(runs["passed"].astype(object).where(runs["passed"].notna()), errors="coerce")
    if "cost_usd" in runs:
        cols["cost_per_case_usd"] = pd.to_numeric(runs["cost_usd"], errors="coerce")
    for key, name in (("p50_latency_s", "latency_s"), ("tokens_per_s", "tokens_per_s")):
        if name in runs:  # successful calls only
            value = pd.to_numeric(runs[name], errors="coerce")
            cols[key] = value.where(~failed) if failed is not None else value
    if not cols:
        return {label: {} for label in dict.fromkeys(labels.tolist())}
    d = pd.DataFrame({k: v.to_numpy(dtype="float64", na_value=math.nan) for k, v in cols.items()})
    how = {k: ("median" if k == "p50_latency_s" else "mean") for k in cols}
    agg = d.groupby(labels, sort=False).agg(how)
    return {str(label): {k: cell(v) for k, v in row.items()} for label, row in agg.to_dict("index").items()}


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
    computed = per_config(runs)
    metrics, columns = [], []
    for key, label, better, sources in METRICS:
        col = []
        for config in labels:
            row = own.get(config, {})
            value = next((row[s] for s in sources if s in row), computed.get(config, {}).get(key))
            col.append(cell(value))
        if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in col):
            metrics.append({"key": key, "label": label, "better": better})
            columns.append(col)
    values = [list(r) for r in zip(*columns, strict=True)] if columns else [[] for _ in labels]
    shade_cols = [shades(col, m["better"]) for col, m in zip(columns, metrics, strict=True)]
    shade = [list(r) for r in zip(*shade_cols, strict=True)] if shade_cols else [[] for _ in labels]

    def own_col(name: str) -> list[Any]:
        return [cell(own.get(c, {}).get(name)) for c in labels]

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


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


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
    values = [[cell(means.get((vy, vx))) for vx in xs] for vy in ys]
    flat = shades([v for row in values for v in row], "high")
    shade = [flat[i * len(xs):(i + 1) * len(xs)] for i in range(len(ys))]
    others = [c for c in config_columns if c in NOT_AXES and c in runs and runs[c].nunique(dropna=False) > 1]
    return {"x": str(x), "y": str(y), "xs": [cell(v) for v in xs], "ys": [cell(v) for v in ys],
            "values": values, "shade": shade, "averaged_over": others}


def answers_payload(runs: Any, order: list[str] | None = None) -> dict[str, Any]:
    """Per run, for the side by side: config, case_id, repeat, input, output, score (outputs cut long);
    the first :data:`SIDE_ROWS` runs of each configuration (``cut`` says how many runs were left out)."""
    labels = config_series(runs)
    configs = [c for c in dict.fromkeys([*(order or []), *labels.tolist()]) if c in set(labels.tolist())]
    first = (labels.groupby(labels.to_numpy(), sort=False).cumcount() < SIDE_ROWS).to_numpy() if len(runs) else []
    d = runs[first] if len(runs) else runs

    def col(name: str) -> list[Any]:
        return d[name].tolist() if name in d else [None] * len(d)

    rows = []
    for config, case, rep, inp, out, score, err in zip(labels[first].tolist() if len(runs) else [], col("case_id"),
                                                       col("repeat"), col("input"), col("output"), col("score"),
                                                       col("error"), strict=True):
        text = cell(out)
        text = err if (text is None or text == "") and isinstance(err, str) and err else text
        if isinstance(text, str) and len(text) > ANSWER_CHARS:
            text = text[:ANSWER_CHARS - 1] + "…"
        rows.append([config, cell(case), cell(rep), cell(inp), text, cell(score)])
    return {"configs": configs, "columns": ["config", "case_id", "repeat", "input", "output", "score"], "rows": rows,
            "cut": int(len(runs) - len(d)), "side_rows": SIDE_ROWS}


def side_by_side(runs: Any, a: str, b: str) -> Any:
    """Two configurations' answers to the same cases: case_id, repeat, input, output_a, score_a, output_b, score_b."""
    import pandas as pd

    d = pd.DataFrame(runs)
    labels = config_series(d)
    keep = [c for c in ("case_id", "repeat", "input", "output", "score") if c in d]
    left = d[(labels == a).to_numpy()][keep]
    right = d[(labels == b).to_numpy()][[c for c in keep if c != "input"]]
    on = [c for c in ("case_id", "repeat") if c in keep]
    return left.merge(right, on=on, how="outer", suffixes=("_a", "_b")).reset_index(drop=True)


# -- static HTML (the fallback where widgets do not render) -------------------------------------

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
    style = "padding:2px 8px;text-align:right"
    head = "".join(f'<th style="{style}">{html.escape(m["label"])}</th>' for m in h["metrics"])
    body = []
    mi = next((i for i, m in enumerate(h["metrics"]) if m["key"] == "mean_score"), None)
    for i, config in enumerate(h["rows"]):
        tds = []
        for j, m in enumerate(h["metrics"]):
            bg, fg = _bg(h["shade"][i][j])
            tds.append(f'<td style="{style};background:{bg};color:{fg}">{_num(h["values"][i][j], m["key"])}</td>')
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
