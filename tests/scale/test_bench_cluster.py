"""Benchmark grids on a real Dask cluster: the same tidy frame as one process, with and
without a worker killed mid-run, progress and the dashboard link shown, a scorer defined in
the notebook, ``concurrency`` across the cluster, and the notebook's session on the workers.

The provider is the loopback server's ``/echo/`` route (its own process): each answer
depends on its prompt, so a row that went to the wrong case, or a case run twice into two
rows, shows up in the comparison. The cache is off in a benchmark, so every cell is a call.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import cloudpickle
import pandas as pd
from scale_helpers import lb_entry

import eliza_nb
from eliza_nb.core.runtime import Runtime
from eliza_nb.scale import attach

# The worker-side helpers below are this module's functions; the workers cannot import a
# test module, so they travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: the row fields that must not depend on where a cell ran (timings do)
SAME = ["model", "preset", "case_id", "repeat", "input", "expected", "output", "prompt_tokens", "completion_tokens",
        "score", "error"]
CASES = [{"id": f"c{i}", "input": f"case {i}: what is {i} plus {i}?",
          "expected": f"case {i}" if i % 2 == 0 else "not in the echo"} for i in range(12)]


def same_part(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(frame)[SAME].reset_index(drop=True)


def _worker_view(fingerprint: str, model: str) -> tuple[int, float | None]:
    """(On a worker) how many calls its runtime made, and the temperature a call would send."""
    from eliza_nb.scale.workers import _RUNTIMES

    rt = _RUNTIMES[fingerprint]
    return len(rt.ledger), rt.effective_settings(rt.resolve(model)).temperature


def test_a_grid_on_the_cluster_is_the_single_process_frame_with_progress_link_scorer_and_session(
        make_rt, lb, cluster, capsys):
    rt = make_rt({"echo": lb_entry(lb.base, prefix="/d50/echo")})
    rt.session.update(temperature=0.3)  # the catalog entry says 0.0: the workers must use the session's

    def scorer(output: str, expected: Any) -> float:  # defined here, in the notebook, run on the workers
        return float(str(expected) in output) + len(output) / 1000

    frame = eliza_nb.benchmark(CASES, models=["echo:small"], repeats=2, client=cluster, scorer=scorer, progress=True)
    out, err = capsys.readouterr()
    report = lb.hits()
    views = cluster.run(_worker_view, attach(cluster, rt).fingerprint, "echo:small")

    assert f"Dask dashboard: {cluster.dashboard_link}" in out
    assert "24/24" in err  # the tqdm bar reached the grid's size
    assert len(report["hits"]) == 24
    assert report["max_inflight"] == 2  # two one-thread workers, both calling (the control for concurrency=1 below)
    assert sum(calls for calls, _t in views.values()) == 24
    assert all(temperature == 0.3 for calls, temperature in views.values() if calls)
    fresh = Runtime(rt.home, config=rt.config)  # what a worker's runtime, made from the config alone, would send
    assert fresh.effective_settings(fresh.resolve("echo:small")).temperature == 0.0
    fresh.close()

    assert frame["error"].isna().all()
    assert list(frame["case_id"]) == [c["id"] for c in CASES for _ in range(2)]
    assert (frame["score"] > 1).sum() == 12  # the even cases' echo contains the expected text
    solo = eliza_nb.benchmark(CASES, models=["echo:small"], repeats=2, scorer=scorer, progress=False)
    pd.testing.assert_frame_equal(same_part(frame), same_part(solo))


def test_concurrency_1_on_the_cluster_is_one_call_in_flight(make_rt, lb, cluster):
    make_rt({"echo": lb_entry(lb.base, prefix="/d50/echo")})
    frame = eliza_nb.benchmark(CASES[:4], models=["echo:small"], repeats=2, client=cluster, concurrency=1,
                               progress=False)
    report = lb.hits()
    assert frame["error"].isna().all() and len(frame) == 8
    assert len(report["hits"]) == 8 and report["max_inflight"] == 1


def test_a_worker_killed_mid_grid_still_gives_the_single_process_frame(make_rt, lb, cluster):
    make_rt({"echo": lb_entry(lb.base, prefix="/d200/echo")})  # 24 calls of 200 ms over 2 workers
    pids = cluster.run(os.getpid)
    victim = sorted(pids)[0]
    at_kill: list[int] = []

    def kill_when_under_way() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            hits = len(lb.hits()["hits"])
            if hits >= 6:
                os.kill(pids[victim], signal.SIGKILL)
                at_kill.append(hits)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_under_way)
    killer.start()
    try:
        frame = eliza_nb.benchmark(CASES, models=["echo:small"], repeats=2, client=cluster, scorer="contains",
                                   progress=False)
    finally:
        killer.join()
    cluster.wait_for_workers(2, timeout=60)
    calls = len(lb.hits()["hits"])

    assert at_kill and at_kill[0] < 24  # killed mid-run, not after it
    assert pids[victim] not in cluster.run(os.getpid).values()  # the nanny started a new process
    assert calls >= 24  # the dead worker's cells were run again elsewhere
    assert frame["error"].isna().all()
    solo = eliza_nb.benchmark(CASES, models=["echo:small"], repeats=2, scorer="contains", progress=False)
    pd.testing.assert_frame_equal(same_part(frame), same_part(solo))
    assert (frame["score"] == 1.0).sum() == 12
