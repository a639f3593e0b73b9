"""Fixtures for the gateway tests: real llama_cpp.server processes behind a real LiteLLM proxy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import MASTER_KEY, chat_model, embedding_model, gateway_config, run_gateway


@pytest.fixture(scope="session")
def upstream(models_home, tmp_path_factory):
    """``llama_cpp.server`` with SmolLM2 (2,048-token window, one slot that a new request
    interrupts: the server's default) and MiniLM embeddings; key-less, as in-house servers
    behind a gateway often are (the proxy still sends its upstream key)."""
    from loopback_llama import run_llama_server

    try:
        with run_llama_server(models_home, tmp_path_factory.mktemp("upstream"), None) as base:
            yield base
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def gateway(upstream, tmp_path_factory):
    """The proxy: ``smol`` (chat), ``minilm`` (embeddings) and ``smol-limited`` (2 requests a
    minute, enforced by usage-based routing, answered with 429 and llm_provider-retry-after)."""
    models = [chat_model("smol", upstream), embedding_model("minilm", upstream),
              chat_model("smol-limited", upstream, rpm=2)]
    try:
        with run_gateway(models, tmp_path_factory.mktemp("gateway"),
                         router={"routing_strategy": "usage-based-routing-v2"}) as base:
            yield base
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def gw_runtime(gateway, tmp_path):
    """``gw_runtime(**entry_extra)``: a runtime with the gateway as provider ``gw`` (key in GW_KEY)."""
    from eliza_nb.core.runtime import Runtime

    made: list[Runtime] = []

    def make(*, config: dict | None = None, endpoint: str | None = None, **extra) -> Runtime:
        cfg = gateway_config(endpoint or gateway, **extra)
        cfg.update(config or {})
        rt = Runtime(tmp_path / "home", config=cfg, env={"GW_KEY": MASTER_KEY})
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def own_gateway(models_home, tmp_path):
    """``own_gateway()`` -> (gateway base URL, the upstream server's process): a fresh llama.cpp
    server behind a fresh proxy, for a test that kills the server part-way. Several may be made."""
    from contextlib import ExitStack

    from loopback_llama import run_llama_server

    with ExitStack() as stack:
        def make() -> tuple[str, object]:
            n = len(list(tmp_path.glob("own-*")))
            procs: list = []
            up = stack.enter_context(run_llama_server(models_home, tmp_path / f"own-{n}", None, procs))
            base = stack.enter_context(run_gateway([chat_model("smol", up), embedding_model("minilm", up)],
                                                   tmp_path / f"own-{n}" / "gw"))
            return base, procs[0]

        yield make
