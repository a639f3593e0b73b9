"""Unit tests: Retry-After parsing, scrubbing, status classification, SSE parsing, and the
sliding-window rate limiter (including concurrent callers)."""

from __future__ import annotations

import email.utils
import threading
import time

import httpx
import pytest
from provider_helpers import FakeTime

from eliza_nb.adapters import failures, http
from eliza_nb.core import errors as E
from eliza_nb.core.ratelimit import RateLimiter
from eliza_nb.core.retry import RetryPolicy


def test_parse_retry_after():
    assert failures.parse_retry_after("3") == 3.0
    assert failures.parse_retry_after("0.5") == 0.5
    assert failures.parse_retry_after(None) is None and failures.parse_retry_after("soon") is None
    now = time.time()
    assert 9 <= failures.parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now) <= 10
    assert failures.parse_retry_after(email.utils.formatdate(now - 100, usegmt=True), now) == 0.0


@pytest.mark.parametrize("text", [
    "Incorrect API key provided: sk-abcdefghijklmnopqrstuvwxyz123456",
    "header was Bearer abcdefghijklmnop.qrstuvwx",
    "api_key=AIzaSyA1234567890abcdefghijklmnopqrstu",
    "token: 'xai-ABCDEFGHIJKLMNOPQRST'",
])
def test_scrub_masks_credentials_even_without_knowing_the_key(text):
    out = failures.scrub(text)
    assert "***" in out
    assert not any(secret in out for secret in ("abcdefghijklmnop", "1234567890abcdef", "ABCDEFGHIJKLMNOP"))


def test_scrub_is_one_short_line():
    out = failures.scrub("line one\nline two\t" + "x" * 1000, key="line")
    assert "\n" not in out and len(out) <= failures.MAX_MESSAGE and "line" not in out


@pytest.mark.parametrize("status,message,code,expected", [
    (401, "bad key", None, E.AuthError),
    (403, "forbidden", None, E.AuthError),
    (400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", E.AuthError),
    (404, "no such route", None, E.NotFoundError),
    (400, "The model `gpt-9` does not exist", "model_not_found", E.NotFoundError),
    (400, "This model's maximum context length is 4096 tokens", "context_length_exceeded", E.ContextTooLongError),
    (400, "prompt is too long: 210000 tokens > 200000 maximum", "invalid_request_error", E.ContextTooLongError),
    (413, "request too large", None, E.ContextTooLongError),
    (429, "slow down", "rate_limit_exceeded", E.RateLimitedError),
    (500, "oops", None, E.TransientError),
    (503, "overloaded", None, E.TransientError),
    (529, "Overloaded", "overloaded_error", E.TransientError),
    (408, "timeout", None, E.TransientError),
    (400, "temperature must be a number", None, E.InvalidRequestError),
    (422, "field required", None, E.InvalidRequestError),
])
def test_status_classification(status, message, code, expected):
    exc = failures.error_for_status(status, message, code, provider="p", key=None, what="chat with m")
    assert type(exc) is expected
    assert str(exc).startswith("[p] chat with m") and message[:20] in str(exc)


def test_transport_exceptions_are_transient():
    req = httpx.Request("POST", "http://127.0.0.1:1/v1")
    for exc in (httpx.ReadTimeout("t", request=req), httpx.ConnectError("refused", request=req),
                httpx.RemoteProtocolError("peer closed", request=req), httpx.ReadError("reset", request=req)):
        out = failures.error_from_exception(exc, provider="p", key=None, what="chat", timeout_s=2)
        assert isinstance(out, E.TransientError) and out.retryable


def test_sse_parsing_handles_crlf_comments_and_multiline_data():
    body = (b": keep-alive\r\n\r\nevent: a\r\ndata: {\"x\":\r\ndata: 1}\r\n\r\n"
            b"data: two\n\nretry: 100\nid: 7\ndata: three")
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body)))
    s = http.SSEStream(client, "http://x/y", {}, headers={}, timeout_s=5, provider="p", key=None, what="w")
    assert list(s.events()) == [("a", '{"x":\n1}'), ("", "two"), ("", "three")]
    s.finish()


def test_retry_delay_respects_caps():
    policy = RetryPolicy(max_attempts=3, max_total_s=10)
    busy = E.TransientError("busy")
    assert policy.wait(busy, 3, policy.max_total_s) is None  # attempts used up
    assert policy.wait(E.AuthError("no"), 1, policy.max_total_s) is None  # not retryable
    late = E.RateLimitedError("later", retry_after=60)
    assert policy.wait(late, 1, policy.max_total_s) is None  # would pass the total-time cap
    assert policy.wait(E.RateLimitedError("soon", retry_after=2), 1, policy.max_total_s) == 2.0


# -- rate limiter ------------------------------------------------------------------------------
def test_rpm_window_slides():
    t = FakeTime()
    rl = RateLimiter(t.clock, t.sleep)
    waits = [rl.acquire("p", {"rpm": 3}).waited_s for _ in range(7)]
    assert waits == [0, 0, 0, 60.25, 0, 0, 60.25]  # the window and its arrival slack (ratelimit.arrival_slack)
    assert t.sleeps == [60.25, 60.25]


def test_tpm_budget_and_settling_with_real_usage():
    t = FakeTime()
    rl = RateLimiter(t.clock, t.sleep)
    first = rl.acquire("p", {"tpm": 1000}, tokens=400)
    first.settle(900)  # the provider reported more than the estimate
    second = rl.acquire("p", {"tpm": 1000}, tokens=200)
    assert second.waited_s == 60.25  # the window and its arrival slack
    assert rl.acquire("p", {"tpm": 1000}, tokens=5000).waited_s == 60.25  # too big for any window: runs alone
    assert rl.acquire("q", {"tpm": 1000}, tokens=999).waited_s == 0  # budgets are per provider
    assert rl.acquire("p", None) is None and rl.acquire("p", {}) is None


def test_bad_limits_are_one_line_errors():
    rl = RateLimiter(time.monotonic, time.sleep)
    with pytest.raises(E.ConfigError, match="rpm must be a number > 0"):
        rl.acquire("p", {"rpm": 0})
    with pytest.raises(E.ConfigError, match="unknown key"):
        rl.acquire("p", {"rps": 1})


def test_concurrent_callers_get_distinct_slots():
    """Eight threads on rpm=2: slots are handed out in order, two per 60 s window."""
    lock = threading.Lock()
    now = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:  # do not advance the shared clock: every caller reserves at t=0
        with lock:
            waits.append(s)

    rl = RateLimiter(lambda: now[0], sleep)
    threads = [threading.Thread(target=rl.acquire, args=("p", {"rpm": 2})) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=5)
    assert sorted(waits) == [60.25, 60.25, 120.5, 120.5, 180.75, 180.75]  # plus two that did not wait
    assert rl.usage("p")[0] == 8


def test_plain_http_warning_only_for_remote_hosts_with_a_key():
    said: list[str] = []
    http.check_plain_http("http://127.0.0.1:8000/v1", "k", said.append, "p")
    http.check_plain_http("http://localhost:11434/v1", "k", said.append, "p")
    http.check_plain_http("http://10.0.0.5:8000/v1", "k", said.append, "p")
    http.check_plain_http("https://api.example.com/v1", "k", said.append, "p")
    http.check_plain_http("http://sequencer.heurist.xyz/submit_job", None, said.append, "p")
    assert said == []
    http.check_plain_http("http://sequencer.heurist.xyz/submit_job", "k", said.append, "heurist")
    assert said == ["heurist: sequencer.heurist.xyz is plain http, so the key travels unencrypted"]
