"""Provider limits for a whole Dask cluster: one set of books, on the scheduler.

A rate limit counted per worker would let 4 workers send 4 times the budget. So the
runtime's :class:`~eliza_nb.core.ratelimit.RateLimiter` and
:class:`~eliza_nb.core.ratelimit.Cooldowns` run once, inside the scheduler
(:class:`LimitsPlugin` adds a few RPC handlers there), and each worker's runtime gets
proxies with the same methods (:func:`cluster_limits`): a reservation is booked on the
scheduler, which answers how long to wait, and the worker sleeps on its own clock. The
scheduler outlives any worker, so a killed worker takes no budget with it. Calls in
flight (``max_concurrency``) are Dask's own :class:`distributed.Semaphore`, whose leases
expire when the worker holding them dies.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from ..core.errors import RateLimitWaitError
from ..core.ratelimit import ConcurrencyCaps, Cooldowns, RateLimiter, Reservation, parse_limits

PLUGIN_NAME = "eliza_nb-limits"
#: an RPC to the scheduler that takes longer than this is an error, not a hang
RPC_TIMEOUT_S = 30.0


class LimitsPlugin(SchedulerPlugin):
    """The cluster's rate-limit windows and cool-downs, served to workers by RPC."""

    name = PLUGIN_NAME
    idempotent = True  # registered again by a later attach: the running books are kept

    async def start(self, scheduler: Any) -> None:
        self.limiter = RateLimiter(time.monotonic, lambda _s: None)
        self.cooldowns = Cooldowns(time.monotonic)
        scheduler.handlers.update({
            "eliza_nb_reserve": self.reserve, "eliza_nb_settle": self.settle,
            "eliza_nb_cool_mark": self.cool_mark, "eliza_nb_cool_left": self.cool_left,
            "eliza_nb_cool_clear": self.cool_clear,
        })

    def reserve(self, provider: str, limits: dict[str, Any], tokens: float, max_wait: float | None) -> dict[str, Any]:
        try:
            booked = self.limiter.reserve(provider, limits, tokens, math.inf if max_wait is None else max_wait)
        except Exception as exc:  # RateLimitWaitError or a bad table: the worker raises it
            return {"error": exc.args[0] if exc.args else str(exc), "type": type(exc).__name__}
        return {"when": None, "wait": 0.0} if booked is None else {"when": booked[0], "wait": booked[1]}

    def settle(self, provider: str, when: float, estimated: float, actual: float) -> None:
        self.limiter.settle(provider, when, estimated, actual)

    def cool_mark(self, target: str, seconds: float, owner: str) -> None:
        self.cooldowns.mark(target, seconds, owner)

    def cool_left(self, target: str, caller: str) -> float:
        return self.cooldowns.left(target, caller)

    def cool_clear(self, target: str) -> None:
        self.cooldowns.clear(target)


class SchedulerCalls:
    """Synchronous calls to the handlers above, from a worker's task threads."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def __call__(self, op: str, **kwargs: Any) -> Any:
        from distributed.utils import sync

        return sync(self.worker.loop, getattr(self.worker.scheduler, op), callback_timeout=RPC_TIMEOUT_S, **kwargs)


class ClusterRateLimiter:
    """The RateLimiter surface the ladder uses, booked on the scheduler."""

    def __init__(self, call: Callable[..., Any], sleep: Callable[[float], None]) -> None:
        self._call, self._sleep = call, sleep

    def acquire(self, provider: str, limits: Mapping[str, Any] | None, tokens: int = 0,
                max_wait: float = math.inf) -> Reservation | None:
        if not limits:
            return None
        rpm, tpm, _ = parse_limits(provider, limits)  # a bad table fails here, before any RPC
        if rpm is None and tpm is None:
            return None
        reply = self._call("eliza_nb_reserve", provider=provider, limits=dict(limits), tokens=float(tokens),
                           max_wait=None if math.isinf(max_wait) else float(max_wait))
        if "error" in reply:
            raise RateLimitWaitError(reply["error"], provider=provider)
        if reply["wait"] > 0:
            self._sleep(reply["wait"])
        return Reservation(self, provider, reply["when"], float(tokens), reply["wait"])

    def settle(self, provider: str, when: float, estimated: float, actual: float) -> None:
        self._call("eliza_nb_settle", provider=provider, when=when, estimated=estimated, actual=actual)


class ClusterCooldowns:
    """The Cooldowns surface the ladder uses, kept on the scheduler; a call is named by its
    worker and its number there, since call numbers repeat across processes.

    A success clears a target's cool-down on the scheduler only when this worker knows of
    one (it marked the target, or last saw it cooling): the RPC would be wasted after every
    other answer. A cool-down another worker marks in between simply runs out."""

    def __init__(self, call: Callable[..., Any], worker_id: str) -> None:
        self._call, self._worker = call, worker_id
        self._known: set[str] = set()  # targets this worker marked or saw cooling
        self._lock = threading.Lock()

    def mark(self, target: str, seconds: float, owner: Any) -> None:
        if seconds > 0:
            with self._lock:
                self._known.add(target)
            self._call("eliza_nb_cool_mark", target=target, seconds=float(seconds), owner=f"{self._worker}/{owner}")

    def clear(self, target: str) -> None:
        with self._lock:
            if target not in self._known:
                return
            self._known.discard(target)
        self._call("eliza_nb_cool_clear", target=target)

    def left(self, target: str, caller: Any) -> float:
        seconds = float(self._call("eliza_nb_cool_left", target=target, caller=f"{self._worker}/{caller}"))
        if seconds > 0:
            with self._lock:
                self._known.add(target)
        return seconds


def cluster_semaphore(provider: str, cap: int) -> Any:
    """``max_concurrency`` across the cluster: one :class:`distributed.Semaphore` per provider."""
    from distributed import Semaphore

    return Semaphore(max_leases=cap, name=f"eliza_nb:{provider}:{cap}")


def cluster_limits(rt: Any, worker: Any) -> None:
    """Point a worker's runtime at the cluster's books instead of its own."""
    call = SchedulerCalls(worker)
    rt.ratelimits = ClusterRateLimiter(call, rt.sleep)
    rt.cooldowns = ClusterCooldowns(call, str(worker.address))
    rt.concurrency = ConcurrencyCaps(time.monotonic, cluster_semaphore, scope=" across the cluster")
