"""The generation pipeline: plan a call, then run it through every stage.

plan: options split and validated, target(s) resolved (``model_class="auto"`` chooses),
failover chain built. run, per target: merge settings -> generation cache -> key check ->
spending cap -> token budget / truncation -> rate limit -> provider call (stream or not) ->
on error: classify, retry with backoff / truncate once / fail over (all bounded) -> ledger
-> cache store -> Result. The Runtime holds the state; this module is the procedure.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from .catalog import parse_model_class  # noqa: F401  (re-exported for callers of the old names)
from .errors import ConfigError, ContextTooLongError, ElizaError, StreamInterrupted
from .gencache import cached_generation, single_flight, store_generation
from .ledger import LedgerRow, cost_usd
from .ratelimit import estimate_request_tokens
from .types import Attempt, Message, ModelSettings, Request, Result, Target, as_messages

if TYPE_CHECKING:
    from .runtime import Runtime

CALL_OPTIONS = ("provider", "model_class", "model", "preset", "system", "timeout_s", "failover", "truncation", "cache")


@dataclass
class Plan:
    """Everything a call needs, resolved and validated before any provider work."""

    messages: tuple[Message, ...]
    call: dict[str, Any]
    preset: str | None
    timeout_s: float
    targets: list[Target]
    truncation: str | None = "keep-recent"
    selection: str | None = None
    cache: bool = False  # look the request up in / store it to the generation cache


class GenerationStream:
    """Iterate for text chunks; ``.result`` holds the Result once the stream is drained.

    Closing it early (``close()`` or leaving a ``for`` loop) stops the provider.
    """

    def __init__(self, gen: Iterator[str], target: Target) -> None:
        self._gen = gen
        self.target = target  # the first target tried (failover may answer from another)
        self.result: Result | None = None

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._gen)
        except StopIteration as stop:
            self.result = stop.value
            raise

    def close(self) -> None:
        self._gen.close()

    def text(self) -> str:
        """Drain the stream and return the whole text."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result.text


