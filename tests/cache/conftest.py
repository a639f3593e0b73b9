"""Fixtures for the cache tests: a fresh home and a Runtime over the counting fake provider."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fakeprov  # registers the fake_embed protocol


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("ELIZA_NB_HOME", str(h))
    return h


@pytest.fixture
def make_rt(cache_home):
    """``make_rt(cache={...}, **fake_table_options)`` -> a Runtime on the fake provider (closed after)."""
    from eliza_nb.core.runtime import Runtime

    made = []

    def make(cache=None, home=None, **kw):
        rt = Runtime(home or cache_home, config=fakeprov.fake_config(cache, **kw), env={})
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def rt(make_rt):
    return make_rt()
