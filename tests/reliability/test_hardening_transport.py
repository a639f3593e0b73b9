"""Issue 13, transport: every attempt bounded in time (one deadline for connect, send and
the whole answer or stream), every answer bounded in memory after decompression, no
redirect taken as an answer, and a 200 of the wrong shape a one-line BadResponseError
naming the field. Against loopback servers (tests/providers/fault_server.py) with small
real timeouts, and httpx.MockTransport for the shape table."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
import zlib
from typing import Any

import fault_server as fs
import httpx
import pytest
from provider_helpers import SECRET, FakeLlamaCache, assert_no_secret, openai_entry
from rel_helpers import one_line

from eliza_nb.adapters import http
from eliza_nb.core.errors import BadResponseError, ConfigError, StreamInterrupted, TransientError
from eliza_nb.core.runtime import Runtime

A = "/a/v1/chat/completions"
B = "/b/v1/chat/completions"
CALL = {"headers": {}, "provider": "p", "key": None, "what": "w"}
MiB = 1 << 20


def ok_chat(text: str) -> dict:
    return {"model": "m-small", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def delta(text: str, finish: str | None = None) -> str:
    return json.dumps({"model": "m-small", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})


def backup_reply(h) -> None:
    if isinstance(h.body, dict) and h.body.get("stream"):
        fs.sse([delta("from "), delta("backup", "stop")])(h)
    else:
        fs.json_reply(ok_chat("from backup"))(h)


def make_rt(home, server, fake_time, *, timeout_s: float = 1.0, chain: bool = False, attempts: int = 1,
            **config: Any) -> Runtime:
    providers = {"fault": openai_entry(server.url + "/a/v1"), "backup": openai_entry(server.url + "/b/v1", key_env="")}
    server.script(B, backup_reply)
    return Runtime(home, config={"providers": providers, "cache": {"generation": True},
                                 "retry": {"max_attempts": attempts, "timeout_s": timeout_s, "max_total_s": 30.0},
                                 "failover": {"small": ["backup:small"]} if chain else {}, **config},
                   env={"FAULT_KEY": SECRET}, sleep=fake_time.sleep, clock=fake_time.clock)


def cached(rt: Runtime) -> int:
    """Entries in the memory tier of the cache (generations are stored there and on disk alike)."""
    return sum(count for count, _ in rt.cache.memory.by_tag().values())


def stream_text(rt: Runtime, **options: Any) -> str:
    s = rt.stream("hi", provider="fault", **options)
    for _ in s:
        pass
    return s.result.text


# -- one deadline per attempt --------------------------------------------------------------------


def test_an_answer_dripping_one_byte_every_300_ms_ends_at_the_deadline(fault_server):
    fault_server.script(A, fs.drip(json.dumps(ok_chat("never complete")).encode(), every=0.3))
    t0 = time.monotonic()
    with pytest.raises(TransientError) as info, httpx.Client() as client:
        http.post_json(client, fault_server.url + A, {}, timeout_s=1.0, **CALL)
    elapsed = time.monotonic() - t0
    assert str(info.value) == "[p] w: no complete answer within 1 s"
    assert 0.9 <= elapsed < 1.8, elapsed  # per-read timeouts alone would let it run ~70 s


def test_a_dripping_stream_is_cut_at_the_deadline_with_its_text_kept(rhome, fault_server, fake_time):
    words = ["one", "two", "three", "four", "five", "six", "seven"]
    fault_server.script(A, fs.sse_then([delta(w) for w in words], every=0.3, pings=0.3))
    rt = make_rt(rhome, fault_server, fake_time, chain=True, attempts=3)
    t0 = time.monotonic()
    with pytest.raises(StreamInterrupted) as info:
        stream_text(rt)
    assert time.monotonic() - t0 < 1.8
    assert info.value.partial.startswith("onetwo")  # what was shown is kept
    assert "no complete answer within 1 s" in one_line(str(info.value))
    assert len(fault_server.requests_to(A)) == 1 and not fault_server.requests_to(B)  # text shown: no retry, no failover
    assert cached(rt) == 0


def test_a_stream_of_pings_only_fails_at_the_deadline_then_fails_over(rhome, fault_server, fake_time):
    fault_server.script(A, fs.sse_then([], pings=0.2))
    rt = make_rt(rhome, fault_server, fake_time, timeout_s=0.8)
    t0 = time.monotonic()
    with pytest.raises(TransientError) as info:
        stream_text(rt)
    assert time.monotonic() - t0 < 1.6
    assert one_line(str(info.value)).startswith("[fault] chat with m-small: no complete answer within 0.8 s")
    chained = make_rt(rhome, fault_server, fake_time, timeout_s=0.8, chain=True)
    assert stream_text(chained) == "from backup"


def test_a_server_that_goes_quiet_mid_answer_is_cut_at_the_deadline_not_a_read_timeout_later(fault_server):
    # Text at 0.5 s, then silence. httpcore takes the body's read timeout once, when the body
    # starts (1 s): without the watchdog the read begun at 0.5 s would wait until 1.5 s.
    fault_server.script(A, fs.sse_then([delta("Hel"), delta("lo")], every=0.25, silent=10))
    t0 = time.monotonic()
    with httpx.Client() as client:
        sse = http.SSEStream(client, fault_server.url + A, {}, timeout_s=1.0, **CALL)
        events = sse.events()
        assert [next(events)[1], next(events)[1]] == [delta("Hel"), delta("lo")]
        with pytest.raises(TransientError, match=r"^\[p\] w: no complete answer within 1 s$"):
            next(events)
        sse.close()
    assert time.monotonic() - t0 < 1.25


def test_a_plain_answer_that_stalls_mid_body_ends_at_the_deadline(fault_server):
    def half_then_silence(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.server.stopping.wait(0.5)
        h.wfile.write(b'{"choices": [')
        h.wfile.flush()
        h.server.stopping.wait(10)

    fault_server.script(A, half_then_silence)
    t0 = time.monotonic()
    with pytest.raises(TransientError, match="no complete answer within 1 s"), httpx.Client() as client:
        http.post_json(client, fault_server.url + A, {}, timeout_s=1.0, **CALL)
    assert time.monotonic() - t0 < 1.25


def test_late_headers_leave_the_body_only_what_is_left(fault_server):
    fault_server.script(A, fs.slow(0.7, fs.drip(b'{"a": 1}', every=0.2)))
    t0 = time.monotonic()
    with pytest.raises(TransientError, match="no complete answer within 1 s"), httpx.Client() as client:
        http.post_json(client, fault_server.url + A, {}, timeout_s=1.0, **CALL)
    assert time.monotonic() - t0 < 1.25


def test_time_spent_waiting_for_a_pooled_connection_counts(fault_server):
    # One connection in the pool, busy for 0.6 s: the second call waits for it, and its wait
    # for the headers gets only what is left (a timeout fixed when the request was built: 1 s more).
    import threading

    fault_server.script("/busy", fs.slow(0.6, fs.json_reply({})))
    fault_server.script(A, fs.slow(5, fs.json_reply(ok_chat("late"))))
    with httpx.Client(limits=httpx.Limits(max_connections=1)) as client:
        busy = threading.Thread(target=http.post_json, args=(client, fault_server.url + "/busy", {}),
                                kwargs={"timeout_s": 5, **CALL})
        busy.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        with pytest.raises(TransientError, match="no answer within 1 s"):
            http.post_json(client, fault_server.url + A, {}, timeout_s=1.0, **CALL)
        elapsed = time.monotonic() - t0
        busy.join()
    assert 0.9 < elapsed < 1.25, elapsed


def test_silence_before_the_headers_keeps_its_message(fault_server):
    fault_server.script(A, fs.slow(5, fs.json_reply(ok_chat("late"))))
    with pytest.raises(TransientError, match=r"^\[p\] w: no answer within 0.5 s \(timeout\)$"), httpx.Client() as client:
        http.post_json(client, fault_server.url + A, {}, timeout_s=0.5, **CALL)


def test_a_complete_answer_keeps_its_connection_for_the_next_call(fault_server):
    fault_server.script(A, fs.json_reply(ok_chat("x")))
    with httpx.Client() as client:
        for _ in range(3):
            assert http.post_json(client, fault_server.url + A, {}, timeout_s=0.3, **CALL)["model"] == "m-small"
        time.sleep(0.4)  # past every watchdog's time: none may cut the pooled connection
        assert http.post_json(client, fault_server.url + A, {}, timeout_s=1.0, **CALL)["model"] == "m-small"
    assert fault_server.connections == 1


def test_embedding_batches_share_one_deadline(fault_server):
    from types import SimpleNamespace

    from eliza_nb.adapters.openai_compat import OpenAICompatProvider

    def slow_vectors(h) -> None:
        h.server.stopping.wait(0.4)
        fs.json_reply({"data": [{"index": i, "embedding": [1.0, 0.0]} for i in range(len(h.body["input"]))]})(h)

    fault_server.script("/a/v1/embeddings", slow_vectors)
    entry = SimpleNamespace(id="fault", endpoint=fault_server.url + "/a/v1", extra={"embedding_batch_size": 1}, embedding_dims=2)
    with httpx.Client() as client:
        ctx = SimpleNamespace(get_key=lambda e: None, warn=print, http_client=lambda: client, options={})
        provider = OpenAICompatProvider(entry, ctx)
        assert provider.embed(["a", "b"], "m", timeout_s=5).shape == (2, 2)
        t0 = time.monotonic()
        with pytest.raises(TransientError, match="no (complete )?answer within 1 s"):
            provider.embed(["a", "b", "c", "d", "e"], "m", timeout_s=1.0)  # five batches of 0.4 s
    assert time.monotonic() - t0 < 1.3


# -- bodies bounded after decompression ----------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """96 MiB of zeros, gzipped: about 93 KB on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MiB)
    data = b"".join(packer.compress(zeros) for _ in range(96)) + packer.flush()
    assert len(data) < 100_000
    return data


