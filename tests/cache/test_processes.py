"""The cache across processes: a new kernel gets yesterday's vectors; two writers lose nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from fakeprov import CONFIG_TOML

WORKER = Path(__file__).resolve().parent / "worker.py"


def spawn(home: Path, start: int, count: int, chunk: int, out: Path, go: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "ELIZA_NB_HOME": str(home)}
    args = [sys.executable, str(WORKER), str(start), str(count), str(chunk), str(out)] + ([str(go)] if go else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_a_fresh_process_gets_all_200_vectors_from_disk_with_zero_model_calls(cache_home, tmp_path):
    (cache_home / "config.toml").write_text(CONFIG_TOML)
    a = finish(spawn(cache_home, 0, 200, 200, tmp_path / "a.npy"))
    assert a["provider_texts"] == 200
    b = finish(spawn(cache_home, 0, 200, 200, tmp_path / "b.npy"))
    assert b["provider_texts"] == 0 and b["warnings"] == []
    va, vb = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert va.shape == (200, 8) and va.tobytes() == vb.tobytes()  # bit-identical


def test_two_processes_writing_5000_entries_each_at_once_lose_none(cache_home, tmp_path):
    (cache_home / "config.toml").write_text(CONFIG_TOML)
    go = tmp_path / "go"
    procs = [spawn(cache_home, 0, 5000, 100, tmp_path / "w0.npy", go),
             spawn(cache_home, 5000, 5000, 100, tmp_path / "w1.npy", go)]
    go.write_text("go")
    results = [finish(p) for p in procs]
    assert [r["provider_texts"] for r in results] == [5000, 5000]
    assert all(r["warnings"] == [] for r in results)  # nobody fell back to memory or gave up a write
    check = finish(spawn(cache_home, 0, 10000, 10000, tmp_path / "all.npy"))
    assert check["provider_texts"] == 0
    both = np.concatenate([np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w1.npy")])
    assert both.tobytes() == np.load(tmp_path / "all.npy").tobytes()
