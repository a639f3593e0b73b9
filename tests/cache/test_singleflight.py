"""Many threads asking for the same uncached texts at once: one provider call per text."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from eliza_nb.core.errors import BadResponseError


def run_threads(n, fn):
    barrier = threading.Barrier(n)

    def task(i):
        barrier.wait(timeout=30)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return [f.result(timeout=60) for f in [pool.submit(task, i) for i in range(n)]]


def test_200_concurrent_calls_for_one_text_make_one_provider_call(make_rt):
    rt = make_rt(delay=0.05)
    out = run_threads(200, lambda i: rt.embed("the same text"))
    p = rt.adapter("fake")
    assert p.embedded == ["the same text"] and p.embed_calls == 1
    assert all(np.array_equal(v, out[0]) for v in out)
    hits = rt.ledger.dataframe().query("cache_hit")["items"].sum()
    assert hits == 199


def test_200_concurrent_overlapping_batches_never_duplicate_a_text(make_rt):
    rt = make_rt(delay=0.02, batch=5)
    texts = [f"t{i}" for i in range(60)]
    out = run_threads(200, lambda i: (i, rt.embed([texts[(i * 7 + j) % 60] for j in range(12)])))
    sent = Counter(rt.adapter("fake").embedded)
    assert set(sent) == set(texts) and set(sent.values()) == {1}
    ref = {t: rt.embed(t) for t in texts}
    for i, vecs in out:
        for j, v in enumerate(vecs):
            assert np.array_equal(v, ref[texts[(i * 7 + j) % 60]])


def test_waiters_get_the_owners_error_instead_of_hanging(make_rt):
    rt = make_rt(delay=0.05)
    results = run_threads(20, lambda i: _catch(lambda: rt.embed(["FAIL! shared"])))
    assert all(isinstance(r, BadResponseError) for r in results), results
    assert rt.adapter("fake").embed_calls < 20  # most waited on the one call rather than repeating it
    assert rt.embeddings._inflight == {}
    with pytest.raises(BadResponseError):  # and a later call tries again
        rt.embed(["FAIL! shared"])


def _catch(fn):
    try:
        return fn()
    except Exception as exc:  # collected for the assertion
        return exc


def test_a_model_of_unknown_size_is_probed_once_then_single_flight(make_rt):
    rt = make_rt(delay=0.05)
    out = run_threads(50, lambda i: rt.embed(["x", "y"], model="unsized-model"))
    assert Counter(rt.adapter("fake").embedded) == {"x": 1, "y": 1}
    assert all(v.shape == (2, 8) for v in out)
    assert rt.embeddings.expected_dims(rt.resolve_embedding(None, "unsized-model")) == 8
