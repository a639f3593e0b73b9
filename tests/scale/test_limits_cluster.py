"""Provider limits across a real Dask cluster, and a worker killed in the middle of an embed.

Every test runs on the module's LocalCluster (2 worker processes x 1 thread) against the
loopback server (its own process), whose hit log says when each request arrived and how
many were in flight. The limits are checked from that log, at the server, where a limiter
counted per worker would show up: each test that can only pass with the cluster-wide books
also runs a control in which the workers' runtimes get per-process books
(:func:`_use_process_books`), and shows the same check failing there.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from typing import Any

import cloudpickle
import dask.dataframe as dd
import numpy as np
import pandas as pd
from scale_helpers import lb_entry

import eliza_nb
from eliza_nb.core.runtime import Runtime
from eliza_nb.scale import WorkerSpec, attach, runtime_for

# The task bodies below are this module's functions; the workers cannot import a test
# module, so they travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

RPM, WINDOW_S = 6, 2.0
#: A request is booked on the scheduler's clock and sent once the worker has the answer
#: and has slept the wait it was told: it reaches the server a little after its booked
#: time (an RPC hop back and an HTTP send: a few ms here, tens under load), never before.
#: Of any 7 requests the last-booked one is booked >= 2 s after the first-booked, so the
#: 7 arrive spread over >= 2 s minus the first one's lag. Counting arrivals in windows of
#: 2 - 0.25 s allows that lag up to 0.25 s, and still catches a limiter kept per worker:
#: 2 workers x 6 = 12 requests in the first moments (the control below shows it).
LAG_S = 0.25


def _use_process_books(fingerprint: str) -> None:
    """(On a worker) the control: this worker's runtime counts rate limits, call slots and
    cool-downs in its own process only, as if nothing were shared."""
    from eliza_nb.core.ratelimit import ConcurrencyCaps, Cooldowns, RateLimiter
    from eliza_nb.scale.workers import _RUNTIMES

    rt = _RUNTIMES[fingerprint]
    rt.ratelimits = RateLimiter(rt.clock, rt.sleep)
    rt.concurrency = ConcurrencyCaps(rt.clock)
    rt.cooldowns = Cooldowns(rt.clock)


def _open_http(fingerprint: str) -> None:
    """(On a worker) open the runtime's HTTP client now. A process's first request makes it
    (an SSL context: ~50 ms here, more under load) after the limiter booked its slot, which
    would add a one-off to that request's lag (up to 0.16 s was seen); the test measures
    the steady lag."""
    from eliza_nb.scale.workers import _RUNTIMES

    _RUNTIMES[fingerprint].http_client()


def _texts(tag: str, n: int) -> list[str]:
    return [f"{tag} text number {i} about the cluster" for i in range(n)]


def _embed_on_cluster(client: Any, texts: list[str], provider: str, npartitions: int) -> np.ndarray:
    series = dd.from_pandas(pd.Series(texts, name="text"), npartitions=npartitions)
    vectors = eliza_nb.embed(series, provider=provider, as_array=True, client=client)
    return np.asarray(client.compute(vectors).result(timeout=120))


def most_in_window(times: list[float], span: float) -> int:
    """The most arrivals in any window (t - span, t], as the loopback server counts its own limit."""
    times = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - span:
            first += 1
        most = max(most, last - first + 1)
    return most


# -- requests per window --------------------------------------------------------------------
def test_an_rpm_budget_holds_across_the_cluster_and_the_server_never_rejects(make_rt, lb, cluster):
    limit = {"rpm": RPM, "window_s": WINDOW_S}
    # /r6-1.75/: the server itself accepts 6 per 1.75 s and answers 429 to a 7th, so a
    # rejection would also show a breach the client-side books let through. Not /r6-2/: a
    # window as long as the budget's would see 7 whenever the 7th request's lag is a
    # millisecond shorter than the first's (about every other window boundary, measured);
    # a client-side budget needs a margin under the provider's.
    rt = make_rt({"lim": lb_entry(lb.base, prefix=f"/d50/r{RPM}-{WINDOW_S - LAG_S:g}", rate_limit=limit),
                  "lim_ctl": lb_entry(lb.base, prefix="/d50", rate_limit=limit)})
    texts = _texts("rpm", 480)  # 6 partitions of 80 -> 5 requests of 16 each: 30 requests
    spec = attach(cluster, rt)
    cluster.run(_open_http, spec.fingerprint)

    got = _embed_on_cluster(cluster, texts, "lim", npartitions=6)
    report = lb.hits()
    arrivals = [t for t, _path, _n in report["hits"]]
    assert sum(n for _t, _path, n in report["hits"]) == len(texts) and len(arrivals) == 30
    assert report["rejected"] == 0
    assert most_in_window(arrivals, WINDOW_S - LAG_S) <= RPM
    # The single-process reference, without the limits (they change when, not what, is sent).
    solo = Runtime(rt.home.parent / "solo", config={**rt.config, "providers": {"lim": lb_entry(lb.base, prefix="")}})
    assert np.array_equal(got, solo.embed(texts, "lim", as_array=True))
    solo.close()

    # The control: the same budget kept per worker lets both workers send 6 at once.
    cluster.run(_use_process_books, spec.fingerprint)
    lb.reset()
    _embed_on_cluster(cluster, _texts("control", 480), "lim_ctl", npartitions=6)
    control = [t for t, _path, _n in lb.hits()["hits"]]
    assert len(control) == 30 and most_in_window(control, WINDOW_S - LAG_S) > RPM


# -- calls in flight ------------------------------------------------------------------------
def test_max_concurrency_1_is_one_call_in_flight_across_both_workers(make_rt, lb, cluster):
    rt = make_rt({"cap": lb_entry(lb.base, prefix="/d100", max_concurrency=1)})
    _embed_on_cluster(cluster, _texts("cap", 128), "cap", npartitions=4)  # 8 requests of 100 ms
    report = lb.hits()
    assert len(report["hits"]) == 8 and report["max_inflight"] == 1

    # The control: a cap of 1 per worker process is two calls in flight at once.
    spec = attach(cluster, rt)
    cluster.run(_use_process_books, spec.fingerprint)
    lb.reset()
    _embed_on_cluster(cluster, _texts("cap control", 128), "cap", npartitions=4)
    report = lb.hits()
    assert len(report["hits"]) == 8 and report["max_inflight"] == 2


# -- cool-downs -----------------------------------------------------------------------------
def closed_port() -> int:
    """A port nothing listens on (bound, then released): a connection there is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _generate_via(spec: WorkerSpec, prompt: str) -> dict[str, Any]:
    """(On a worker) one call on ``dead`` that fails over to ``lb``: who answered and how each try ended."""
    from distributed import get_worker

    r = runtime_for(spec).generate(prompt, provider="dead:small", failover=["lb:small"], max_tokens=4)
    return {"worker": get_worker().address, "provider": r.provider, "attempts": [(a.target, a.outcome) for a in r.attempts]}


