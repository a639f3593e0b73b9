"""Issue 13, promise 1: a call never waits longer than its budget (max_total_s), and a target
that has just failed is not hammered by every other call in flight.

Loopback provider ``fault`` (scriptable) with an injected clock: waits are asserted, not slept.
"""

from __future__ import annotations

import threading

import fault_server as fs
import pytest
from provider_helpers import openai_entry
from rel_helpers import FakeTime

from eliza_nb.core import errors as E
from eliza_nb.core.runtime import Runtime

SECRET = "sk-time-test-0123456789"
A, B = "/a/v1/chat/completions", "/b/v1/chat/completions"


def ok_chat(text: str = "fine") -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}, "model": "m-small"}


def make_rt(rhome, server, clock, *, retry=None, chain=None, fault_extra=None, generation=False):
    config = {
        "providers": {"fault": openai_entry(server.url + "/a/v1", **(fault_extra or {})),
                      "backup": openai_entry(server.url + "/b/v1", key_env="")},
        "retry": {"max_attempts": 3, "base_delay_s": 0.5, "max_delay_s": 4.0, "max_total_s": 60.0, "timeout_s": 5.0,
                  **(retry or {})},
        "cache": {"generation": generation},
    }
    if chain:
        config["failover"] = {"small": chain}
    return Runtime(rhome, config=config, env={"FAULT_KEY": SECRET}, sleep=clock.sleep, clock=clock.clock)


def test_rate_limit_wait_past_the_budget_fails_over_at_once(rhome, fault_server, fake_time):
    fault_server.script(A, fs.json_reply(ok_chat()))
    fault_server.script(B, fs.json_reply(ok_chat("from backup")))
    rt = make_rt(rhome, fault_server, fake_time, retry={"max_total_s": 30.0}, chain=["backup:small"],
                 fault_extra={"rate_limit": {"rpm": 1}})
    assert rt.generate("one", provider="fault").provider == "fault"
    second = rt.generate("two", provider="fault")  # the next slot is 60 s away, the call has 30 s
    assert second.provider == "backup" and fake_time.sleeps == []
    assert second.attempts[0].outcome == "RateLimitWaitError"
    assert "rpm 1 reached; next slot in 60 s" in second.attempts[0].detail


def test_rate_limit_wait_past_the_budget_is_one_line_without_a_chain(rhome, fault_server, fake_time):
    fault_server.script(A, fs.json_reply(ok_chat()))
    rt = make_rt(rhome, fault_server, fake_time, retry={"max_total_s": 30.0}, fault_extra={"rate_limit": {"rpm": 1}})
    rt.generate("one", provider="fault")
    with pytest.raises(E.RateLimitWaitError) as info:
        rt.generate("two", provider="fault")
    msg = str(info.value)
    assert msg.startswith("[fault] rpm 1 reached; next slot in 60 s") and "\n" not in msg
    assert fake_time.sleeps == [] and len(fault_server.requests_to(A)) == 1


def test_ten_callers_at_rpm_1_are_never_told_to_sleep_past_their_budget(rhome, fault_server):
    fault_server.script(A, fs.json_reply(ok_chat()))
    clock = FakeTime()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:  # every thread shares the clock; a sleep is recorded, not slept
        with lock:
            clock.sleeps.append(seconds)

    rt = Runtime(rhome, config={"providers": {"fault": openai_entry(fault_server.url + "/a/v1", rate_limit={"rpm": 1})},
                               "retry": {"max_total_s": 150.0}},
                 env={"FAULT_KEY": SECRET}, sleep=sleep, clock=clock.clock)
    outcomes: list[object] = []

    def one() -> None:
        try:
            outcomes.append(rt.generate("hi", provider="fault"))
        except E.ElizaError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(outcomes) == 10
    assert clock.sleeps and max(clock.sleeps) <= 150.0  # slots at 60 and 120 s fit; 180 s and later do not
    refused = [o for o in outcomes if isinstance(o, E.RateLimitWaitError)]
    assert len(refused) == 7 and all("next slot in" in str(o) for o in refused)


