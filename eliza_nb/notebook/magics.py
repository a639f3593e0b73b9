"""``%eliza`` / ``%%eliza``: the notebook's way into the runtime.

The line parses into a typed args object (parser.py); the subcommand's handler (in a
commands*.py module for its area) runs it through the shared Runtime. A magic never calls
a provider directly. Malformed lines are one-line UsageErrors; provider problems are
ElizaErrors, which IPython renders as one line too (``_render_traceback_``).
"""

from __future__ import annotations

import importlib
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .interpolate import InterpolationError
from .parser import SUBCOMMANDS, HelpRequested, MagicUsageError, parse_line

#: modules that register subcommands when imported (one per area)
COMMAND_MODULES = ["commands", "commands_config", "commands_panel", "commands_cache", "commands_bench"]


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}")


@magics_class
class ElizaMagics(Magics):
    """The %eliza line magic and %%eliza cell magic."""

    @line_cell_magic
    def eliza(self, line: str, cell: str | None = None) -> Any:
        """%eliza SUBCOMMAND [options]  —  run `%eliza help` for the list."""
        try:
            name, args = parse_line(line)
        except HelpRequested as h:
            print(h.text)
            return None
        except MagicUsageError as exc:
            raise UsageError(str(exc)) from None
        handler = SUBCOMMANDS[name].handler
        if handler is None:  # pragma: no cover - a registration bug, not user input
            raise UsageError(f"%eliza {name} has no handler")
        try:
            return handler(self.shell, args, cell)
        except InterpolationError as exc:
            raise UsageError(str(exc)) from None


_loaded: dict[int, ElizaMagics] = {}


def load_ipython_extension(ipython: Any) -> None:
    _load_commands()
    magics = ElizaMagics(ipython)
    ipython.register_magics(magics)
    _loaded[id(ipython)] = magics
    from .config import attach

    attach(ipython)  # %config Eliza.* and ipython_config.py's c.Eliza.* write the session


def unload_ipython_extension(ipython: Any) -> None:
    if _loaded.pop(id(ipython), None) is not None:
        ipython.magics_manager.magics["line"].pop("eliza", None)
        ipython.magics_manager.magics["cell"].pop("eliza", None)
