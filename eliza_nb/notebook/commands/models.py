"""``%eliza models [-p PROVIDER] [--refresh] [-o VAR]``: the model ids each provider serves.

The list comes from each API's own listing endpoint through ``Runtime.models`` (cached in
the home for a day, core/discovery.py). It shows inline as a table with the catalog's ids
marked; every note (a provider skipped for want of a key, a cached list shown because the
live one failed) is one line under it; a failure is the listing's one-line error.
"""

from __future__ import annotations

import html
import math
import warnings
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ..parser import MagicParser, identifier, register_subcommand
from . import runtime

_MUTED = "color:var(--jp-ui-font-color2,#777)"


@dataclass
class ModelsArgs:
    """``%eliza models``."""

    provider: str | None = None
    refresh: bool = False
    output: str | None = None


def models_parser() -> MagicParser:
    p = MagicParser("%eliza models", "The model ids each provider's own listing names (cached in the home for a day): "
                                     "context window and prices where the listing says; the catalog's ids marked ★.")
    p.add_argument("-p", "--provider", help="only this provider (default: every provider usable now)")
    p.add_argument("--refresh", action="store_true", help="ask the providers again instead of using the cache")
    p.add_argument("-o", "--output", type=identifier, metavar="VAR", help="store the DataFrame in this variable")
    return p


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        import pandas as pd

        if pd.isna(value):
            return ""
        if isinstance(value, pd.Timestamp):
            return value.strftime("%Y-%m-%d")
    except (TypeError, ValueError):
        pass
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def models_html(df: Any) -> str:
    """The listing as an HTML table: the catalog's ids first and marked ★ with their class."""
    if df.empty:
        return f"<span style='{_MUTED}'>no models listed</span>"
    view = df.assign(_default=df["catalog_class"] == "").sort_values(["provider", "_default", "model"], kind="stable")
    head = ("<tr><th>provider</th><th>model</th><th>catalog class</th><th>context</th><th>$ in / 1M</th>"
            "<th>$ out / 1M</th><th>created</th><th>source</th></tr>")
    rows = []
    for r in view.itertuples(index=False):
        model = html.escape(r.model)
        if r.catalog_class:
            model = f"<b>★ {model}</b>"
        cells = [html.escape(r.provider), model, html.escape(r.catalog_class), _cell(r.context_window),
                 _cell(r.input_price), _cell(r.output_price), _cell(r.created), html.escape(r.source)]
        rows.append("<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>")
    counts = df.groupby("provider").size()
    caption = " · ".join(f"{html.escape(str(p))}: {n} models" for p, n in counts.items())
    return (f"<div class='eliza-models'><table><caption style='{_MUTED};text-align:left'>{caption} · "
            f"★ the catalog's id</caption><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>")


def do_models(shell: Any, args: ModelsArgs, cell: str | None) -> None:
    if cell is not None and cell.strip():
        raise UsageError("%eliza models takes no cell body; use the line magic %eliza models [-p PROVIDER]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the notes are shown below, each once
        df = runtime().models(args.provider, refresh=args.refresh)
    if args.output:
        shell.user_ns[args.output] = df
    display({"text/html": models_html(df), "text/plain": df.to_string(index=False) if len(df) else "no models listed"},
            raw=True, metadata={"eliza_nb": {"command": "models", "providers": sorted(set(df["provider"]))}})
    for note in df.attrs.get("notes", []):
        print(note)


register_subcommand("models", models_parser, ModelsArgs, "the model ids each provider serves (-p PROVIDER, --refresh)",
                    do_models)
