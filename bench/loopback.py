"""A loopback OpenAI-compatible server for the benches and scale-out tests, run in its own process.

It answers ``POST .../chat/completions`` at once with a fixed body: a chat completion,
or (when the request says ``"stream": true``) the same answer as 6 SSE content events, a
usage event and ``[DONE]``, in one chunked write. Any path not listed below gets that chat
reply, as before. ``POST .../embeddings`` (any path ending ``/embeddings``) answers the
OpenAI embeddings wire: one vector per input text, a deterministic function of the text
alone (64 values from sha256 of its utf-8 bytes, extended by hashing with a counter), so
a text gets bit-identical vectors whatever batch it came in. Every value is ``(b - 127.5) / 128``
for a byte b, exact in float32; ``"dimensions": N`` in the body asks for N values (a
prefix of the longer vector), ``"encoding_format": "base64"`` (the openai SDK's default)
gets little-endian float32 bytes in base64. An embeddings request with a text containing
``<<fail>>`` (FAIL_MARK) gets HTTP 400 and an OpenAI ``invalid_request_error`` body ("input
contains a rejected text"), after the path's delay and counted in the hits, so a test can
make one batch of one partition fail.

Path grammar: zero or more prefix segments, in any order, each at most once, then the
OpenAI path; the first segment that is not a prefix ends the prefixes::

    /[dNN/][echo/][rNN-WW/]v1/chat/completions      (or .../embeddings)

- ``dNN``: wait NN ms (counted as in flight) before answering; chat and embeddings alike.
- ``echo``: chat answers ``"echo: " + the first 40 characters of the last user message``
  (plain and SSE, with usage), so a benchmark has per-case outputs; without ``echo`` chat
  keeps the fixed, byte-identical reply. No user message -> the fixed answer.
- ``rNN-WW``: at most NN requests accepted per sliding window of WW seconds (WW may be a
  decimal), one window per distinct ``rNN-WW`` token, shared by chat and embeddings;
  a request over it gets HTTP 429 at once (no delay), ``retry-after: 1`` and an OpenAI
  error body, and counts in ``rejected``, not in the hits.

For example ``http://127.0.0.1:PORT/d50/echo/v1`` as a provider's base URL, or
``/r10-1/d20/v1`` for a slow, rate-limited one.

Probes (each on its own connection, which is closed and not counted as a client's):
``GET /stats`` -> ``{"connections": N}``, the TCP connections clients opened so far;
``GET /hits`` -> ``{"hits": [[t, path, n_texts], ...], "inflight_at_arrival": [k, ...],
"max_inflight": int, "rejected": int, "connections": int, "dropped": int}`` with one hit
per accepted chat/embeddings request (``time.time()`` on arrival, the request path, the
number of input texts, 0 for chat) and, in the same order, how many requests were in
flight on its arrival counting itself; ``max_inflight`` is the most requests handled
(delay included) at once. ``GET`` or ``POST /reset`` clears the hits, ``max_inflight``,
``rejected`` and the rate-limit windows (not ``connections``). Every accepted socket gets
TCP_NODELAY: headers and body go out in one write, and no answer may wait on a delayed ACK.

Stdlib only (asyncio), so the bench venvs need nothing extra.

    server = Loopback.start()        # in the bench: spawns ``python loopback.py PORTFILE``
    server.base                      # "http://127.0.0.1:PORT"
    server.connections()             # TCP connections opened so far
    server.hits(); server.reset()    # the hit log, and clearing it
    server.stop()
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import hashlib
import json
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORDS = ["Hello", "!", " How", " can", " I", " help?"]
ANSWER = "".join(WORDS)
MODEL = "bench-model"
EMBED_DIMS = 64
MAX_BODY = 8 << 20  # loopback and test-only, but a runaway client must not eat the machine
MAX_HITS = 1_000_000  # beyond this hits are only counted (``dropped``), the log stays bounded
ECHO_CHARS = 40
FAIL_MARK = "<<fail>>"  # an embeddings input holding this is refused with HTTP 400
_USAGE = {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
CHAT = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
}).encode()


def _chat_body(answer: str, model: str, usage: dict[str, int]) -> bytes:
    return json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": usage,
    }).encode()


def _sse_body(words: list[str] = WORDS, model: str = MODEL, usage: dict[str, int] = _USAGE) -> bytes:
    def event(obj: dict) -> bytes:
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    out = event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    for i, w in enumerate(words):
        out += event({**base, "choices": [
            {"index": 0, "delta": {"content": w}, "finish_reason": "stop" if i == len(words) - 1 else None}]})
    out += event({**base, "choices": [], "usage": usage})
    return out + b"data: [DONE]\n\n"


def _http(status: bytes, ctype: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n%s" % (status, ctype, len(body), extra, body)


def _sse_reply(sse: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(sse), sse))


SSE = _sse_body()
_CHAT_REPLY = _http(b"200 OK", b"application/json", CHAT)
_SSE_REPLY = _sse_reply(SSE)


def _error(status: bytes, message: str, kind: str, code: str | None = None, extra: bytes = b"") -> bytes:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    return _http(status, b"application/json", body, extra)


def embedding(text: str, dims: int = EMBED_DIMS) -> list[float]:
    """The vector for ``text``: sha256(counter || utf-8 text) bytes b -> (b - 127.5) / 128."""
    data, out, counter = text.encode(), [], 0
    while len(out) < dims:
        out.extend((b - 127.5) / 128 for b in hashlib.sha256(counter.to_bytes(4, "big") + data).digest())
        counter += 1
    return out[:dims]


def _tokens(text: str) -> int:
    return max(1, len(text.encode()) // 4)  # a stable stand-in for a tokenizer's count


@dataclass(frozen=True)
class Route:
    """What a request path's prefixes ask for, and the OpenAI path after them."""

    delay_s: float = 0.0
    echo: bool = False
    limit: tuple[str, int, float] | None = None  # (token, NN, WW seconds)
    rest: str = "/"


