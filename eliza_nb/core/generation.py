"""Text generation: plan a call, then climb the ladder (core/ladder.py) with a TextJob.

plan: options split and validated, target(s) resolved (``model_class="auto"`` chooses),
failover chain built. The TextJob supplies the text-specific steps of the ladder: the
merged settings and default system prompt per target, the generation cache, the token
budget and truncation, and the provider call (streamed or not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import redact
from .cache.generations import cached_generation, hide_keys, single_flight, store_generation
from .errors import BadResponseError, ConfigError, ContentBlocked, ContextTooLongError, ElizaError, StreamInterrupted
from .ladder import Climb, Job, climb
from .ledger import cost_usd
from .ratelimit import estimate_request_tokens
from .settings import ModelSettings, check_timeout, pop_settings
from .types import Attempt, Message, Request, Result, Target, as_messages

if TYPE_CHECKING:
    from .catalog import ProviderEntry
    from .runtime import Runtime

#: the options of generate/stream that are not model settings
CALL_OPTIONS = ("provider", "model_class", "model", "preset", "system", "timeout_s", "failover", "truncation", "cache",
                "strict")


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
    strict: bool = False  # an empty answer a provider's filter blocked raises ContentBlocked


def plan_call(rt: Runtime, prompt: Any, options: Mapping[str, Any]) -> Plan:
    """Validate and resolve everything a call needs; raises before any provider work."""
    opts = dict(options)
    call = pop_settings(opts)
    if call:
        ModelSettings.from_mapping(call)  # a bad value is refused here, before any provider work
    unknown = sorted(set(opts) - set(CALL_OPTIONS))
    if unknown:
        from .settings import SETTINGS

        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join((*CALL_OPTIONS, *SETTINGS))}")
    messages = as_messages(prompt, opts.get("system"))
    selection = None
    if str(opts.get("model_class") or "").lower() == "auto":
        from .selection import select_model_class

        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        choice = select_model_class(prompt=last_user, explain=True)
        assert isinstance(choice, tuple)  # explain=True: (class, why)
        cls, why = choice
        opts["model_class"], selection = cls, f"{cls.value}: {why}"
    primary = rt.resolve(opts.get("provider"), opts.get("model_class"), opts.get("model"))
    if not primary.model_class.is_text:
        raise ConfigError(f"generate needs a text model class (small, medium, large), not {primary.model_class.value}")
    preset = opts.get("preset")
    rt.presets.get(preset)
    return Plan(
        messages=messages, call=call, preset=preset, selection=selection,
        timeout_s=check_timeout(opts.get("timeout_s"), rt.retry.timeout_s),
        targets=rt.targets(primary, opts.get("failover")),
        cache=rt.cache.config.generation if opts.get("cache") is None else bool(opts["cache"]),
        truncation=_truncation_option(rt, opts), strict=bool(opts.get("strict")),
    )


def _truncation_option(rt: Runtime, opts: Mapping[str, Any]) -> str | None:
    from .tokens import STRATEGIES

    value = opts.get("truncation", (rt.config.get("defaults") or {}).get("truncation", "keep-recent"))
    if value in (None, False, "off", "none"):
        return None
    if value not in STRATEGIES:
        raise ConfigError(f"unknown truncation {value!r}; choose one of: {', '.join(STRATEGIES)}, or off")
    return str(value)


def with_default_system(rt: Runtime, target: Target, messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """Add the catalog's ``default_system`` prompt when the caller gave none."""
    default = rt.catalog.get(target.provider).extra.get("default_system")
    if not default or any(m.role == "system" for m in messages):
        return messages
    return (Message("system", str(default)), *messages)


def request_for(rt: Runtime, plan: Plan, target: Target) -> Request:
    """The request for one target as the caller asked for it: merged settings, the target's
    default system prompt, before any truncation."""
    return Request(target, with_default_system(rt, target, plan.messages),
                   rt.effective_settings(target, plan.preset, plan.call), plan.timeout_s)


def planned_request(rt: Runtime, plan: Plan) -> Request:
    """The request for the first target: what record/replay and single-flight key on."""
    return request_for(rt, plan, plan.targets[0])


