"""Fixtures for the remote-provider tests: a REAL OpenAI-compatible server
(llama_cpp.server with SmolLM2 for chat and MiniLM for embeddings), a scriptable loopback
fault server, and a fake clock so waits are asserted without being slept."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_server import FaultServer  # noqa: E402

#: the key the tests hand to providers; no exception, repr, log or ledger row may show it
SECRET = "sk-test-Zq8v1T0pS3cr3tK3yNeverShow42"
SERVER_KEY = "llama-local-server-key-9f8e7d6c5b4a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(models_home, tmp_path_factory):
    """``python -m llama_cpp.server`` on a free loopback port, serving two models:
    ``smollm2`` (chat) and ``minilm`` (flat embedding vectors). Needs a key (SERVER_KEY)."""
    from eliza_nb.providers.local_models import MINILM, SMOLLM2, converted_path, package_path

    port = free_port()
    config = {
        "host": "127.0.0.1", "port": port, "api_key": SERVER_KEY,
        "models": [
            # --n_threads 1: two OpenMP teams on 2 shared cores stall (DESIGN.md §4)
            {"model": str(package_path(SMOLLM2)), "model_alias": "smollm2", "n_ctx": 2048, "n_threads": 1,
             "n_threads_batch": 1, "logits_all": False, "verbose": False},
            {"model": str(converted_path(models_home, MINILM)), "model_alias": "minilm", "embedding": True,
             "n_ctx": 512, "n_batch": 512, "n_ubatch": 512, "n_threads": 1, "n_threads_batch": 1, "verbose": False},
        ],
    }
    cfg = tmp_path_factory.mktemp("llama_server") / "config.json"
    cfg.write_text(json.dumps(config))
    log = cfg.with_name("server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    try:
        while True:  # bounded: the deadline, or the process exiting
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {cfg.with_name('server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {SERVER_KEY}"}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server was not ready within 90 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


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


class FakeTime:
    """An injected clock/sleep: sleeping advances the clock instantly and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def openai_entry(endpoint: str, *, key_env: str = "FAULT_KEY", **extra) -> dict:
    """A user-defined OpenAI-compatible catalog entry: base URL + key variable, no code."""
    return {"protocol": "openai", "endpoint": endpoint, "key_env": [key_env] if key_env else [],
            "models": {"small": "m-small", "medium": "m-medium", "large": "m-large", "embedding": "m-embed",
                       "image": "m-image"},
            "settings": {"temperature": 0.0, "max_output_tokens": 32}, **extra}


def assert_no_secret(*things) -> None:
    """The secret appears in none of these (strings, exceptions, reprs, DataFrames)."""
    for thing in things:
        for text in (str(thing), repr(thing)):
            assert SECRET not in text and SERVER_KEY not in text, f"key leaked into: {text[:200]}"
