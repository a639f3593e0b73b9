"""Bounded retry: jittered exponential backoff, a cap on attempts and on total time.

The original system retried with ``while(true)``; here every loop has two caps and a
delay, and Retry-After is honoured when it fits inside the time cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any, Mapping

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
            return min(float(retry_after), self.max_total_s)
        base = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        r = (rng or random).random()
        return base * (1 - self.jitter) + base * self.jitter * r
