"""What every HTTP adapter shares: requests with a timeout, SSE parsing, and turning an
httpx response or exception into one of the typed errors in :mod:`eliza_nb.core.errors`.

Error messages are one line, name the provider (through the error's ``provider``),
carry the provider's own message when it sent one, and never hold the key: every
message passes through :func:`scrub` with the key that was used, and generic
credential patterns are masked too, in case a server echoes a header back.
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import json
import re
import time
from typing import Any, Iterator, Mapping
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
_BAD_KEY_RE = re.compile(r"api key not valid|invalid (?:x-)?api[ _-]?key|incorrect api key|api_key_invalid|invalid authentication", re.I)
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


@functools.lru_cache(maxsize=32)  # one object per distinct timeout, not one per request
def timeout_for(seconds: float) -> httpx.Timeout:
    """Per-request timeout: ``seconds`` for each read (so a stream may run longer as long as
    tokens keep coming), connecting capped at 10 s."""
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


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
    """The typed error for an HTTP status and the provider's own message."""
    said = scrub(message or "", key)
    tail = f": {said}" if said else ""
    text = f"{said} {code or ''}"
    if status in (401, 403) or (status == 400 and _BAD_KEY_RE.search(text)):
        return AuthError(f"{what} refused the credentials (HTTP {status}){tail}", provider=provider)
    if status == 429:
        exc = RateLimitedError(f"{what} is rate limited (HTTP 429){tail}", provider=provider, retry_after=retry_after)
        if code == "insufficient_quota":  # out of credit: waiting will not help
            exc.retryable = False
        return exc
    if status == 413 or (status in (400, 422) and _CONTEXT_RE.search(text)):
        return ContextTooLongError(f"{what}: the prompt is too long for the model (HTTP {status}){tail}", provider=provider)
    if status == 404 or (status in (400, 422) and _NOT_FOUND_RE.search(text)):
        return NotFoundError(f"{what}: not found (HTTP {status}){tail}", provider=provider)
    if status >= 500 or status in (408, 409, 425):
        exc = TransientError(f"{what} failed (HTTP {status}){tail}", provider=provider)
        if retry_after is not None:
            exc.retry_after = retry_after  # honoured by the runtime for 503 too
        return exc
    return InvalidRequestError(f"{what} rejected the request (HTTP {status}){tail}", provider=provider)


def error_from_response(response: httpx.Response, *, provider: str, key: str | None, what: str) -> ElizaError:
    """Classify a non-2xx response (its body must already be read)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:MAX_MESSAGE]
    message, code = provider_message(body)
    if message is None and response.reason_phrase:
        message = response.reason_phrase
    return error_for_status(response.status_code, message, code, provider=provider, key=key, what=what,
                            retry_after=_retry_after(response, body))


def error_from_exception(exc: Exception, *, provider: str, key: str | None, what: str, timeout_s: float) -> ElizaError:
    """Classify an httpx transport exception (timeouts, refused or reset connections)."""
    if isinstance(exc, ElizaError):
        return exc
    detail = scrub(str(exc) or type(exc).__name__, key)
    if isinstance(exc, httpx.ConnectTimeout):
        return TransientError(f"{what}: could not connect within {min(10.0, timeout_s):.0f} s", provider=provider)
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{what}: no answer within {timeout_s:g} s (timeout)", provider=provider)
    if isinstance(exc, httpx.ConnectError):
        return TransientError(f"{what}: cannot connect ({detail})", provider=provider)
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return TransientError(f"{what}: connection broken ({detail})", provider=provider)
    if isinstance(exc, httpx.HTTPError):
        return TransientError(f"{what}: {type(exc).__name__} ({detail})", provider=provider)
    return BadResponseError(f"{what}: {type(exc).__name__} ({detail})", provider=provider)


def post(
    client: httpx.Client,
    url: str,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    provider: str,
    key: str | None,
    what: str,
) -> httpx.Response:
    """POST a JSON body; a 2xx response (body read), or a typed error."""
    redact.remember(key)  # a server may echo it back in headers, which httpcore logs at DEBUG
    try:
        response = client.post(url, json=body, headers=headers, timeout=timeout_for(timeout_s))
    except httpx.HTTPError as exc:
        raise error_from_exception(exc, provider=provider, key=key, what=what, timeout_s=timeout_s) from None
    if response.status_code >= 400:
        raise error_from_response(response, provider=provider, key=key, what=what)
    return response


def post_json(
    client: httpx.Client,
    url: str,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    provider: str,
    key: str | None,
    what: str,
) -> Any:
    """POST a JSON body and return the decoded JSON answer, or raise a typed error."""
    response = post(client, url, body, headers=headers, timeout_s=timeout_s, provider=provider, key=key, what=what)
    try:
        return response.json()
    except ValueError:
        snippet = scrub(response.text[:80], key)
        raise BadResponseError(f"{what}: the answer is not JSON ({snippet!r})", provider=provider) from None


def loads(data: str, *, provider: str, what: str, key: str | None = None) -> Any:
    """json.loads that raises BadResponseError with a short, scrubbed excerpt."""
    try:
        return json.loads(data)
    except ValueError:
        raise BadResponseError(f"{what}: an event is not JSON ({scrub(data[:80], key)!r})", provider=provider) from None


class SSEStream:
    """A streamed POST whose answer is server-sent events, as ``(event, data)`` pairs.

    The response is always closed. When the events end normally the rest of the body is
    read first, so the connection goes back to the pool and the next call reuses it
    (closing a half-read response would drop the connection instead).
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
        self.provider, self.key, self.what, self.timeout_s = provider, key, what, timeout_s
        redact.remember(key)
        request = client.build_request("POST", url, json=body, headers={**headers, "Accept": "text/event-stream"},
                                       timeout=timeout_for(timeout_s))
        try:
            self.response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, provider=provider, key=key, what=what, timeout_s=timeout_s) from None
        if self.response.status_code >= 400:
            try:
                self.response.read()
            except httpx.HTTPError:
                pass
            finally:
                self.response.close()
            raise error_from_response(self.response, provider=provider, key=key, what=what)
        self._lines = self.response.iter_lines()

    def events(self) -> Iterator[tuple[str, str]]:
        """Yield ``(event name or "", data)`` per event; comments and empty events skipped."""
        event, data = "", []
        try:
            for line in self._lines:
                if not line:
                    if data:
                        yield event, "\n".join(data)
                    event, data = "", []
                elif line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
                elif line.startswith("event:"):
                    event = line[6:].strip()
                # ":" comments (keep-alive pings), "id:" and "retry:" carry nothing we use
            if data:
                yield event, "\n".join(data)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, provider=self.provider, key=self.key, what=self.what,
                                       timeout_s=self.timeout_s) from None

    def finish(self, max_lines: int = 64) -> None:
        """After the final event: read what is left of the body (normally only the end of
        the chunked encoding) so the connection goes back to the pool, then close."""
        try:
            for n, _ in enumerate(self._lines):
                if n >= max_lines:  # a server still talking after its final event: drop it
                    break
        except httpx.HTTPError:
            pass
        finally:
            self.response.close()

    def close(self) -> None:
        """Stop early: closing mid-body drops the connection, which also stops the server."""
        self.response.close()


def check_plain_http(url: str, key: str | None, warn: Any, provider: str) -> None:
    """Warn once when a key would travel over unencrypted http to a non-local host."""
    if key and url.startswith("http://") and not is_local_host(url):
        warn(f"{provider}: {urlsplit(url).hostname} is plain http, so the key travels unencrypted")
