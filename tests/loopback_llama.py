"""A REAL OpenAI-compatible server on loopback: ``python -m llama_cpp.server`` serving
SmolLM2 (chat, alias ``smollm2``) and the converted MiniLM (flat embeddings, alias ``minilm``).

Used as the session-wide ``llama_server`` fixture (tests/providers/conftest.py) and, where a
test must stop the server part-way (record, then replay with the server gone), directly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def run_llama_server(models_home: Path, workdir: Path, api_key: str | None, procs: list | None = None,
                     **server: object) -> Iterator[str]:
    """Start the server on a free loopback port; yields its base URL (``http://127.0.0.1:PORT/v1``);
    stops it on exit. Fails (RuntimeError) if it is not ready within 90 s. ``procs`` receives the
    process (a test that kills the server mid-call); ``server`` adds server settings."""
    from eliza_nb.adapters.local_models import (
        MINILM,
        SMOLLM2,
        converted_path,
        package_path,
    )

    port = free_port()
    config = {
        "host": "127.0.0.1", "port": port, "api_key": api_key, **server,
        "models": [
            # --n_threads 1: two OpenMP teams on 2 shared cores stall (DESIGN.md §4)
            {"model": str(package_path(SMOLLM2)), "model_alias": "smollm2", "n_ctx": 2048, "n_threads": 1,
             "n_threads_batch": 1, "logits_all": False, "verbose": False},
            {"model": str(converted_path(models_home, MINILM)), "model_alias": "minilm", "embedding": True,
             "n_ctx": 512, "n_batch": 512, "n_ubatch": 512, "n_threads": 1, "n_threads_batch": 1, "verbose": False},
        ],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "config.json"
    cfg.write_text(json.dumps(config))
    with serve([sys.executable, "-m", "llama_cpp.server", "--config_file", str(cfg)], "llama_cpp.server",
               f"http://127.0.0.1:{port}/v1/models", cfg.with_name("server.log"), 90,
               env={**os.environ, "OMP_NUM_THREADS": "1"}, headers={"Authorization": f"Bearer {api_key}"},
               procs=procs):
        yield f"http://127.0.0.1:{port}/v1"


@contextmanager
def serve(cmd: list[str], name: str, ready_url: str, log_path: Path, timeout_s: float, *, env: dict,
          headers: dict | None = None, cwd: Path | None = None, procs: list | None = None) -> Iterator[None]:
    """Run a server process until ``ready_url`` answers 200 (RuntimeError, with its log's tail, if it
    exits first or is not ready within ``timeout_s``); stop it on exit."""
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if procs is not None:
        procs.append(proc)
    deadline = time.monotonic() + timeout_s
    try:
        while True:  # bounded: the deadline, or the process exiting
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(ready_url, headers=headers or {}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {timeout_s:.0f} s: "
                                   f"{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
