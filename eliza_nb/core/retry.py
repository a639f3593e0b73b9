"""How long to wait before trying a failed call again: the ``[retry]`` table.

Every try is capped twice, by ``max_attempts`` per target and by ``max_total_s`` for the
whole call, so no loop in the ladder (core/ladder.py) can run unbounded. A server's
Retry-After wins over the backoff when it fits in what is left of the call's time;
when it does not, the ladder fails over instead of waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tenacity import RetryCallState, Retrying, wait_exponential, wait_random_exponential

from .errors import ConfigError
from .settings import check_number


@dataclass(frozen=True)
class RetryPolicy:
    """The ``[retry]`` table: attempts, backoff and the time caps of one call."""

    max_attempts: int = 3  # per target, first try included
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_total_s: float = 60.0  # across retries AND failover, per call
    jitter: float = 0.5  # up to this fraction of each delay is drawn at random
    timeout_s: float = 120.0  # per attempt: connect, send and the whole answer or stream
    cooldown_s: float = 5.0  # how long other calls skip a target that just failed with a retryable error
    _backoff: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.init:
                check_number(getattr(self, f.name), f"[retry] {f.name}", minimum=0)
        check_number(self.max_attempts, "[retry] max_attempts", minimum=1, whole=True)
        check_number(self.timeout_s, "[retry] timeout_s", above=0)
        if self.jitter > 1:
            raise ConfigError(f"[retry] jitter is a fraction from 0 to 1, got {self.jitter!r}")
        # "Equal jitter": a fixed part that doubles plus a random part that doubles, so try n
        # waits between (1 - jitter) and 1 times min(max_delay_s, base_delay_s * 2**(n-1)).
        fixed, drawn = 1 - self.jitter, self.jitter
        backoff = (wait_exponential(multiplier=self.base_delay_s * fixed, max=self.max_delay_s * fixed)
                   + wait_random_exponential(multiplier=self.base_delay_s * drawn, max=self.max_delay_s * drawn))
        object.__setattr__(self, "_backoff", backoff)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RetryPolicy:
        """From the ``[retry]`` table; unknown names are a one-line error listing the valid ones."""
        values = dict(values or {})
        names = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown [retry] option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**values)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number ``attempt + 1`` (attempt counts from 1)."""
        if retry_after is not None and retry_after >= 0:
            return float(retry_after)  # the server's word; the caller checks it fits the time left
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempt
        return min(self.max_delay_s, float(self._backoff(state)))

    def wait(self, exc: Any, attempt: int, remaining_s: float) -> float | None:
        """Seconds to wait before retrying after ``exc`` on try ``attempt``, or None when the
        error is not retryable, the attempts are used up, or the wait would not fit in
        ``remaining_s``."""
        if not getattr(exc, "retryable", False) or attempt >= self.max_attempts:
            return None
        wait = self.delay(attempt, getattr(exc, "retry_after", None))
        return wait if wait <= remaining_s else None

