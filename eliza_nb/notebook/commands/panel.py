"""``%eliza panel``: the widget panels from a magic.

    %eliza panel                      the parameter panel (bound to the session)
    %eliza panel --playground         the parameter panel and a playground under it
    %eliza panel --explorer texts     an embedding explorer of a variable (list or DataFrame)
    %eliza panel --bench results      a benchmark view of a variable
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ..parser import MagicParser, identifier, register_subcommand


@dataclass
class PanelArgs:
    playground: bool = False
    explorer: str | None = None
    bench: str | None = None
    no_params: bool = False
    output: str | None = None


def panel_parser() -> MagicParser:
    p = MagicParser("%eliza panel", "Show the parameter panel (two-way bound to the session), and optionally "
                                    "a playground, an embedding explorer or a benchmark view.")
    p.add_argument("--playground", action="store_true", help="add a playground (prompt, Run/Stop, streamed answer)")
    p.add_argument("--explorer", type=identifier, metavar="VAR",
                   help="explore the embeddings of VAR (texts, or a DataFrame with text and vector columns)")
    p.add_argument("--bench", type=identifier, metavar="VAR", help="show the benchmark DataFrame VAR")
    p.add_argument("--no-params", dest="no_params", action="store_true", help="leave the parameter panel out")
    p.add_argument("-o", "--output", type=identifier, metavar="VAR", help="store the widget (a dict of them when several) in VAR")
    return p


def _variable(shell: Any, name: str, flag: str) -> Any:
    if name not in shell.user_ns:
        raise UsageError(f"%eliza panel {flag} {name}: no variable {name!r} in the notebook")
    return shell.user_ns[name]


def do_panel(shell: Any, args: PanelArgs, cell: str | None) -> None:
    if cell is not None and cell.strip():
        raise UsageError("%eliza panel takes no cell body; use the line magic %eliza panel")
    from .. import widgets

    shown: dict[str, Any] = {}
    # Look variables up before building anything, so a typo shows no half-made panel.
    explore = _variable(shell, args.explorer, "--explorer") if args.explorer else None
    bench = _variable(shell, args.bench, "--bench") if args.bench else None
    only_extras = (args.explorer or args.bench) and not args.playground
    if not args.no_params and not only_extras:
        shown["panel"] = widgets.panel()
    if args.playground:
        shown["playground"] = widgets.playground()
    if explore is not None:
        if hasattr(explore, "tolist") and not hasattr(explore, "columns"):
            explore = explore.tolist()  # a Series or array of texts
        try:
            shown["explorer"] = widgets.explorer(explore)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"%eliza panel --explorer {args.explorer}: {exc}") from None
    if bench is not None:
        try:
            shown["bench"] = widgets.benchmark_view(bench)
        except (TypeError, KeyError) as exc:
            raise UsageError(f"%eliza panel --bench {args.bench}: {exc}") from None
    if not shown:
        raise UsageError("%eliza panel --no-params shows nothing on its own; add --playground, --explorer VAR or --bench VAR")
    for widget in shown.values():
        display(widget)  # the widget's own display: its bundle (metadata naming it) and its reconnect note
    if args.output:
        shell.user_ns[args.output] = next(iter(shown.values())) if len(shown) == 1 else shown


register_subcommand("panel", panel_parser, PanelArgs, "widget panels: parameters, --playground, --explorer VAR, --bench VAR", do_panel)
