"""The fault matrix (DESIGN.md §2), one row per fault, against a loopback server.

Every row runs three times:

1. with a failover chain ``fault:small -> backup:small`` (a second loopback provider) and
   the generation cache on: the attempts made, the waits (injected clock), the total
   time, the failover taken, and that nothing was cached from the failure;
2. without a chain: the error the user gets is one line that names the provider;
3. through ``%%eliza generate`` in IPython's test shell: one line, no traceback, and the
   next cell still runs.

What each row observed is written to ``test-artifacts/reliability/fault-matrix.md``
(docs/reliability.md holds the table).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fault_server as fs
import pytest
from IPython.utils.capture import capture_output
from rel_helpers import closed_port, one_line

from eliza_nb.core import errors as E
from eliza_nb.core.cache.generations import generation_tag
from eliza_nb.core.runtime import Runtime

A = "/a/v1/chat/completions"
B = "/b/v1/chat/completions"
KEY = "matrix-key-Qv7RzL0pW2xN8bY4"
RETRY = {"max_attempts": 3, "base_delay_s": 0.5, "max_delay_s": 4.0, "max_total_s": 30.0, "timeout_s": 5.0}
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability" / "fault-matrix.md"
LONG_PROMPT = " ".join(f"word{i}" for i in range(3000))  # ~3000 tokens: room to truncate


def ok_chat(text: str) -> dict:
    return {"model": "m-small", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def delta(text: str, finish: str | None = None) -> str:
    return json.dumps({"model": "m-small", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})


def backup_reply() -> fs.Behaviour:
    """The backup provider answers both plain and streamed requests."""
    def run(h):
        if isinstance(h.body, dict) and h.body.get("stream"):
            fs.sse([delta("from "), delta("backup", "stop")])(h)
        else:
            fs.json_reply(ok_chat("from backup"))(h)
    return run


def truncated_sse(h) -> None:
    """Two events, then half an event, then the body ends cleanly: a proxy cut the stream."""
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for payload in (f"data: {delta('Hel')}\n\n", f"data: {delta('lo ')}\n\n", 'data: {"model": "m-sm'):
        chunk = payload.encode()
        h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    h.wfile.write(b"0\r\n\r\n")


def err(status: int, message: str, headers: dict | None = None, **extra: Any) -> fs.Behaviour:
    return fs.json_reply({"error": {"message": message, **extra}}, status, headers)


@dataclass
class Case:
    name: str
    fault: Callable[[], Any] | None  # a behaviour or a list of them; None: the endpoint refuses connections
    expected: str  # the §2 behaviour, for the report
    error: type  # what the user gets without a chain
    attempts: int  # requests the faulty provider receives per call
    sleeps: list[tuple[float, float]]  # (low, high) bound of each wait, in order
    fails_over: bool  # with a chain: the backup answers
    says: str  # a fragment of the one-line message
    stream: bool = False
    partial: str | None = None  # text kept from a cut stream
    prompt: str = "hi"
    retry: dict = field(default_factory=dict)
    env: dict | None = None
    answers: str | None = None  # the faulty provider recovers within the call and answers this


BACKOFF = [(0.25, 0.5), (0.5, 1.0)]  # base 0.5 s doubling, up to half of each drawn at random

CASES = [
    Case("429 + Retry-After: 2", lambda: err(429, "slow down", {"Retry-After": "2"}),
         "honour Retry-After, capped attempts, then fail over", E.RateLimitedError, 3, [(2, 2), (2, 2)], True,
         "rate limited (HTTP 429): slow down"),
    Case("429 + Retry-After past the time cap", lambda: err(429, "come back in an hour", {"Retry-After": "3600"}),
         "no wait beyond max_total_s: fail over at once", E.RateLimitedError, 1, [], True, "HTTP 429"),
    Case("500", lambda: err(500, "boom"), "jittered exponential backoff, capped attempts, then fail over",
         E.TransientError, 3, BACKOFF, True, "failed (HTTP 500): boom"),
    Case("502", lambda: fs.raw("<html>Bad Gateway</html>", 502, content_type="text/html"),
         "jittered exponential backoff, capped attempts, then fail over", E.TransientError, 3, BACKOFF, True,
         "failed (HTTP 502)"),
    Case("503", lambda: err(503, "overloaded"), "jittered exponential backoff, capped attempts, then fail over",
         E.TransientError, 3, BACKOFF, True, "failed (HTTP 503): overloaded"),
    Case("timeout (server silent 30 s)", lambda: fs.slow(30, fs.json_reply(ok_chat("too late"))),
         "per-request timeout, backoff, capped attempts, then fail over", E.TransientError, 3, BACKOFF, True,
         "no answer within 0.3 s (timeout)", retry={"timeout_s": 0.3}),
    Case("connection refused", None, "backoff, capped attempts, then fail over", E.TransientError, 3, BACKOFF, True,
         "cannot connect"),
    Case("connection reset before the answer", lambda: fs.drop(), "backoff, capped attempts, then fail over",
         E.TransientError, 3, BACKOFF, True, "connection broken"),
    Case("connection reset mid-stream", lambda: fs.sse([delta("Hel"), delta("lo "), delta("world", "stop")], cut_after=2),
         "clean error, partial text kept, no retry or failover, nothing cached", E.StreamInterrupted, 1, [], False,
         "stream cut after 2 chunks: chat with m-small: connection broken", stream=True, partial="Hello "),
    Case("malformed JSON", lambda: fs.raw("{not json", 200), "no retry (same answer again); fail over",
         E.BadResponseError, 1, [], True, "the answer is not JSON"),
    Case("truncated SSE (body ends mid-event)", lambda: truncated_sse,
         "clean error, partial text kept, no retry or failover, nothing cached", E.StreamInterrupted, 1, [], False,
         "stream cut after 2 chunks: chat with m-small: an event is not JSON", stream=True, partial="Hello "),
    Case("SSE ends before any text", lambda: fs.sse([], done=False),
         "nothing shown yet: retried like a transient error, then fail over", E.TransientError, 3, BACKOFF, True,
         "the stream ended before its final event", stream=True),
    Case("404 model not found", lambda: err(404, "The model `m-small` does not exist", code="model_not_found"),
         "fail over at once, no retry", E.NotFoundError, 1, [], True, "not found (HTTP 404)"),
    Case("400 context too long", lambda: err(400, "This model's maximum context length is 1000 tokens. However, your "
                                                  "messages resulted in 3100 tokens.", code="context_length_exceeded"),
         "learn the window, retry fitted to it, then to a bound that cannot be low; no failover",
         E.ContextTooLongError, 3, [], False,
         "the prompt is too long for the model (HTTP 400)", prompt=LONG_PROMPT),
    Case("400 context too long, fits once truncated",
         lambda: [err(400, "This model's maximum context length is 1000 tokens. However, your messages resulted in "
                       "3100 tokens.", code="context_length_exceeded"), fs.json_reply(ok_chat("short enough"))],
         "truncate once, retry: answered, with a note", E.ContextTooLongError, 2, [], False,
         "the prompt is too long for the model (HTTP 400)", prompt=LONG_PROMPT, answers="short enough"),
    Case("401", lambda: err(401, "Incorrect API key provided"), "no retry, clear message, fail over",
         E.AuthError, 1, [], True, "refused the credentials (HTTP 401)"),
    Case("missing key", lambda: fs.json_reply(ok_chat("unused")), "at once: message names the variable; fail over",
         E.MissingKeyError, 0, [], True, "no API key: set FAULT_KEY", env={}),
]

OBSERVED: list[dict[str, str]] = []


def make_rt(home: Path, server, fake, case: Case, chain: bool) -> Runtime:
    endpoint = f"http://127.0.0.1:{closed_port()}/a/v1" if case.fault is None else server.url + "/a/v1"
    providers = {
        "fault": {"protocol": "openai", "endpoint": endpoint, "key_env": ["FAULT_KEY"],
                  "models": {"small": "m-small"}, "settings": {"temperature": 0.0, "max_output_tokens": 32}},
        "backup": {"protocol": "openai", "endpoint": server.url + "/b/v1", "key_env": [],
                   "models": {"small": "m-small"}, "settings": {"temperature": 0.0, "max_output_tokens": 32}},
    }
    config = {"providers": providers, "retry": {**RETRY, **case.retry}, "cache": {"generation": True},
              "failover": {"small": ["backup:small"]} if chain else {}}
    return Runtime(home, config=config, env={"FAULT_KEY": KEY} if case.env is None else case.env,
                   sleep=fake.sleep, clock=fake.clock)


def call(rt: Runtime, case: Case, **options: Any):
    opts = {"provider": "fault", **options}
    if case.stream:
        s = rt.stream(case.prompt, **opts)
        for _ in s:  # drained chunk by chunk, as a notebook cell does
            pass
        return s.result
    return rt.generate(case.prompt, **opts)


def script(server, case: Case) -> None:
    if case.fault is not None:
        fault = case.fault()
        server.script(A, *(fault if isinstance(fault, list) else [fault]))
    server.script(B, backup_reply())


def calls_to_fault(rt: Runtime, server, case: Case) -> int:
    """Requests the faulty provider received; refused connections never reach the server,
    so there the failed attempts in the ledger are counted instead."""
    if case.fault is None:
        return sum(1 for row in rt.ledger.rows() if row.provider == "fault" and row.error)
    return len(server.requests_to(A))


def fault_rows_in_cache(rt: Runtime) -> tuple[int, int]:
    """Generation entries of the faulty provider: (memory, disk)."""
    tag = generation_tag("fault", "m-small")
    memory = rt.cache.memory.by_tag().get(tag, (0, 0))[0]
    disk = {t: n for t, n, _ in rt.cache.disk.tag_stats()}.get(tag, 0) if rt.cache.disk is not None else 0
    return memory, disk


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if OBSERVED:
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        lines = ["| case | expected | observed |", "|---|---|---|"]
        lines += [f"| {r['case']} | {r['expected']} | {r['observed']} |" for r in OBSERVED]
        ARTIFACT.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case: Case, rhome, fault_server, fake_time, ip):
    script(fault_server, case)
    observed = with_chain(case, rhome, fault_server, fake_time)
    if case.answers is None:
        without_chain(case, rhome, fault_server, fake_time)
    seen = through_the_magic(case, rhome, fault_server, fake_time, ip)
    OBSERVED.append({"case": case.name, "expected": case.expected, "observed": f"{observed}; user sees `{seen[:150]}`"})


def with_chain(case: Case, home: Path, server, fake) -> str:
    """Part 1: attempts, waits, time bound, failover, and nothing cached from a failure."""
    rt = make_rt(home, server, fake, case, chain=True)
    t0, wall0 = fake.now, time.monotonic()
    outcome: Any
    try:
        outcome = call(rt, case)
    except E.ElizaError as exc:
        outcome = exc
    wall, waited = time.monotonic() - wall0, fake.now - t0
    attempts = outcome.attempts
    tried = calls_to_fault(rt, server, case)
    assert tried == case.attempts, [a.outcome for a in attempts]
    assert len(fake.sleeps) == len(case.sleeps), fake.sleeps
    for got, (low, high) in zip(fake.sleeps, case.sleeps, strict=True):
        assert low <= got <= high, fake.sleeps
    assert waited <= RETRY["max_total_s"] and wall < 10  # bounded: never a hung cell
    if case.answers is not None:
        assert outcome.provider == "fault" and outcome.text == case.answers, outcome
        assert any(n.startswith("truncated the prompt") for n in outcome.notes), outcome.notes
    elif case.fails_over:
        assert outcome.provider == "backup" and outcome.text == "from backup", outcome
        assert [a.outcome for a in attempts][-1] == "ok" and attempts[0].outcome == case.error.__name__
        assert len(server.requests_to(B)) == 1
    else:
        assert isinstance(outcome, case.error), outcome
        assert not server.requests_to(B)  # §2: this error does not fail over
        if case.partial is not None:
            assert outcome.partial == case.partial
    if case.prompt is LONG_PROMPT:  # the retry really was truncated (below the provider's 1000/3100)
        sent = [len(r.body["messages"][-1]["content"]) for r in server.requests_to(A)]
        assert sent[1] < sent[0] * 1000 / 3100, sent
    cached_ok = 1 if case.answers is not None else 0  # only a complete answer is ever stored
    assert fault_rows_in_cache(rt) == (cached_ok, cached_ok)
    before = calls_to_fault(rt, server, case)
    fake.now += 2 * rt.retry.cooldown_s  # past the cool-down: this checks the cache, not the cool-down
    try:
        again = call(rt, case)
    except E.ElizaError:
        again = None
    if case.answers is not None:
        assert again is not None and again.cached and again.text == case.answers
        assert calls_to_fault(rt, server, case) == before
    elif case.attempts:  # the faulty provider is asked again: its failure was not cached
        assert calls_to_fault(rt, server, case) > before, "a failure was answered from the cache"
    if case.fails_over:  # ...while the backup's complete answer was cached and reused
        assert again is not None and again.cached and again.provider == "backup"
        assert len(server.requests_to(B)) == 1
    assert fault_rows_in_cache(rt) == (cached_ok, cached_ok)
    if case.answers is None:
        assert all(row.error for row in rt.ledger.rows() if row.provider == "fault" and not row.cache_hit)
    rt.close()
    waits = [round(x, 2) for x in fake.sleeps[:len(case.sleeps)]]
    if case.answers is not None:
        what = f"answered by fault after truncating ({' → '.join(a.outcome for a in attempts)})"
    elif case.fails_over:
        what = f"failed over to backup ({' → '.join(a.outcome for a in attempts)})"
    else:
        what = f"no failover, {case.error.__name__}" + (f", partial {case.partial!r} kept" if case.partial else "")
    return (f"{tried} attempt(s); waits {waits} s (total {waited:.2f} s of the {RETRY['max_total_s']:.0f} s cap); "
            f"{what}; {'the answer' if cached_ok else 'nothing'} cached")


def without_chain(case: Case, home: Path, server, fake) -> None:
    """Part 2: no chain: one line that names the provider and says what happened."""
    rt = make_rt(home, server, fake, case, chain=False)
    with pytest.raises(case.error) as info:
        call(rt, case)
    message = one_line(str(info.value))
    assert message.startswith("[fault]") and case.says in message, message
    assert KEY not in message and KEY not in repr(info.value)
    rt.close()


def through_the_magic(case: Case, home: Path, server, fake, ip) -> str:
    """Part 3: %%eliza generate: one line, no traceback wall, and the kernel goes on."""
    import eliza_nb

    script(server, case)  # from the start of the fault's script again
    rt = make_rt(home, server, fake, case, chain=False)
    old = eliza_nb.set_runtime(rt)
    try:
        flags = "-p fault" + ("" if case.stream else " --no-stream")
        body = case.prompt if len(case.prompt) < 100 else "{long_prompt}"
        ip.user_ns["long_prompt"] = case.prompt
        with capture_output() as cap:
            cell = ip.run_cell(f"%%eliza generate {flags} --no-cache -o _fault_result\n{body}")
        shown = cap.stdout + cap.stderr
        if case.answers is not None:  # answered: the footer carries the truncation note
            assert cell.success, shown
            final = cap.outputs[-1].data["text/plain"]
            assert final.startswith(case.answers) and "note" not in shown
            assert any(n.startswith("truncated the prompt") for n in ip.user_ns["_fault_result"].notes)
            seen = final.splitlines()[-1]
        elif case.partial is not None:  # a cut stream keeps its text, marked interrupted, and says why
            assert cell.success, shown
            final = cap.outputs[-1].data["text/plain"]
            assert final.startswith(case.partial) and "interrupted" in final and case.says in final
            assert ip.user_ns["_fault_result"].interrupted
            seen = final.splitlines()[-1]
        else:
            assert not cell.success and isinstance(cell.error_in_exec, case.error)
            seen = one_line(shown)
            assert seen.startswith(f"{case.error.__name__}: [fault]") and case.says in seen
        assert KEY not in shown + "".join(str(o.data) + str(o.metadata) for o in cap.outputs)
        with capture_output():
            alive = ip.run_cell("_alive = 6 * 7")
        assert alive.success and ip.user_ns["_alive"] == 42
        return seen
    finally:
        eliza_nb.set_runtime(old)
        rt.close()