def peak_of(call) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    try:
        try:
            call()
            raised = None
        except Exception as exc:  # returned to the test
            raised = exc
        return tracemalloc.get_traced_memory()[1], raised
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_cut_at_the_limit_in_bounded_memory(rhome, fault_server, fake_time, bomb):
    fault_server.script(A, fs.json_reply(ok_chat("warm")), fs.compressed(bomb))
    rt = make_rt(rhome, fault_server, fake_time)
    assert rt.generate("warm", provider="fault").text == "warm"  # imports and the pool before measuring
    peak, error = peak_of(lambda: rt.generate("hi", provider="fault"))
    assert isinstance(error, BadResponseError), error
    assert one_line(str(error)) == "[fault] chat with m-small: the answer is larger than 32 MiB"
    assert peak < 40 * MiB, f"{peak / MiB:.1f} MiB for a 96 MiB bomb"
    assert len(fault_server.requests_to(A)) == 2  # not retried
    assert cached(rt) == 1  # the warm-up answer only


def test_the_limit_comes_from_the_config_and_decompression_goes_in_small_steps(rhome, fault_server, fake_time, bomb):
    fault_server.script(A, fs.json_reply(ok_chat("warm")), fs.compressed(bomb))
    rt = make_rt(rhome, fault_server, fake_time, chain=True, limits={"max_body_mb": 1})
    assert rt.generate("warm", provider="fault").text == "warm"
    peak, error = peak_of(lambda: rt.generate("hi", provider="fault"))
    assert error is None
    assert peak < 4 * MiB, f"{peak / MiB:.1f} MiB held for a 1 MiB limit"  # httpx alone inflates ~64 MiB per read
    result = rt.generate("hi", provider="fault", cache=False)
    assert result.provider == "backup" and "larger than 1 MiB" in result.attempts[0].detail


