"""Per-provider limits: requests/minute and tokens/minute over a sliding window, and a cap
on calls in flight.

Budgets come from the catalog (``rate_limit = { rpm = 30, tpm = 6000 }``) or the user's
config (``[providers.groq.rate_limit]``); ``window_s`` (default 60) is the window the two
counts apply to. A call that would exceed them waits until the window has room, and the
runtime says so in the Result ("waited 1.2 s for groq's rate limit") instead of letting the
provider answer 429. ``max_concurrency = N`` on a provider (:class:`ConcurrencyCaps`) lets
at most N of its calls run at once, a stream holding its slot until it ends.

On a Dask cluster the same classes run in one place, the scheduler (eliza_nb/scale), and
every worker asks there: :meth:`RateLimiter.reserve` only books a slot and says how long
to wait, so the caller sleeps on its own clock.

Thread-safe: a caller reserves its slot under the lock (at the time it will start), then
sleeps outside it, so concurrent callers queue up in order instead of all waking at once.
A caller never waits longer than it has left: a slot further away than ``max_wait`` is not
taken, and the call fails over (RateLimitWaitError) with the wait in its message.

:class:`Cooldowns` holds the other shared provider state: a target that has just failed
with a retryable error is skipped by the other calls for a few seconds.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .errors import ConfigError, RateLimitWaitError

WINDOW_S = 60.0
#: a request is booked here, but a provider counts it when it arrives, a few ms later and not
#: always by the same few (thread and process scheduling; on a cluster, the RPC). Bookings
#: keep this much more than the window apart, so that jitter never puts one request too many
#: into a provider's window: 0.25 s of a minute, 5% of a short window.
def arrival_slack(span: float) -> float:
    return min(0.25, 0.05 * span)



def parse_limits(pid: str, table: Mapping[str, Any] | None) -> tuple[float | None, float | None, float]:
    """(rpm, tpm, window_s) from a ``rate_limit`` table; a one-line error for anything else
    (NaN and infinity included: a limit is a finite number > 0; leave it out for no limit)."""
    from .settings import check_number, config_table

    table = config_table(table, f"[providers.{pid}.rate_limit]")
    unknown = sorted(set(table) - {"rpm", "tpm", "window_s"})
    if unknown:
        raise ConfigError(f"[providers.{pid}.rate_limit]: unknown key(s) {', '.join(unknown)}; valid: rpm, tpm, window_s")
    rpm, tpm, window = (None if table.get(name) is None else check_number(table[name], f"[providers.{pid}.rate_limit] {name}", above=0)
                        for name in ("rpm", "tpm", "window_s"))
    return rpm, tpm, WINDOW_S if window is None else float(window)


def parse_concurrency(pid: str, value: Any) -> int | None:
    """A provider's ``max_concurrency``: a whole number >= 1, or None for no cap."""
    if value is None:
        return None
    from .settings import check_number

    return int(check_number(value, f"[providers.{pid}] max_concurrency", minimum=1, whole=True))


