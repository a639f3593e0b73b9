"""Typed errors. Every message is one line a notebook user can act on, and never holds a key.

Adapters raise these; the attempt ladder (core/ladder.py) reads ``retryable`` and
``failover`` to decide per class whether to retry, truncate, fail over or stop.
"""

from __future__ import annotations

from typing import Any


class ElizaError(Exception):
    """Base class: a one-line, user-facing problem."""

    #: whether the runtime may try the next target in a failover chain
    failover: bool = True
    #: whether the same target may be retried after a backoff
    retryable: bool = False

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        self.provider = provider
        self.attempts: list[Any] = []  # filled by the ladder: every target tried, in order
        super().__init__(message)

    def __str__(self) -> str:
        msg = super().__str__()
        if self.provider and not msg.startswith("["):
            msg = f"[{self.provider}] {msg}"
        if len(self.attempts) > 1:
            msg += " (tried " + ", ".join(f"{a.target}: {a.outcome}" for a in self.attempts) + ")"
        return msg

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback wall: one line, the class and message.
        return [f"{type(self).__name__}: {self}"]


class ConfigError(ElizaError, ValueError):
    """Bad input from the user: unknown provider, class, preset or setting."""

    failover = False


class ModelPackageMissing(ConfigError):
    """A local model package is not installed; the message gives the exact install command."""


class MissingKeyError(ElizaError):
    """The provider's API key variable is not set."""


class AuthError(ElizaError):
    """401/403: the key was refused. Never retried."""


class NotFoundError(ElizaError):
    """404 or "model not found/not available": fail over at once."""


class ModelRetired(NotFoundError):
    """The model id was retired by its owner (the catalog's ``retired`` table, or the
    provider's own "decommissioned" answer); the message names the replacement. Fails over."""


class RateLimitedError(ElizaError):
    """429: retried after Retry-After or a backoff."""

    retryable = True

    def __init__(self, message: str, *, provider: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, provider=provider)
        self.retry_after = retry_after


class RateLimitWaitError(RateLimitedError):
    """A provider's own budget (``rate_limit``) has no slot within the time the call has left:
    not retried (the wait would only grow), failed over at once."""

    retryable = False


class ContextTooLongError(ElizaError):
    """The prompt does not fit the model's window: truncate once and retry."""

    from_budget = False  # True when our own budget check refused it (truncating again cannot help)
    stated: Any = None  # core.windows.StatedLimits: the window and real size the provider's message states


class TransientError(ElizaError):
    """5xx, timeout, connection error: retried with backoff, then fail over."""

    retryable = True
    retry_after: float | None = None  # seconds the server asked for (a 503's Retry-After)


class CoolingDown(TransientError):
    """A target failed moments ago and is cooling down: the call goes to the next target at once."""

    retryable = False


class BadResponseError(ElizaError):
    """The provider answered with something we cannot parse."""


class InvalidRequestError(ElizaError):
    """Another 4xx: the provider refused this request as malformed. Not retried (it would
    fail the same way); another provider in a failover chain may still take it."""


class ContentBlocked(ElizaError):
    """A provider's filter blocked the prompt or the answer and nothing was generated
    (Gemini's blockReason / SAFETY, an empty OpenAI ``content_filter`` answer). Raised only
    with ``strict=True`` / ``--strict``; otherwise the empty answer comes back with
    ``finish_reason`` "blocked" or "content_filter" and a note. A refusal is not a block:
    the model answered, and its refusal is the text.

    Not retried: the same provider blocks the same prompt again. Failed over: filters
    differ between providers (Gemini's RECITATION check and Azure's content filter have no
    counterpart elsewhere), and a failover chain is the user's request for an answer from
    the next provider when this one gives none.
    """


class StreamInterrupted(ElizaError):
    """A stream stopped mid-way (cut connection or the user's stop button); partial text kept."""

    failover = False

    def __init__(self, message: str, *, provider: str | None = None, partial: str = "") -> None:
        super().__init__(message, provider=provider)
        self.partial = partial


class EmbeddingDimensionError(ElizaError, ValueError):
    """A vector whose length is not the model's dimension; never stored."""

    failover = False


class InvalidEmbeddingError(BadResponseError, ValueError):
    """A vector holding NaN/inf or non-numeric values, or of the wrong shape; never stored."""

    failover = False


class BudgetExceeded(ElizaError):
    """The configured spending cap refuses further paid calls (a free provider later in a
    failover chain may still answer)."""


class ReplayArchiveError(ConfigError):
    """A replay archive that cannot be read (truncated, a newer format, edited by hand);
    the message names the file and line. Nothing from such an archive is used."""


class ReplayMismatch(ElizaError):
    """Strict replay met a request the archive has no answer for; the message names the
    field that differs from the nearest recorded request."""

    failover = False