_PREFIX = re.compile(r"d(\d+)|echo|r(\d+)-(\d+(?:\.\d+)?)")


@functools.lru_cache(maxsize=1024)
def parse_path(path: str) -> Route:
    """Split ``/d50/echo/r5-1/v1/embeddings?x`` into its prefixes and ``/v1/embeddings``."""
    segments = path.split("?", 1)[0].split("/")[1:]
    delay, echo, limit, seen = 0.0, False, None, set()
    while segments and (m := _PREFIX.fullmatch(segments[0])) and segments[0][0] not in seen:
        seen.add(segments[0][0])
        if m.group(1) is not None:
            delay = int(m.group(1)) / 1000
        elif m.group(2) is not None:
            limit = (segments[0], int(m.group(2)), float(m.group(3)))
        else:
            echo = True
        segments.pop(0)
    return Route(delay, echo, limit, "/" + "/".join(segments))


def _last_user_text(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):  # content parts: the text ones, in order
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            return content if isinstance(content, str) else None
    return None


def _echo_reply(raw: bytes) -> bytes:
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return _error(b"400 Bad Request", "the body is not valid JSON", "invalid_request_error")
    body = body if isinstance(body, dict) else {}
    prompt = _last_user_text(body)
    if prompt is None:  # nothing to echo: the fixed answer, as without /echo/
        return _SSE_REPLY if body.get("stream") is True else _CHAT_REPLY
    answer = "echo: " + prompt[:ECHO_CHARS]
    words = re.findall(r"\S+\s*|\s+", answer)
    model = body.get("model") if isinstance(body.get("model"), str) else MODEL
    pt = _tokens(prompt)
    usage = {"prompt_tokens": pt, "completion_tokens": len(words), "total_tokens": pt + len(words)}
    if body.get("stream") is True:
        return _sse_reply(_sse_body(words, model, usage))
    return _http(b"200 OK", b"application/json", _chat_body(answer, model, usage))


def _embed_request(raw: bytes) -> tuple[dict[str, Any] | None, list[str], bytes | None]:
    """(parsed body, input texts, an error reply or None)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None, [], _error(b"400 Bad Request", "the body is not valid JSON", "invalid_request_error")
    inp = body.get("input") if isinstance(body, dict) else None
    texts = [inp] if isinstance(inp, str) else inp if isinstance(inp, list) else None
    if not texts:
        return None, [], _error(b"400 Bad Request", "'input' must be a string or a non-empty list",
                                "invalid_request_error")
    # token-id inputs (ints, or lists of ints) are hashed through their JSON text
    texts = [t if isinstance(t, str) else json.dumps(t) for t in texts]
    if any(FAIL_MARK in t for t in texts):  # a provider refusing one text: the whole request fails
        return body, texts, _error(b"400 Bad Request", "input contains a rejected text", "invalid_request_error")
    return body, texts, None


def _embed_reply(body: dict[str, Any], texts: list[str]) -> bytes:
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and 0 < dims <= 8192 else EMBED_DIMS
    b64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vec = embedding(text, dims)
        value: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if b64 else vec
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(_tokens(t) for t in texts)
    model = body.get("model") if isinstance(body.get("model"), str) else MODEL
    out = json.dumps({"object": "list", "data": data, "model": model,
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}).encode()
    return _http(b"200 OK", b"application/json", out)


class _State:
    """The counters and logs the probes report."""

    def __init__(self) -> None:
        self.connections = 0
        self.reset()

    def reset(self) -> None:
        self.hits: list[tuple[float, str, int]] = []
        self.arrival_inflight: list[int] = []
        self.inflight = self.max_inflight = self.rejected = self.dropped = 0
        self.windows: dict[str, collections.deque[float]] = {}

    def admit(self, limit: tuple[str, int, float]) -> bool:
        """Whether the sliding window ``limit`` takes one more request now (and count it if so)."""
        token, most, window = limit
        q = self.windows.setdefault(token, collections.deque())
        now = time.monotonic()
        while q and q[0] <= now - window:
            q.popleft()
        if len(q) >= most:
            self.rejected += 1
            return False
        q.append(now)
        return True

    def report(self) -> dict[str, Any]:
        return {"hits": self.hits, "inflight_at_arrival": self.arrival_inflight, "max_inflight": self.max_inflight,
                "rejected": self.rejected, "connections": self.connections, "dropped": self.dropped}


class _TooLarge(Exception):
    """A request body over MAX_BODY."""


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of the next request; _TooLarge on a body over MAX_BODY."""
    head = await reader.readuntil(b"\r\n\r\n")
    length, chunked = 0, False
    for line in head.split(b"\r\n"):
        low = line.lower()
        if low.startswith(b"content-length:"):
            length = int(line[15:])
        elif low.startswith(b"transfer-encoding:") and b"chunked" in low:
            chunked = True
    if chunked:  # no client here sends one, but never hang on it
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if len(body) + size > MAX_BODY:
                raise _TooLarge
            body += await reader.readexactly(size + 2)
            if size == 0:
                break
        return head, body
    if length > MAX_BODY:
        raise _TooLarge
    return head, await reader.readexactly(length) if length else b""


