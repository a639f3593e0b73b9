"""Shared fixtures. Every test runs with its own ELIZA_NB_HOME; the converted embedding
model is made once per session and copied into homes that need it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
# fault_server and provider_helpers, which tests in every folder import by name
sys.path.insert(0, str(Path(__file__).resolve().parent / "providers"))


@pytest.fixture(scope="session")
def models_home(tmp_path_factory) -> Path:
    """A home holding the converted embedding model (converted once per test session)."""
    from eliza_nb.adapters.local_models import MINILM, prepare_embedding_model

    home = tmp_path_factory.mktemp("models_home")
    prepare_embedding_model(home, MINILM)
    return home


@pytest.fixture
def home(tmp_path, monkeypatch, models_home) -> Path:
    """A fresh ELIZA_NB_HOME with the converted model already in it; no provider keys set."""
    h = tmp_path / "home"
    shutil.copytree(models_home / "models", h / "models")
    monkeypatch.setenv("ELIZA_NB_HOME", str(h))
    for var in list(__import__("os").environ):
        if var.endswith(("_API_KEY", "_ACCESS_TOKEN", "_MODEL")):
            monkeypatch.delenv(var, raising=False)
    return h


@pytest.fixture(scope="session")
def local_runtime(models_home):
    """One Runtime with the local models loaded, shared by the tests that only read from it."""
    from eliza_nb.core.runtime import Runtime

    rt = Runtime(models_home, config={}, env={})
    yield rt
    rt.close()


@pytest.fixture
def shared_runtime(home):
    """Install a fresh Runtime as eliza_nb's shared one for the test, then restore."""
    import eliza_nb
    from eliza_nb.core.runtime import Runtime

    rt = Runtime(home, env={})
    old = eliza_nb.set_runtime(rt)
    yield rt
    eliza_nb.set_runtime(old)
    rt.close()


def shell():
    """IPython's singleton test shell (globalipapp) with %eliza loaded.

    Always go through the module attribute: ``from globalipapp import get_ipython`` binds the
    bootstrap function, which returns None once the shell has been started by another file.
    """
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "eliza_nb")
    return ip


@pytest.fixture(scope="session")
def ip():
    return shell()


@pytest.fixture
def bare_home(tmp_path, monkeypatch) -> Path:
    """An empty ELIZA_NB_HOME, no provider keys or model overrides in the environment, and
    the working directory moved so no stray ./.env is in reach."""
    import os

    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("ELIZA_NB_HOME", str(h))
    for var in list(os.environ):
        if var.endswith(("_API_KEY", "_ACCESS_TOKEN", "_MODEL")) or var in ("GOOGLE_CLOUD_PROJECT", "VERTEX_REGION"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return h


@pytest.fixture(scope="session")
def loopback():
    """The loopback OpenAI-compatible server of the benches (bench/loopback.py), its own process:
    embeddings a function of the text, ``/echo/`` answers from the prompt, ``/dNN/`` delays, a hit log."""
    sys.path.insert(0, str(ROOT / "bench"))
    from loopback import Loopback

    with Loopback.start() as lb:
        yield lb


@pytest.fixture
def server():
    """A scriptable loopback HTTP/1.1 server (tests/providers/fault_server.py), stopped after the test."""
    from fault_server import FaultServer

    s = FaultServer()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def fx_key() -> str:
    """The key ``frt`` gives provider ``fx`` (in FAULT_KEY); a test file overrides this fixture to use its own."""
    from provider_helpers import SECRET

    return SECRET


@pytest.fixture
def frt(bare_home, server, fx_key):
    """A Runtime whose default provider ``fx`` is the loopback ``server`` (OpenAI protocol);
    one attempt, so a scripted error or cut stream is seen as the server sent it."""
    from provider_helpers import openai_entry

    from eliza_nb.core.runtime import Runtime

    rt = Runtime(bare_home, config={"providers": {"fx": openai_entry(server.url + "/v1")}, "defaults": {"provider": "fx"},
                                    "retry": {"max_attempts": 1, "max_total_s": 20.0, "timeout_s": 5.0}},
                 env={"FAULT_KEY": fx_key})
    yield rt
    rt.close()
