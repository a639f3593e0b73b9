"""``%eliza`` / ``%%eliza``: the notebook's way into the runtime.

The line parses into a typed args object (parser.py); the subcommand's handler (in the
commands/ module for its area) runs it through the shared Runtime. A magic never calls
a provider directly. Malformed lines are one-line UsageErrors; provider problems are
ElizaErrors, which IPython renders as one line too (``_render_traceback_``).
"""

from __future__ import annotations

import importlib
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from .interpolate import InterpolationError, interpolate
from .parser import SUBCOMMANDS, HelpRequested, MagicUsageError, parse_line

#: modules that register subcommands when imported (one per area), in the order help lists them
COMMAND_MODULES = ["commands", "commands.config", "commands.panel", "commands.cache", "commands.bench",
                   "commands.replay", "commands.models", "commands.explain", "commands.chat"]


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}")


@magics_class
class ElizaMagics(Magics):
    """The %eliza line magic and %%eliza cell magic."""

    @line_cell_magic
    @no_var_expand  # IPython would eval() {expr} in the line: a prompt must never run as code
    def eliza(self, line: str, cell: str | None = None) -> Any:
        """%eliza SUBCOMMAND [options]  —  run `%eliza help` for the list."""
        _check_size(line, cell)
        assert self.shell is not None  # IPython sets it when it registers the magics
        try:
            name, args = parse_line(expand_line(line, self.shell.user_ns))
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


def expand_line(line: str, namespace: Any) -> str:
    """``{name}`` in a magic line, filled like IPython would, but looked up, never evaluated
    (interpolate.py's rules); a line that does not interpolate is used as written, as IPython does."""
    if "{" not in line:
        return line
    try:
        return interpolate(line, namespace)
    except InterpolationError:
        return line


def _check_size(line: str, cell: str | None) -> None:
    """Refuse a cell body (or line) above ``Eliza.max_cell_chars``: a pasted or generated
    10 MB cell would otherwise be tokenised and truncated at length before anything happens."""
    from .config import eliza_config

    limit = eliza_config().max_cell_chars
    for what, text in (("cell body", cell), ("magic line", line)):
        if limit and text is not None and len(text) > limit:
            raise UsageError(f"the {what} is {len(text):,} characters; the limit is {limit:,} "
                             "(%config Eliza.max_cell_chars = N to change it, 0 for no limit)")


_loaded: dict[int, ElizaMagics] = {}


def load_ipython_extension(ipython: Any) -> None:
    _load_commands()
    magics = ElizaMagics(ipython)
    ipython.register_magics(magics)
    _loaded[id(ipython)] = magics
    from .config import attach

    attach(ipython)  # %config Eliza.* and ipython_config.py's c.Eliza.* write the session
    _say_missing_models()


def _say_missing_models() -> None:
    """A notebook's first cell says what to install when the embedded models are missing and
    the session would use them (no remote provider configured as the default)."""
    from ..adapters.local_models import setup_problem

    problem = setup_problem()
    if problem is None:
        return
    import eliza_nb

    from ..core.errors import ElizaError

    try:
        rt = eliza_nb.runtime()
        uses_local = "llama_local" in (rt.session.state.provider, rt.resolve_embedding().provider)
    except ElizaError:  # a broken config.toml says so itself on the first call
        uses_local = True
    if uses_local:
        print(f"eliza_nb: {problem.replace('pip install', '%pip install', 1)}; "
              "or set a provider key and choose it with %config Eliza.default_provider = 'openai'")


def unload_ipython_extension(ipython: Any) -> None:
    if _loaded.pop(id(ipython), None) is not None:
        ipython.magics_manager.magics["line"].pop("eliza", None)
        ipython.magics_manager.magics["cell"].pop("eliza", None)
