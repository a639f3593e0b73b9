"""What every HTTP adapter shares: one POST to a provider's API, climbed as a ladder of
methods on :class:`HTTPCall` (request -> send -> check status -> read -> decode), server-sent
events read from it by :class:`SSEStream`, and the typed errors of
:mod:`eliza_nb.core.errors` made from an error status or a transport exception.

Everything a server sends is read with a limit, counted after decompression (done in
bounded steps by :mod:`.limits`): the whole body (:data:`MAX_BODY`, or ``[limits]
max_body_mb`` in config.toml), one line of an event stream (:data:`MAX_LINE`) and one
event (:data:`MAX_EVENT`). A server that never ends a line gets a one-line error, not our memory.

``timeout_s`` bounds the whole attempt: connecting, sending, and the entire answer or
stream end at one deadline (:class:`.limits.Deadline`), however slowly the server drips
bytes or keep-alive comments. A redirect is never followed nor taken as an answer.

Error messages are one line, name the provider (through the error's ``provider``),
carry the provider's own message when it sent one, and never hold the key: every
message passes through :func:`scrub` with the key that was used, and generic
credential patterns are masked too, in case a server echoes a header back.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..core import redact
from ..core.errors import (
    BadResponseError,
    ConfigError,
    ElizaError,
    TransientError,
)
from . import limits
from .failures import CONNECT_TIMEOUT_S, error_for_status, error_from_exception, provider_message, retry_after_of, scrub

MAX_BODY = 32 << 20  # bytes of one answer, decompressed, unless [limits] max_body_mb says otherwise
MAX_ERROR_BODY = 64 << 10  # bytes of an error answer we read: its message is cut to MAX_MESSAGE anyway
MAX_LINE = 1 << 20  # bytes of one event-stream line; a streamed delta is a few hundred
MAX_EVENT = 8 << 20  # bytes of one event's data lines together
#: the event name :meth:`SSEStream.events` gives a JSON text sent outside any ``data:`` line
#: (``bare_json=True``: Gemini sends some mid-stream errors so, pretty-printed or not)
BARE_JSON = "(bare json)"

def bearer(key: str | None) -> dict[str, str]:
    """The Authorization header for a key, or nothing for a key-less endpoint."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def origin(url: str) -> str:
    """scheme://host[:port] of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def is_local_host(url: str) -> bool:
    """True for loopback / private addresses and ``localhost`` (plain http is fine there)."""
    host = urlsplit(url).hostname or ""
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


def check_plain_http(url: str, key: str | None, warn: Any, provider: str) -> None:
    """Warn when a key would travel over unencrypted http to a non-local host."""
    if key and url.startswith("http://") and not is_local_host(url):
        warn(f"{provider}: {urlsplit(url).hostname} is plain http, so the key travels unencrypted")


def body_limit(options: Mapping[str, Any]) -> int | None:
    """The answer size limit in bytes from the config's ``[limits] max_body_mb`` (the
    adapters read it from ``AdapterContext.options``); None when unset, so MAX_BODY applies."""
    table = options.get("limits") or {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"[limits] in config.toml must be a table, got {table!r}")
    mb = table.get("max_body_mb")
    if mb is None:
        return None
    if isinstance(mb, bool) or not isinstance(mb, (int, float)) or not math.isfinite(mb) or mb <= 0:
        raise ConfigError(f"[limits] max_body_mb in config.toml must be a number of MiB above 0, got {mb!r}")
    return max(1, int(mb * (1 << 20)))


def loads(data: str, *, provider: str, what: str, key: str | None = None) -> Any:
    """json.loads of one event's data, raising BadResponseError with a short, scrubbed excerpt."""
    try:
        return json.loads(data)
    except ValueError:
        raise BadResponseError(f"{what}: an event is not JSON ({scrub(data[:4096], key, limit=80)!r})", provider=provider) from None


def _text(content: bytes | bytearray, charset: str | None) -> str:
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return content.decode("utf-8", errors="replace")


def _json_text(text: bytearray, last: bytes) -> str | None:
    """``text`` decoded when it is one JSON text, tried only when its ``last`` line could close
    it (unindented, ending in ``}`` or ``]``), so a long stray text is not parsed line by line."""
    if last[:1] in (b" ", b"\t") or not last.rstrip().endswith((b"}", b"]")):
        return None
    try:
        decoded = text.decode("utf-8")
        json.loads(decoded)
    except ValueError:  # UnicodeDecodeError included
        return None
    return decoded