@pytest.mark.parametrize("value", [0, -1, float("nan"), "32", True])
def test_a_bad_body_limit_is_one_line(rhome, fault_server, fake_time, value):
    rt = make_rt(rhome, fault_server, fake_time, limits={"max_body_mb": value})
    with pytest.raises(ConfigError, match=r"\[limits\] max_body_mb in config.toml must be a number of MiB above 0"):
        rt.generate("hi", provider="fault")


def test_a_limits_value_that_is_not_a_table_is_one_line(rhome, fault_server, fake_time):
    rt = make_rt(rhome, fault_server, fake_time, limits=32)
    with pytest.raises(ConfigError, match=r"^\[limits\] in config.toml must be a table, got 32$"):
        rt.generate("hi", provider="fault")


def test_a_gzip_bomb_as_an_error_answer_costs_almost_nothing(rhome, fault_server, fake_time, bomb):
    fault_server.script(A, fs.json_reply(ok_chat("warm")), fs.compressed(bomb, status=500, content_type="text/plain"))
    rt = make_rt(rhome, fault_server, fake_time)
    assert rt.generate("warm", provider="fault").text == "warm"
    peak, error = peak_of(lambda: rt.generate("hi", provider="fault"))
    assert isinstance(error, TransientError) and "failed (HTTP 500)" in str(error), error
    assert peak < 2 * MiB, f"{peak / MiB:.1f} MiB to read an error message"


