"""Bounded retry: jittered exponential backoff, a cap on attempts and on total time.

The original system retried with ``while(true)``; here every loop has two caps and a
delay, and Retry-After is honoured when it fits inside the time cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from .errors import ConfigError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # per target, first try included
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_total_s: float = 60.0  # across retries AND failover, per call
    jitter: float = 0.5  # fraction of the delay drawn at random
    timeout_s: float = 120.0  # per request

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RetryPolicy:
        values = dict(values or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown [retry] option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        policy = cls(**values)
        if policy.max_attempts < 1:
            raise ConfigError("[retry] max_attempts must be at least 1")
        return policy

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before try number ``attempt + 1`` (attempt counts from 1)."""
        if retry_after is not None and retry_after >= 0:
            # Not capped here: a server asking for an hour is not retried after 60 s
            # against its word; the caller's total-time check turns it into a failover.
            return float(retry_after)
        base = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        r = (rng or random).random()
        return base * (1 - self.jitter) + base * self.jitter * r


def retry_delay(policy: RetryPolicy, exc: Any, attempt_no: int, elapsed_s: float) -> float | None:
    """Seconds to wait before retrying after ``exc`` on try ``attempt_no``, or None when the
    error is not retryable, the attempts are used up, or the wait would pass the time cap."""
    if not getattr(exc, "retryable", False) or attempt_no >= policy.max_attempts:
        return None
    wait = policy.delay(attempt_no, getattr(exc, "retry_after", None))
    if elapsed_s + wait > policy.max_total_s:
        return None
    return wait


def call_with_retry(
    policy: RetryPolicy,
    call: Callable[[], Any],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    started: float,
    before: Callable[[], Any] | None = None,
    on_retry: Callable[[Any, float], None] | None = None,
) -> Any:
    """``call()`` with bounded retries of retryable ElizaErrors (one target, no failover).

    ``before`` runs ahead of every try (the rate limiter); ``on_retry(exc, delay)`` is told
    about each retry before its wait. The last error propagates unchanged.
    """
    from .errors import ElizaError

    for attempt_no in range(1, policy.max_attempts + 1):
        if before is not None:
            before()
        try:
            return call()
        except ElizaError as exc:
            delay = retry_delay(policy, exc, attempt_no, clock() - started)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)
    raise AssertionError("unreachable: the last try either returns or raises")  # pragma: no cover
