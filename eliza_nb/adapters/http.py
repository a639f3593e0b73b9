"""What every HTTP adapter shares: one POST to a provider's API, climbed as a ladder of
methods on :class:`HTTPCall` (request -> send -> check status -> read -> decode), server-sent
events read from it by :class:`SSEStream`, and the typed errors of
:mod:`eliza_nb.core.errors` made from an error status or a transport exception.

Everything a server sends is read with a limit, counted after decompression: the whole
body (:data:`MAX_BODY`), one line of an event stream (:data:`MAX_LINE`) and one event
(:data:`MAX_EVENT`). A server that never ends a line gets a one-line error, not our memory.

Error messages are one line, name the provider (through the error's ``provider``),
carry the provider's own message when it sent one, and never hold the key: every
message passes through :func:`scrub` with the key that was used, and generic
credential patterns are masked too, in case a server echoes a header back.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..core import redact
from ..core.errors import (
    AuthError,
    BadResponseError,
    ContextTooLongError,
    ElizaError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    TransientError,
)

MAX_MESSAGE = 300  # characters of a provider's error message we keep
MAX_BODY = 256 << 20  # bytes of one answer; base64 images are the largest legitimate ones
MAX_ERROR_BODY = 64 << 10  # bytes of an error answer we read: its message is cut to MAX_MESSAGE anyway
MAX_LINE = 1 << 20  # bytes of one event-stream line; a streamed delta is a few hundred
MAX_EVENT = 8 << 20  # bytes of one event's data lines together
CONNECT_TIMEOUT_S = 10.0  # a host that does not accept within this is down, whatever the read timeout

_CONTEXT_RE = re.compile(
    r"context[ _-]?length|context[ _-]window|maximum context|too many tokens|prompt is too long|"
    r"input is too long|reduce the length|exceeds? the (?:model'?s? )?(?:maximum|limit|context)|"
    r"token limit|input length|tokens? exceed",
    re.I,
)
_NOT_FOUND_RE = re.compile(
    r"model[^.]{0,80}(?:not found|does not exist|not available|is not supported|unknown|decommissioned|deprecated)|"
    r"(?:unknown|invalid|no such) model|not_found|model_not_found|not found for api version",
    re.I,
)
_BAD_KEY_RE = re.compile(
    r"api key not valid|invalid (?:x-)?api[ _-]?key|incorrect api key|api_key_invalid|invalid authentication", re.I
)
_SECRET_RES = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|key|token|access_token)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/-]{12,}"),
    re.compile(r"\b(sk-[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{8,}"),
    re.compile(r"\b(AIza)[0-9A-Za-z_-]{20,}"),
    re.compile(r"\b(xai-|gsk_)[A-Za-z0-9]{12,}"),
)


def scrub(text: str, key: str | None = None) -> str:
    """``text`` on one line, at most MAX_MESSAGE characters, with any key masked."""
    if key:
        text = text.replace(key, "***")
    for pattern in _SECRET_RES:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def bearer(key: str | None) -> dict[str, str]:
    """The Authorization header for a key, or nothing for a key-less endpoint."""
    return {"Authorization": f"Bearer {key}"} if key else {}


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


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _retry_after(response: httpx.Response, body: Any = None) -> float | None:
    found = parse_retry_after(response.headers.get("retry-after"))
    if found is None and isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        # Google puts it in the body: error.details[] {"@type": ".../google.rpc.RetryInfo", "retryDelay": "12s"}
        for detail in body["error"].get("details") or []:
            delay = detail.get("retryDelay") if isinstance(detail, Mapping) else None
            if isinstance(delay, str) and delay.endswith("s"):
                found = parse_retry_after(delay[:-1])
                break
    if found is None:  # OpenAI-style extra headers, in ms or s
        ms = response.headers.get("retry-after-ms")
        if ms:
            try:
                found = max(0.0, float(ms) / 1000)
            except ValueError:
                found = None
    return found


def provider_message(body: Any) -> tuple[str | None, str | None]:
    """(message, code) from an error body in any of the shapes providers use:
    OpenAI ``{"error": {"message", "code"/"type"}}``, Anthropic ``{"type": "error",
    "error": {"type", "message"}}``, Google ``{"error": {"message", "status"}}``,
    FastAPI ``{"detail": ...}``, or a bare string."""
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, str):
        return body or None, None
    if not isinstance(body, Mapping):
        return None, None
    err = body.get("error", body)
    if isinstance(err, str):
        return err, None
    if isinstance(err, Mapping):
        msg = err.get("message") or err.get("detail") or body.get("message")
        code = err.get("code") or err.get("type") or err.get("status")
        if isinstance(msg, (dict, list)):
            msg = json.dumps(msg)[:MAX_MESSAGE]
        return (str(msg) if msg else None), (str(code) if code else None)
    detail = body.get("detail")
    if detail:
        return (detail if isinstance(detail, str) else json.dumps(detail)[:MAX_MESSAGE]), None
    return None, None


def error_for_status(
    status: int,
    message: str | None,
    code: str | None,
    *,
    provider: str,
    key: str | None,
    what: str,
    retry_after: float | None = None,
) -> ElizaError:
    """The typed error for an HTTP status and the provider's own message (also used for
    errors a provider reports inside a 200 answer or an event stream)."""
    said = scrub(message or "", key)
    tail = f": {said}" if said else ""
    text = f"{said} {code or ''}"
    if status in (401, 403) or (status == 400 and _BAD_KEY_RE.search(text)):
        return AuthError(f"{what} refused the credentials (HTTP {status}){tail}", provider=provider)
    if status == 429:
        limited = RateLimitedError(f"{what} is rate limited (HTTP 429){tail}", provider=provider, retry_after=retry_after)
        if code == "insufficient_quota":  # out of credit: waiting will not help
            limited.retryable = False
        return limited
    if status == 413 or (status in (400, 422) and _CONTEXT_RE.search(text)):
        return ContextTooLongError(f"{what}: the prompt is too long for the model (HTTP {status}){tail}", provider=provider)
    if status == 404 or (status in (400, 422) and _NOT_FOUND_RE.search(text)):
        return NotFoundError(f"{what}: not found (HTTP {status}){tail}", provider=provider)
    if status >= 500 or status in (408, 409, 425):
        failed = TransientError(f"{what} failed (HTTP {status}){tail}", provider=provider)
        if retry_after is not None:
            failed.retry_after = retry_after  # honoured by the runtime for 503 too
        return failed
    return InvalidRequestError(f"{what} rejected the request (HTTP {status}){tail}", provider=provider)


def error_from_exception(exc: Exception, *, provider: str, key: str | None, what: str, timeout_s: float) -> ElizaError:
    """Classify an httpx transport exception (timeouts, refused or reset connections)."""
    if isinstance(exc, ElizaError):
        return exc
    detail = scrub(str(exc) or type(exc).__name__, key)
    if isinstance(exc, httpx.ConnectTimeout):
        return TransientError(f"{what}: could not connect within {min(CONNECT_TIMEOUT_S, timeout_s):.0f} s", provider=provider)
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{what}: no answer within {timeout_s:g} s (timeout)", provider=provider)
    if isinstance(exc, httpx.ConnectError):
        return TransientError(f"{what}: cannot connect ({detail})", provider=provider)
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return TransientError(f"{what}: connection broken ({detail})", provider=provider)
    if isinstance(exc, httpx.HTTPError):
        return TransientError(f"{what}: {type(exc).__name__} ({detail})", provider=provider)
    return BadResponseError(f"{what}: {type(exc).__name__} ({detail})", provider=provider)


def loads(data: str, *, provider: str, what: str, key: str | None = None) -> Any:
    """json.loads of one event's data, raising BadResponseError with a short, scrubbed excerpt."""
    try:
        return json.loads(data)
    except ValueError:
        raise BadResponseError(f"{what}: an event is not JSON ({scrub(data[:80], key)!r})", provider=provider) from None