class TextJob(Job):
    """The text-specific steps of the ladder, for ``generate`` (``streaming=False``) and ``stream``."""

    def __init__(self, rt: Runtime, plan: Plan, streaming: bool) -> None:
        self.plan = plan
        self.streaming = streaming
        self.kind = "stream" if streaming else "generate"
        self.preset = plan.preset or rt.session.state.preset
        self.request: Request | None = None  # the current target's request, before truncation
        self.timeout_s = plan.timeout_s

    def run(self, rt: Runtime) -> Climb:
        """The whole call: single-flight (when cached) around the ladder."""
        ladder = climb(rt, self, self.plan.targets)
        if not self.plan.cache:
            return ladder
        return single_flight(rt.cache, planned_request(rt, self.plan), ladder, rt.retry.max_total_s + self.plan.timeout_s)

    def begin(self, rt: Runtime, target: Target) -> None:
        self.request = request_for(rt, self.plan, target)
        self.refits = 0  # smaller tries after this target's "too long"
        self.mode = "normal"  # how the next try counts (core/windows.counting)
        self.sent: tuple[Message, ...] = ()  # the messages of the last try, and how they were counted
        self.sent_count: Any = None

    def lookup(self, rt: Runtime, target: Target) -> Result | None:
        if not self.plan.cache:
            return None
        assert self.request is not None
        hit: Result | None = cached_generation(rt.cache, self.request, rt.clock)
        return hit

    def fit(self, rt: Runtime, adapter: Any, target: Target, timeout_s: float) -> tuple[Request, list[str], int]:
        """Fit the prompt to the model's budget (core/windows.py says how it is counted)."""
        from .tokens import fit_request
        from .windows import counting

        request = self.request
        assert request is not None
        how = counting(rt, adapter, target, request, self.mode, self.refits, timeout_s)
        self.sent_count = how.base
        try:
            fitted, notes = fit_request(request, how.count, how.window, self.plan.truncation, how.shrink)
        except ContextTooLongError as exc:
            exc.provider, exc.from_budget = target.provider, True  # our own check: truncating again cannot help
            raise
        self.sent = fitted.messages
        return replace(fitted, timeout_s=timeout_s), [*how.notes, *notes], estimate_request_tokens(fitted.messages)

    def refit(self, rt: Runtime, target: Target, exc: ContextTooLongError) -> bool:
        """Learn the window and how far our count fell short; two smaller tries at most (the
        second fitted to a bound that cannot be low)."""
        from .tokens import count_messages
        from .windows import limits_from_message

        if self.refits >= 2 or not self.sent:
            return False
        self.refits += 1
        stated = exc.stated or limits_from_message(str(exc))
        self.mode = "calibrated" if stated is not None and self.refits == 1 else "bound"
        if stated is not None:
            counted = count_messages(self.sent, self.sent_count) if self.sent_count else None
            rt.windows.learn(target.provider, target.model, window=stated.limit, actual=stated.actual, counted=counted)
        return True

    def _learn_from_usage(self, rt: Runtime, target: Target, prompt_tokens: int) -> None:
        """A model whose window was learned: its real prompt sizes keep the count factor honest."""
        from .tokens import count_messages

        if rt.windows.get(target.provider, target.model).window is not None:
            rt.windows.learn(target.provider, target.model, actual=prompt_tokens,
                             counted=count_messages(self.sent, self.sent_count))

    def call(self, rt: Runtime, adapter: Any, target: Target, payload: Request, t0: float) -> Climb:
        ttft = None
        completion = None
        if self.streaming:
            parts: list[str] = []
            mask = redact.StreamMask()  # a key a server echoes is never shown, even for a moment
            stream = adapter.stream(payload)
            try:
                for chunk in stream:
                    if chunk.text:
                        if ttft is None:
                            ttft = rt.clock() - t0
                        parts.append(chunk.text)
                        shown = mask.feed(chunk.text)
                        if shown:
                            yield shown
                    if chunk.completion is not None:
                        completion = chunk.completion
                tail = mask.flush()
                if tail:
                    yield tail
            except ElizaError as exc:
                if parts and not isinstance(exc, StreamInterrupted):
                    partial = redact.mask_answer("".join(parts))[0]
                    raise StreamInterrupted(f"stream cut after {len(parts)} chunks: {exc.args[0] if exc.args else exc}",
                                            provider=target.provider, partial=partial) from None
                raise
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
        else:
            completion = adapter.generate(payload)
        if completion is None:
            raise BadResponseError("the stream ended without a final message", provider=target.provider)
        if self.streaming and (completion.usage.source == "gateway" or completion.usage.total_tokens is None):
            from .windows import server_usage

            completion.usage = server_usage(adapter, payload, completion.text) or completion.usage
        if self.sent_count is not None and completion.usage.prompt_tokens and completion.usage.source == "provider":
            self._learn_from_usage(rt, target, completion.usage.prompt_tokens)
        result = Result(
            text=completion.text, provider=target.provider, model=completion.model or target.model,
            model_class=target.model_class.value, usage=completion.usage, latency_s=rt.clock() - t0,
            ttft_s=ttft, queue_s=completion.queue_s, finish_reason=completion.finish_reason, notes=list(completion.notes),
        )
        if self.plan.strict and result.blocked and not result.text:
            # Nothing was shown (the text is empty), so the ladder may still fail over.
            raise ContentBlocked(result.block_note() or "the answer was blocked", provider=target.provider)
        if not result.text.strip() and not result.blocked:
            # No text, no refusal: a stream a gateway closed cleanly after its upstream failed, say.
            # Never a silent success, never cached; with a chain (or strict) the next target answers.
            said = result.finish_reason or "nothing"
            if self.plan.strict or target != self.plan.targets[-1]:
                raise BadResponseError(f"the answer was empty (finish reason: {said})", provider=target.provider)
            result.finish_reason = "empty"
            result.notes = [*result.notes, f"the answer was empty (the provider's finish reason: {said}); not cached"]
        return result

    def finish(self, rt: Runtime, target: Target, answer: Result, attempts: list[Attempt], notes: list[str]) -> Result:
        answer.attempts = list(attempts)
        assert self.request is not None
        answer.settings = self.request.settings.as_dict()
        answer.notes = [*notes, *answer.notes]
        answer.selection = self.plan.selection
        return hide_keys(rt, answer, every_secret=self.plan.cache)  # a key a server echoed: masked, never cached

    def store(self, rt: Runtime, target: Target, answer: Result) -> None:
        if self.plan.cache and answer.finish_reason != "empty":
            assert self.request is not None
            store_generation(rt.cache, self.request, answer)

    def tokens(self, answer: Result) -> tuple[int | None, int | None]:
        return answer.usage.prompt_tokens, answer.usage.completion_tokens

    def cost(self, entry: ProviderEntry, target: Target, answer: Result) -> float:
        return cost_usd(entry.price(answer.model), answer.usage.prompt_tokens, answer.usage.completion_tokens)


class GenerationStream:
    """Iterate for text chunks; ``.result`` holds the Result once the stream is drained.

    Closing it early (``close()`` or leaving a ``for`` loop) stops the provider.
    """

    def __init__(self, gen: Climb, target: Target) -> None:
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
