"""BenchmarkView: a benchmark's results as sortable tables with inline bars (an anywidget).

Takes the benchmark runner's tidy DataFrame (one row per model x preset x case x repeat:
``model, preset, case_id, repeat, output, latency_s, ttft_s, prompt_tokens,
completion_tokens, tokens_per_s, cost_usd, cache_hit, score, error``) and shows two
tables: the summary per model x preset (the result's own ``.summary()`` when it has one)
and the runs. Click a column header to sort; numbers get bars, green where higher is
better, amber where lower is. Where widgets cannot render, a pandas Styler table with
the same bars stands in.
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
HIGHER_IS_BETTER = ("score", "mean_score", "tokens_per_s", "mean_tokens_per_s")
#: numeric columns that are counts or ids, not measurements: no bars
NO_BARS = ("repeat", "runs", "case_id", "prompt_tokens")
LOWER_IS_BETTER = ("latency_s", "ttft_s", "queue_s", "mean_ttft_s", "mean_queue_s", "cost_usd", "p50_latency_s", "p95_latency_s",
                   "total_cost_usd", "error_rate")


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


class BenchmarkView(anywidget.AnyWidget):
    """Sortable summary and run tables of a benchmark result, with bars."""

    _esm = HERE / "benchview.js"
    _css = HERE / "benchview.css"

    tables = traitlets.Dict().tag(sync=True)
    view = traitlets.Unicode("summary").tag(sync=True)
    sort_by = traitlets.Unicode("").tag(sync=True)
    ascending = traitlets.Bool(True).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)

    def __init__(self, results: Any, *, title: str = "", view: str = "summary", **kwargs: Any) -> None:
        self.runs = _as_frame(results)
        self.summary = summary_of(results)
        n_models = self.runs["model"].nunique() if "model" in self.runs else 0
        super().__init__(
            tables={"summary": table_payload(self.summary), "runs": table_payload(self.runs)},
            view=view, title=title or f"benchmark: {_count(len(self.runs), 'run')} · {_count(n_models, 'model')}", **kwargs,
        )

    @traitlets.validate("view")
    def _valid_view(self, proposal: Any) -> str:
        if proposal["value"] not in ("summary", "runs"):
            raise traitlets.TraitError("view is 'summary' or 'runs'")
        return proposal["value"]

    def frame(self):
        """The table on show, sorted as on screen."""
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
        data["text/html"] = f"<div><b>{html.escape(self.title)}</b></div>{table}"
        return data, meta
