"""Fixtures for record/replay: runtimes over the scripted provider (scripted.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scripted import CALLS, FAKE_KEY, config


@pytest.fixture
def make_rt(tmp_path, monkeypatch):
    """``make_rt(env=..., **config_options)`` -> a Runtime over the scripted provider (closed after)."""
    from eliza_nb.core.runtime import Runtime

    monkeypatch.chdir(tmp_path)  # no stray ./.env; archives land in the test's folder
    CALLS.clear()
    made = []

    def make(env: dict[str, str] | None = None, home: str = "home", **options: Any) -> Runtime:
        rt = Runtime(tmp_path / home, config=config(**options), env={} if env is None else env)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def paid_env() -> dict[str, str]:
    return {"PAID_API_KEY": FAKE_KEY}
