"""A REAL LiteLLM proxy on loopback, in front of real ``llama_cpp.server`` processes.

The proxy lives in its own venv (``.venv-bench-gateway``, made by ``bench/envs.py gateway``,
which ``make test`` runs; built here too when missing). No database, the bundled model cost
map (``LITELLM_LOCAL_MODEL_COST_MAP``), no retries of its own: what eliza_nb sees is what a
team behind such a gateway sees.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-gateway-master-7f3a"  # the proxy's own key: what a user puts in GW_KEY
UPSTREAM_KEY = "sk-upstream-2b9c"  # the key the proxy uses for the llama.cpp servers behind it


def proxy_python() -> Path:
    """The gateway venv's interpreter, built on first use (pip's cache makes a rebuild ~40 s)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import envs
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return envs.python_for("gateway") or envs.ensure("gateway")


def chat_model(name: str, upstream: str, **params: object) -> dict:
    """A model group served by a llama.cpp server's ``smollm2``."""
    return {"model_name": name, "litellm_params": {"model": "openai/smollm2", "api_base": upstream,
                                                   "api_key": UPSTREAM_KEY, **params}}


def embedding_model(name: str, upstream: str) -> dict:
    return {"model_name": name, "model_info": {"mode": "embedding"},
            "litellm_params": {"model": "openai/minilm", "api_base": upstream, "api_key": UPSTREAM_KEY}}


@contextmanager
def run_gateway(models: list[dict], workdir: Path, router: dict | None = None) -> Iterator[str]:
    """Start ``litellm --config`` on a free loopback port; yields its base URL (``.../v1``)."""
    from loopback_llama import free_port, serve

    workdir.mkdir(parents=True, exist_ok=True)
    config = {"model_list": models, "general_settings": {"master_key": MASTER_KEY},
              "litellm_settings": {"num_retries": 0, "request_timeout": 120, "telemetry": False},
              "router_settings": router or {}}
    cfg = workdir / "litellm.yaml"
    cfg.write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    python = proxy_python()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "OPENAI", "LITELLM"))}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", NO_DOCS="True", PYTHONUNBUFFERED="1")
    base = f"http://127.0.0.1:{port}"
    with serve([str(python.parent / "litellm"), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
               "the LiteLLM proxy", f"{base}/health/liveliness", workdir / "litellm.log", 120, env=env, cwd=workdir):
        yield f"{base}/v1"


def gateway_config(endpoint: str, models: dict | None = None, **extra: object) -> dict:
    """eliza_nb's catalog entry for the gateway, as a team writes it in config.toml."""
    names = {"small": "smol", "medium": "smol", "large": "smol", "embedding": "minilm", **(models or {})}
    return {"providers": {"gw": {"protocol": "openai", "endpoint": endpoint, "key_env": ["GW_KEY"],
                                 "models": names, "list_models": False, **extra}}}
