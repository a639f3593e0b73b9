"""Fault cases through the whole runtime pipeline, against a loopback fault server:
attempts made, waits (injected clock), failover taken, one-line messages, keys never shown."""

from __future__ import annotations

import email.utils
import json
import logging
import time
import warnings

import fault_server as fs
import pytest
from provider_helpers import SECRET, assert_no_secret, openai_entry

from eliza_nb.core.errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    ContextTooLongError,
    MissingKeyError,
    NotFoundError,
    RateLimitedError,
    StreamInterrupted,
    TransientError,
)
from eliza_nb.core.runtime import Runtime

A = "/a/v1/chat/completions"
B = "/b/v1/chat/completions"


def ok_chat(text: str = "fine") -> dict:
    return {"model": "m-small", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


def delta(text: str, finish: str | None = None) -> str:
    return json.dumps({"model": "m-small", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})


OK_STREAM = [delta("Hel"), delta("lo", "stop"),
             json.dumps({"model": "m-small", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})]


def make_rt(home, server, fake_time, *, retry=None, chain=None, env=None, fault_extra=None):
    providers = {
        "fault": openai_entry(server.url + "/a/v1", **(fault_extra or {})),
        "backup": openai_entry(server.url + "/b/v1", key_env=""),  # key-less, like a local server
    }
    config = {
        "providers": providers,
        "retry": {"max_attempts": 3, "base_delay_s": 0.5, "max_delay_s": 4.0, "max_total_s": 30.0, "timeout_s": 5.0,
                  **(retry or {})},
    }
    if chain:
        config["failover"] = {"small": chain}
    return Runtime(home, config=config, env={"FAULT_KEY": SECRET} if env is None else env,
                   sleep=fake_time.sleep, clock=fake_time.clock)


def outcomes(attempts) -> list[str]:
    return [a.outcome for a in attempts]


def one_line(exc: Exception, provider: str = "fault") -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.startswith(f"[{provider}]"), msg
    assert_no_secret(msg, repr(exc))
    return msg


# -- 429 -------------------------------------------------------------------------------------
def test_429_honours_retry_after_seconds(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "slow down"}}, 429, {"Retry-After": "2"}),
                        fs.json_reply(ok_chat()))
    r = make_rt(home, fault_server, fake_time).generate("hi", provider="fault")
    assert r.text == "fine" and r.provider == "fault"
    assert fake_time.sleeps == [2.0]
    assert outcomes(r.attempts) == ["RateLimitedError", "ok"] and r.attempts[0].waited_s == 2.0
    assert len(fault_server.requests_to(A)) == 2


@pytest.mark.parametrize(("headers", "wait"), [
    ({"retry-after-ms": "1500"}, 1.5),
    ({"llm_provider-retry-after": "3"}, 3.0),  # LiteLLM's proxy, passing on the upstream's wait
    ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s",
      "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "6m0s"}, 1.5),  # the spent budget's reset
    ({"x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "2s"}, 2.0),  # neither says: the later
    ({"x-ratelimit-reset-requests": "soon"}, None),  # not a duration: the backoff decides
])
def test_429_reads_every_common_wait_hint(home, fault_server, fake_time, headers, wait):
    fault_server.script(A, fs.json_reply({"error": {"message": "slow down"}}, 429, headers), fs.json_reply(ok_chat()))
    r = make_rt(home, fault_server, fake_time).generate("hi", provider="fault")
    assert r.text == "fine" and len(fake_time.sleeps) == 1
    if wait is None:
        assert 0.25 <= fake_time.sleeps[0] <= 0.5  # the first backoff step (0.5 s, half of it jittered)
    else:
        assert fake_time.sleeps == [wait]


def test_go_durations_parse_as_openai_sends_them():
    from eliza_nb.adapters.failures import parse_duration

    assert parse_duration("20ms") == 0.02 and parse_duration("6m0s") == 360.0 and parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("") is None and parse_duration("5 s") is None and parse_duration("1x") is None


def test_429_honours_retry_after_http_date(home, fault_server, fake_time):
    when = email.utils.formatdate(time.time() + 4, usegmt=True)
    fault_server.script(A, fs.json_reply({"error": {"message": "slow down"}}, 429, {"Retry-After": when}),
                        fs.json_reply(ok_chat()))
    r = make_rt(home, fault_server, fake_time).generate("hi", provider="fault")
    assert r.text == "fine"
    assert len(fake_time.sleeps) == 1 and 2.0 <= fake_time.sleeps[0] <= 4.0


def test_429_beyond_the_time_cap_fails_over_at_once(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "come back in an hour"}}, 429, {"Retry-After": "3600"}))
    fault_server.script(B, fs.json_reply(ok_chat("from b")))
    r = make_rt(home, fault_server, fake_time, chain=["backup:small"]).generate("hi", provider="fault")
    assert (r.provider, r.text) == ("backup", "from b")
    assert fake_time.sleeps == []
    assert outcomes(r.attempts) == ["RateLimitedError", "ok"]


