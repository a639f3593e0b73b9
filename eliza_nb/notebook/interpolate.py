"""``{var}`` interpolation of notebook variables into prompts, done exactly once.

Uses :class:`string.Formatter` field parsing, so ``{name}``, ``{obj.attr}``,
``{items[0]}``, ``{x!r}`` and ``{x:.2f}`` work and ``{{`` / ``}}`` are literal braces.
Nothing is evaluated: ``{__import__('os')}`` is looked up as a *name* (and not found),
and dunder attributes are refused, so a prompt can never run code.

What a template builds is bounded twice: each width or precision by MAX_SPEC_NUMBER, and
the whole expansion by ``Eliza.max_cell_chars`` (counted while it is built, so 2,000
``{x:>9999}`` fields stop after the first hundred instead of building 20 million characters).
"""

from __future__ import annotations

import re
import string

# string.Formatter's own field-name parser ("a.b[0]" -> "a", [(True, "b"), (False, 0)]): the
# C helper string.py imports, so fields split exactly as str.format splits them.
from _string import formatter_field_name_split
from collections.abc import Mapping
from typing import Any

#: the largest width or precision a format spec may ask for: ``{x:>999999999}`` would
#: otherwise build a gigabyte string and take the kernel down
MAX_SPEC_NUMBER = 10_000
_NUMBERS = re.compile(r"\d+")


class InterpolationError(ValueError):
    """One-line problem with a prompt template."""

    def __init__(self, message: str) -> None:
        from .parser import one_line

        super().__init__(one_line(message))


class _NamespaceFormatter(string.Formatter):
    def __init__(self, namespace: Mapping[str, Any], template: str, max_chars: int) -> None:
        self.namespace, self.template = namespace, template
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
