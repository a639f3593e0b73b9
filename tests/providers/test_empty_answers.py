"""An answer with no content is never a silent success and never cached (issue 19, item 1):
a note and finish_reason "empty"; BadResponseError under strict=True; failover with a chain."""

from __future__ import annotations

import json

import fault_server as fs
import pytest
from provider_helpers import openai_entry

from eliza_nb.core.errors import BadResponseError
from eliza_nb.core.runtime import Runtime

A, B = "/a/v1/chat/completions", "/b/v1/chat/completions"


def empty_stream() -> fs.Behaviour:
    """A 200 stream closed cleanly with no content: what a gateway sends when its upstream failed mid-way."""
    return fs.sse([json.dumps({"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}),
                   json.dumps({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})])


def filled(text: str) -> fs.Behaviour:
    return fs.sse([json.dumps({"model": "m", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]})])


@pytest.fixture
def rt(bare_home, server):
    config = {"providers": {"a": openai_entry(server.url + "/a/v1", key_env=""), "b": openai_entry(server.url + "/b/v1", key_env="")},
              "defaults": {"provider": "a"}, "retry": {"max_attempts": 1, "max_total_s": 20.0, "timeout_s": 5.0}}
    r = Runtime(bare_home, config=config, env={})
    yield r
    r.close()


def drain(stream):
    return "".join(stream), stream.result


def test_an_empty_stream_is_marked_empty_with_a_note_and_never_cached(rt, server):
    server.script(A, empty_stream(), filled("Paris"))
    text, result = drain(rt.stream("capital of France?", cache=True))
    assert text == "" and result.finish_reason == "empty"
    assert any("the answer was empty" in n and "not cached" in n for n in result.notes)
    assert "the answer was empty" in result.footer()
    text, again = drain(rt.stream("capital of France?", cache=True))  # not a cache hit: the provider is asked again
    assert text == again.text == "Paris" and not again.cached and len(server.requests_to(A)) == 2


def test_strict_makes_an_empty_answer_a_one_line_bad_response(rt, server):
    server.script(A, empty_stream())
    with pytest.raises(BadResponseError, match=r"the answer was empty \(finish reason: stop\)") as info:
        drain(rt.stream("capital of France?", strict=True))
    assert "\n" not in str(info.value)


def test_with_a_chain_an_empty_answer_fails_over(rt, server):
    server.script(A, empty_stream())
    server.script(B, filled("Paris"))
    _, result = drain(rt.stream("capital of France?", failover=["b"]))
    assert result.text == "Paris" and result.provider == "b"
    assert [a.outcome for a in result.attempts] == ["BadResponseError", "ok"]
