"""Fixtures for the SDK-oracle tests: one loopback recording server that both the official
SDK and eliza_nb talk to, and an eliza_nb Runtime whose provider entry (written to the test
home's config.toml, as a user would) points at it with a fake key from a variable."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "providers"))  # fault_server (shared with the provider tests)
sys.path.insert(0, str(HERE))

from oracle_wire import KEY  # noqa: E402


@pytest.fixture
def make_runtime(bare_home: Path) -> Iterator[Callable[..., Any]]:
    """``make_runtime(provider, endpoint, key_env, retry_attempts=1)``: a Runtime built from the
    test home's config.toml, whose ``provider`` entry has ``endpoint``; the key is in ``key_env``.
    One attempt by default, so a scripted error is seen as the provider sent it."""
    from eliza_nb.core.runtime import Runtime

    made: list[Runtime] = []

    def make(provider: str, endpoint: str, key_env: str, *, retry_attempts: int = 1, extra: str = "") -> Runtime:
        (bare_home / "config.toml").write_text(
            f'[providers.{provider}]\nendpoint = "{endpoint}"\n{extra}\n'
            f"[retry]\nmax_attempts = {retry_attempts}\n")
        rt = Runtime(bare_home, env={key_env: KEY})
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()
