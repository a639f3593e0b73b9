"""``{var}`` interpolation of notebook variables into prompts, done exactly once.

Uses :class:`string.Formatter` field parsing, so ``{name}``, ``{obj.attr}``,
``{items[0]}``, ``{x!r}`` and ``{x:.2f}`` work and ``{{`` / ``}}`` are literal braces.
Nothing is evaluated: ``{__import__('os')}`` is looked up as a *name* (and not found),
and dunder attributes are refused, so a prompt can never run code.

What a template builds is bounded twice: each width or precision by MAX_SPEC_NUMBER, and
the whole expansion by ``Eliza.max_cell_chars`` (counted while it is built, so 2,000
``{x:>9999}`` fields stop after the first hundred instead of building 20 million characters).

IPython's history is readable too, when the namespace is the running shell's:

- ``{In[3]}``: the source of cell 3 as it was typed (IPython's raw input, so a ``%%eliza``
  cell reads as written, not as IPython's ``get_ipython().run_cell_magic(...)`` rewrite);
- ``{Out[3]}``: output 3, as text the way every value is (``str``; ``{Out[3]!r}`` for repr);
- ``{_}``: the last output (IPython's ``_``);
- negative numbers count back as in IPython's ``In`` list: while a cell runs, IPython has
  already stored it, so ``In[-1]`` is the running cell itself (refused, with a pointer) and
  ``{In[-2]}`` is **the previous cell**, ``{In[-3]}`` the one before.

The number inside ``[...]`` must be an integer literal (``-?[0-9]+``); anything else is
refused, never evaluated. Interpolation is one pass: a source pulled in by ``{In[2]}`` that
holds ``{x}`` stays ``{x}``. A user variable named ``In`` or ``Out`` is an ordinary variable.
"""

from __future__ import annotations

import re
import string

# string.Formatter's own field-name parser ("a.b[0]" -> "a", [(True, "b"), (False, 0)]): the
# C helper string.py imports, so fields split exactly as str.format splits them.
from _string import formatter_field_name_split
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: the largest width or precision a format spec may ask for: ``{x:>999999999}`` would
#: otherwise build a gigabyte string and take the kernel down
MAX_SPEC_NUMBER = 10_000
_NUMBERS = re.compile(r"\d+")
_CELL_NUMBER = re.compile(r"-?[0-9]{1,9}")


class InterpolationError(ValueError):
    """One-line problem with a prompt template."""

    def __init__(self, message: str) -> None:
        from .parser import one_line

        super().__init__(one_line(message))


@dataclass(frozen=True)
class History:
    """IPython's history as interpolation reads it.

    ``parsed`` and ``outputs`` are the shell's own ``In`` list and ``Out`` dict (recognised
    by identity in the namespace), ``raw`` the sources as typed, parallel to ``parsed``;
    ``running`` the number of the cell being run when IPython stored it (None otherwise).
    """

    parsed: Sequence[str]
    raw: Sequence[str]
    outputs: Mapping[int, Any]
    running: int | None

    def item(self, field_name: str, name: str, container: Any, key: Any) -> tuple[bool, Any]:
        """(True, value) when ``container`` is the shell's In or Out; (False, None) otherwise."""
        if container is self.parsed:
            return True, self._input(field_name, name, _cell_number(field_name, name, key))
        if container is self.outputs:
            return True, self._output(field_name, _cell_number(field_name, name, key))
        return False, None

    def _input(self, field_name: str, name: str, n: int) -> str:
        last = len(self.raw) - 1
        if self.running == last:
            last -= 1  # the running cell is not an input to itself
        at = n if n >= 0 else len(self.raw) + n
        if self.running is not None and at == self.running:
            raise InterpolationError(f"{{{field_name}}} is this cell itself; the previous cell is {{{name}[-2]}}"
                                     if n < 0 else f"{{{field_name}}} is this cell itself")
        if not 1 <= at <= last:
            back = len(self.raw) - last  # In[-back] is the newest readable input
            valid = (f"valid: {name}[1] … {name}[{last}], or {name}[-{back}] … {name}[-{last + back - 1}]"
                     if last >= 1 else "no earlier cell has run yet")
            raise InterpolationError(f"{{{field_name}}}: no input {n}; {valid}")
        return self.raw[at]

    def _output(self, field_name: str, n: int) -> Any:
        if n in self.outputs:
            return self.outputs[n]
        cells = sorted(self.outputs)
        if not cells:
            have = "no cell has an output yet"
        elif len(cells) <= 8:
            have = "outputs exist for " + ", ".join(map(str, cells))
        else:
            have = f"outputs exist for {len(cells)} cells between {cells[0]} and {cells[-1]}"
        raise InterpolationError(f"{{{field_name}}}: cell {n} has no output; {have}")


def _cell_number(field_name: str, name: str, key: Any) -> int:
    """``key`` as a cell number: an int, or the text of an integer literal (the formatter hands
    ``[-1]`` over as the string "-1"). Parsed, never evaluated: ``In[__import__('os')]`` is refused."""
    if isinstance(key, int):
        return key
    if isinstance(key, str) and _CELL_NUMBER.fullmatch(key):
        return int(key)
    raise InterpolationError(f"{{{field_name}}}: {name}[...] takes a cell number, e.g. {{{name}[3]}} or "
                             f"{{{name}[-2]}} for the previous cell; nothing inside [...] is evaluated")