def serve(port_file: str) -> None:
    """Run the server until killed; write the port to ``port_file`` once listening."""
    state = _State()

    async def probe(writer: asyncio.StreamWriter, path: bytes) -> None:
        state.connections -= 1  # the probe's own connection is not a client's
        if path == b"/reset":
            state.reset()
        data = ({"connections": state.connections} if path == b"/stats" else state.report() if path == b"/hits"
                else {"ok": True})
        writer.write(_http(b"200 OK", b"application/json", json.dumps(data).encode(), b"connection: close\r\n"))
        await writer.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    head, body = await _read_request(reader)
                except _TooLarge:
                    writer.write(_error(b"413 Payload Too Large", "the body is over the loopback server's limit",
                                        "invalid_request_error", extra=b"connection: close\r\n"))
                    await writer.drain()
                    break
                path = head.split(b" ", 2)[1]
                if path in (b"/stats", b"/hits", b"/reset"):
                    await probe(writer, path)
                    break
                route = parse_path(path.decode("latin-1"))
                if route.limit is not None and not state.admit(route.limit):
                    writer.write(_error(b"429 Too Many Requests", f"rate limit {route.limit[0]} reached",
                                        "requests", "rate_limit_exceeded", b"retry-after: 1\r\n"))
                    await writer.drain()
                    continue
                embed = route.rest.endswith("/embeddings")
                req, texts, reply = _embed_request(body) if embed else (None, [], None)
                state.inflight += 1
                state.max_inflight = max(state.max_inflight, state.inflight)
                if len(state.hits) < MAX_HITS:
                    state.hits.append((time.time(), path.decode("latin-1"), len(texts)))
                    state.arrival_inflight.append(state.inflight)
                else:
                    state.dropped += 1
                try:
                    if route.delay_s:
                        await asyncio.sleep(route.delay_s)
                    if reply is None:
                        if req is not None:
                            reply = _embed_reply(req, texts)
                        elif route.echo:
                            reply = _echo_reply(body)
                        else:
                            streaming = b'"stream": true' in body or b'"stream":true' in body
                            reply = _SSE_REPLY if streaming else _CHAT_REPLY
                    writer.write(reply)
                    await writer.drain()
                finally:
                    state.inflight -= 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Loopback:
    """Handle on a running server process."""

    def __init__(self, proc: subprocess.Popen, base: str) -> None:
        self.proc, self.base = proc, base

    @classmethod
    def start(cls) -> Loopback:
        port_file = Path(tempfile.mkdtemp(prefix="eliza-bench-")) / "port"
        proc = subprocess.Popen([sys.executable, __file__, str(port_file)])
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("the loopback bench server did not start")
            time.sleep(0.02)
        return cls(proc, f"http://127.0.0.1:{port_file.read_text()}")

    def _get(self, path: str, data: bytes | None = None) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}{path}", data=data, timeout=10) as r:
            return json.loads(r.read())

    def connections(self) -> int:
        """TCP connections opened so far by clients (probes are not counted)."""
        return int(self._get("/stats")["connections"])

    def hits(self) -> dict[str, Any]:
        """The hit log and counters (see the module docstring for the keys)."""
        return self._get("/hits")

    def reset(self) -> None:
        """Clear the hits, max_inflight, rejected and the rate-limit windows."""
        self._get("/reset", data=b"")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    serve(sys.argv[1])