def test_insufficient_quota_is_not_retried(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "You exceeded your current quota",
                                                    "code": "insufficient_quota"}}, 429))
    with pytest.raises(RateLimitedError) as info:
        make_rt(home, fault_server, fake_time).generate("hi", provider="fault")
    assert fake_time.sleeps == [] and len(fault_server.requests_to(A)) == 1
    assert "exceeded your current quota" in one_line(info.value)


# -- 5xx and timeouts --------------------------------------------------------------------------
def test_5xx_backs_off_within_bounds_then_fails_over(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "boom"}}, 500),
                        fs.json_reply({"error": {"message": "overloaded"}}, 503))
    fault_server.script(B, fs.json_reply(ok_chat("from b")))
    r = make_rt(home, fault_server, fake_time, chain=["backup:small"]).generate("hi", provider="fault")
    assert r.provider == "backup" and r.text == "from b"
    assert outcomes(r.attempts) == ["TransientError", "TransientError", "TransientError", "ok"]
    assert len(fault_server.requests_to(A)) == 3  # capped attempts
    first, second = fake_time.sleeps  # jittered exponential: 0.5 s then 1 s, each minus up to half
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0
    assert "HTTP 503" in r.attempts[2].detail and "overloaded" in r.attempts[2].detail


def test_500_then_success_on_the_same_provider(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "boom"}}, 500), fs.json_reply(ok_chat()))
    r = make_rt(home, fault_server, fake_time).generate("hi", provider="fault")
    assert r.provider == "fault" and outcomes(r.attempts) == ["TransientError", "ok"]


def test_slow_response_times_out_is_retried_then_fails_over(home, fault_server, fake_time):
    fault_server.script(A, fs.slow(5, fs.json_reply(ok_chat("too late"))))
    fault_server.script(B, fs.json_reply(ok_chat("from b")))
    rt = make_rt(home, fault_server, fake_time, retry={"max_attempts": 2}, chain=["backup:small"])
    t0 = time.monotonic()
    r = rt.generate("hi", provider="fault", timeout_s=0.3)
    assert time.monotonic() - t0 < 3.0  # two 0.3 s timeouts, not two 5 s waits
    assert r.provider == "backup"
    assert outcomes(r.attempts) == ["TransientError", "TransientError", "ok"]
    assert "no answer within 0.3 s" in r.attempts[0].detail


def test_all_targets_failing_raises_the_last_error_with_every_attempt(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "boom"}}, 502))
    fault_server.script(B, fs.json_reply({"error": {"message": "also down"}}, 503))
    rt = make_rt(home, fault_server, fake_time, retry={"max_attempts": 2}, chain=["backup:small"])
    with pytest.raises(TransientError) as info:
        rt.generate("hi", provider="fault")
    assert len(info.value.attempts) == 4
    assert "also down" in one_line(info.value, "backup") and "tried fault:m-small" in str(info.value)
    assert len(fake_time.sleeps) == 2
    assert all(row.error for row in rt.ledger.rows())