def test_a_failing_primary_is_cooled_down_for_the_other_calls(rhome, fault_server, fake_time):
    """50 identical calls whose primary answers 500: the primary is asked a handful of times,
    not 50 x 3, and every call is answered by the backup."""
    fault_server.script(A, fs.json_reply({"error": {"message": "boom"}}, 500))
    fault_server.script(B, fs.json_reply(ok_chat("from backup")))
    rt = make_rt(rhome, fault_server, fake_time, chain=["backup:small"])
    results = [rt.generate("same question", provider="fault") for _ in range(50)]  # one after another: the worst case for a cache
    assert all(r.provider == "backup" for r in results)
    assert len(fault_server.requests_to(A)) == 3  # the first call's own retries; the rest skip it
    assert [a.outcome for a in results[1].attempts] == ["CoolingDown", "ok"]
    fake_time.now += 2 * rt.retry.cooldown_s  # the cool-down ends: the primary is tried again
    rt.generate("same question", provider="fault")
    assert len(fault_server.requests_to(A)) == 6


def test_followers_of_a_failed_leader_skip_the_cooled_target(rhome, fault_server):
    """Cached identical calls at once: one leader tries the failing primary, the followers wait for
    it and then go straight to the backup instead of each retrying the primary."""
    gate = threading.Event()

    def slow_500(h):
        gate.wait(5)
        fs.json_reply({"error": {"message": "boom"}}, 500)(h)

    fault_server.script(A, slow_500)
    fault_server.script(B, fs.json_reply(ok_chat("from backup")))
    clock = FakeTime()
    rt = Runtime(rhome, config={"providers": {"fault": openai_entry(fault_server.url + "/a/v1"),
                                             "backup": openai_entry(fault_server.url + "/b/v1", key_env="")},
                               "failover": {"small": ["backup:small"]}, "cache": {"generation": True},
                               "retry": {"max_attempts": 3, "base_delay_s": 0.01, "max_total_s": 60.0}},
                 env={"FAULT_KEY": SECRET}, sleep=lambda s: None, clock=clock.clock)
    out: list[object] = []
    threads = [threading.Thread(target=lambda: out.append(rt.generate("q", provider="fault"))) for _ in range(20)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(30)
    assert len(out) == 20 and all(r.provider == "backup" for r in out)
    assert len(fault_server.requests_to(A)) <= 3  # the leader's tries only
    assert len(fault_server.requests_to(B)) == 1  # and the backup's answer is shared through the cache


def test_the_last_target_gets_one_try_while_cooling(rhome, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "boom"}}, 500))
    rt = make_rt(rhome, fault_server, fake_time)
    with pytest.raises(E.TransientError):
        rt.generate("x", provider="fault")
    assert len(fault_server.requests_to(A)) == 3
    with pytest.raises(E.TransientError) as info:  # a re-run right away: asked once, not three times
        rt.generate("x", provider="fault")
    assert len(fault_server.requests_to(A)) == 4 and "boom" in str(info.value)


def test_retry_after_past_the_budget_fails_over_and_total_time_is_bounded(rhome, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "later"}}, 429, headers={"Retry-After": "25"}))
    fault_server.script(B, fs.json_reply({"error": {"message": "later"}}, 429, headers={"Retry-After": "25"}))
    rt = make_rt(rhome, fault_server, fake_time, retry={"max_total_s": 40.0}, chain=["backup:small"])
    t0 = fake_time.now
    with pytest.raises(E.RateLimitedError):
        rt.generate("x", provider="fault")
    assert fake_time.now - t0 <= 40.0  # 25 s once fits; a second 25 s wait would not
    assert sum(fake_time.sleeps) <= 40.0


def test_each_attempt_gets_at_most_the_time_left(rhome, fault_server, fake_time):
    seen: list[float] = []
    fault_server.script(A, fs.json_reply(ok_chat()))
    rt = make_rt(rhome, fault_server, fake_time, retry={"max_total_s": 2.0, "timeout_s": 120.0})
    adapter = rt.adapter("fault")
    real = adapter.generate

    def spy(request):
        seen.append(request.timeout_s)
        return real(request)

    adapter.generate = spy
    rt.generate("x", provider="fault")
    assert seen == [2.0]  # min(timeout_s 120, the 2 s the call has)