class _Window:
    """Reservations (start time, tokens) of one provider, sorted by time."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.times: list[float] = []
        self.tokens: list[float] = []

    def prune(self, now: float) -> None:
        cut = bisect.bisect_right(self.times, now - self.span)
        if cut:
            del self.times[:cut], self.tokens[:cut]

    def earliest_start(self, now: float, rpm: float | None, tpm: float | None, need: float) -> float:
        """The first time >= now at which one more request of ``need`` tokens fits."""
        start = now
        i = bisect.bisect_right(self.times, start - self.span)
        used = sum(self.tokens[i:])
        # Each step lets the oldest reservation in the window expire: at most len(times) steps.
        while i < len(self.times):
            count = len(self.times) - i
            fits_requests = rpm is None or count < rpm
            # A single request bigger than the whole budget runs once the window is empty.
            fits_tokens = tpm is None or used + need <= tpm
            if fits_requests and fits_tokens:
                break
            start = max(start, self.times[i] + self.span)
            used -= self.tokens[i]
            i += 1
        return start

    def add(self, when: float, tokens: float) -> int:
        pos = bisect.bisect_right(self.times, when)
        self.times.insert(pos, when)
        self.tokens.insert(pos, tokens)
        return pos


class Reservation:
    """A granted slot; ``settle`` replaces the estimated tokens with the real count."""

    def __init__(self, limiter: Any, provider: str, when: float, tokens: float, waited_s: float) -> None:
        self._limiter, self.provider, self.when, self.tokens, self.waited_s = limiter, provider, when, tokens, waited_s

    def settle(self, actual_tokens: int | None) -> None:
        if actual_tokens is None or actual_tokens == self.tokens:
            return
        self._limiter.settle(self.provider, self.when, self.tokens, float(actual_tokens))
        self.tokens = float(actual_tokens)


class RateLimiter:
    """Sliding-window budgets per provider. ``clock``/``sleep`` are the runtime's (injectable)."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._clock, self._sleep = clock, sleep
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def acquire(self, provider: str, limits: Mapping[str, Any] | None, tokens: int = 0,
                max_wait: float = math.inf) -> Reservation | None:
        """Wait until ``provider`` has room for one request of ~``tokens``; None when unlimited.

        A slot more than ``max_wait`` seconds away is not reserved: RateLimitWaitError says
        which limit and how long the wait would be."""
        if not limits:
            return None
        booked = self.reserve(provider, limits, tokens, max_wait)
        if booked is None:
            return None
        when, waited = booked
        if waited > 0:
            self._sleep(waited)
        return Reservation(self, provider, when, float(tokens), waited)

    def reserve(self, provider: str, limits: Mapping[str, Any] | None, tokens: float = 0,
                max_wait: float = math.inf) -> tuple[float, float] | None:
        """Book the first slot with room: (its time on this limiter's clock, seconds from now),
        without sleeping; None when ``limits`` sets no budget."""
        rpm, tpm, span = parse_limits(provider, limits)
        if rpm is None and tpm is None:
            return None
        with self._lock:
            now = self._clock()
            window = self._windows.get(provider)
            if window is None or window.span != span + arrival_slack(span):
                window = self._windows[provider] = _Window(span + arrival_slack(span))
            window.prune(now)
            start = window.earliest_start(now, rpm, tpm, float(tokens))
            if start - now > max_wait:
                limits_set = " / ".join(f"{n} {v:g}" for n, v in (("rpm", rpm), ("tpm", tpm)) if v is not None)
                per = "" if span == WINDOW_S else f" per {span:g} s"
                raise RateLimitWaitError(f"{limits_set}{per} reached; next slot in {start - now:.0f} s "
                                         f"(this call has {max(0.0, max_wait):.0f} s left)", provider=provider)
            window.add(start, float(tokens))
        return start, max(0.0, start - now)

    def settle(self, provider: str, when: float, estimated: float, actual: float) -> None:
        """Replace a reservation's estimated tokens with the count the provider reported."""
        with self._lock:
            window = self._windows.get(provider)
            if window is None:
                return
            lo = bisect.bisect_left(window.times, when)
            hi = bisect.bisect_right(window.times, when)
            for i in range(lo, hi):
                if window.tokens[i] == estimated:
                    window.tokens[i] = actual
                    return

    def usage(self, provider: str) -> tuple[int, float]:
        """(requests, tokens) in the current window: for tests and a status display."""
        with self._lock:
            window = self._windows.get(provider)
            if window is None:
                return 0, 0.0
            window.prune(self._clock())
            return len(window.times), sum(window.tokens)


class ConcurrencyCaps:
    """At most ``max_concurrency`` calls in flight per provider (a stream holds its slot to
    the end). A slot that does not free up within the call's time left fails the call over.

    ``semaphore(provider, cap)`` makes a provider's slots (anything with ``acquire(timeout=)``
    and ``release()``): a thread semaphore here, a ``distributed.Semaphore`` shared by a
    Dask cluster's workers (eliza_nb/scale), where ``scope`` names it in the message."""

    def __init__(self, clock: Callable[[], float], semaphore: Callable[[str, int], Any] | None = None,
                 scope: str = "") -> None:
        self._clock, self._scope = clock, scope
        self._make = semaphore or (lambda _provider, cap: threading.BoundedSemaphore(cap))
        self._slots: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, provider: str, cap: int | None, max_wait: float = math.inf) -> Iterator[float]:
        """Hold one of ``provider``'s ``cap`` slots for the block; yields the seconds waited."""
        if cap is None:
            yield 0.0
            return
        with self._lock:
            slots = self._slots.get((provider, cap))
            if slots is None:
                slots = self._slots[(provider, cap)] = self._make(provider, cap)
        t0 = self._clock()
        if not slots.acquire(timeout=None if math.isinf(max_wait) else max(0.0, max_wait)):
            raise RateLimitWaitError(f"max_concurrency {cap}{self._scope}: no call slot freed up within the "
                                     f"{max(0.0, max_wait):.0f} s this call has left", provider=provider)
        try:
            yield self._clock() - t0
        finally:
            slots.release()


class Cooldowns:
    """Targets that have just failed with a retryable error, and until when other calls skip them.

    The call that failed keeps its own retries (its backoff already spaces them); every other
    call, single-flight followers of a failed leader included, goes straight to its next
    target instead of each trying the failing one again. A success ends the cool-down.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._until: dict[str, tuple[float, Any]] = {}  # target -> (until, id of the call that failed)
        self._lock = threading.Lock()

    def mark(self, target: str, seconds: float, owner: Any) -> None:
        if seconds > 0:
            with self._lock:
                self._until[target] = (self._clock() + seconds, owner)

    def clear(self, target: str) -> None:
        with self._lock:
            self._until.pop(target, None)

    def left(self, target: str, caller: Any) -> float:
        """Seconds ``target`` stays cooled down for ``caller`` (0: go ahead)."""
        with self._lock:
            until, owner = self._until.get(target, (0.0, caller))
        return 0.0 if owner == caller else max(0.0, until - self._clock())


def estimate_request_tokens(messages: Any) -> int:
    """A cheap token estimate for the budget check: ~4 characters a token for the prompt.

    The output is not counted up front (reserving max_output_tokens would starve the
    budget); the real usage replaces the estimate once the provider reports it.
    """
    chars = sum(len(getattr(m, "content", "")) for m in messages)
    return math.ceil(chars / 4)
