"""bench/loopback.py, the loopback OpenAI-compatible server the benches and the scale-out
tests talk to: deterministic embeddings, echo answers, delay and rate-limit prefixes, and
the hit log (``/hits``, ``/reset``, ``max_inflight``)."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import loopback  # noqa: E402
from loopback import Loopback  # noqa: E402

TEXTS = ["alpha", "beta gamma", "δέλτα ünïcode", "", "alpha"]


@pytest.fixture(scope="module")
def server() -> Iterator[Loopback]:
    with Loopback.start() as s:
        yield s


@pytest.fixture
def srv(server: Loopback) -> Loopback:
    """The module's server with its hit log and rate windows cleared."""
    server.reset()
    return server


def embed(client: httpx.Client, base: str, inp: Any, **extra: Any) -> dict[str, Any]:
    r = client.post(f"{base}/v1/embeddings", json={"model": "emb", "input": inp, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def chat(client: httpx.Client, url: str, prompt: str, stream: bool = False) -> httpx.Response:
    body = {"model": "m", "stream": stream,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first question"},
                         {"role": "assistant", "content": "ok"}, {"role": "user", "content": prompt}]}
    r = client.post(url, json=body)
    assert r.status_code == 200, r.text
    return r


def sse_events(raw: str) -> list[dict[str, Any]]:
    """The JSON events of an SSE body, checking its framing and the final [DONE]."""
    blocks = raw.split("\n\n")
    assert blocks[-1] == "" and blocks[-2] == "data: [DONE]"
    events = []
    for block in blocks[:-2]:
        assert block.startswith("data: ") and "\n" not in block
        events.append(json.loads(block[len("data: "):]))
    return events


# -- embeddings ---------------------------------------------------------------------------------


def test_embeddings_deterministic_and_batch_independent(srv: Loopback) -> None:
    with httpx.Client() as c:
        alone = embed(c, srv.base, "alpha")
        as_list = embed(c, srv.base, ["alpha"])
        batch = embed(c, srv.base, TEXTS)
        again = embed(c, srv.base, list(reversed(TEXTS)))
    assert alone["object"] == "list" and alone["model"] == "emb"
    vec = alone["data"][0]["embedding"]
    assert len(vec) == loopback.EMBED_DIMS == 64
    assert as_list["data"][0]["embedding"] == vec
    assert [d["index"] for d in batch["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "embedding" for d in batch["data"])
    rows = [d["embedding"] for d in batch["data"]]
    assert rows[0] == vec and rows[4] == vec  # same text, same vector, wherever it sits in the batch
    assert [d["embedding"] for d in again["data"]] == rows[::-1]
    assert len({tuple(r) for r in rows}) == 4  # the four distinct texts get distinct vectors
    arr = np.asarray(rows, dtype=np.float64)
    assert np.array_equal(arr.astype(np.float32).astype(np.float64), arr)  # exact in float32
    assert arr.min() >= -1 and arr.max() <= 1 and abs(arr.mean()) < 0.2
    assert batch["usage"]["prompt_tokens"] == batch["usage"]["total_tokens"] > 0


def test_embeddings_base64_and_dimensions(srv: Loopback) -> None:
    with httpx.Client() as c:
        floats = embed(c, srv.base, ["beta gamma"])["data"][0]["embedding"]
        b64 = embed(c, srv.base, ["beta gamma"], encoding_format="base64")["data"][0]["embedding"]
        short = embed(c, srv.base, ["beta gamma"], dimensions=16)["data"][0]["embedding"]
        long = embed(c, srv.base, ["beta gamma"], dimensions=100)["data"][0]["embedding"]
    assert list(struct.unpack("<64f", base64.b64decode(b64))) == floats
    assert short == floats[:16] and long[:64] == floats and len(long) == 100


def test_embeddings_bad_input_is_an_openai_error(srv: Loopback) -> None:
    with httpx.Client() as c:
        r = c.post(f"{srv.base}/v1/embeddings", content=b"{not json")
        r2 = c.post(f"{srv.base}/v1/embeddings", json={"model": "emb", "input": []})
    assert r.status_code == r2.status_code == 400
    assert r.json()["error"]["type"] == r2.json()["error"]["type"] == "invalid_request_error"


def test_embeddings_fail_marker_is_a_400(srv: Loopback) -> None:
    with httpx.Client() as c:
        bad = c.post(f"{srv.base}/d1/v1/embeddings", json={"model": "emb", "input": ["fine", "x <<fail>> y"]})
        alone = c.post(f"{srv.base}/v1/embeddings", json={"input": "<<fail>>"})
        near = embed(c, srv.base, ["<<fail>", "<fail>>", "fine"])  # only the whole marker is refused
        chat_ok = chat(c, f"{srv.base}/echo/v1/chat/completions", "<<fail>>")  # chat ignores it
    assert bad.status_code == alone.status_code == 400
    assert bad.json()["error"]["message"] == "input contains a rejected text"
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert len(near["data"]) == 3
    assert chat_ok.json()["choices"][0]["message"]["content"] == "echo: <<fail>>"
    hits = srv.hits()["hits"]  # the refused requests reached the server: counted with their texts
    assert [(path, n) for _, path, n in hits] == [
        ("/d1/v1/embeddings", 2), ("/v1/embeddings", 1), ("/v1/embeddings", 3), ("/echo/v1/chat/completions", 0)]


# -- chat -------------------------------------------------------------------------------------


def test_plain_chat_keeps_the_fixed_bytes(srv: Loopback) -> None:
    with httpx.Client() as c:
        plain = chat(c, f"{srv.base}/v1/chat/completions", "anything")
        streamed = chat(c, f"{srv.base}/d1/v1/chat/completions", "anything else", stream=True)
    assert plain.content == loopback.CHAT
    assert streamed.content == loopback.SSE


@pytest.mark.parametrize("prefix", ["/echo", "/d1/echo", "/echo/d1"])
def test_echo_answers_per_prompt(srv: Loopback, prefix: str) -> None:
    prompts = ['say "hi"\nand a backslash \\ then ünïcode 🙂', "x" * 100, "short"]
    url = f"{srv.base}{prefix}/v1/chat/completions"
    answers, streamed = [], []
    with httpx.Client() as c:
        for p in prompts:
            body = chat(c, url, p).json()
            assert body["object"] == "chat.completion" and body["model"] == "m"
            answers.append(body["choices"][0]["message"]["content"])
            usage = body["usage"]
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
            r = chat(c, url, p, stream=True)
            assert r.headers["content-type"] == "text/event-stream"
            events = sse_events(r.text)
            assert events[0]["choices"][0]["delta"]["role"] == "assistant"
            assert events[-2]["choices"][0]["finish_reason"] == "stop"
            assert events[-1]["choices"] == [] and events[-1]["usage"] == usage
            streamed.append("".join(e["choices"][0]["delta"]["content"] for e in events[:-1]))
    assert answers == ["echo: " + p[:40] for p in prompts]
    assert streamed == answers
    assert len(set(answers)) == len(prompts)


def test_echo_without_a_user_message_gives_the_fixed_answer(srv: Loopback) -> None:
    with httpx.Client() as c:
        r = c.post(f"{srv.base}/echo/v1/chat/completions",
                   json={"model": "m", "messages": [{"role": "system", "content": "hi"}]})
    assert r.content == loopback.CHAT


# -- delay, rate limit, hits ------------------------------------------------------------------


def test_delay_composes_with_echo_and_embeddings(srv: Loopback) -> None:
    with httpx.Client() as c:
        t0 = time.monotonic()
        body = chat(c, f"{srv.base}/d200/echo/v1/chat/completions", "slow one").json()
        t1 = time.monotonic()
        embed(c, f"{srv.base}/d200", ["a", "b"])
        t2 = time.monotonic()
    assert body["choices"][0]["message"]["content"] == "echo: slow one"
    assert t1 - t0 >= 0.2 and t2 - t1 >= 0.2  # lower bounds only: the server waited


def test_rate_limit_rejects_over_the_window(srv: Loopback) -> None:
    with httpx.Client() as c:
        codes = [c.post(f"{srv.base}/r3-60/v1/embeddings", json={"input": ["t"]}).status_code for _ in range(3)]
        over = c.post(f"{srv.base}/r3-60/echo/v1/chat/completions", json={"messages": []})
        other = c.post(f"{srv.base}/r5-60/v1/embeddings", json={"input": ["t"]})  # its own window
    assert codes == [200, 200, 200]
    assert over.status_code == 429 and over.headers["retry-after"] == "1"
    assert over.json()["error"]["code"] == "rate_limit_exceeded"
    assert other.status_code == 200
    h = srv.hits()
    assert h["rejected"] == 1 and len(h["hits"]) == 4  # rejected requests are not hits


def test_rate_limit_window_slides(srv: Loopback) -> None:
    url = f"{srv.base}/r2-0.3/v1/embeddings"
    with httpx.Client() as c:
        first = [c.post(url, json={"input": "t"}).status_code for _ in range(3)]
        time.sleep(0.35)  # the first two leave the window
        later = [c.post(url, json={"input": "t"}).status_code for _ in range(3)]
    assert first == later == [200, 200, 429]
    assert srv.hits()["rejected"] == 2


def test_hits_max_inflight_and_reset(srv: Loopback) -> None:
    async def both() -> None:
        async with httpx.AsyncClient() as c:
            rs = await asyncio.gather(
                c.post(f"{srv.base}/d500/v1/embeddings", json={"input": ["a", "b", "c"]}),
                c.post(f"{srv.base}/d500/echo/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "q"}]}))
            assert [r.status_code for r in rs] == [200, 200]

    before = time.time()
    asyncio.run(both())
    h = srv.hits()
    assert h["max_inflight"] == 2 and h["rejected"] == 0 and h["dropped"] == 0
    assert sorted((path, n) for _, path, n in h["hits"]) == [
        ("/d500/echo/v1/chat/completions", 0), ("/d500/v1/embeddings", 3)]
    assert all(before <= t <= time.time() for t, _, _ in h["hits"])
    assert sorted(h["inflight_at_arrival"]) == [1, 2]

    with httpx.Client() as c:  # sequential calls on one connection: in flight one at a time
        for _ in range(3):
            embed(c, srv.base, "x")
    h = srv.hits()
    assert h["max_inflight"] == 2 and h["inflight_at_arrival"][-3:] == [1, 1, 1]

    srv.reset()
    h = srv.hits()
    assert h["hits"] == [] and h["inflight_at_arrival"] == []
    assert h["max_inflight"] == 0 and h["rejected"] == 0
    with httpx.Client() as c:  # GET /reset works as well
        assert c.get(f"{srv.base}/reset").json() == {"ok": True}


def test_probes_are_not_client_connections(srv: Loopback) -> None:
    before = srv.connections()
    assert srv.hits()["connections"] == before  # neither probe counted itself
    srv.reset()
    with httpx.Client() as c:  # one client, one reused connection
        for _ in range(3):
            embed(c, srv.base, "x")
            chat(c, f"{srv.base}/echo/v1/chat/completions", "y")
    assert srv.connections() == before + 1
    assert srv.hits()["connections"] == before + 1


def test_parse_path_grammar() -> None:
    r = loopback.parse_path("/r5-2.5/echo/d40/v1/embeddings?x=1")
    assert (r.delay_s, r.echo, r.limit, r.rest) == (0.04, True, ("r5-2.5", 5, 2.5), "/v1/embeddings")
    assert loopback.parse_path("/v1/chat/completions") == loopback.Route(rest="/v1/chat/completions")
    # a repeated prefix, or one after the first plain segment, is part of the path
    assert loopback.parse_path("/d10/d20/v1").rest == "/d20/v1"
    assert loopback.parse_path("/v1/echo/chat").echo is False