# -- streams ---------------------------------------------------------------------------------
def test_connection_reset_mid_stream_keeps_partial_text_and_records_no_success(home, fault_server, fake_time):
    fault_server.script(A, fs.sse([delta("Hel"), delta("lo "), delta("world", "stop")], cut_after=2))
    rt = make_rt(home, fault_server, fake_time, chain=["backup:small"])
    stream = rt.stream("hi", provider="fault")
    got = []
    with pytest.raises(StreamInterrupted) as info:
        for chunk in stream:
            got.append(chunk)
    assert "".join(got) == "Hello " == info.value.partial
    assert "connection broken" in one_line(info.value)
    assert stream.result is None
    assert len(fault_server.requests_to(A)) == 1 and not fault_server.requests_to(B)  # text shown: no retry
    rows = rt.ledger.rows()
    assert rows and all(row.error for row in rows)  # nothing recorded as a success


def test_reset_before_the_first_chunk_is_retried(home, fault_server, fake_time):
    fault_server.script(A, fs.drop(), fs.sse(OK_STREAM))
    s = make_rt(home, fault_server, fake_time).stream("hi", provider="fault")
    assert "".join(s) == "Hello"
    assert outcomes(s.result.attempts) == ["TransientError", "ok"]
    assert (s.result.usage.prompt_tokens, s.result.usage.completion_tokens) == (3, 2)


def test_stream_that_ends_without_its_final_event_is_an_error(home, fault_server, fake_time):
    fault_server.script(A, fs.sse([delta("partial")], done=False))
    with pytest.raises(StreamInterrupted) as info:
        make_rt(home, fault_server, fake_time).stream("hi", provider="fault").text()
    assert info.value.partial == "partial" and "before its final event" in str(info.value)


def test_streams_and_calls_reuse_one_connection(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply(ok_chat()))
    rt = make_rt(home, fault_server, fake_time)
    for _ in range(3):
        rt.generate("hi", provider="fault")
    fault_server.script(A, fs.sse(OK_STREAM))
    for _ in range(3):
        assert rt.stream("hi", provider="fault").text() == "Hello"
    assert fault_server.connections == 1


def test_stream_request_asks_for_usage(home, fault_server, fake_time):
    fault_server.script(A, fs.sse(OK_STREAM))
    make_rt(home, fault_server, fake_time).stream("hi", provider="fault", temperature=0.4, seed=7).text()
    body = fault_server.requests_to(A)[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.4 and body["seed"] == 7 and body["max_tokens"] == 32


# -- errors that fail over at once or stop -----------------------------------------------------
def test_malformed_json_is_a_bad_response_not_retried(home, fault_server, fake_time):
    fault_server.script(A, fs.raw("{not json", 200))
    fault_server.script(B, fs.json_reply(ok_chat("from b")))
    rt = make_rt(home, fault_server, fake_time)
    with pytest.raises(BadResponseError) as info:
        rt.generate("hi", provider="fault")
    assert "not JSON" in one_line(info.value) and len(fault_server.requests_to(A)) == 1
    r = rt.generate("hi", provider="fault", failover=["backup:small"])
    assert r.provider == "backup" and outcomes(r.attempts) == ["BadResponseError", "ok"]


def test_404_model_not_found_fails_over_at_once(home, fault_server, fake_time):
    said = "The model `m-small` does not exist or you do not have access to it."
    fault_server.script(A, fs.json_reply({"error": {"message": said, "type": "invalid_request_error",
                                                    "code": "model_not_found"}}, 404))
    fault_server.script(B, fs.json_reply(ok_chat("from b")))
    rt = make_rt(home, fault_server, fake_time, chain=["backup:small"])
    r = rt.generate("hi", provider="fault")
    assert r.provider == "backup" and fake_time.sleeps == []
    assert outcomes(r.attempts) == ["NotFoundError", "ok"] and said in r.attempts[0].detail
    with pytest.raises(NotFoundError) as info:  # no chain: the provider's own words, one line
        rt.generate("hi", provider="fault", failover=False)
    assert said in one_line(info.value)


def test_400_model_not_available_counts_as_not_found(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "model m-small is not available on this server"}}, 400))
    with pytest.raises(NotFoundError):
        make_rt(home, fault_server, fake_time).generate("hi", provider="fault")


