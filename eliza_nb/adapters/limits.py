"""What bounds one answer in time and in memory, under :mod:`eliza_nb.adapters.http`.

Time: an attempt has one :class:`Deadline`, ``timeout_s`` after it starts. Every step on
the socket (waiting for a pooled connection, connecting, sending, waiting for the
headers, the body) starts with what is left as its timeout, through httpcore's ``trace``
hook. httpcore takes the body's read timeout once, when the body starts, so a watchdog
shuts the socket down at the deadline: a read blocked on a server that went quiet
mid-answer returns at once, and HTTPCall reports the deadline.

Memory: the body is decompressed here, in steps of at most :data:`READ_STEP` bytes, so
the caller counts every step against its limit before the next one is made. httpx would
inflate each network read whole: one 64 KiB read of a gzip bomb is about 64 MiB.
Only gzip and deflate are asked for (:data:`ACCEPT_ENCODING`); any other encoding is refused.
"""

from __future__ import annotations

import heapq
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx

READ_STEP = 64 << 10  # bytes of decompressed output per step
ACCEPT_ENCODING = "gzip, deflate"  # what we can decompress in steps; brotli and zstd we could not bound as simply
SHORTEST_WAIT_S = 0.001  # the timeout of a step that starts at or past the deadline: it fails at once


class Deadline:
    """The end of one attempt: connect, send, and the whole answer or stream."""

    def __init__(self, timeout_s: float, connect_s: float, at: float | None = None) -> None:
        self.timeout_s = timeout_s
        self.connect_s = connect_s
        self.at = time.monotonic() + timeout_s if at is None else at  # a time.monotonic() value
        #: the request's ``timeout`` extension; httpcore reads it at the start of each step
        self.timeouts: dict[str, float] = {}
        self.fired = False  # the watchdog shut the socket down
        self._alarm: _Alarm | None = None
        self.refresh()

    def left(self) -> float:
        """Seconds until the deadline (negative once past)."""
        return self.at - time.monotonic()

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def refresh(self, event: str = "", info: Any = None) -> None:
        """httpcore's ``trace`` hook: a step about to start gets what is left as its timeout."""
        if event and not event.endswith(".started"):
            return
        left = max(self.left(), SHORTEST_WAIT_S)
        self.timeouts.update(connect=min(self.connect_s, left), read=left, write=left, pool=left)

    def watch(self, response: httpx.Response) -> None:
        """Shut the answer's socket down at the deadline, unless the answer was closed first."""
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:  # a test transport: nothing to wait on
            return

        def fire() -> None:
            # Only an open answer owns its connection: a closed one may already be back in the pool.
            if not response.is_closed:
                self.fired = True
                try:
                    # socket.socket's own shutdown, also for an SSLSocket: that class's version
                    # would unwrap TLS under the reading thread; the reader sees an end of stream.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass

        self._alarm = _WATCHDOG.set(self.at, fire)

    def stop(self) -> None:
        """The answer is closed: the watchdog has nothing left to do."""
        if self._alarm is not None:
            self._alarm.cancelled = True


class _Alarm:
    __slots__ = ("at", "cancelled", "fire")

    def __init__(self, at: float, fire: Callable[[], None]) -> None:
        self.at, self.fire, self.cancelled = at, fire, False

    def __lt__(self, other: _Alarm) -> bool:
        return self.at < other.at


class _Watchdog:
    """One daemon thread for every deadline of the process: setting an alarm is a heap push
    (a thread per answer would cost more than the rest of a call's own work)."""

    def __init__(self) -> None:
        self._alarms: list[_Alarm] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def set(self, at: float, fire: Callable[[], None]) -> _Alarm:
        alarm = _Alarm(at, fire)
        with self._wake:
            heapq.heappush(self._alarms, alarm)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="eliza-deadlines", daemon=True)
                self._thread.start()
            elif self._alarms[0] is alarm:  # earlier than what the thread sleeps towards
                self._wake.notify()
        return alarm

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._alarms and self._alarms[0].cancelled:
                    heapq.heappop(self._alarms)
                if not self._alarms:
                    self._wake.wait()
                    continue
                wait = self._alarms[0].at - time.monotonic()
                if wait > 0:
                    self._wake.wait(min(wait, threading.TIMEOUT_MAX))
                    continue
                alarm = heapq.heappop(self._alarms)
            if not alarm.cancelled:
                alarm.fire()


_WATCHDOG = _Watchdog()


class Undecodable(Exception):
    """An answer we will not decompress; the message says why (HTTPCall makes it a BadResponseError)."""


def decoder(content_encoding: str) -> Callable[[bytes], Iterator[bytes]]:
    """For a ``Content-Encoding``: a function from each raw piece of the body to its
    decompressed pieces of at most READ_STEP bytes (call it with ``b""`` to drain)."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return _as_is
    if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise Undecodable(f"the answer is compressed as {content_encoding.strip()!r}, which we did not ask for")
    return _Inflater(codings[0]).feed


def _as_is(data: bytes) -> Iterator[bytes]:
    if data:
        yield data


class _Inflater:
    """gzip or deflate, decompressed in bounded steps."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        # "deflate" means zlib-wrapped, but some servers send raw deflate: tried when the header is wrong
        self._may_be_raw = coding == "deflate"
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if coding != "deflate" else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self._zlib.eof:  # past the end: trailing bytes are ignored (and never buffered)
            try:
                out = self._zlib.decompress(data, READ_STEP)
            except zlib.error:
                if not self._may_be_raw:
                    raise Undecodable(f"the answer's {self.coding} data is broken") from None
                self._may_be_raw = False
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            if data:
                self._may_be_raw = False
            data = self._zlib.unconsumed_tail
            if out:
                yield out
            if not data and len(out) < READ_STEP:  # input used up and no output pending
                return