def test_a_gzip_bomb_as_an_event_stream_is_cut_at_one_line(rhome, fault_server, fake_time, bomb):
    fault_server.script(A, fs.sse([delta("warm", "stop")]), fs.compressed(bomb, content_type="text/event-stream"))
    rt = make_rt(rhome, fault_server, fake_time)
    assert stream_text(rt) == "warm"
    peak, error = peak_of(lambda: stream_text(rt, cache=False))
    assert isinstance(error, BadResponseError) and "a line of the event stream is longer than 1 MiB" in str(error)
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB"


def test_compressed_answers_decode_and_only_gzip_and_deflate_are_asked_for(fault_server):
    text = json.dumps(ok_chat("é" * 5000))
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    fault_server.script(A, fs.compressed(gzip.compress(text.encode())),
                        fs.compressed(zlib.compress(text.encode()), encoding="deflate"),
                        fs.compressed(raw_deflate.compress(text.encode()) + raw_deflate.flush(), encoding="deflate"),
                        fs.compressed(b"\x8b\x00brotli", encoding="br"),
                        fs.compressed(b"not gzip at all", encoding="gzip"))
    with httpx.Client() as client:
        for _ in range(3):
            assert http.post_json(client, fault_server.url + A, {}, timeout_s=5, **CALL) == json.loads(text)
        with pytest.raises(BadResponseError, match=r"^\[p\] w: the answer is compressed as 'br', which we did not ask for$"):
            http.post_json(client, fault_server.url + A, {}, timeout_s=5, **CALL)
        with pytest.raises(BadResponseError, match=r"^\[p\] w: the answer's gzip data is broken$"):
            http.post_json(client, fault_server.url + A, {}, timeout_s=5, **CALL)
    assert {r.headers["Accept-Encoding"] for r in fault_server.requests} == {"gzip, deflate"}


def test_bounded_steps_yield_the_same_bytes_for_any_split():
    from eliza_nb.adapters import limits

    data = bytes(range(256)) * 2000 + bytes(300_000)
    packed = gzip.compress(data)
    for size in (1, 7, 4096, len(packed)):
        feed = limits.decoder("gzip")
        pieces = [p for i in range(0, len(packed), size) for p in feed(packed[i:i + size])]
        assert b"".join(pieces) == data and max(map(len, pieces)) <= limits.READ_STEP


