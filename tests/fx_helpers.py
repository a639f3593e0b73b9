"""Helpers for the tests that run eliza_nb against the loopback fault server
(tests/providers/fault_server.py) as the OpenAI-compatible provider ``fx``; the fixtures are
``server``/``frt`` in tests/conftest.py and ``fx`` in tests/notebook/conftest.py. Imported by
name: a module called ``conftest`` is ambiguous when several test folders are collected together."""

from __future__ import annotations

import json
from typing import Any

#: where the OpenAI protocol sends chat requests on the loopback server
CHAT = "/v1/chat/completions"


def delta(text: str, finish: str | None = None) -> str:
    """One streamed chat chunk carrying ``text`` (a data payload for fault_server.sse)."""
    return json.dumps({"model": "m-small", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})


def sent(server: Any) -> list[list[tuple[str, str]]]:
    """(role, content) of every message of every chat request the server received, in order."""
    return [[(m["role"], m["content"]) for m in r.body["messages"]] for r in server.requests_to(CHAT)]
