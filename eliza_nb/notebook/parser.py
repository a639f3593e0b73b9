"""Parse ``%eliza`` / ``%%eliza`` lines into typed argument objects.

The line is split shell-style (:func:`shlex.split`) so quoted values and JSON survive,
then handed to an :mod:`argparse` parser per subcommand. Every problem becomes a
:class:`MagicUsageError` of one line that shows the valid form; ``--help`` becomes
:class:`HelpRequested` carrying the help text. Nothing here touches IPython.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, NoReturn

from ..core.errors import ConfigError
from ..core.settings import SETTINGS, Setting

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with control characters shown escaped (``\\x0c``): a token echoed back in a
    message must not break it into lines (str.splitlines breaks on \\x0b-\\x0d, \\x1c-\\x1e, ...)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class MagicUsageError(ValueError):
    """A malformed magic line; the message is one line and includes the valid form."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class HelpRequested(Exception):
    """``--help`` was given; ``text`` is what to show."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class MagicParser(argparse.ArgumentParser):
    """argparse that raises MagicUsageError / HelpRequested instead of printing and exiting."""

    def __init__(self, prog: str, description: str) -> None:
        super().__init__(prog=prog, description=description, add_help=True, allow_abbrev=False, exit_on_error=False)

    def error(self, message: str) -> NoReturn:
        raise MagicUsageError(f"{message}; usage: {' '.join(self.format_usage().split())[7:]}")

    def print_help(self, file: Any = None) -> None:
        raise HelpRequested(self.format_help())

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise MagicUsageError((message or "invalid arguments").strip())


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def identifier(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid variable name")
    return text


@dataclass
class GenerateArgs:
    """``%%eliza generate``: the prompt is the cell body; ``settings`` holds the model
    settings given as flags, by setting name (``{"max_output_tokens": 40}``)."""

    provider: str | None = None
    model_class: str | None = None
    model: str | None = None
    preset: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    format: str | None = None  # None: Eliza.default_format
    output: str | None = None
    no_cache: bool = False
    strict: bool = False
    no_stream: bool = False
    no_interpolate: bool = False
    auto: bool = False

    def call_options(self) -> dict[str, Any]:
        """Options for Runtime.generate/stream: only what the user set."""
        names = ("provider", "model_class", "model", "preset", "system")
        opts = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        opts.update((k, v) for k, v in self.settings.items() if v is not None)
        if self.no_cache:
            opts["cache"] = False  # even when [cache] generation = true
        if self.strict:
            opts["strict"] = True  # an empty blocked answer is a ContentBlocked error, not a note
        if self.auto and self.model_class is None:
            opts["model_class"] = "auto"  # the runtime picks, and the footer says why
        return opts


@dataclass
class EmbedArgs:
    """``%eliza embed TEXT`` or ``%%eliza embed`` with one text per line."""

    provider: str | None = None
    model: str | None = None
    output: str | None = None
    text: list[str] = field(default_factory=list)


@dataclass
class NoArgs:
    """Subcommands without options."""


FORMATS = ("markdown", "text", "json", "code")


class _SettingFlag(argparse.Action):
    """Stores a setting flag's value into ``namespace.settings`` under the setting's name
    (absent when no setting flag is given: GenerateArgs then starts with an empty dict)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        namespace.settings = {**getattr(namespace, "settings", {}), self.dest: values}


def _setting_value(spec: Setting) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return spec.parse(text)
        except ConfigError as exc:  # argparse puts the flag in front: the setting's name would repeat it
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{spec.name}: ")) from None

    parse.__name__ = spec.name
    return parse


def add_setting_flags(p: MagicParser) -> None:
    """One flag per model setting, from its declaration: ``--top-p``, ``-t/--temperature``,
    ``--max-tokens`` (a setting's alias names its flag), ``--stop S [S ...]``."""
    for spec in SETTINGS.values():
        flags = [f for f in (spec.flag, "--" + spec.user_name.replace("_", "-")) if f]
        if spec.kind is str:
            p.add_argument(*flags, dest=spec.name, action=_SettingFlag, nargs="+", metavar="S",
                           help=f"{spec.help}; one or more")
        else:
            p.add_argument(*flags, dest=spec.name, action=_SettingFlag, type=_setting_value(spec),
                           metavar=spec.user_name.upper(), help=spec.summary())


def add_model_flags(p: MagicParser) -> None:
    """Where a text call goes and how: -p, -c, -m, --preset, one flag per setting, --system."""
    p.add_argument("-p", "--provider", help="provider id, or provider:class / provider:model")
    p.add_argument("-c", "--model-class", dest="model_class", choices=("small", "medium", "large"))
    p.add_argument("-m", "--model", help="a model id (overrides the class's catalog model)")
    p.add_argument("--preset", help="creative, balanced, precise, or a registered preset")
    add_setting_flags(p)
    p.add_argument("--system", help="system prompt")