def shell_history(namespace: Mapping[str, Any]) -> History | None:
    """The running IPython shell's history when ``namespace`` holds its ``In`` (the user
    namespace); None outside IPython or for another namespace."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebook layer
        return None
    shell: Any = get_ipython()
    manager: Any = getattr(shell, "history_manager", None)
    parsed: Sequence[str] = getattr(manager, "input_hist_parsed", None) or [""]
    if namespace.get("In") is not parsed:  # a user's own In, another namespace, or no shell
        return None
    # The ExecutionResult of the cell running now: IPython gives it to the displayhook for
    # the cell's run and stores the cell's source before (when it stores history at all).
    running = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    count = getattr(running, "execution_count", None)
    stored = bool(getattr(getattr(running, "info", None), "store_history", False))
    return History(parsed, manager.input_hist_raw, manager.output_hist,
                   count if stored and isinstance(count, int) else None)


class _NamespaceFormatter(string.Formatter):
    def __init__(self, namespace: Mapping[str, Any], template: str, max_chars: int) -> None:
        self.namespace, self.template = namespace, template
        self.history = shell_history(namespace) if "[" in template else None  # only indexing reads history
        self.max_chars = max_chars  # 0: no limit
        self.built = 0  # characters built so far: the template's literal text and every field's text

    def _add(self, text: str) -> str:
        self.built += len(text)
        if self.max_chars and self.built > self.max_chars:
            raise InterpolationError(f"the interpolated prompt passes {self.max_chars:,} characters "
                                     "(Eliza.max_cell_chars); %config Eliza.max_cell_chars = N to raise it, "
                                     "0 for no limit, or use --no-interpolate")
        return text

    def parse(self, format_string: str) -> Any:
        # Literal text counts once, in the template itself; a nested format spec ("{x:>{n}}"
        # parses ">") is a strict substring of it, so never the same object.
        top = format_string is self.template
        for literal, *field in super().parse(format_string):
            yield (self._add(literal) if top else literal, *field)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for number in _NUMBERS.findall(format_spec):
            if len(number) > 6 or int(number) > MAX_SPEC_NUMBER:
                raise InterpolationError(f"format spec {format_spec[:40]!r}: widths and precisions above "
                                         f"{MAX_SPEC_NUMBER:,} are not interpolated")
        return self._add(super().format_field(value, format_spec))

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        first, rest = _split_field(field_name)
        if first.isdigit():
            raise InterpolationError("empty or numbered {} fields are not interpolated: name a variable, or write {{ }} for literal braces")
        if first.startswith("__"):
            raise InterpolationError(f"{{{field_name}}}: names starting with __ are not interpolated")
        if first not in self.namespace:
            raise InterpolationError(
                f"{{{field_name}}}: no variable {first!r} in the notebook; define it, "
                "write {{ }} for a literal brace, or use --no-interpolate"
            )
        obj = self.namespace[first]
        if rest and not rest[0][0] and self.history is not None:
            found, value = self.history.item(field_name, first, obj, rest[0][1])
            if found:
                obj, rest = value, rest[1:]
        for is_attr, key in rest:
            if is_attr:
                if str(key).startswith("_"):
                    raise InterpolationError(f"{{{field_name}}}: private attribute {key!r} is not interpolated")
                try:
                    obj = getattr(obj, key)
                except AttributeError:
                    raise InterpolationError(f"{{{field_name}}}: {type(obj).__name__} has no attribute {key!r}") from None
            else:
                try:
                    obj = obj[key]
                except (KeyError, IndexError, TypeError) as exc:
                    raise InterpolationError(f"{{{field_name}}}: cannot index with [{key}] ({type(exc).__name__})") from None
        return obj, first


def _split_field(field_name: str) -> tuple[str, list[tuple[bool, Any]]]:
    try:
        first, rest = formatter_field_name_split(field_name)
        return str(first), list(rest)
    except ValueError as exc:
        raise InterpolationError(f"{{{field_name}}}: {exc}") from None


def interpolate(template: str, namespace: Mapping[str, Any], max_chars: int | None = None) -> str:
    """Fill ``{...}`` fields from ``namespace``; raise InterpolationError (one line) on any problem,
    including an expansion longer than ``max_chars`` (default ``Eliza.max_cell_chars``; 0 = no limit)."""
    if max_chars is None:
        from .config import eliza_config

        max_chars = eliza_config().max_cell_chars
    formatter = _NamespaceFormatter(namespace, template, max_chars)
    try:
        return formatter.vformat(template, (), {})
    except InterpolationError:
        raise
    except ValueError as exc:
        # Unbalanced braces, bad conversion or format spec.
        raise InterpolationError(
            f"{exc}; write {{{{ or }}}} for a literal brace, or use --no-interpolate"
        ) from None
    except (TypeError, IndexError, KeyError) as exc:
        raise InterpolationError(f"cannot interpolate: {type(exc).__name__}: {exc}") from None
