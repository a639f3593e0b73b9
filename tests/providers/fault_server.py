"""A small scriptable loopback HTTP/1.1 server for fault cases (stdlib only).

    server.script("/v1/chat/completions", fs.json({...}, status=429, headers={"Retry-After": "2"}),
                  fs.json(OK_CHAT))

Each request to a path takes the next behaviour from its script; the last one repeats.
Requests are recorded (path, headers, JSON body) and accepted TCP connections counted, so
tests can assert what was sent and that keep-alive held.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Behaviour = Callable[["_Handler"], None]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Behaviour:
    return raw(json.dumps(body), status, headers, "application/json")


def raw(text: str, status: int = 200, headers: dict[str, str] | None = None, content_type: str = "application/json") -> Behaviour:
    def run(h: _Handler) -> None:
        data = text.encode()
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    return run


def sse(events: list[str], *, cut_after: int | None = None, done: bool = True) -> Behaviour:
    """Chunked text/event-stream; ``events`` are data payloads (JSON strings). ``cut_after=n``
    resets the connection after n events, mid-body."""

    def run(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        payloads = [f"data: {e}\n\n" for e in events] + (["data: [DONE]\n\n"] if done else [])
        for i, payload in enumerate(payloads):
            if cut_after is not None and i == cut_after:
                h.wfile.flush()
                h.abort()
                return
            chunk = payload.encode()
            h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")

    return run


def slow(seconds: float, then: Behaviour) -> Behaviour:
    """Answer after ``seconds`` (the client's timeout should fire first)."""

    def run(h: _Handler) -> None:
        h.server.stopping.wait(seconds)  # type: ignore[attr-defined]
        then(h)

    return run


def _chunk(h: _Handler, data: bytes) -> None:
    h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    h.wfile.flush()


def _start_chunked(h: _Handler, content_type: str, headers: dict[str, str] | None = None) -> None:
    h.send_response(200)
    h.send_header("Content-Type", content_type)
    h.send_header("Transfer-Encoding", "chunked")
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()


def drip(data: bytes, every: float, content_type: str = "application/json") -> Behaviour:
    """A 200 answer whose chunked body arrives one byte every ``every`` seconds."""

    def run(h: _Handler) -> None:
        _start_chunked(h, content_type)
        for i in range(len(data)):
            if h.server.stopping.wait(every):  # type: ignore[attr-defined]
                return
            _chunk(h, data[i:i + 1])
        h.wfile.write(b"0\r\n\r\n")

    return run


def sse_then(events: list[str], *, every: float = 0.0, pings: float | None = None, silent: float = 0.0) -> Behaviour:
    """An event stream of ``events`` (data payloads, one every ``every`` s) that never ends:
    then ``: ping`` comments every ``pings`` s, or silence for ``silent`` s."""

    def run(h: _Handler) -> None:
        _start_chunked(h, "text/event-stream")
        stopping = h.server.stopping  # type: ignore[attr-defined]
        for e in events:
            if stopping.wait(every):
                return
            _chunk(h, f"data: {e}\n\n".encode())
        if pings is None:
            stopping.wait(silent)
            return
        while not stopping.wait(pings):  # until the client hangs up (OSError) or the server stops
            _chunk(h, b": ping\n\n")

    return run


def raw_stream(pieces: list[str], content_type: str = "text/event-stream") -> Behaviour:
    """A chunked 200 answer of ``pieces`` written as given, one chunk each: any mix of SSE
    lines and lines that are not SSE (a bare JSON error, pretty-printed or not)."""

    def run(h: _Handler) -> None:
        _start_chunked(h, content_type)
        for piece in pieces:
            _chunk(h, piece.encode())
        h.wfile.write(b"0\r\n\r\n")

    return run


def compressed(data: bytes, *, status: int = 200, content_type: str = "application/json",
               encoding: str = "gzip") -> Behaviour:
    """``data`` already compressed, sent with ``Content-Encoding: encoding`` and its length."""

    def run(h: _Handler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Encoding", encoding)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        for i in range(0, len(data), 16 << 10):
            h.wfile.write(data[i:i + (16 << 10)])

    return run


def redirect(status: int, location: str) -> Behaviour:
    """A redirect with a small HTML body, as web servers send them."""
    return raw(f"<html><body>Moved to <a href='{location}'>here</a></body></html>", status,
               {"Location": location}, "text/html")


def drop() -> Behaviour:
    """Close the connection (with a reset) without answering."""
    return lambda h: h.abort()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable

    def setup(self) -> None:
        super().setup()
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.connections += 1  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def abort(self) -> None:
        """RST instead of FIN: what a crashed proxy or dropped link looks like."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = data.decode(errors="replace")
        self.body = body
        server = self.server
        path = self.path.split("?", 1)[0]
        with server.lock:  # type: ignore[attr-defined]
            server.requests.append(Recorded(self.command, self.path, dict(self.headers), body))  # type: ignore[attr-defined]
            queue = server.routes.get(path) or server.routes.get("*")  # type: ignore[attr-defined]
            missing = json_reply({"error": {"message": f"no script for {path}"}}, 404)
            behaviour = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else missing
        try:
            behaviour(self)
        except OSError:  # the client gave up (timeout) or we reset the connection
            self.close_connection = True

    do_POST = _handle
    do_GET = _handle

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections when the load tests open 64 at once.
    request_queue_size = 256


class FaultServer:
    """The server in a background thread on a free loopback port."""

    def __init__(self) -> None:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.lock = threading.Lock()  # type: ignore[attr-defined]
        self._httpd.routes = {}  # type: ignore[attr-defined]
        self._httpd.requests = []  # type: ignore[attr-defined]
        self._httpd.connections = 0  # type: ignore[attr-defined]
        self._httpd.stopping = threading.Event()  # type: ignore[attr-defined]
        self._httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, path: str, *behaviours: Behaviour) -> None:
        """Behaviours for requests to ``path`` (``"*"``: any path without its own script)."""
        with self._httpd.lock:  # type: ignore[attr-defined]
            self._httpd.routes[path] = list(behaviours)  # type: ignore[attr-defined]

    @property
    def requests(self) -> list[Recorded]:
        with self._httpd.lock:  # type: ignore[attr-defined]
            return list(self._httpd.requests)  # type: ignore[attr-defined]

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    @property
    def connections(self) -> int:
        return self._httpd.connections  # type: ignore[attr-defined]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.stopping.set()  # type: ignore[attr-defined]
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
