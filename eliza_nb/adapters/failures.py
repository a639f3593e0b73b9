"""What a failed answer means: an error status, a provider's error body or a transport
exception made into one typed :mod:`eliza_nb.core.errors` exception with a one-line message,
every key masked before the message is cut (:func:`scrub`)."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

from ..core import redact
from ..core.errors import (
    AuthError,
    BadResponseError,
    ContextTooLongError,
    ElizaError,
    InvalidRequestError,
    ModelRetired,
    NotFoundError,
    RateLimitedError,
    TransientError,
)
from ..core.windows import limits_from_message

MAX_MESSAGE = 500  # characters of a provider's error message we keep
CONNECT_TIMEOUT_S = 10.0  # a host that does not accept within this is down, whatever the read timeout

_CONTEXT_RE = re.compile(
    r"context[ _-]?length|context[ _-]window|maximum context|too many tokens|prompt is too long|"
    r"input is too long|reduce the length|exceeds? the (?:model'?s? )?(?:maximum|limit|context)|"
    r"token limit|input length|tokens? exceed|available context size|exceed_context_size",
    re.I,
)
_NOT_FOUND_RE = re.compile(
    r"model[^.]{0,80}(?:not found|does not exist|not available|is not supported|unknown|decommissioned|deprecated)|"
    r"(?:unknown|invalid|no such) model|not_found|model_not_found|not found for api version",
    re.I,
)
_RETIRED_RE = re.compile(
    r"decommissioned|has been (?:fully )?(?:deprecated|retired)|is no longer (?:available|supported|served)", re.I)
_BAD_KEY_RE = re.compile(
    r"api key not valid|invalid (?:x-)?api[ _-]?key|incorrect api key|api_key_invalid|invalid authentication", re.I
)
#: LiteLLM wraps an upstream's message in its exception chain ("litellm.ContextWindowExceededError:
#: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - This model's ..."): the
#: chain says nothing the typed error does not, and it would take the room of the message
_LITELLM_CHAIN = re.compile(r"^litellm\.\w+:\s*(?:(?:litellm\.)?\w+(?:Error|Exception)\s*(?::|-)\s*)*")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]+")


def scrub(text: str, key: str | None = None, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line, at most ``limit`` characters, every key masked before the cut
    (core/redact.py: the key used, every key sent, credential-shaped text, a cut key's start).
    Control and invisible characters (a body of NUL bytes, bidi overrides) show as one ``�``."""
    return redact.mask(_UNPRINTABLE.sub("\ufffd", " ".join(text.split())), (key,), limit)


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


def retry_after_of(response: httpx.Response, body: Any = None) -> float | None:
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
    if found is None:  # LiteLLM's proxy passes the upstream's wait under its own name
        found = parse_retry_after(response.headers.get("llm_provider-retry-after"))
    if found is None:  # OpenAI's window resets: the one whose budget is spent, else the later
        resets = {kind: parse_duration(response.headers.get(f"x-ratelimit-reset-{kind}")) for kind in ("requests", "tokens")}
        spent = [resets[k] for k in resets if response.headers.get(f"x-ratelimit-remaining-{k}", "").strip() == "0"]
        known = [v for v in (spent or list(resets.values())) if v is not None]
        found = max(known) if known else None
    return found


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str | None) -> float | None:
    """Seconds from a Go-style duration as OpenAI sends it ("20ms", "1s", "6m0s", "1h2m3.5s");
    None when absent or not one."""
    text = (value or "").strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


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
            msg = json.dumps(msg)  # cut by scrub, after masking
        sizes = [err.get(k) for k in ("n_prompt_tokens", "n_ctx")]  # llama.cpp's server: the numbers are fields
        if msg and all(isinstance(v, int) and not isinstance(v, bool) for v in sizes):
            msg = f"{msg} (n_prompt_tokens {sizes[0]}, n_ctx {sizes[1]})"
        return (str(msg) if msg else None), (str(code) if code else None)
    detail = body.get("detail")
    if detail:
        return (detail if isinstance(detail, str) else json.dumps(detail)), None
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
    said = scrub(_LITELLM_CHAIN.sub("", message or ""), key)
    tail = f": {said}" if said else ""
    text = f"{message or ''} {code or ''}"  # classified on the whole message: the cut may hide its words
    if status in (401, 403) or (status == 400 and _BAD_KEY_RE.search(text)):
        return AuthError(f"{what} refused the credentials (HTTP {status}){tail}", provider=provider)
    if status == 429:
        limited = RateLimitedError(f"{what} is rate limited (HTTP 429){tail}", provider=provider, retry_after=retry_after)
        if code == "insufficient_quota":  # out of credit: waiting will not help
            limited.retryable = False
        return limited
    if status == 413 or (status in (400, 422) and _CONTEXT_RE.search(text)):
        too_long = ContextTooLongError(f"{what}: the prompt is too long for the model (HTTP {status}){tail}",
                                       provider=provider)
        too_long.stated = limits_from_message(message or "")  # read before the cut: numbers sit at the end
        return too_long
    retired = _RETIRED_RE.search(text)  # xAI answers a retired model with a 500 that says so
    if status in (404, 410) or (status in (400, 422) and _NOT_FOUND_RE.search(text)) or (status in (400, 500) and retired):
        listing = f"; see %eliza models -p {provider}"  # what the provider serves today
        if retired:
            return ModelRetired(f"{what}: the model is retired (HTTP {status}){tail}{listing}", provider=provider)
        return NotFoundError(f"{what}: not found (HTTP {status}){tail}{listing}", provider=provider)
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
