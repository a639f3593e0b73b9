"""The IMAGE class through the runtime: resolve, key check, budget, rate limit, bounded
retry, failover (``[failover] image = [...]``), ledger. :meth:`Runtime.image` calls here.

Kept beside the runtime rather than in it so the text pipeline stays readable; it uses
the same pieces (RetryPolicy, RateLimiter, Ledger) and the same error rules.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Mapping

from .errors import ConfigError, ElizaError
from .generation import final_error
from .ledger import LedgerRow
from .retry import call_with_retry
from .types import Attempt, ImageResult, ModelClass

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Runtime

#: what ``image(...)`` accepts besides prompt/provider/model; adapters map or drop each
IMAGE_OPTIONS = frozenset({"size", "width", "height", "steps", "seed", "negative_prompt", "quality", "style", "guidance"})
CALL_OPTIONS = frozenset({"timeout_s", "failover"})


def generate_image(rt: Runtime, prompt: str, provider: str | None, model: str | None, options: Mapping[str, Any]) -> ImageResult:
    """One image from the first target in the chain that answers."""
    opts = dict(options)
    unknown = sorted(set(opts) - IMAGE_OPTIONS - CALL_OPTIONS)
    if unknown:
        valid = ", ".join(sorted(IMAGE_OPTIONS | CALL_OPTIONS))
        raise ConfigError(f"unknown image option(s) {', '.join(unknown)}; valid: {valid}")
    if not str(prompt).strip():
        raise ConfigError("image needs a prompt")
    timeout = float(opts.pop("timeout_s", None) or rt.retry.timeout_s)
    failover = opts.pop("failover", None)
    primary = rt.resolve(provider, ModelClass.IMAGE, model)
    attempts: list[Attempt] = []
    started = rt._clock()
    last_error: ElizaError | None = None
    for target in rt._targets(primary, failover):
        if last_error is not None and rt._clock() - started > rt.retry.max_total_s:
            break
        entry = rt.catalog.get(target.provider)
        waited: list[float] = []
        t0 = rt._clock()

        def before() -> None:
            slot = rt.ratelimits.acquire(entry.id, entry.rate_limit, 0)
            if slot is not None and slot.waited_s > 0:
                waited.append(slot.waited_s)

        def on_retry(exc: ElizaError, delay: float) -> None:
            attempts.append(Attempt(str(target), type(exc).__name__, str(exc), round(delay, 3)))

        try:
            rt._check_key(entry)
            rt.spending.check(entry, target.model, rt.ledger)
            adapter = rt.provider(target.provider)
            make = getattr(adapter, "image", None)
            if make is None:
                raise ConfigError(f"the {entry.protocol} adapter cannot make images", provider=entry.id)
            result: ImageResult = call_with_retry(
                rt.retry, lambda: make(prompt, target.model, opts, timeout),
                clock=rt._clock, sleep=rt._sleep, started=started, before=before, on_retry=on_retry,
            )
        except ElizaError as exc:
            last_error = exc
            attempts.append(Attempt(str(target), type(exc).__name__, str(exc)))
            _record(rt, target, rt._clock() - t0, error=f"{type(exc).__name__}: {exc}")
            if not exc.failover:
                raise final_error(exc, attempts) from None
            continue
        result.provider, result.model, result.prompt = target.provider, target.model, str(prompt)
        result.latency_s = rt._clock() - t0
        result.attempts = [*attempts, Attempt(str(target), "ok")]
        if waited:
            result.notes.insert(0, f"waited {sum(waited):.1f} s for {entry.id}'s rate limit")
        price = entry.extra.get("image_prices", {}).get(target.model) if isinstance(entry.extra.get("image_prices"), dict) else None
        _record(rt, target, result.latency_s, cost=float(price) if price is not None else math.nan)
        return result
    assert last_error is not None
    raise final_error(last_error, attempts) from None


def _record(rt: Runtime, target: Any, latency_s: float, *, error: str | None = None, cost: float = math.nan) -> None:
    rt.ledger.record(LedgerRow(
        time=time.time(), kind="image", provider=target.provider, model=target.model, model_class="image",
        latency_s=latency_s, cost_usd=cost, error=error,
    ))