# -- redirects and pages that are not event streams ----------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_an_answer_and_never_followed(rhome, fault_server, fake_time, status, stream):
    fault_server.script(A, fs.redirect(status, "https://elsewhere.example/v1/chat/completions?token=abc"))
    rt = make_rt(rhome, fault_server, fake_time, attempts=3)
    with pytest.raises(BadResponseError) as info:
        stream_text(rt) if stream else rt.generate("hi", provider="fault")
    message = one_line(str(info.value))
    assert message.startswith(f"[fault] chat with m-small: redirected to elsewhere.example (HTTP {status}); "
                              "not followed"), message
    assert "token=abc" not in message
    assert len(fault_server.requests) == 1  # not retried, not followed
    chained = make_rt(rhome, fault_server, fake_time, attempts=3, chain=True)
    assert (stream_text(chained) if stream else chained.generate("hi", provider="fault").text) == "from backup"
    assert len(fault_server.requests_to(A)) == 2


def test_a_relative_redirect_names_the_same_host(fault_server):
    fault_server.script(A, fs.redirect(302, "/login"))
    with pytest.raises(BadResponseError, match=r"redirected to 127\.0\.0\.1 \(HTTP 302\)"), httpx.Client() as client:
        http.post_json(client, fault_server.url + A, {}, timeout_s=5, **CALL)


def test_an_html_page_answering_a_stream_is_one_error_then_failover(rhome, fault_server, fake_time):
    fault_server.script(A, fs.raw("<html><body>Please log in to the Wi-Fi</body></html>", 200, content_type="text/html"))
    rt = make_rt(rhome, fault_server, fake_time, attempts=3)
    with pytest.raises(BadResponseError) as info:
        stream_text(rt)
    assert one_line(str(info.value)) == "[fault] chat with m-small: the answer is an HTML page, not an event stream"
    assert len(fault_server.requests_to(A)) == 1  # not retried three times
    assert stream_text(make_rt(rhome, fault_server, fake_time, attempts=3, chain=True)) == "from backup"


def test_a_json_answer_to_a_stream_says_what_the_server_said(rhome, fault_server, fake_time):
    fault_server.script(A, fs.json_reply({"error": {"message": f"streaming is disabled for key {SECRET}"}}))
    rt = make_rt(rhome, fault_server, fake_time, attempts=3)
    with pytest.raises(BadResponseError) as info:
        stream_text(rt)
    message = one_line(str(info.value))
    assert message.startswith("[fault] chat with m-small: the answer is JSON, not an event stream: streaming is disabled")
    assert_no_secret(message)
    assert len(fault_server.requests_to(A)) == 1


# -- 200 answers of the wrong shape --------------------------------------------------------------

