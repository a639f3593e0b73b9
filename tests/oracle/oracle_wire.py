"""What the SDK-oracle tests add to tests/providers/fault_server.py: a scripted answer of
named SSE events (as Anthropic sends them; fault_server.raw_stream writes Gemini's bare JSON
error lines) and the field-by-field comparison of two recorded requests.

A difference is named by where it is: ``method``, ``path``, ``query.<name>``,
``header.<lowercase name>`` or ``body.<dotted path>`` (list items as ``[i]``). Each test
module lists the differences it accepts in one ``DELIBERATE`` dict (name or fnmatch
pattern -> reason); :func:`assert_same_wire` fails on any other difference, and on an
expected deliberate difference that did not happen (a stale entry).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fault_server import Behaviour, Recorded, raw_stream  # noqa: F401 - raw_stream re-exported

#: the one fake key both sides get; auth headers are compared as equal between them
KEY = "sk-oracle-Fake0Key1For2Both3Sides"
#: derived from the body, which is compared field by field: a body difference is reported once, there
DERIVED_HEADERS = frozenset({"content-length"})
MISSING = "<absent>"


def _start(h: Any, content_type: str) -> None:
    h.send_response(200)
    h.send_header("Content-Type", content_type)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()


def _chunk(h: Any, data: bytes) -> None:
    h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    h.wfile.flush()


def named_sse(events: Iterable[tuple[str | None, Any]]) -> Behaviour:
    """A chunked text/event-stream of ``event: name`` + ``data: json`` pairs (Anthropic's form)."""
    payload = [(name, data if isinstance(data, str) else json.dumps(data)) for name, data in events]

    def run(h: Any) -> None:
        _start(h, "text/event-stream")
        for name, data in payload:
            _chunk(h, ((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode())
        h.wfile.write(b"0\r\n\r\n")

    return run


def _flatten(value: Any, at: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        if not value:
            out[at] = {}
        for k, v in value.items():
            _flatten(v, f"{at}.{k}", out)
    elif isinstance(value, list) and value and all(isinstance(v, (Mapping, list)) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f"{at}[{i}]", out)
    else:
        out[at] = value  # scalars and lists of scalars are compared whole


def _same(a: Any, b: Any) -> bool:
    # JSON true is not 1, and 20 is 20.0: compare bools by type, numbers by value.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def wire_fields(r: Recorded) -> dict[str, Any]:
    """One request as flat named fields (method, path, query.*, header.*, body.*)."""
    split = urlsplit(r.path)
    out: dict[str, Any] = {"method": r.method, "path": split.path}
    for name, values in parse_qs(split.query, keep_blank_values=True).items():
        out[f"query.{name}"] = values
    for name, value in r.headers.items():
        if name.lower() not in DERIVED_HEADERS:
            out[f"header.{name.lower()}"] = value
    if r.body is not None:
        _flatten(r.body, "body", out)
    return out



def covers(pattern: str, field: str) -> bool:
    """``pattern`` (a field name or fnmatch pattern; ``[*]`` is any list index) names ``field``
    or an object holding it."""
    pattern = pattern.replace("[", "[[]")  # brackets are list indices here, not character classes
    return any(fnmatchcase(f, pattern) for f in (field, *_parents(field)))


def _parents(field: str) -> list[str]:
    out, cut = [], len(field)
    while (cut := max(field.rfind(".", 0, cut), field.rfind("[", 0, cut))) > 0:
        out.append(field[:cut])
    return out


def wire_diff(sdk: Recorded, ours: Recorded) -> dict[str, tuple[Any, Any]]:
    """``{field: (the SDK's value, eliza_nb's value)}`` for every field that differs."""
    a, b = wire_fields(sdk), wire_fields(ours)
    return {k: (a.get(k, MISSING), b.get(k, MISSING)) for k in sorted(set(a) | set(b))
            if k not in a or k not in b or not _same(a[k], b[k])}


def assert_same_wire(sdk: Recorded, ours: Recorded, deliberate: Mapping[str, str],
                     expect: Iterable[str] = ()) -> dict[str, tuple[Any, Any]]:
    """Compare what the SDK and eliza_nb sent for the same logical call.

    A header difference must match some ``deliberate`` entry (SDK telemetry is on every
    request). Any other difference (method, path, query, body) must match one of ``expect``,
    the deliberate differences this very call is known to show; each of those must be a
    ``deliberate`` entry and must occur (so a stale entry fails too). Returns the differences.
    """
    expect = list(expect)
    diff = wire_diff(sdk, ours)
    for pattern in expect:
        assert pattern in deliberate, f"{pattern!r} is not a DELIBERATE entry"

    def explained(k: str) -> bool:
        return any(covers(p, k) for p in (deliberate if k.startswith("header.") else expect))

    unexplained = {k: v for k, v in diff.items() if not explained(k)}
    assert not unexplained, "wire differences from the official SDK that are not deliberate:\n" + "\n".join(
        f"  {k}: SDK {v[0]!r} / eliza_nb {v[1]!r}" for k, v in unexplained.items())
    for pattern in expect:
        assert any(covers(pattern, k) for k in diff), f"expected deliberate difference {pattern!r} did not occur"
    return diff
