"""Benchmark timings on the one local model: the wait for the model (queue_s) is apart from
the service time (latency_s, ttft_s), so runs at concurrency 4 compare with runs at 1.

Real model, real threads; the bounds are ratios with wide slack (the machine is shared), never
absolute times.
"""

from __future__ import annotations

import statistics

from eliza_nb.core.tuning import COLUMNS, benchmark

CASES = [{"id": f"c{i}", "input": "Name one colour.", "expected": "red"} for i in range(4)]
OPTIONS = {"models": ["llama_local:small"], "repeats": 1, "progress": False, "max_tokens": 8, "temperature": 0}


def test_local_jobs_at_concurrency_4_queue_apart_from_their_service_time(local_runtime):
    benchmark(local_runtime, CASES[:1], concurrency=1, **OPTIONS)  # loaded: no first load in what follows
    one = benchmark(local_runtime, CASES, concurrency=1, **OPTIONS)
    four = benchmark(local_runtime, CASES, concurrency=4, **OPTIONS)
    for df in (one, four):
        assert list(df.columns) == COLUMNS and "queue_s" in COLUMNS
        assert df.error.isna().all(), df.error.dropna().tolist()
        assert (df.queue_s >= 0).all() and (df.latency_s > 0).all() and (df.ttft_s <= df.latency_s).all()
    # One at a time: no call waits for another.
    assert (one.queue_s < 0.25 * one.latency_s.median() + 0.1).all(), one[["latency_s", "queue_s"]]

    # Four at once: the model runs them one after another, so each waits for the ones before it,
    # and that wait is queue_s: a call's queue_s is the previous one's queue_s plus its service.
    runs = four.sort_values("queue_s")
    queue, service = runs.queue_s.tolist(), runs.latency_s.tolist()
    assert queue[0] < 0.25 * service[0] + 0.1, runs[["latency_s", "queue_s"]]
    for k in range(1, 4):
        before = queue[k - 1] + service[k - 1]
        assert 0.6 * before - 0.3 <= queue[k] <= 1.25 * before + 0.3, (k, runs[["latency_s", "ttft_s", "queue_s"]])
    # The last one waited for the other three: what made the 4th call's wall time ~4x the 1st's.
    assert queue[3] > 1.5 * statistics.median(service)

    # Service times at concurrency 4 are like those at 1 (queue_s is not in them).
    ratio = four.latency_s.median() / one.latency_s.median()
    assert 1 / 3 < ratio < 3, (one.latency_s.tolist(), four.latency_s.tolist())
    s1, s4 = one.summary().iloc[0], four.summary().iloc[0]
    assert s4.p50_latency_s == four.latency_s.median() and s4.mean_ttft_s == four.ttft_s.mean()
    assert s4.mean_queue_s > s1.mean_queue_s and 1 / 3 < s4.p50_latency_s / s1.p50_latency_s < 3


def test_the_result_carries_the_wait_and_a_lone_call_hardly_waits(local_runtime):
    r = local_runtime.generate("Name one colour.", temperature=0, max_tokens=4)
    assert r.text and isinstance(r.queue_s, float) and 0 <= r.queue_s < 0.5 * r.latency_s + 0.1
