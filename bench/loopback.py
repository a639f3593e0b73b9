"""A loopback OpenAI-compatible chat server for the benches, run in its own process.

It answers ``POST .../chat/completions`` at once with a fixed body: a chat completion,
or (when the request says ``"stream": true``) the same answer as 6 SSE content events, a
usage event and ``[DONE]``, in one chunked write. A path starting ``/dNN/`` (for example
``http://127.0.0.1:PORT/d50/v1``) waits NN ms before answering, for the concurrency
curves. ``GET /stats`` returns how many TCP connections clients opened so far (its own
not counted), so a bench can check that clients reuse theirs. Every accepted socket gets TCP_NODELAY: headers and body
go out in one write anyway, and no answer may wait on a delayed ACK.

Stdlib only (asyncio), so the bench venvs need nothing extra.

    server = Loopback.start()        # in the bench: spawns ``python loopback.py PORTFILE``
    server.base                      # "http://127.0.0.1:PORT"
    server.connections()             # TCP connections opened so far
    server.stop()
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

WORDS = ["Hello", "!", " How", " can", " I", " help?"]
ANSWER = "".join(WORDS)
MODEL = "bench-model"
CHAT = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
}).encode()


def _sse_body() -> bytes:
    def event(obj: dict) -> bytes:
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL}
    out = event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    for i, w in enumerate(WORDS):
        out += event({**base, "choices": [
            {"index": 0, "delta": {"content": w}, "finish_reason": "stop" if i == len(WORDS) - 1 else None}]})
    out += event({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}})
    return out + b"data: [DONE]\n\n"


SSE = _sse_body()
_CHAT_REPLY = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(CHAT), CHAT)
_SSE_REPLY = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
              + b"%x\r\n%s\r\n0\r\n\r\n" % (len(SSE), SSE))


def serve(port_file: str) -> None:
    """Run the server until killed; write the port to ``port_file`` once listening."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
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
                        body += await reader.readexactly(size + 2)
                        if size == 0:
                            break
                else:
                    body = await reader.readexactly(length) if length else b""
                path = head.split(b" ", 2)[1]
                if path.startswith(b"/d") and path[2:3].isdigit():
                    await asyncio.sleep(int(path[2:].split(b"/", 1)[0]) / 1000)
                if head.startswith(b"GET /stats"):
                    connections -= 1  # the probe's own connection is not a client's
                    data = json.dumps({"connections": connections}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                                 b"connection: close\r\n\r\n%s" % (len(data), data))
                    await writer.drain()
                    break
                streaming = b'"stream": true' in body or b'"stream":true' in body
                writer.write(_SSE_REPLY if streaming else _CHAT_REPLY)
                await writer.drain()
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

    def connections(self) -> int:
        """TCP connections opened so far by clients (probes are not counted)."""
        with urllib.request.urlopen(f"{self.base}/stats", timeout=10) as r:
            return int(json.loads(r.read())["connections"])

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
