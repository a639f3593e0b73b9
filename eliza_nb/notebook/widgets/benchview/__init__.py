"""BenchmarkView: a benchmark's results as sortable tables, a heatmap and a side-by-side (an anywidget).

Takes the benchmark runner's tidy DataFrame (one row per configuration x case x repeat:
``config, model, preset, prompt, <grid axes>, case_id, repeat, output, latency_s, ...,
score, passed, error``; older frames without ``config`` are labelled ``model · preset``)
and shows four tabs:

* **summary** per configuration (the result's own ``.summary()`` when it has one) and
  **runs**: tables sorted and filtered in the browser, numbers with bars (green: higher is
  better, amber: lower is). The runs go as binary columns (table.py) and only the rows in
  sight are in the page, so a hundred thousand runs scroll and sort like ten;
* **heatmap**: configuration x metric, each column shaded on its own scale (darker = better),
  the mean score's 95% interval as an error bar; with exactly two grid axes, also axis x axis;
* **side by side**: two configurations' answers to the same cases, in two columns (grid.py).

Where widgets cannot render, a pandas Styler table with the same bars and the heatmap as
shaded HTML stand in; a reopened notebook without saved widget state says to re-run the cell.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..reconnect import display_with_note
from .grid import answers_payload, axes_html, axes_payload, best_first, config_columns_of, heatmap_html, heatmap_payload, side_by_side
from .table import HIGHER_IS_BETTER, LOWER_IS_BETTER, NO_BARS, as_frame, shown_rows, summarize, summary_of, table_payload

__all__ = ["BenchmarkView", "styled", "summarize"]

WIDGETS = Path(__file__).resolve().parent.parent
VIEWS = ("summary", "runs", "heatmap", "side")


def _count(n: int, noun: str) -> str:
    """"1 model", "3 models"."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def styled(df: Any) -> Any:
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
    """Sortable, filterable summary and run tables of a benchmark result, with bars; a heatmap
    and a side by side. ``frame()`` is the table on show, sorted and filtered as on screen."""

    _esm = WIDGETS / "benchview.js"
    _css = WIDGETS / "benchview.css"

    tables = traitlets.Dict().tag(sync=True)  # table.table_payload() of "summary" and "runs"
    view = traitlets.Unicode("summary").tag(sync=True)
    sort_by = traitlets.Unicode("").tag(sync=True)
    ascending = traitlets.Bool(True).tag(sync=True)
    filter = traitlets.Unicode("").tag(sync=True)  # table.filter_mask()'s language
    title = traitlets.Unicode("").tag(sync=True)

    heatmap = traitlets.Dict().tag(sync=True)  # grid.heatmap_payload(): configuration x metric
    axes = traitlets.Dict().tag(sync=True)  # grid.axes_payload(): grid axis x grid axis, {} unless two axes
    answers = traitlets.Dict().tag(sync=True)  # grid.answers_payload(): for the side by side
    pick_a = traitlets.Unicode("").tag(sync=True)
    pick_b = traitlets.Unicode("").tag(sync=True)
    verdict = traitlets.Unicode("").tag(sync=True)  # the result's compare(pick_a, pick_b), when it has one

    def __init__(self, results: Any, *, title: str = "", view: str = "summary", **kwargs: Any) -> None:
        self.results = results
        self._ready = False  # the picks are set in super().__init__: compare once, after it
        self.runs = as_frame(results)
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
        self._ready = True
        self._compare()

    @traitlets.validate("view")
    def _valid_view(self, proposal: Any) -> str:
        if proposal["value"] not in VIEWS:
            raise traitlets.TraitError("view is 'summary' or 'runs', 'heatmap' or 'side'")
        return proposal["value"]

    @traitlets.observe("pick_a", "pick_b")
    def _picked(self, change: Any) -> None:
        if self._ready:
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

    def side_by_side(self, a: str | None = None, b: str | None = None) -> Any:
        """The answers of configurations ``a`` and ``b`` (default: the two picks) to the same cases."""
        return side_by_side(self.runs, a or self.pick_a, b or self.pick_b)

    def frame(self) -> Any:
        """The table on show, filtered and sorted as on screen (the heatmap's values; the side by side's answers)."""
        import pandas as pd

        if self.view == "heatmap":
            h = self.heatmap
            return pd.DataFrame(h["values"], index=h["rows"], columns=[m["key"] for m in h["metrics"]])
        if self.view == "side":
            return self.side_by_side()
        df = self.summary if self.view == "summary" else self.runs
        return shown_rows(df, self.sort_by, self.ascending, self.filter)

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

    def _ipython_display_(self) -> None:
        display_with_note(self, f"BenchmarkView ({self.title})")
