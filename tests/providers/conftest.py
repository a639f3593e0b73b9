"""Fixtures for the remote-provider tests: a REAL OpenAI-compatible server
(llama_cpp.server with SmolLM2 for chat and MiniLM for embeddings), a scriptable loopback
fault server, and a fake clock so waits are asserted without being slept."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_server import FaultServer  # noqa: E402
from provider_helpers import SERVER_KEY, FakeTime  # noqa: E402

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
def home(tmp_path, monkeypatch) -> Path:
    """A bare ELIZA_NB_HOME (these tests need no local model files), no provider keys set."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("ELIZA_NB_HOME", str(h))
    for var in list(os.environ):
        if var.endswith(("_API_KEY", "_ACCESS_TOKEN", "_MODEL")) or var in ("GOOGLE_CLOUD_PROJECT", "VERTEX_REGION"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./.env from the working directory
    return h


@pytest.fixture
def fault_server():
    """A scriptable loopback HTTP/1.1 server (see fault_server.py); stopped after the test."""
    server = FaultServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()
