"""Helpers shared by the reliability tests (a module, not conftest, so tests import it by name)."""

from __future__ import annotations

import socket


class FakeTime:
    """Injected clock/sleep: sleeping advances the clock at once and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line(text: str) -> str:
    """``text`` stripped, after asserting it is one line and no traceback."""
    assert "\n" not in text.strip() and "Traceback" not in text, text[:500]
    return text.strip()