def _size(size: int) -> str:
    return f"{size / (1 << 20):g} MiB" if size >= 1 << 20 else f"{size} bytes"


class HTTPCall:
    """One POST of a JSON body to a provider's API.

    A ladder of methods, each on top of the one below: :meth:`json` / :meth:`text` read
    the answer through :meth:`read` (the body, bounded) after :meth:`send` (the request
    from :meth:`request`, on the wire), which ends with :meth:`check_status`, the one place
    an HTTP error status becomes a typed error. The call holds what every error message
    needs (provider, the key to mask, what was being done, the timeout).

    The attempt's deadline is ``timeout_s`` from the call's creation, or ``deadline`` (a
    ``time.monotonic()`` value) when several requests share one attempt (embedding batches).
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        body: Mapping[str, Any] | None,
        *,
        headers: Mapping[str, str],
        timeout_s: float,
        provider: str,
        key: str | None,
        what: str,
        max_body: int | None = None,
        deadline: float | None = None,
        method: str = "POST",
    ) -> None:
        self.client, self.url, self.body, self.headers = client, url, body, headers
        self.method = method  # "GET" (with body None) for a listing
        self.timeout_s, self.provider, self.key, self.what = timeout_s, provider, key, what
        self.max_body = MAX_BODY if max_body is None else max_body
        self.deadline = limits.Deadline(timeout_s, min(CONNECT_TIMEOUT_S, timeout_s), deadline)

    def json(self) -> Any:
        """The decoded JSON answer."""
        response = self.send()
        content = self.read(response)
        try:
            return json.loads(content)
        except ValueError:
            snippet = scrub(_text(content[:4096], response.charset_encoding), self.key, limit=80)
            raise BadResponseError(f"{self.what}: the answer is not JSON ({snippet!r})", provider=self.provider) from None

    def text(self) -> str:
        """The answer as text, in the charset it declares (UTF-8 when none)."""
        response = self.send()
        return _text(self.read(response), response.charset_encoding)

    def request(self, accept: str | None = None) -> httpx.Request:
        """The request: each step on the socket gets what is left of the deadline as its
        timeout (connecting at most CONNECT_TIMEOUT_S); only encodings we decompress in steps."""
        headers = {"Accept-Encoding": limits.ACCEPT_ENCODING, **self.headers}
        if accept:
            headers["Accept"] = accept
        self.deadline.refresh()
        return self.client.build_request(self.method, self.url, json=self.body, headers=headers,
                                         extensions={"timeout": self.deadline.timeouts, "trace": self.deadline.refresh})

    def send(self, accept: str | None = None) -> httpx.Response:
        """Send the request; the response with a 2xx status and its body not yet read."""
        redact.remember(self.key)  # a server may echo it back in headers, which httpcore logs at DEBUG
        if self.deadline.passed:  # an earlier request of the same attempt spent it
            raise self.too_slow()
        try:
            response = self.client.send(self.request(accept), stream=True)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from None
        self.deadline.watch(response)
        self.check_status(response)
        return response

    def check_status(self, response: httpx.Response) -> None:
        """Raise the typed error for a redirect or a status of 400 or more (the response is then closed)."""
        if 300 <= response.status_code < 400:
            self.close(response)
            raise self.bad_response(f"{self.redirected_to(response)} (HTTP {response.status_code}); not followed, "
                                    "so the key stays with the configured host: check the endpoint URL")
        if response.status_code < 400:
            return
        content = self.start_of(response)
        try:
            body: Any = json.loads(content)
        except ValueError:
            body = _text(bytes(content), response.charset_encoding)  # cut by scrub, after masking
        message, code = provider_message(body)
        if message is None and response.reason_phrase:
            message = response.reason_phrase
        raise error_for_status(response.status_code, message, code, provider=self.provider, key=self.key,
                               what=self.what, retry_after=retry_after_of(response, body))

    def redirected_to(self, response: httpx.Response) -> str:
        """Where a 3xx answer points, as "redirected to HOST" (only the host: the rest of
        the URL may carry tokens)."""
        location = response.headers.get("location", "").strip()
        if not location:
            return "redirected without a Location"
        try:
            host = urlsplit(location).hostname or urlsplit(self.url).hostname
        except ValueError:
            host = None
        return f"redirected to {scrub(host, self.key)}" if host else "redirected to an unreadable Location"

    def read(self, response: httpx.Response) -> bytearray:
        """The whole body (at most ``max_body`` bytes); the response is closed, and so goes
        back to the pool when it was read to the end."""
        content = bytearray()
        try:
            for chunk in self.chunks(response):
                content += chunk
            return content
        finally:
            self.close(response)

    def chunks(self, response: httpx.Response) -> Iterator[bytes]:
        """The body as it arrives, decompressed in bounded steps, with a typed error for a
        broken connection, past ``max_body`` bytes (compressed or not), or past the deadline."""
        raw_size = size = 0
        try:
            if response.is_stream_consumed:  # built from bytes (a test transport): httpx decoded it already
                decode, raws = limits.decoder(""), iter((response.content,))
            else:
                decode, raws = limits.decoder(response.headers.get("content-encoding", "")), response.iter_raw()
            for raw in raws:
                raw_size += len(raw)
                for piece in decode(raw):
                    size += len(piece)
                    if size > self.max_body or raw_size > self.max_body:
                        raise self.bad_response(f"the answer is larger than {_size(self.max_body)}")
                    yield piece
                if self.deadline.passed:  # a server dripping bytes or keep-alive comments
                    raise self.too_slow()
        except httpx.HTTPError as exc:
            if self.deadline.fired or self.deadline.passed or isinstance(exc, httpx.TimeoutException):
                raise self.too_slow() from None
            raise self.transport_error(exc) from None
        except limits.Undecodable as exc:
            raise self.bad_response(str(exc)) from None

    def start_of(self, response: httpx.Response) -> bytearray:
        """The first MAX_ERROR_BODY bytes of an answer we only quote (an error, a page that
        is not what we asked for), then the response is closed. A failed read keeps what came."""
        content = bytearray()
        try:
            for chunk in self.chunks(response):
                content += chunk
                if len(content) >= MAX_ERROR_BODY:
                    break
        except ElizaError:
            pass  # the status or the media type alone still says what went wrong
        finally:
            self.close(response)
        return content

    def close(self, response: httpx.Response) -> None:
        """Close the response (it goes back to the pool only when it was read to the end)."""
        self.deadline.stop()
        response.close()

    def too_slow(self) -> TransientError:
        """The error for an answer still incomplete at the deadline."""
        return TransientError(f"{self.what}: no complete answer within {self.timeout_s:g} s", provider=self.provider)

    def transport_error(self, exc: httpx.HTTPError) -> ElizaError:
        """The typed error for a timeout, refused or broken connection."""
        return error_from_exception(exc, provider=self.provider, key=self.key, what=self.what, timeout_s=self.timeout_s)

    def bad_response(self, problem: str) -> BadResponseError:
        """The error for an answer we will not read further."""
        return BadResponseError(f"{self.what}: {problem}", provider=self.provider)


def post_json(client: httpx.Client, url: str, body: Mapping[str, Any], **call: Any) -> Any:
    """POST a JSON body and return the decoded JSON answer, or raise a typed error.
    ``call``: the keyword arguments of :class:`HTTPCall` (headers, timeout_s, provider, key, what)."""
    return HTTPCall(client, url, body, **call).json()


def post_text(client: httpx.Client, url: str, body: Mapping[str, Any], **call: Any) -> str:
    """POST a JSON body and return the answer as text, or raise a typed error."""
    return HTTPCall(client, url, body, **call).text()


def get_json(client: httpx.Client, url: str, **call: Any) -> Any:
    """GET ``url`` (query included) and return the decoded JSON answer, or raise a typed
    error; the same ladder, limits and deadline as a POST (``call``: as for :func:`post_json`)."""
    return HTTPCall(client, url, None, method="GET", **call).json()


class SSEStream:
    """A streamed POST whose answer is server-sent events, as ``(event, data)`` pairs.

    Lines end at CR, LF or CRLF and nowhere else: a JSON string may hold U+2028, U+2029 or
    U+0085 unescaped, which ``str.splitlines`` (and so httpx's ``iter_lines``) would take for
    line ends. No line may pass MAX_LINE bytes and no event MAX_EVENT.

    The response is always closed. When the events end normally the rest of the body is
    read first, so the connection goes back to the pool and the next call reuses it
    (closing a half-read response would drop the connection instead).

    ``bare_json=True``: lines outside the SSE fields that form a JSON text (one line, or
    several from a line opening with ``{`` or ``[`` to an unindented closing one) are
    yielded as a :data:`BARE_JSON` event; other stray text stays ignored.
    """

    def __init__(self, client: httpx.Client, url: str, body: Mapping[str, Any], *, bare_json: bool = False,
                 **call: Any) -> None:
        self.bare_json = bare_json
        self.call = HTTPCall(client, url, body, **call)
        self.response = self.call.send(accept="text/event-stream")
        self._refuse_other_media()
        self._lines = self.lines()

    def _refuse_other_media(self) -> None:
        """An HTML page (a login portal, a proxy's error page) or a JSON answer to a stream
        request is one error, not an empty stream retried: the same request gets the same page."""
        media = self.response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            self.close()
            raise self.call.bad_response("the answer is an HTML page, not an event stream")
        if media == "application/json" or media.endswith("+json"):
            try:
                said, _ = provider_message(json.loads(self.call.start_of(self.response)))
            except ValueError:
                said = None
            tail = f": {scrub(said, self.call.key)}" if said else ""
            raise self.call.bad_response(f"the answer is JSON, not an event stream{tail}")

    def lines(self) -> Iterator[bytes]:
        """The body's lines, without their line ends; a last line without one included."""
        pending = bytearray()  # the start of a line whose end has not arrived yet
        after_cr = False  # the last chunk ended in CR: an LF opening the next one ends the same line
        for chunk in self.call.chunks(self.response):
            if after_cr and chunk.startswith(b"\n"):
                chunk = chunk[1:]
            after_cr = chunk.endswith(b"\r")
            *complete, rest = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
            if complete:
                pending += complete[0]
                complete[0] = bytes(pending)
                pending = bytearray()
            for line in complete:
                if len(line) > MAX_LINE:
                    raise self._line_too_long()
                yield line
            pending += rest
            if len(pending) > MAX_LINE:
                raise self._line_too_long()
        if pending:
            yield bytes(pending)

    def events(self) -> Iterator[tuple[str, str]]:
        """Yield ``(event name or "", data)`` per event; comments and events without data
        skipped. An event the body ends in the middle of is yielded too, so that a cut
        stream shows as a broken event rather than a quiet end."""
        event = ""
        data: bytearray | None = None  # None until the event's first data line
        stray: bytearray | None = None  # the lines of a bare JSON text so far (bare_json=True)
        for line in self._lines:
            if self.bare_json and (stray is not None or line[:1] in (b"{", b"[")):
                if stray is not None and (not line or line.startswith((b"data:", b"event:"))):
                    stray = None  # it was not JSON: ignored like any line that is no SSE field
                else:
                    if stray is None:
                        stray = bytearray(line)
                    else:
                        stray += b"\n" + line  # in place: a long stray text is not copied per line
                    found = _json_text(stray, line)
                    if found is not None:
                        yield BARE_JSON, found
                    if found is not None or len(stray) > MAX_EVENT:  # too big to be an error: ignored
                        stray = None
                    continue
            if not line:
                if data is not None:
                    yield event, data.decode("utf-8", errors="replace")
                event, data = "", None
            elif line.startswith(b"data:"):
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                if data is None:
                    data = bytearray(value)
                else:
                    data += b"\n" + value
                if len(data) > MAX_EVENT:
                    raise self.call.bad_response(f"an event is larger than {_size(MAX_EVENT)}")
            elif line.startswith(b"event:"):
                event = line[6:].decode("utf-8", errors="replace").strip()
            # ":" comments (keep-alive pings), "id:" and "retry:" carry nothing we use
        if data is not None:
            yield event, data.decode("utf-8", errors="replace")

    def finish(self, max_lines: int = 64) -> None:
        """After the final event: read what is left of the body (normally only the end of
        the chunked encoding) so the connection goes back to the pool, then close."""
        try:
            for n, _ in enumerate(self._lines):
                if n >= max_lines:  # a server still talking after its final event: drop it
                    break
        except ElizaError:
            pass  # the answer is complete; only the connection is lost
        finally:
            self.call.close(self.response)

    def close(self) -> None:
        """Stop early: closing mid-body drops the connection, which also stops the server."""
        self.call.close(self.response)

    def _line_too_long(self) -> BadResponseError:
        return self.call.bad_response(f"a line of the event stream is longer than {_size(MAX_LINE)}")
