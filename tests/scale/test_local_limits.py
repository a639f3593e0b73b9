"""The provider limits the cluster shares, in one process: max_concurrency and window_s."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from scale_helpers import lb_entry

from eliza_nb.core.errors import ConfigError, RateLimitWaitError
from eliza_nb.core.ratelimit import ConcurrencyCaps, RateLimiter
from eliza_nb.core.runtime import Runtime


def _max_inflight(home, lb, **extra) -> int:
    lb.reset()
    rt = Runtime(home, config={"providers": {"lb": lb_entry(lb.base, "/d150", **extra)}, "defaults": {"provider": "lb"}}, env={})
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: rt.generate(f"q{i}", max_tokens=4).text, range(4)))
        assert all(answers)
    finally:
        rt.close()
    return int(lb.hits()["max_inflight"])


def test_max_concurrency_1_never_overlaps_calls_to_the_provider(bare_home, lb):
    assert _max_inflight(bare_home, lb) > 1  # the control: four threads do overlap without the cap
    assert _max_inflight(bare_home, lb, max_concurrency=1) == 1


def test_max_concurrency_must_be_a_whole_number_from_1(bare_home, lb):
    for bad in (0, 1.5, "two"):
        with pytest.raises(ConfigError, match="max_concurrency"):
            Runtime(bare_home, config={"providers": {"lb": lb_entry(lb.base, max_concurrency=bad)}}, env={})


def test_a_slot_that_does_not_free_up_in_time_fails_over_with_one_line():
    caps = ConcurrencyCaps(clock=lambda: 0.0)
    with caps.hold("p", 1) as waited:
        assert waited == 0.0
        with pytest.raises(RateLimitWaitError, match="max_concurrency 1"), caps.hold("p", 1, max_wait=0.05):
            pass
    with caps.hold("p", 1):  # released again after the block
        pass


def test_window_s_sets_the_span_the_budget_counts_over():
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0], sleep=lambda s: None)
    limits = {"rpm": 2, "window_s": 1.5}
    starts = [limiter.reserve("p", limits)[0] for _ in range(5)]
    assert starts == [100.0, 100.0, 101.575, 101.575, 103.15]  # 1.5 s apart, plus 5% arrival slack
    with pytest.raises(RateLimitWaitError, match=r"rpm 2 per 1.5 s reached"):
        limiter.reserve("p", limits, max_wait=1.0)