def generate_parser() -> MagicParser:
    p = MagicParser("%%eliza generate", "Generate text from the prompt in the cell body; {var} interpolates notebook variables.")
    add_model_flags(p)
    p.add_argument("-f", "--format", choices=FORMATS,
                   help="how to render the answer: markdown; text; code (the first code block, the prose folded "
                        "below); json (the first JSON value, or why there is none). Default: markdown, or "
                        "%%config Eliza.default_format")
    p.add_argument("-o", "--output", type=identifier, metavar="VAR", help="store the Result in this variable")
    p.add_argument("--no-cache", dest="no_cache", action="store_true")
    p.add_argument("--strict", action="store_true",
                   help="a prompt or answer a provider's filter blocks is an error (ContentBlocked), not an empty answer")
    p.add_argument("--no-stream", dest="no_stream", action="store_true")
    p.add_argument("--no-interpolate", dest="no_interpolate", action="store_true")
    p.add_argument("--auto", action="store_true", help="choose the model class from the prompt (speed, complexity)")
    return p


def embed_parser() -> MagicParser:
    p = MagicParser("%eliza embed", "Embed TEXT (line magic) or each line of the cell (cell magic).")
    p.add_argument("-p", "--provider")
    p.add_argument("-m", "--model")
    p.add_argument("-o", "--output", type=identifier, metavar="VAR", help="store the vector/DataFrame in this variable")
    p.add_argument("text", nargs="*", help="the text to embed (line magic)")
    return p


def simple_parser(name: str, description: str) -> Callable[[], MagicParser]:
    return lambda: MagicParser(f"%eliza {name}", description)


@dataclass(frozen=True)
class Subcommand:
    """One ``%eliza NAME``: how to parse it, into what, and what runs it.

    ``handler(shell, args, cell)`` returns the cell's value (or None); it lives in the
    notebook module for its area (notebook/commands/), so no module holds every command.
    """

    name: str
    make_parser: Callable[[], MagicParser]
    args_type: type
    summary: str
    handler: Callable[[Any, Any, str | None], Any] | None = None


SUBCOMMANDS: dict[str, Subcommand] = {}


def register_subcommand(name: str, make_parser: Callable[[], MagicParser], args_type: type, summary: str,
                        handler: Callable[[Any, Any, str | None], Any] | None = None) -> None:
    """Add (or replace) a subcommand."""
    SUBCOMMANDS[name] = Subcommand(name, make_parser, args_type, summary, handler)



_PARSERS: dict[str, tuple[Callable[[], MagicParser], MagicParser]] = {}


def _parser_for(entry: Subcommand) -> MagicParser:
    """The subcommand's parser, built once: building one costs more than the rest of a
    ``%%eliza generate`` cell's own work (argparse formats help and looks up translations per
    option), and ``parse_args`` keeps no state on the parser, so one instance serves every line."""
    cached = _PARSERS.get(entry.name)
    if cached is None or cached[0] is not entry.make_parser:  # re-registered: build the new one
        cached = _PARSERS[entry.name] = (entry.make_parser, entry.make_parser())
    return cached[1]


def parse_line(line: str) -> tuple[str, Any]:
    """``'generate -t 0 -o ans'`` -> ``('generate', GenerateArgs(settings={'temperature': 0.0}, output='ans'))``."""
    try:
        tokens = shlex.split(line, posix=True)
    except ValueError as exc:  # unbalanced quote
        raise MagicUsageError(f"cannot split the line: {exc} (check your quotes)") from None
    if not tokens:
        raise MagicUsageError(f"a subcommand is needed: {', '.join(SUBCOMMANDS)} (try %eliza help)")
    name, rest = tokens[0], tokens[1:]
    if name in ("-h", "--help"):
        name = "help"
    entry = SUBCOMMANDS.get(name)
    if entry is None:
        raise MagicUsageError(f"unknown subcommand {name!r}; choose one of: {', '.join(SUBCOMMANDS)}")
    try:
        ns = _parser_for(entry).parse_args(rest)
    except argparse.ArgumentError as exc:
        raise MagicUsageError(str(exc)) from None
    values = {f.name: getattr(ns, f.name) for f in fields(entry.args_type) if hasattr(ns, f.name)}
    return name, entry.args_type(**values)


def help_text() -> str:
    width = max(len(n) for n in SUBCOMMANDS)
    lines = ["%eliza / %%eliza subcommands (add --help to any for its options):"]
    lines += [f"  {n.ljust(width)}  {sub.summary}" for n, sub in SUBCOMMANDS.items()]
    return "\n".join(lines)
