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
    log = cfg.with_name("server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if procs is not None:
        procs.append(proc)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    try:
        while True:  # bounded: the deadline, or the process exiting
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: "
                                   f"{cfg.with_name('server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server was not ready within 90 s")
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