def _text(content: bytes, charset: str | None) -> str:
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return content.decode("utf-8", errors="replace")


def _size(size: int) -> str:
    return f"{size / (1 << 20):g} MiB" if size >= 1 << 20 else f"{size} bytes"


class HTTPCall:
    """One POST of a JSON body to a provider's API.

    A ladder of methods, each on top of the one below: :meth:`json` / :meth:`text` read
    the answer through :meth:`read` (the body, bounded) after :meth:`send` (the request
    from :meth:`request`, on the wire), which ends with :meth:`check_status`, the one place
    an HTTP error status becomes a typed error. The call holds what every error message
    needs (provider, the key to mask, what was being done, the timeout).
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str],
        timeout_s: float,
        provider: str,
        key: str | None,
        what: str,
    ) -> None:
        self.client, self.url, self.body, self.headers = client, url, body, headers
        self.timeout_s, self.provider, self.key, self.what = timeout_s, provider, key, what

    def json(self) -> Any:
        """The decoded JSON answer."""
        response = self.send()
        content = self.read(response)
        try:
            return json.loads(content)
        except ValueError:
            snippet = scrub(_text(content[:320], response.charset_encoding)[:80], self.key)
            raise BadResponseError(f"{self.what}: the answer is not JSON ({snippet!r})", provider=self.provider) from None

    def text(self) -> str:
        """The answer as text, in the charset it declares (UTF-8 when none)."""
        response = self.send()
        return _text(self.read(response), response.charset_encoding)

    def request(self, accept: str | None = None) -> httpx.Request:
        """The request: ``timeout_s`` for each read (so a stream may run longer as long as
        tokens keep coming), connecting capped at CONNECT_TIMEOUT_S."""
        headers = {**self.headers, "Accept": accept} if accept else self.headers
        timeout = httpx.Timeout(self.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.timeout_s))
        return self.client.build_request("POST", self.url, json=self.body, headers=headers, timeout=timeout)

    def send(self, accept: str | None = None) -> httpx.Response:
        """Send the request; the response with a 2xx status and its body not yet read."""
        redact.remember(self.key)  # a server may echo it back in headers, which httpcore logs at DEBUG
        try:
            response = self.client.send(self.request(accept), stream=True)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from None
        self.check_status(response)
        return response

    def check_status(self, response: httpx.Response) -> None:
        """Raise the typed error for a status of 400 or more (the response is then closed)."""
        if response.status_code < 400:
            return
        content = bytearray()
        try:
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) >= MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass  # the status alone still classifies it
        finally:
            response.close()
        try:
            body: Any = json.loads(content)
        except ValueError:
            body = _text(bytes(content), response.charset_encoding)[:MAX_MESSAGE]
        message, code = provider_message(body)
        if message is None and response.reason_phrase:
            message = response.reason_phrase
        raise error_for_status(response.status_code, message, code, provider=self.provider, key=self.key,
                               what=self.what, retry_after=_retry_after(response, body))

    def read(self, response: httpx.Response) -> bytes:
        """The whole body (at most MAX_BODY bytes); the response is closed, and so goes back
        to the pool when it was read to the end."""
        try:
            return b"".join(self.chunks(response))
        finally:
            response.close()

    def chunks(self, response: httpx.Response) -> Iterator[bytes]:
        """The body as it arrives, decompressed, with a typed error for a broken connection
        or past MAX_BODY bytes."""
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY:
                    raise self.bad_response(f"the answer is larger than {_size(MAX_BODY)}")
                yield chunk
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from None

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


class SSEStream:
    """A streamed POST whose answer is server-sent events, as ``(event, data)`` pairs.

    Lines end at CR, LF or CRLF and nowhere else: a JSON string may hold U+2028, U+2029 or
    U+0085 unescaped, which ``str.splitlines`` (and so httpx's ``iter_lines``) would take for
    line ends. No line may pass MAX_LINE bytes and no event MAX_EVENT.

    The response is always closed. When the events end normally the rest of the body is
    read first, so the connection goes back to the pool and the next call reuses it
    (closing a half-read response would drop the connection instead).
    """

    def __init__(self, client: httpx.Client, url: str, body: Mapping[str, Any], **call: Any) -> None:
        self.call = HTTPCall(client, url, body, **call)
        self.response = self.call.send(accept="text/event-stream")
        self._lines = self.lines()

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
        for line in self._lines:
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
            self.response.close()

    def close(self) -> None:
        """Stop early: closing mid-body drops the connection, which also stops the server."""
        self.response.close()

    def _line_too_long(self) -> BadResponseError:
        return self.call.bad_response(f"a line of the event stream is longer than {_size(MAX_LINE)}")
