"""Fixtures for the reliability suite: the loopback fault server and the counting fake
provider are reused from tests/providers and tests/cache; a fake clock makes retry
schedules assertable without sleeping them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for sub in (HERE, TESTS / "providers", TESTS / "cache"):
    if str(sub) not in sys.path:
        sys.path.insert(0, str(sub))

# after the sys.path entries above: these modules live in those directories
import fakeprov  # noqa: E402,F401  (registers the fake_embed protocol)
from rel_helpers import FakeTime  # noqa: E402


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def rhome(bare_home: Path) -> Path:
    """A bare ELIZA_NB_HOME, no provider keys in the environment, no ./.env in reach."""
    return bare_home


@pytest.fixture
def fault_server(server):
    """The loopback server (tests/conftest.py's ``server``) under this folder's older name."""
    return server
