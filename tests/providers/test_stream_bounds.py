"""What a server may send is bounded: one event-stream line, one event, one answer, one
error answer. And event-stream lines end where the SSE rules say: CR, LF or CRLF only."""

from __future__ import annotations

import json
import tracemalloc

import fault_server as fs
import httpx
import pytest
from provider_helpers import SECRET, assert_no_secret, openai_entry

from eliza_nb.adapters import http
from eliza_nb.core.errors import BadResponseError, TransientError
from eliza_nb.core.runtime import Runtime

A = "/a/v1/chat/completions"
CALL = {"headers": {}, "timeout_s": 5, "provider": "p", "key": None, "what": "w"}


def delta(text: str, finish: str | None = None) -> str:
    return json.dumps({"model": "m-small", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]},
                      ensure_ascii=False)


def endless_line(size: int = 50 << 20, piece: int = 64 << 10) -> fs.Behaviour:
    """A 200 text/event-stream answer that is one ``size``-byte line with no line end."""

    def run(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        frame = f"{piece:x}\r\n".encode() + b"x" * piece + b"\r\n"
        h.wfile.write(b"6\r\ndata: \r\n")
        for _ in range(size // piece):  # stops with an OSError when the client hangs up
            h.wfile.write(frame)
        h.wfile.write(b"0\r\n\r\n")

    return run


def stream_of(*chunks: bytes, status: int = 200) -> http.SSEStream:
    """An SSEStream over an answer that arrives in exactly these chunks."""
    answer = httpx.Response(status, content=iter(chunks), headers={"content-type": "text/event-stream"})
    client = httpx.Client(transport=httpx.MockTransport(lambda request: answer))
    return http.SSEStream(client, "http://x/y", {}, **CALL)


def test_an_endless_sse_line_is_a_one_line_error_in_bounded_memory(home, fault_server, fake_time):
    fault_server.script(A, fs.sse([delta("warm", "stop")]), endless_line())
    rt = Runtime(home, config={"providers": {"fault": openai_entry(fault_server.url + "/a/v1")}},
                 env={"FAULT_KEY": SECRET}, sleep=fake_time.sleep, clock=fake_time.clock)
    assert rt.stream("hi", provider="fault").text() == "warm"  # imports and the client made before measuring
    tracemalloc.start()
    try:
        with pytest.raises(BadResponseError) as info:
            rt.stream("hi", provider="fault").text()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("[fault] chat with m-small: a line of the event stream is longer than 1 MiB")
    assert_no_secret(message, repr(info.value))
    assert peak < 8 * http.MAX_LINE, f"{peak / 2**20:.1f} MiB held for one line"
    assert len(fault_server.requests_to(A)) == 2  # not retried: the same server would send the same


def test_an_event_past_its_limit_is_refused(monkeypatch):
    monkeypatch.setattr(http, "MAX_EVENT", 1000)
    many_lines = b"data: " + b"y" * 100 + b"\n"
    s = stream_of(b"data: small\n\n", many_lines * 20 + b"\n")
    events = s.events()
    assert next(events) == ("", "small")
    with pytest.raises(BadResponseError, match=r"^\[p\] w: an event is larger than"):
        next(events)
    s.close()


def test_answers_past_the_body_limit_are_refused(monkeypatch):
    monkeypatch.setattr(http, "MAX_BODY", 4096)
    big = httpx.Response(200, json={"text": "z" * 10_000})
    client = httpx.Client(transport=httpx.MockTransport(lambda request: big))
    with pytest.raises(BadResponseError, match=r"^\[p\] w: the answer is larger than"):
        http.post_json(client, "http://x/y", {}, **CALL)
    s = stream_of(*(b'data: {"n": %d}\n\n' % i for i in range(1000)))
    with pytest.raises(BadResponseError, match=r"^\[p\] w: the answer is larger than"):
        list(s.events())
    s.close()


def test_an_error_answer_is_read_only_as_far_as_its_message_needs():
    pulled = []

    def endless_error_page():
        for _ in range(200):  # 13 MB in all
            pulled.append(1)
            yield b"<html>" + b"overloaded " * 6000

    answer = httpx.Response(503, content=endless_error_page(), headers={"content-type": "text/html"})
    client = httpx.Client(transport=httpx.MockTransport(lambda request: answer))
    with pytest.raises(TransientError, match=r"^\[p\] w failed \(HTTP 503\): <html>overloaded overloaded"):
        http.post_json(client, "http://x/y", {}, **CALL)
    assert len(pulled) * 66_006 < 2 * http.MAX_ERROR_BODY


def test_only_cr_lf_and_crlf_end_a_line():
    # U+2028, U+2029 and U+0085 may stand unescaped in a JSON string; CR LF split over chunks is one line end
    text = "a\u2028b\x85c\u2029d"
    s = stream_of(f"data: {delta(text)}\r".encode(), b"\ndata: [DONE]\r", b"\n\r", b"\nevent: x\rdata: 2\r\n\r\n")
    events = list(s.events())
    assert events == [("", f"{delta(text)}\n[DONE]"), ("x", "2")]
    s.finish()


def test_stream_with_line_separators_in_the_text(home, fault_server, fake_time):
    fault_server.script(A, fs.sse([delta("one\u2028two"), delta("\x85three", "stop")]))
    rt = Runtime(home, config={"providers": {"fault": openai_entry(fault_server.url + "/a/v1")}},
                 env={"FAULT_KEY": SECRET}, sleep=fake_time.sleep, clock=fake_time.clock)
    assert rt.stream("hi", provider="fault").text() == "one\u2028two\x85three"
