"""Helpers shared by the reliability tests (a module, not conftest, so tests import it by name)."""

from __future__ import annotations

# the providers' fake clock and free-port helper (tests/providers is on sys.path via conftest)
from provider_helpers import FakeTime  # noqa: F401
from provider_helpers import free_port as closed_port  # noqa: F401  (bound, then released: nothing listens)


def one_line(text: str) -> str:
    """``text`` stripped, after asserting it is one line and no traceback."""
    assert "\n" not in text.strip() and "Traceback" not in text, text[:500]
    return text.strip()
