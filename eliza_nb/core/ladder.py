"""The attempt ladder: every provider call — text, streams, embeddings, images — climbs it.

::

    for each target (the primary, then the failover chain), while max_total_s lasts:
        begin             the job's input for this target (text: the merged request)
        lookup            a stored answer ends the call (the generation cache)
        for each try (at most RetryPolicy.max_attempts, all within max_total_s):
            cooling down?    another call just saw it fail: next target at once (the last
                             target gets one try, no retries)
            retired model? -> key -> spending cap -> fit (budget, truncation) -> call slot
                             (max_concurrency) -> rate limit -> call
                             the call gets min(timeout_s, the time left) for the whole attempt;
                             the rate limiter never waits past the time left
            ok               -> settle the rate limit, finish, store, one ledger row: done
            retryable        -> one ledger row, cool the target down for other calls,
                                back off (Retry-After or jitter) if that fits the time left, try again
            too long         -> one ledger row, job.refit learns the window, at most two smaller tries
            fails over       -> one ledger row, next target
            anything else    -> one ledger row, raise with every attempt listed

What differs between kinds lives in a :class:`Job`; this module holds the one procedure.
A job's ``call`` is a generator so that streamed text passes through the ladder as it
arrives: a non-streaming job simply yields nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ContextTooLongError, CoolingDown, ElizaError, StreamInterrupted
from .types import Attempt, Target

if TYPE_CHECKING:
    from .catalog import ProviderEntry
    from .runtime import Runtime

_CALLS = itertools.count(1)

#: what a job's ``call`` is: text chunks out (streams only), the answer as its return value
Climb = Generator[str, None, Any]


class Job:
    """One kind of provider call. Subclasses override the steps that differ."""

    kind = "generate"  # the ledger's kind
    preset: str | None = None
    timeout_s: float | None = None  # per attempt; None: the [retry] table's

    def run(self, rt: Runtime) -> Climb:
        """The whole call (usually :func:`climb` over the job's targets)."""
        raise NotImplementedError

    def begin(self, rt: Runtime, target: Target) -> None:
        """Called once per target, before anything else for it (a text job builds its request)."""

    def lookup(self, rt: Runtime, target: Target) -> Any:
        """A stored answer for this target, or None (only the generation cache has one)."""
        return None

    def fit(self, rt: Runtime, adapter: Any, target: Target, timeout_s: float) -> tuple[Any, list[str], int]:
        """(payload for ``call``, notes, tokens to reserve with the rate limiter). ``timeout_s``
        bounds the whole attempt: the payload carries it to the adapter."""
        raise NotImplementedError

    def refit(self, rt: Runtime, target: Target, exc: ContextTooLongError) -> bool:
        """After a provider's "too long": learn from it and say whether a smaller try is worth making."""
        return False

    def call(self, rt: Runtime, adapter: Any, target: Target, payload: Any, t0: float) -> Climb:
        """One provider call: yields text when streaming, returns the answer."""
        raise NotImplementedError

    def finish(self, rt: Runtime, target: Target, answer: Any, attempts: list[Attempt], notes: list[str]) -> Any:
        """The answer as the caller sees it (attempts and notes attached)."""
        return answer

    def store(self, rt: Runtime, target: Target, answer: Any) -> None:
        """Keep a finished answer (the generation cache)."""

    def tokens(self, answer: Any) -> tuple[int | None, int | None]:
        """(prompt, completion) tokens the provider reported for the answer."""
        return None, None

    def cost(self, entry: ProviderEntry, target: Target, answer: Any) -> float:
        """USD for the answer; NaN when the price is unknown."""
        return float("nan")

    def items(self) -> int:
        """How many inputs one call carries (texts in an embedding batch)."""
        return 1


def climb(rt: Runtime, job: Job, targets: Sequence[Target]) -> Climb:
    """Run ``job`` on the first target of ``targets`` that answers; see the module docstring."""
    attempts: list[Attempt] = []
    deadline = rt.clock() + rt.retry.max_total_s
    caller = next(_CALLS)  # who marked a cool-down (an id() could be reused by a later call)
    error: ElizaError | None = None
    for n, target in enumerate(targets, 1):
        if error is not None and rt.clock() >= deadline:
            break  # the call's time is spent: no further failover targets
        job.begin(rt, target)
        stored = job.lookup(rt, target)
        if stored is not None:
            _log(rt, job, target, stored, latency_s=stored.latency_s, cost=0.0, cache_hit=True)
            if job.kind == "stream" and stored.text:
                yield stored.text
            return stored
        tries, one_try = 0, False
        while True:
            tries += 1
            left = deadline - rt.clock()
            if error is not None and left <= 0:
                break  # the time is spent: the last error stands
            cooling = rt.cooldowns.left(str(target), caller)
            if cooling > 0 and n < len(targets):
                error = CoolingDown(f"{target} failed moments ago; skipped while it cools down ({cooling:.1f} s more)",
                                    provider=target.provider)
                attempts.append(Attempt(str(target), "CoolingDown", f"skipped for {cooling:.1f} s more"))
                break
            if tries == 1:
                one_try = cooling > 0  # the last target still gets a try, but no retries
            t0 = rt.clock()
            slot = None
            try:
                entry = rt.catalog.get(target.provider)
                retiring = rt.check_model(entry, target)
                rt.check_key(entry)
                rt.spending.check(entry, target.model, rt.ledger)
                adapter = rt.adapter(target.provider)
                attempt_s = min(job.timeout_s or rt.retry.timeout_s, left)
                payload, notes, reserve = job.fit(rt, adapter, target, attempt_s)
                with rt.concurrency.hold(entry.id, entry.max_concurrency, max_wait=deadline - rt.clock()) as queued:
                    if queued >= 0.05:
                        notes = [*notes, f"waited {queued:.1f} s for a free call slot (max_concurrency {entry.max_concurrency})"]
                    slot = rt.ratelimits.acquire(entry.id, entry.rate_limit, reserve, max_wait=deadline - rt.clock())
                    if slot is not None and slot.waited_s > 0:
                        notes = [*notes, f"waited {slot.waited_s:.1f} s for {entry.id}'s rate limit"]
                    if retiring:
                        notes = [*notes, retiring]
                    answer = yield from job.call(rt, adapter, target, payload, t0)
            except (GeneratorExit, KeyboardInterrupt) as exc:  # closed early, or the stop button
                why = "stopped by the user" if isinstance(exc, KeyboardInterrupt) else "closed by the caller before the end"
                _log(rt, job, target, None, latency_s=rt.clock() - t0, error=StreamInterrupted(why, provider=target.provider))
                raise
            except StreamInterrupted as exc:  # text was shown: retrying would show it twice
                _log(rt, job, target, None, latency_s=rt.clock() - t0, error=exc)
                attempts.append(Attempt(str(target), type(exc).__name__, str(exc)))
                raise
            except ElizaError as exc:
                error = exc
                _log(rt, job, target, None, latency_s=rt.clock() - t0, error=exc)
                if exc.retryable:  # the other calls in flight skip it for a moment
                    rt.cooldowns.mark(str(target), rt.retry.cooldown_s, caller)
                wait = None if one_try else rt.retry.wait(exc, tries, deadline - rt.clock())
                attempts.append(Attempt(str(target), type(exc).__name__, str(exc), round(wait or 0.0, 3)))
                if wait is not None:
                    rt.sleep(wait)
                    continue
                if isinstance(exc, ContextTooLongError) and not exc.from_budget and job.refit(rt, target, exc):
                    continue  # the provider counted more than we did: a smaller try
                if isinstance(exc, ContextTooLongError) or not exc.failover:
                    raise with_attempts(exc, attempts) from None
                break  # next target
            prompt_tokens, completion_tokens = job.tokens(answer)
            if slot is not None:
                slot.settle(None if prompt_tokens is None and completion_tokens is None
                            else (prompt_tokens or 0) + (completion_tokens or 0))
            rt.cooldowns.clear(str(target))
            attempts.append(Attempt(str(target), "ok"))
            answer = job.finish(rt, target, answer, attempts, notes)
            job.store(rt, target, answer)
            _log(rt, job, target, answer, latency_s=rt.clock() - t0, cost=job.cost(entry, target, answer))
            return answer
    assert error is not None
    raise with_attempts(error, attempts) from None


def drain(gen: Climb) -> Any:
    """Run a ladder generator to its end and return its value (the non-streaming calls)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def with_attempts(exc: ElizaError, attempts: list[Attempt]) -> ElizaError:
    """The error the caller sees, carrying every attempt made."""
    exc.attempts = list(attempts)
    return exc


def _log(rt: Runtime, job: Job, target: Target, answer: Any, *, latency_s: float, cost: float = float("nan"),
         cache_hit: bool = False, error: ElizaError | None = None) -> None:
    prompt_tokens, completion_tokens = job.tokens(answer) if answer is not None else (None, None)
    rt.ledger.log(job.kind, target, preset=job.preset or rt.session.state.preset, prompt_tokens=prompt_tokens,
                  completion_tokens=completion_tokens, latency_s=latency_s, cost_usd=cost, cache_hit=cache_hit,
                  error=error, items=job.items())
