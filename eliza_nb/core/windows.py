"""What providers said about a model's context window, kept for the session.

A provider's "too long" usually states the window and the prompt's real size in its own
tokens (OpenAI, vLLM, LiteLLM, llama.cpp's server, Anthropic, Gemini: ``limits_from_message``).
Both are worth more than one retry: the window tells every later call of the session how
much room the model has (so a streamed prompt through a gateway that would end in an empty
answer is fitted before it is sent), and real size / our count says how far our count falls
short for that model, so later counts are scaled up (``LearnedWindows``). A server that
counts tokens itself (``count_prompt`` on the adapter) teaches the same factor up front.

The retry after a "too long" is fitted to a bound that cannot be low: UTF-8 bytes
(``bytes_bound``): no tokenizer makes more tokens of a text than it has bytes (byte-level
BPE and SentencePiece with byte fallback give every token at least one byte), and the
chat template's share is counted per message besides.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ElizaError
from .types import Message, Request, Target, Usage

if TYPE_CHECKING:
    from .runtime import Runtime

_NUM = r"\d[\d,]*"  # a token count as providers print it (1048576 or 1,048,576)
_PATTERNS = (
    # vLLM / LiteLLM / llama-cpp-python: "maximum context length is 2048 tokens. However, you requested 3690 tokens
    # (3680 in the messages, 10 in the completion)": the messages must fit in what the completion leaves
    re.compile(rf"maximum context length is (?P<limit>{_NUM}) tokens.*?requested \d[\d,]* tokens \("
               rf"(?P<actual>{_NUM}) in the messages, (?P<completion>{_NUM}) in the completion\)", re.S | re.I),
    # OpenAI: "... resulted in 9000 tokens"; vLLM without the split: "... you requested 5000 tokens"
    re.compile(rf"maximum context length is (?P<limit>{_NUM}) tokens.*?(?:resulted in|requested) (?P<actual>{_NUM}) tokens",
               re.S | re.I),
    # Anthropic: "prompt is too long: 210000 tokens > 200000 maximum"
    re.compile(rf"(?P<actual>{_NUM}) tokens > (?P<limit>{_NUM}) maximum", re.I),
    # Gemini: "The input token count (1048580) exceeds the maximum number of tokens allowed (1048576)"
    re.compile(rf"input token count \((?P<actual>{_NUM})\) exceeds the maximum number of tokens allowed "
               rf"\((?P<limit>{_NUM})\)", re.I),
    # llama.cpp's server states them as JSON fields, which failures.provider_message adds to the message
    re.compile(rf"n_prompt_tokens (?P<actual>{_NUM}), n_ctx (?P<limit>{_NUM})", re.I),
)


@dataclass(frozen=True)
class StatedLimits:
    """The numbers in a provider's "too long": its window and the prompt's size in its tokens."""

    limit: int
    actual: int
    completion: int = 0  # the output's share of the request, when the provider counted it in

    @property
    def room(self) -> int:
        """Prompt tokens the model had room for."""
        return self.limit - self.completion


def limits_from_message(message: str) -> StatedLimits | None:
    """The window and real prompt size a provider's message states, or None."""
    for pattern in _PATTERNS:
        m = pattern.search(message)
        if m:
            found = {k: int(v.replace(",", "")) for k, v in m.groupdict().items() if v is not None}
            if found["limit"] > 0 and found["actual"] > 0:
                return StatedLimits(found["limit"], found["actual"], found.get("completion", 0))
    return None


def bytes_bound(text: str) -> int:
    """An upper bound on any tokenizer's count of ``text``: its UTF-8 bytes."""
    return len(text.encode("utf-8"))


@dataclass
class ModelFacts:
    """What was learned about one (provider, model) this session."""

    window: int | None = None  # the window the provider stated
    factor: float = 1.0  # the provider's tokens per one of our counted tokens, the highest seen (never below 1)


class LearnedWindows:
    """Per (provider, model): the window a provider stated and how far our count fell short.

    Thread-safe (benchmarks call from a pool). The factor only grows: a count that is high
    wastes a little room, one that is low costs a failed call."""

    def __init__(self) -> None:
        self._facts: dict[tuple[str, str], ModelFacts] = {}
        self._lock = threading.Lock()

    def get(self, provider: str, model: str) -> ModelFacts:
        with self._lock:
            found = self._facts.get((provider, model))
            return ModelFacts(found.window, found.factor) if found else ModelFacts()

    def learn(self, provider: str, model: str, *, window: int | None = None, actual: int | None = None,
              counted: int | None = None) -> ModelFacts:
        """Keep a stated window and, from a real size against our count of the same prompt, the factor."""
        with self._lock:
            facts = self._facts.setdefault((provider, model), ModelFacts())
            if window and window > 0:
                facts.window = window
            if actual and counted and counted > 0:
                facts.factor = max(facts.factor, min(actual / counted, 8.0))
            return ModelFacts(facts.window, facts.factor)

    def forget(self) -> None:
        with self._lock:
            self._facts.clear()

    def __repr__(self) -> str:
        with self._lock:
            known = ", ".join(f"{p}:{m} window={f.window} factor={f.factor:.2f}" for (p, m), f in self._facts.items())
        return f"LearnedWindows({known})"