def split_options(rt: Runtime, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    if not options:  # the common call: nothing to split or validate
        return {}, {}
    opts = dict(options)
    if "max_tokens" in opts:  # the name every other tool uses
        opts["max_output_tokens"] = opts.pop("max_tokens")
    call = {k: opts.pop(k) for k in list(opts) if k in ModelSettings.names()}
    unknown = sorted(set(opts) - set(CALL_OPTIONS))
    if unknown:
        valid = ", ".join((*CALL_OPTIONS, *ModelSettings.names()))
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; valid: {valid}")
    ModelSettings.from_mapping(call)
    return opts, call


@dataclass(frozen=True)
class _PlanMemo:
    """What an option-less call resolved to, and everything that resolution read.

    The common call (``generate(prompt)``) re-plans to the same targets until the session,
    catalog, retry policy, cache config, [defaults] or [failover] change; keeping the
    result took ~30 µs off every call (bench/overhead.py).
    """

    session: Any
    session_version: int
    catalog: Any
    retry: Any
    cache_config: Any
    defaults: Any
    failover: Any
    plan: Plan

    def valid_for(self, rt: Runtime) -> bool:
        return (self.session is rt.session and self.session_version == rt.session.version
                and self.catalog is rt.catalog and self.retry is rt.retry and self.cache_config is rt.cache.config
                and self.defaults == rt.config.get("defaults") and self.failover == rt.config.get("failover"))


def plan_call(rt: Runtime, prompt: Any, options: Mapping[str, Any]) -> Plan:
    """Validate and resolve everything a call needs; raises before any provider work."""
    if options:
        return _plan_call(rt, prompt, options)
    memo: _PlanMemo | None = getattr(rt, "_plan_memo", None)
    if memo is not None and memo.valid_for(rt):
        p = memo.plan
        return Plan(messages=as_messages(prompt, None), call={}, preset=None, timeout_s=p.timeout_s,
                    targets=list(p.targets), cache=p.cache, truncation=p.truncation)
    version = rt.session.version  # read before resolving: a change meanwhile is not kept
    plan = _plan_call(rt, prompt, options)
    rt._plan_memo = _PlanMemo(rt.session, version, rt.catalog, rt.retry, rt.cache.config,
                              copy.deepcopy(rt.config.get("defaults")), copy.deepcopy(rt.config.get("failover")),
                              Plan(messages=(), call={}, preset=None, timeout_s=plan.timeout_s,
                                   targets=list(plan.targets), cache=plan.cache, truncation=plan.truncation))
    return plan


def _plan_call(rt: Runtime, prompt: Any, options: Mapping[str, Any]) -> Plan:
    opts, call = split_options(rt, options)
    messages = as_messages(prompt, opts.get("system"))
    selection = None
    if str(opts.get("model_class") or "").lower() == "auto":  # the seed's selectOptimalModel
        from .selection import select_model_class

        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        cls, why = select_model_class(prompt=last_user, explain=True)
        opts["model_class"], selection = cls, f"{cls.value}: {why}"
    primary = rt.resolve(opts.get("provider"), opts.get("model_class"), opts.get("model"))
    if not primary.model_class.is_text:
        raise ConfigError(f"generate needs a text model class (small, medium, large), not {primary.model_class.value}")
    preset = opts.get("preset")
    rt.presets.get(preset)
    return Plan(
        messages=messages, call=call, preset=preset, selection=selection,
        timeout_s=float(opts.get("timeout_s") or rt.retry.timeout_s),
        targets=rt._targets(primary, opts.get("failover")),
        cache=rt.cache.config.generation if opts.get("cache") is None else bool(opts["cache"]),
        truncation=_truncation_option(rt, opts),
    )


def _truncation_option(rt: Runtime, opts: Mapping[str, Any]) -> str | None:
    value = opts.get("truncation", (rt.config.get("defaults") or {}).get("truncation", "keep-recent"))
    if value == "keep-recent":  # the default, on every call: no need to consult the strategy list
        return value
    from .tokens import STRATEGIES

    if value in (None, False, "off", "none"):
        return None
    if value not in STRATEGIES:
        raise ConfigError(f"unknown truncation {value!r}; choose one of: {', '.join(STRATEGIES)}, or off")
    return str(value)


def run(rt: Runtime, plan: Plan, *, streaming: bool) -> Iterator[str]:
    """Run a planned call (a generator: text chunks when streaming, the Result as its value).

    When record/replay is on (core/replay.py), it wraps the whole call once: it answers
    from its archive before any stage below runs, or records what answered.
    """
    calls = _run_targets(rt, plan, streaming=streaming)
    if plan.cache:  # identical calls at the same time make one provider call
        calls = single_flight(rt.cache, planned_request(rt, plan), calls, rt.retry.max_total_s + plan.timeout_s)
    replay = getattr(rt, "replay", None)
    return calls if replay is None else replay.run(rt, plan, streaming, calls)


def planned_request(rt: Runtime, plan: Plan) -> Request:
    """The request as the caller asked for it: first target, merged settings, before truncation."""
    target = plan.targets[0]
    return Request(target, with_default_system(rt, target, plan.messages),
                   rt.effective_settings(target, plan.preset, plan.call), plan.timeout_s)


def _run_targets(rt: Runtime, plan: Plan, *, streaming: bool) -> Iterator[str]:
    messages, call, preset, timeout, targets = plan.messages, plan.call, plan.preset, plan.timeout_s, plan.targets
    attempts: list[Attempt] = []
    started = rt._clock()
    last_error: ElizaError | None = None
    for target in targets:
        if last_error is not None and rt._clock() - started > rt.retry.max_total_s:
            break  # the call's total time is spent: no further failover targets
        settings = rt.effective_settings(target, preset, call)
        request = Request(target, with_default_system(rt, target, messages), settings, timeout)
        if plan.cache and (hit := cached_generation(rt.cache, request, rt._clock)) is not None:
            rt.ledger.record(ledger_row(rt, hit, preset, "stream" if streaming else "generate"))
            if streaming and hit.text:
                yield hit.text
            return hit
        shrink, notes = 1.0, []
        for attempt_no in range(1, rt.retry.max_attempts + 1):
            t0 = rt._clock()
            try:
                entry = rt.catalog.get(target.provider)
                rt._check_key(entry)
                rt.spending.check(entry, target.model, rt.ledger)
                adapter = rt.provider(target.provider)
                fitted, notes = _fit(rt, adapter, request, plan.truncation, shrink)
                slot = rt.ratelimits.acquire(entry.id, entry.rate_limit, estimate_request_tokens(fitted.messages)) if entry.rate_limit else None
                if slot is not None and slot.waited_s > 0:
                    notes = [*notes, f"waited {slot.waited_s:.1f} s for {entry.id}'s rate limit"]
                result = yield from _call_once(rt, adapter, fitted, streaming, t0)
            except StreamInterrupted as exc:
                attempts.append(Attempt(str(target), type(exc).__name__, str(exc)))
                _record_failure(rt, target, preset, t0, exc, streaming)
                raise
            except (GeneratorExit, KeyboardInterrupt) as exc:  # closed early / the stop button
                why = "stopped by the user" if isinstance(exc, KeyboardInterrupt) else "closed by the caller before the end"
                _record_failure(rt, target, preset, t0, StreamInterrupted(why, provider=target.provider), streaming)
                raise
            except ElizaError as exc:
                last_error = exc
                _record_failure(rt, target, preset, t0, exc, streaming)
                waited = 0.0
                can_retry = exc.retryable and attempt_no < rt.retry.max_attempts
                if can_retry:
                    waited = rt.retry.delay(attempt_no, getattr(exc, "retry_after", None))
                    if rt._clock() - started + waited > rt.retry.max_total_s:
                        can_retry = False
                        waited = 0.0
                attempts.append(Attempt(str(target), type(exc).__name__, str(exc), round(waited, 3)))
                if can_retry:
                    rt._sleep(waited)
                    continue
                if isinstance(exc, ContextTooLongError) and shrink == 1.0 and plan.truncation and not getattr(exc, "from_budget", False):
                    from .tokens import shrink_from_error

                    shrink = shrink_from_error(str(exc))  # the provider counted more than we did: truncate once, retry
                    continue
                if isinstance(exc, ContextTooLongError) or not exc.failover:
                    raise final_error(exc, attempts) from None
                break  # next target
            if slot is not None:
                slot.settle(result.usage.total_tokens)
            result.attempts = [*attempts, Attempt(str(target), "ok")]
            result.settings = settings.as_dict()
            result.notes = [*notes, *result.notes]
            result.selection = plan.selection
            if plan.cache:
                store_generation(rt.cache, request, result)
            rt.ledger.record(ledger_row(rt, result, preset, "stream" if streaming else "generate"))
            return result
    assert last_error is not None
    raise final_error(last_error, attempts) from None


def _fit(rt: Runtime, adapter: Any, request: Request, strategy: str | None, shrink: float) -> tuple[Request, list[str]]:
    """Fit the prompt to the model's budget (tokens.fit_request), counting exactly where the adapter can."""
    from .tokens import counter_for, fit_request

    t = request.target
    exact = getattr(adapter, "count_tokens", None)
    count, _ = counter_for(t.provider, t.model, (lambda text: exact(text, t.model)) if exact else None)
    window_of = getattr(adapter, "context_window", None)
    try:
        return fit_request(request, count, window_of(t.model) if window_of else None, strategy, shrink)
    except ContextTooLongError as exc:
        exc.provider, exc.from_budget = t.provider, True  # our own check: no truncate-and-retry
        raise


def with_default_system(rt: Runtime, target: Target, messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """Add the catalog's ``default_system`` prompt when the caller gave none."""
    default = rt.catalog.get(target.provider).extra.get("default_system")
    if not default or any(m.role == "system" for m in messages):
        return messages
    return (Message("system", str(default)), *messages)


def _call_once(rt: Runtime, adapter: Any, request: Request, streaming: bool, t0: float):
    """One provider call; yields text when streaming; returns a Result."""
    ttft = None
    completion = None
    if streaming:
        parts: list[str] = []
        stream = adapter.stream(request)
        try:
            for chunk in stream:
                if chunk.text:
                    if ttft is None:
                        ttft = rt._clock() - t0
                    parts.append(chunk.text)
                    yield chunk.text
                if chunk.completion is not None:
                    completion = chunk.completion
        except ElizaError as exc:
            if parts and not isinstance(exc, StreamInterrupted):
                raise StreamInterrupted(f"stream cut after {len(parts)} chunks: {exc.args[0] if exc.args else exc}", provider=request.target.provider, partial="".join(parts)) from None
            raise
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
    else:
        completion = adapter.generate(request)
    if completion is None:
        from .errors import BadResponseError

        raise BadResponseError("the stream ended without a final message", provider=request.target.provider)
    t = request.target
    return Result(
        text=completion.text, provider=t.provider, model=completion.model or t.model,
        model_class=t.model_class.value, usage=completion.usage, latency_s=rt._clock() - t0,
        ttft_s=ttft, finish_reason=completion.finish_reason, notes=list(completion.notes),
    )


def final_error(exc: ElizaError, attempts: list[Attempt]) -> ElizaError:
    exc.attempts = list(attempts)
    return exc


def ledger_row(rt: Runtime, result: Result, preset: str | None, kind: str) -> LedgerRow:
    entry = rt.catalog.get(result.provider)
    u = result.usage
    return LedgerRow(
        time=time.time(), kind=kind, provider=result.provider, model=result.model,
        model_class=result.model_class, preset=preset or rt.session.state.preset,
        prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
        latency_s=result.latency_s, cost_usd=0.0 if result.cached else cost_usd(entry.price(result.model), u.prompt_tokens, u.completion_tokens),
        cache_hit=result.cached,
    )


def _record_failure(rt: Runtime, target: Target, preset: str | None, t0: float, exc: ElizaError, streaming: bool = False) -> None:
    rt.ledger.record(LedgerRow(
        time=time.time(), kind="stream" if streaming else "generate", provider=target.provider,
        model=target.model, model_class=target.model_class.value, preset=preset, latency_s=rt._clock() - t0,
        error=f"{type(exc).__name__}: {exc}",
    ))