def test_400_context_length_is_context_too_long_and_does_not_fail_over(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        "type": "invalid_request_error", "code": "context_length_exceeded"}}, 400))
    rt = make_rt(home, fault_server, fake_time, chain=["backup:small"])
    with pytest.raises(ContextTooLongError) as info:
        rt.generate("hi", provider="fault")
    assert "maximum context length" in one_line(info.value)
    assert not fault_server.requests_to(B)
    assert 1 <= len(fault_server.requests_to(A)) <= 3  # at most two smaller tries


def test_401_is_not_retried_and_fails_over(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": "Incorrect API key provided"}}, 401))
    fault_server.script(B, fs.json_reply(ok_chat("from b")))
    rt = make_rt(home, fault_server, fake_time, chain=["backup:small"])
    r = rt.generate("hi", provider="fault")
    assert r.provider == "backup" and outcomes(r.attempts) == ["AuthError", "ok"]
    assert len(fault_server.requests_to(A)) == 1 and fake_time.sleeps == []
    with pytest.raises(AuthError) as info:
        rt.generate("hi", provider="fault", failover=False)
    assert "HTTP 401" in one_line(info.value)


def test_missing_key_names_the_variable_and_fails_over(home, fault_server, fake_time):
    fault_server.script(B, fs.json_reply(ok_chat("from b")))
    rt = make_rt(home, fault_server, fake_time, env={})
    with pytest.raises(MissingKeyError) as info:
        rt.generate("hi", provider="fault")
    assert "set FAULT_KEY" in one_line(info.value)
    r = rt.generate("hi", provider="fault", failover=["backup:small"])
    assert r.provider == "backup" and outcomes(r.attempts) == ["MissingKeyError", "ok"]
    assert not fault_server.requests_to(A)


def test_the_key_never_shows_even_when_the_server_echoes_it(home, fault_server, fake_time, caplog):
    def echo(status):
        def run(h):
            said = f"bad request from {h.headers.get('Authorization')} (key={SECRET})"
            fs.json_reply({"error": {"message": said}}, status)(h)
        return run

    fault_server.script(A, echo(401))
    rt = make_rt(home, fault_server, fake_time)
    caplog.set_level(logging.DEBUG)
    errors = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for status in (401, 400, 500):
            fault_server.script(A, echo(status))
            with pytest.raises(Exception) as info:
                rt.generate("hi", provider="fault")
            errors.append(info.value)
        fault_server.script(A, echo(500))
        with pytest.raises(Exception) as info:
            rt.stream("hi", provider="fault").text()
        errors.append(info.value)
    for exc in errors:
        one_line(exc)
        assert "***" in str(exc)  # the provider's message is kept, the key masked
        assert_no_secret(*exc.attempts)
    assert_no_secret(rt.ledger.dataframe().to_string(), caplog.text, [str(w.message) for w in caught],
                     rt.warnings, repr(rt), rt.providers_table().to_string())


# -- rate limits -----------------------------------------------------------------------------
def test_rate_limit_waits_and_says_so(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply(ok_chat()))
    rt = make_rt(home, fault_server, fake_time, retry={"max_total_s": 90.0}, fault_extra={"rate_limit": {"rpm": 2}})
    first, second, third = (rt.generate("hi", provider="fault") for _ in range(3))
    assert first.notes == [] and second.notes == []
    assert "waited 60.2 s for fault's rate limit" in third.notes  # the window and its arrival slack
    assert fake_time.sleeps == [60.25]


def test_rate_limit_from_config_with_a_bad_key_is_one_line(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply(ok_chat()))
    with pytest.raises(ConfigError, match=r"rate_limit\]: unknown key\(s\) rpx; valid: rpm, tpm, window_s"):
        make_rt(home, fault_server, fake_time, fault_extra={"rate_limit": {"rpx": 2}})  # refused when the config loads


# -- embeddings ------------------------------------------------------------------------------
def test_embeddings_batched_and_put_back_in_input_order(home, fault_server, fake_time):
    def answer(h):
        body = h.body
        data = [{"index": i, "embedding": [float(len(t)), float(i)]} for i, t in enumerate(body["input"])]
        fs.json_reply({"data": list(reversed(data)), "model": body["model"]})(h)

    fault_server.script("/a/v1/embeddings", fs.json_reply({"error": {"message": "busy"}}, 503), answer)
    rt = make_rt(home, fault_server, fake_time, fault_extra={"embedding_batch_size": 2})
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    vectors = rt.embed(texts, provider="fault", normalize=False)
    assert vectors.shape == (5, 2) and vectors[:, 0].tolist() == [1, 2, 3, 4, 5]
    batches = [r.body["input"] for r in fault_server.requests_to("/a/v1/embeddings")][1:]
    assert batches == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert len(fake_time.sleeps) == 1  # the 503 was retried on the same model (never failed over)


def test_per_token_vectors_are_refused(home, fault_server, fake_time):
    fault_server.script("/a/v1/embeddings", fs.json_reply({"data": [{"index": 0, "embedding": [[0.1, 0.2], [0.3, 0.4]]}]}))
    with pytest.raises(BadResponseError, match="one flat vector per text"):
        make_rt(home, fault_server, fake_time).embed(["x"], provider="fault")


def test_nothing_is_cached_from_a_failed_call(home, fault_server, fake_time):
    fault_server.script(A, fs.sse([delta("Hel"), delta("lo", "stop")], cut_after=1), fs.sse(OK_STREAM))
    rt = make_rt(home, fault_server, fake_time)
    with pytest.raises(StreamInterrupted):
        rt.stream("hi", provider="fault", cache=True).text()
    s = rt.stream("hi", provider="fault", cache=True)
    assert s.text() == "Hello" and not s.result.cached  # the cut stream left nothing behind
    again = rt.generate("hi", provider="fault", cache=True)
    assert again.cached and again.text == "Hello"  # the complete answer was stored
    assert len(fault_server.requests_to(A)) == 2


def test_missing_key_names_the_aliases_too(home, fake_time):
    rt = Runtime(home, config={}, env={}, sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(MissingKeyError, match=r"^\[grok\] no API key: set GROK_API_KEY \(or XAI_API_KEY\)$"):
        rt.generate("hi", provider="grok", failover=False)
    with pytest.raises(MissingKeyError, match=r"set GOOGLE_GENERATIVE_AI_API_KEY \(or GEMINI_API_KEY, GOOGLE_API_KEY\)"):
        rt.embed("hi", provider="google")


def test_closing_a_stream_early_stops_it_and_the_next_call_works(home, fault_server, fake_time):
    fault_server.script(A, fs.sse([delta(f"w{i} ") for i in range(50)] + [delta("end", "stop")]), fs.json_reply(ok_chat()))
    rt = make_rt(home, fault_server, fake_time)
    s = rt.stream("hi", provider="fault")
    assert next(s) == "w0 "
    s.close()  # the stop button: the half-read response is dropped, not drained
    assert s.result is None
    assert rt.generate("hi", provider="fault").text == "fine"


def test_settings_the_endpoint_does_not_take_are_dropped_with_a_note(home, fault_server, fake_time):
    fault_server.script(A, fs.json_reply(ok_chat()))
    fault_server.script(B, fs.json_reply(ok_chat()))
    rt = make_rt(home, fault_server, fake_time, fault_extra={"drop_settings": ["presence_penalty"], "max_stop": 2})
    r = rt.generate("hi", provider="fault", repetition_penalty=0.3, presence_penalty=0.5, frequency_penalty=0.0,
                    stop=["a", "b", "c"])
    body = fault_server.requests_to(A)[-1].body
    assert "presence_penalty" not in body and "repetition_penalty" not in body and "frequency_penalty" not in body
    assert body["stop"] == ["a", "b"]
    assert r.notes == [
        "stop: fault takes at most 2; sent the first 2 of 3",
        "presence_penalty=0.5 dropped: fault does not take it",
        "repetition_penalty=0.3 dropped: fault's API has no repetition penalty (set repetition_penalty_param "
        "in its catalog entry if it has one)",
    ]
    rt2 = make_rt(home, fault_server, fake_time, fault_extra={"repetition_penalty_param": "repetition_penalty"})
    assert rt2.generate("hi", provider="fault", repetition_penalty=0.3).notes == []
    assert fault_server.requests_to(A)[-1].body["repetition_penalty"] == 1.3