@dataclass(frozen=True)
class Counting:
    """How one try counts its prompt: the counter, the window it must fit, and why."""

    count: Callable[[str], int]
    base: Callable[[str], int]  # the counter before any scaling: what a stated size is compared with
    window: int | None
    shrink: float = 1.0  # below 1 only when neither the window nor the real size is known
    notes: tuple[str, ...] = ()


def configured_window(extra: Mapping[str, Any], model: str) -> int | None:
    """``context_window`` from a catalog entry: one number for every model, or a table by model id."""
    value = extra.get("context_window")
    if isinstance(value, Mapping):
        value = value.get(model)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def counting(rt: Runtime, adapter: Any, target: Target, request: Request, mode: str, refits: int,
             timeout_s: float) -> Counting:
    """The counter and window for a try. ``mode``: "normal"; "calibrated" after a "too long"
    that stated its numbers (the learned window, our count scaled by the learned factor and
    10%); "bound" after one that did not, or after a second one (UTF-8 bytes: cannot be low).
    With no window known at all nothing can be guaranteed: each smaller try sends a quarter
    of the one before."""
    from .tokens import count_messages, counter_for, make_budget

    provider, model = target.provider, target.model
    exact = getattr(adapter, "count_tokens", None)
    base, how = counter_for(provider, model, (lambda text: exact(text, model)) if exact else None)
    facts = rt.windows.get(provider, model)
    window_of = getattr(adapter, "context_window", None)
    stated = [w for w in (configured_window(rt.catalog.get(provider).extra, model), facts.window) if w]
    window = (window_of(model) if window_of else None) or (min(stated) if stated else None)
    if mode == "bound":
        if window is None:
            return Counting(base, base, None, 0.25 ** refits)
        return Counting(bytes_bound, base, window, notes=(
            f"fitted to {window:,} tokens counting one per UTF-8 byte after {provider}'s \"too long\"",))
    factor = facts.factor * (1.1 if mode == "calibrated" else 1.0)
    if facts.window is not None and window == facts.window:
        factor = max(factor, 1.1)  # a window learned from a refusal: a cut's mix of text counts differently
    if how == "estimate" and mode == "normal" and window is not None:
        budget = make_budget(request.settings.max_input_tokens, request.settings.max_output_tokens, window)
        upper = count_messages(request.messages, bytes_bound)
        if budget is not None and upper > budget.prompt_tokens:  # our estimate decides: ask the server if it counts
            told = _server_count(adapter, request, model, timeout_s)
            if told:
                counted = count_messages(request.messages, base)
                rt.windows.learn(provider, model, actual=told, counted=counted)
                factor = told / counted * 1.02  # this prompt's own ratio, a little slack for a cut's different mix
    if how == "exact" or factor == 1.0:
        return Counting(base, base, window)
    return Counting(lambda text: math.ceil(base(text) * factor), base, window)


def _server_count(adapter: Any, request: Request, model: str, timeout_s: float) -> int | None:
    """The server's own count of the prompt (llama.cpp's /tokenize, Anthropic's count_tokens), or None."""
    count_prompt = getattr(adapter, "count_prompt", None)
    if count_prompt is None:
        return None
    try:
        told = count_prompt(request.messages, model, min(timeout_s, 10.0))
    except ElizaError:  # counting is a help: the call goes on with the estimate
        return None
    return told if isinstance(told, int) and told > 0 else None


def server_usage(adapter: Any, request: Request, text: str) -> Usage | None:
    """A stream's tokens counted by the server's tokenizer (``count_prompt``), for a stream whose
    usage is missing or a gateway's estimate; None where the server does not count."""
    from .tokens import PER_MESSAGE_OVERHEAD

    prompt = _server_count(adapter, request, request.target.model, request.timeout_s)
    if prompt is None:
        return None
    answer = Request(request.target, (Message("assistant", text),), request.settings, request.timeout_s)
    completion = _server_count(adapter, answer, request.target.model, request.timeout_s) if text else PER_MESSAGE_OVERHEAD
    if completion is None:
        return None
    return Usage(prompt, completion - PER_MESSAGE_OVERHEAD, counted="exact", source="local")