CHOICE = {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
MESSAGE = {"type": "message", "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
GEMINI = {"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]}


def events(*objs: Any) -> str:
    return "".join(f"data: {json.dumps(o)}\n\n" for o in objs)


def anthropic_events(*objs: dict) -> str:
    return "".join(f"event: {o['type']}\ndata: {json.dumps(o)}\n\n" for o in objs)


# (provider, call, answer, the field the message names)
SHAPES = [
    ("openai", "generate", [CHOICE], "the answer: expected an object, got a list"),
    ("openai", "generate", {}, "choices: missing"),
    ("openai", "generate", {"choices": 3}, "choices: expected a list, got an integer"),
    ("openai", "generate", {"choices": [1]}, "choices[0]: expected an object, got an integer"),
    ("openai", "generate", {"choices": [{"message": "ok"}]}, "choices[0].message: expected an object, got a string"),
    ("openai", "generate", {"choices": [{"message": {"content": 42}}]},
     "choices[0].message.content: expected a string, got an integer"),
    ("openai", "generate", {"choices": [{"message": {"content": ["o", "k"]}}]},
     "choices[0].message.content: expected a string, got a list"),
    ("openai", "generate", {"choices": [CHOICE], "usage": {"prompt_tokens": "3"}},
     "usage.prompt_tokens: expected an integer, got a string"),
    ("openai", "generate", {"choices": [CHOICE], "usage": {"completion_tokens": 2.5}},
     "usage.completion_tokens: expected an integer, got a number"),
    ("openai", "generate", {"choices": [CHOICE], "usage": {"completion_tokens": -4}},
     "usage.completion_tokens: a negative token count (-4)"),
    ("openai", "generate", {"choices": [CHOICE], "usage": [3, 2]}, "usage: expected an object, got a list"),
    ("openai", "generate", {"choices": [{**CHOICE, "finish_reason": 1}]},
     "choices[0].finish_reason: expected a string, got an integer"),
    ("openai", "stream", events([1]), "event 1: expected an object, got a list"),
    ("openai", "stream", events({"choices": 5}), "event 1.choices: expected a list, got an integer"),
    ("openai", "stream", events({"choices": [{"delta": {"content": 7}}]}),
     "event 1.choices[0].delta.content: expected a string, got an integer"),
    ("openai", "stream", events({"choices": [{"delta": "hi"}]}), "event 1.choices[0].delta: expected an object"),
    ("openai", "stream", events({"choices": [], "usage": {"prompt_tokens": "x"}}),
     "event 1.usage.prompt_tokens: expected an integer, got a string"),
    ("openai", "embed", {"data": 1}, "data: expected a list, got an integer"),
    ("openai", "embed", {"data": [{"embedding": "0.1,0.2"}]}, "data[0].embedding: expected a list of numbers, got a string"),
    ("openai", "embed", {"data": [{"embedding": None}]}, "data[0].embedding: expected a list of numbers, got null"),
    ("openai", "embed", {"data": [{"embedding": [0.1, "x"]}]}, "data[0].embedding: expected numbers, found a string"),
    ("openai", "embed", {"data": [{"embedding": [0.1, None]}]}, "data[0].embedding: expected numbers, found null"),
    ("openai", "embed", {"data": [{"embedding": [True, False]}]}, "data[0].embedding: expected numbers, found a boolean"),
    ("openai", "embed", {"data": [{"embedding": [[0.1], [0.2]]}]}, "data[0].embedding: expected one flat vector per text"),
    ("openai", "embed", {"data": [{"index": "0", "embedding": [0.1]}]}, "data[0].index: expected an integer, got a string"),
    ("anthropic", "generate", {"content": "ok"}, "content: expected a list, got a string"),
    ("anthropic", "generate", {"content": [5]}, "content[0]: expected an object, got an integer"),
    ("anthropic", "generate", {"content": [{"type": "text", "text": 5}]}, "content[0].text: expected a string, got an integer"),
    ("anthropic", "generate", {**MESSAGE, "usage": {"input_tokens": "21"}},
     "usage.input_tokens: expected an integer, got a string"),
    ("anthropic", "generate", {**MESSAGE, "stop_reason": 3}, "stop_reason: expected a string, got an integer"),
    ("anthropic", "stream", anthropic_events({"type": "message_start", "message": {"usage": {"input_tokens": "x"}}}),
     "message_start.message.usage.input_tokens: expected an integer, got a string"),
    ("anthropic", "stream", anthropic_events({"type": "content_block_delta", "delta": {"type": "text_delta", "text": 5}}),
     "content_block_delta.delta.text: expected a string, got an integer"),
    ("anthropic", "stream", anthropic_events({"type": "message_delta", "delta": {"stop_reason": []}}),
     "message_delta.delta.stop_reason: expected a string, got a list"),
    ("google", "generate", {"candidates": {}}, "candidates: expected a list, got an object"),
    ("google", "generate", {"candidates": ["ok"]}, "candidates[0]: expected an object, got a string"),
    ("google", "generate", {"candidates": [{"content": {"parts": "ok"}}]},
     "candidates[0].content.parts: expected a list, got a string"),
    ("google", "generate", {"candidates": [{"content": {"parts": [{"text": 5}]}}]},
     "candidates[0].content.parts[0].text: expected a string, got an integer"),
    ("google", "generate", {**GEMINI, "usageMetadata": {"promptTokenCount": 1.5}},
     "usageMetadata.promptTokenCount: expected an integer, got a number"),
    ("google", "generate", {"promptFeedback": {"blockReason": 3}}, "promptFeedback.blockReason: expected a string"),
    ("google", "stream", events({"candidates": "ok"}), "event 1.candidates: expected a list, got a string"),
    ("google", "embed", {"embedding": {"values": "x"}}, "embedding.values: expected a list of numbers, got a string"),
    ("google", "embed", {"embedding": []}, "embedding: expected an object, got a list"),
    ("google", "embed2", {"embeddings": [{"values": [1.0, "a"]}, {"values": [1.0, 2.0]}]},
     "embeddings[0].values: expected numbers, found a string"),
]
KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "google": "GEMINI_API_KEY"}


def shape_call(home, provider: str, call: str, answer: Any, chain: bool = False) -> tuple[Any, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.host == "backup.example":
            return httpx.Response(200, json=ok_chat("from backup"))
        if isinstance(answer, str):
            return httpx.Response(200, text=answer, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=answer)

    config: dict[str, Any] = {"retry": {"max_attempts": 3}}
    if chain:
        config["providers"] = {"backup": openai_entry("https://backup.example/v1", key_env="")}
        config["failover"] = {"small": ["backup:small"]}
    rt = Runtime(home, config=config, env={KEYS[provider]: SECRET}, transport=httpx.MockTransport(handler),
                 sleep=lambda s: None)
    if call == "generate":
        return rt.generate("hi", provider=provider), sent
    if call == "stream":
        s = rt.stream("hi", provider=provider)
        for _ in s:
            pass
        return s.result, sent
    return rt.embed(["a"] if call == "embed" else ["a", "b"], provider=provider, regenerate=True), sent


@pytest.mark.parametrize(("provider", "call", "answer", "names"), SHAPES,
                         ids=[f"{p}-{c}-{n.split(':')[0]}" for p, c, _, n in SHAPES])
def test_a_200_of_the_wrong_shape_is_a_bad_response_naming_the_field(rhome, provider, call, answer, names):
    with pytest.raises(BadResponseError) as info:
        shape_call(rhome, provider, call, answer)
    message = one_line(str(info.value))
    assert message.startswith(f"[{provider}] ") and names in message, message
    assert type(info.value.__context__) not in (AttributeError, TypeError, KeyError)


@pytest.mark.parametrize(("provider", "answer"), [("openai", {"choices": [{"message": {"content": 42}}]}),
                                                  ("anthropic", {"content": "ok"}),
                                                  ("google", {"candidates": {}})])
def test_a_wrong_shape_fails_over_without_retrying(rhome, provider, answer):
    result, sent = shape_call(rhome, provider, "generate", answer, chain=True)
    assert result.provider == "backup" and result.text == "from backup"
    assert [r.url.host for r in sent][-1] == "backup.example" and len(sent) == 2  # one try, then the next target
    assert result.attempts[0].outcome == "BadResponseError"


def test_answers_of_the_right_shape_still_read_as_before(rhome):
    r, _ = shape_call(rhome, "openai", "generate", {"choices": [{"message": {"content": None}, "finish_reason": "stop"}],
                                                    "usage": None, "model": None})
    from eliza_nb.core.catalog import Catalog
    from eliza_nb.core.types import ModelClass

    asked = Catalog.load({}, env={}).get("openai").models[ModelClass.SMALL]  # no model in the answer: the one asked
    assert (r.text, r.usage.prompt_tokens, r.model) == ("", None, asked)
    r, _ = shape_call(rhome, "anthropic", "generate", {"content": [{"type": "tool_use", "id": "x"}, {"type": "text", "text": "ok"}]})
    assert r.text == "ok"
    r, _ = shape_call(rhome, "google", "generate", {"candidates": [{"content": {"parts": [{"text": "a", "thought": True},
                                                                                        {"text": "b"}]}}]})
    assert r.text == "b"
    v, _ = shape_call(rhome, "openai", "embed", {"data": [{"index": 0, "embedding": [1] + [0] * 1535}]})
    assert v.shape == (1, 1536)


# -- llama_local: the same deadline, checked per token -------------------------------------------


class EndlessLlama(FakeLlamaCache):
    """A stand-in for llama_cpp.Llama that makes a token every 50 ms, forever."""

    def __init__(self) -> None:
        super().__init__()
        self.made = 0

    def tokenize(self, text: bytes, add_bos: bool = False, special: bool = False) -> list[int]:
        return [1] * max(1, len(text) // 4)

    def reset(self) -> None:
        pass

    def create_completion(self, **kwargs: Any):
        while True:
            time.sleep(0.05)
            self.made += 1
            yield {"choices": [{"text": "tok ", "finish_reason": None}]}


@pytest.fixture
def endless(tmp_path, monkeypatch):
    from pathlib import Path
    from types import SimpleNamespace

    from eliza_nb.adapters import llama_local
    from eliza_nb.core.settings import ModelSettings
    from eliza_nb.core.types import Message, ModelClass, Request, Target

    fake = EndlessLlama()
    template = SimpleNamespace(prompt="<p>", added_special=False, stop=[], stopping_criteria=None)
    monkeypatch.setattr(llama_local.LoadedModel, "_load", lambda self: fake)
    monkeypatch.setattr(llama_local.LoadedModel, "formatter", lambda self, llm, generation_prompt=True: lambda messages: template)
    provider = llama_local.LlamaLocalProvider(tmp_path)
    provider._paths["m"] = Path("m.gguf")
    request = Request(Target("llama_local", ModelClass.SMALL, "m"), (Message("user", "hi"),), ModelSettings(),
                      timeout_s=0.5)
    return provider, request, fake


def test_local_generation_ends_at_the_deadline(endless):
    provider, request, fake = endless
    got: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(TransientError, match=r"^\[llama_local\] m.gguf: no complete answer within 0.5 s$"):
        for chunk in provider.stream(request):
            got.append(chunk.text)
    assert 0.45 < time.monotonic() - t0 < 0.7
    assert 3 <= len(got) <= 12  # the text made in time was handed over (the ladder keeps it as .partial)


def test_local_generation_stops_at_the_deadline_even_when_nobody_reads(endless):
    provider, request, fake = endless
    chunks = provider.stream(request)
    assert next(chunks).text == "tok "  # generation started; then the caller stops reading
    time.sleep(0.8)
    made = fake.made
    t0 = time.monotonic()
    assert provider.model("m", embedding=False).run(lambda llm: "free") == "free"  # the llama thread is free again
    assert time.monotonic() - t0 < 0.2
    time.sleep(0.2)
    assert fake.made == made <= 12  # it stopped at the deadline, not at the caller's next read
    with pytest.raises(TransientError, match="no complete answer within 0.5 s"):
        for _ in chunks:  # what was made in time is still handed over, then the deadline
            pass


def test_local_model_through_the_ladder_is_bounded_by_its_timeout(tmp_path_factory):
    rt = Runtime(tmp_path_factory.mktemp("local_home"), config={"retry": {"max_attempts": 1, "timeout_s": 2.0}}, env={})
    try:
        rt.generate("Hi", provider="llama_local", max_tokens=2, timeout_s=120)  # loaded before the clock starts
        t0 = time.monotonic()
        with pytest.raises((StreamInterrupted, TransientError)) as info:
            s = rt.stream("Write a very long story about a dragon.", provider="llama_local", max_tokens=4000,
                          temperature=0)
            for _ in s:
                pass
        assert time.monotonic() - t0 < 3.0
        assert "no complete answer within 2 s" in one_line(str(info.value))
        if isinstance(info.value, StreamInterrupted):  # text came before the deadline (a loaded machine may be slower)
            assert info.value.partial
    finally:
        rt.close()
