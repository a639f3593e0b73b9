"""Fixtures for the remote-provider tests: a REAL OpenAI-compatible server
(llama_cpp.server with SmolLM2 for chat and MiniLM for embeddings), a scriptable loopback
fault server, and a fake clock so waits are asserted without being slept."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provider_helpers import SERVER_KEY, FakeTime


@pytest.fixture(scope="session")
def llama_server(models_home, tmp_path_factory):
    """``python -m llama_cpp.server`` on a free loopback port, serving two models:
    ``smollm2`` (chat) and ``minilm`` (flat embedding vectors). Needs a key (SERVER_KEY)."""
    from loopback_llama import run_llama_server

    try:
        with run_llama_server(models_home, tmp_path_factory.mktemp("llama_server"), SERVER_KEY) as base:
            yield base
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def home(bare_home: Path) -> Path:
    """A bare ELIZA_NB_HOME (these tests need no local model files), no provider keys set."""
    return bare_home


@pytest.fixture
def fault_server(server):
    """The loopback server (tests/conftest.py's ``server``) under this folder's older name."""
    return server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()