def test_a_target_failing_on_one_worker_is_skipped_by_the_other_while_it_cools_down(make_rt, lb, cluster):
    rt = make_rt({"dead": lb_entry(f"http://127.0.0.1:{closed_port()}", prefix="")},
                 retry={"max_attempts": 1, "cooldown_s": 600.0})
    spec = attach(cluster, rt)
    a, b = sorted(cluster.scheduler_info(n_workers=-1)["workers"])
    dead = str(rt.resolve("dead:small"))

    first = cluster.submit(_generate_via, spec, "on a", workers=[a], pure=False).result(timeout=60)
    assert first["worker"] == a and first["provider"] == "lb"
    assert [outcome for target, outcome in first["attempts"]] == ["TransientError", "ok"]  # refused, then failed over
    assert first["attempts"][0][0] == dead

    second = cluster.submit(_generate_via, spec, "on b", workers=[b], pure=False).result(timeout=60)
    assert second["worker"] == b and second["provider"] == "lb"
    assert second["attempts"] == [(dead, "CoolingDown"), (first["attempts"][1][0], "ok")]

    # The control: with its own books, worker b knows nothing of a's failure and tries again.
    cluster.run(_use_process_books, spec.fingerprint, workers=[b])
    third = cluster.submit(_generate_via, spec, "on b again", workers=[b], pure=False).result(timeout=60)
    assert [outcome for target, outcome in third["attempts"]] == ["TransientError", "ok"]
    assert len(lb.hits()["hits"]) == 3  # the three answers from lb; the dead target never got a request


# -- a worker killed mid-run ----------------------------------------------------------------
def test_a_worker_killed_mid_embed_loses_nothing_and_the_result_is_the_single_process_one(make_rt, lb, cluster):
    rt = make_rt({"slow": lb_entry(lb.base, prefix="/d100")})
    texts = _texts("killed", 768)  # 16 partitions of 48 -> 3 requests each: 48 requests of 100 ms
    requests, batch = 48, 16
    series = dd.from_pandas(pd.Series(texts, name="text"), npartitions=16)
    future = cluster.compute(eliza_nb.embed(series, provider="slow", as_array=True, client=cluster))
    pids = cluster.run(os.getpid)

    deadline = time.monotonic() + 60
    while len(lb.hits()["hits"]) < 12:  # >= 12 requests: at least 2 partitions are done
        assert time.monotonic() < deadline, "the embed never started"
        time.sleep(0.02)
    victim = sorted(pids)[0]
    os.kill(pids[victim], signal.SIGKILL)
    at_kill = len(lb.hits()["hits"])

    got = np.asarray(future.result(timeout=120))
    cluster.wait_for_workers(2, timeout=60)
    assert pids[victim] not in cluster.run(os.getpid).values()  # the nanny started a new process
    report = lb.hits()
    sent = sum(n for _t, _path, n in report["hits"])
    assert at_kill < requests  # killed mid-run, not after it
    # Each batch is stored as it lands: the dead worker's finished partitions and batches are
    # read back from the cache by the task's second run; only its batch in flight goes again.
    assert len(texts) <= sent <= len(texts) + batch

    solo = Runtime(rt.home.parent / "solo", config={**rt.config, "providers": {"slow": lb_entry(lb.base, prefix="")}})
    assert np.array_equal(got, solo.embed(texts, "slow", as_array=True))
    lb.reset()
    again = Runtime(rt.home, config=rt.config)  # a fresh runtime on the cluster's home: all cached
    assert np.array_equal(again.embed(texts, "slow", as_array=True), got)
    assert lb.hits()["hits"] == []
    solo.close()
    again.close()
