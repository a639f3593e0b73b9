"""Typed reads of a decoded JSON answer, for the adapters.

A 200 answer of the wrong shape (``choices`` an integer, ``content`` a list, a token
count given as a string) is a :class:`BadResponseError` naming the field and what it
held, so it fails over like any bad answer; it never becomes a raw ``AttributeError`` or
a ``Result.text`` that is not a string. Absent fields and JSON ``null`` read as the
default: providers leave out what they do not report.

    shape = Shape("openai", "chat with gpt-6-luna")
    choices = shape.items(data, "choices", dict, required=True)
    text = shape.get(message, "content", str, at="choices[0].message") or ""
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.errors import BadResponseError
from ..core.types import Usage

#: how a JSON value's type is named in messages
_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               bool: "a boolean", type(None): "null"}


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type ("an object", "a list", "a string", ...)."""
    return _JSON_NAMES.get(type(value), type(value).__name__)


def is_kind(value: Any, kind: type) -> bool:
    """``isinstance``, except that a boolean is not an integer or a number, and an integer
    is a number (JSON does not tell 3 from 3.0)."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    if kind is dict:
        return isinstance(value, Mapping)
    return isinstance(value, kind)


def _path(at: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{at}[{name}]"
    return f"{at}.{name}" if at else name


class Shape:
    """Field reads for one answer: the provider and what was being done go into every message."""

    def __init__(self, provider: str, what: str) -> None:
        self.provider, self.what = provider, what

    def wrong(self, path: str, problem: str) -> BadResponseError:
        """The error for a field of the wrong shape."""
        return BadResponseError(f"{self.what}: {path}: {problem}", provider=self.provider)

    def check(self, value: Any, kind: type, path: str) -> Any:
        """``value`` when it is a ``kind``, else the error naming ``path``."""
        if not is_kind(value, kind):
            raise self.wrong(path, f"expected {_JSON_NAMES[kind]}, got {json_type(value)}")
        return value

    def get(self, obj: Any, name: str, kind: type, *, at: str = "", default: Any = None, required: bool = False) -> Any:
        """``obj[name]`` checked to be a ``kind``; ``default`` when absent or null (an error
        when ``required``). ``at`` is the path of ``obj`` itself, for messages."""
        if type(obj) is not dict:  # the exact type first: every streamed event reads a few fields
            self.check(obj, dict, at or "the answer")
        value = obj.get(name)
        if value is None:
            if required:
                raise self.wrong(_path(at, name), "missing")
            return default
        return value if type(value) is kind else self.check(value, kind, _path(at, name))

    def items(self, obj: Any, name: str, kind: type, *, at: str = "", required: bool = False) -> list[Any]:
        """``obj[name]`` as a list whose every item is a ``kind`` (empty when absent)."""
        values: list[Any] = self.get(obj, name, list, at=at, default=[], required=required)
        for i, value in enumerate(values):
            if type(value) is not kind:
                self.check(value, kind, _path(_path(at, name), i))
        return values

    def usage(self, obj: Any, name: str, prompt: str, completion: str, *, at: str = "") -> Usage:
        """The token counts under ``obj[name]``: integers of at least 0, None where absent."""
        counts = self.get(obj, name, dict, at=at, default={})
        where = _path(at, name)
        found = [self.get(counts, field, int, at=where) for field in (prompt, completion)]
        for field, value in zip((prompt, completion), found, strict=True):
            if value is not None and value < 0:
                raise self.wrong(_path(where, field), f"a negative token count ({value})")
        return Usage(found[0], found[1])

    def vectors(self, rows: list[Any], path: str) -> np.ndarray:
        """(n, d) float32 from one list of numbers per text; ``path`` names a row's field with
        ``{}`` for its index (``"data[{}].embedding"``). Checked at once; only a failure
        looks row by row, to name the first wrong one."""
        try:
            matrix = np.asarray(rows)
        except (ValueError, TypeError):  # ragged or mixed
            matrix = None
        if matrix is not None and matrix.dtype.kind in "fiu" and matrix.ndim == 2 and matrix.shape[1]:
            return np.ascontiguousarray(matrix, dtype=np.float32)
        for i, row in enumerate(rows):
            where = path.format(i)
            if not isinstance(row, list) or not row:
                raise self.wrong(where, f"expected a list of numbers, got {'an empty list' if row == [] else json_type(row)}")
            if any(isinstance(x, list) for x in row):
                raise self.wrong(where, "expected one flat vector per text, got a list of lists (per-token vectors "
                                        "come from a chat model served as an embedding model)")
            for x in row:
                if not is_kind(x, float):
                    raise self.wrong(where, f"expected numbers, found {json_type(x)}")
        raise BadResponseError(f"{self.what}: vectors of different lengths in one answer", provider=self.provider)
