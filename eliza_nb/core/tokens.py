"""Token counting, context budgets and truncation.

budget = model window - max output - system prompt - margin.

Counting: exact for local models (their own tokenizer, via the provider); for remote
models tiktoken when it is installed AND its encoding is already on disk (it downloads at
first use otherwise, and we never fetch at run time), else a conservative estimate that
over-counts, so a prompt we let through is never too long for the model. The provider's
reported usage is what the ledger records.

Truncation works at message boundaries and always keeps the system prompt:
- ``keep-recent`` (default): drop the oldest turns; if the newest turn alone is too
  long, keep its END (where the question usually is).
- ``head-tail``: keep the first and the latest turns, drop from the middle of the chat.
- ``middle-out``: for one long document: cut the middle, keep its head and tail.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, ContextTooLongError
from .types import Message, Request, Target, Usage

if TYPE_CHECKING:
    from .runtime import Runtime

#: tokens a chat format adds per message (role markers, separators) — generous upper bound
PER_MESSAGE_OVERHEAD = 8
#: what we keep free besides the output: templates differ, estimates err
DEFAULT_MARGIN = 32
STRATEGIES = ("keep-recent", "head-tail", "middle-out")
ELLIPSIS = "\n[…]\n"

Counter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """A conservative token count: every digit, ASCII punctuation mark and line break as a
    token (many tokenizers split digits one by one), each run of ASCII letters as a token per
    3 letters and at least one (real BPEs average ~4 with the space before), each run of
    spaces beyond one as a token per 4; other characters 2 tokens (accented Latin, Greek,
    Cyrillic, CJK) or 4 (emoji and other 4-byte characters): an English-centric byte-level
    BPE splits them into their bytes."""
    if not text:
        return 0
    other = 0 if text.isascii() else sum(2 if o < 0x10000 else 4 for o in map(ord, text) if o >= 128)
    runs = sum(max(1.0, len(w) / 3) for w in _WORDS.findall(text)) + sum(
        max(1.0, len(g) / 4) for g in _SPACES.findall(text))
    return math.ceil(len(_SINGLES.findall(text)) + runs + other)


_SINGLES = re.compile(r"[0-9!-/:-@\[-`{-~\n\r\t\x0b\x0c]")
_WORDS = re.compile(r"[A-Za-z]+")
_SPACES = re.compile(r" {2,}")


def _tiktoken_offline(encoding: str) -> Counter | None:
    """tiktoken's encoder if the package is installed and the encoding is cached locally."""
    try:
        import tiktoken
        import tiktoken_ext.openai_public as public  # noqa: F401 - registers the encodings
    except ImportError:
        return None
    cache_dir = (os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
                 or str(Path(tempfile.gettempdir()) / "data-gym-cache"))
    urls = {
        "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    }
    url = urls.get(encoding)
    if url is None or not (Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()).exists():
        return None
    enc = tiktoken.get_encoding(encoding)
    return lambda text: len(enc.encode(text, disallowed_special=()))


_offline_cache: dict[str, Counter | None] = {}


def counter_for(provider: str, model: str, exact: Counter | None = None) -> tuple[Counter, str]:
    """(count function, how it counts) for a model. ``exact`` comes from a provider that
    has the model's own tokenizer (llama_local)."""
    if exact is not None:
        return exact, "exact"
    if provider in ("openai", "redpill", "openrouter") or model.startswith(("gpt-", "o1", "o3", "text-embedding")):
        enc = "o200k_base" if "4o" in model or model.startswith(("o1", "o3", "gpt-4.1", "gpt-5")) else "cl100k_base"
        if enc not in _offline_cache:
            _offline_cache[enc] = _tiktoken_offline(enc)
        if _offline_cache[enc] is not None:
            return _offline_cache[enc], f"tiktoken {enc}"  # type: ignore[return-value]
    return estimate_tokens, "estimate"


def count_messages(messages: Sequence[Message], count: Counter) -> int:
    """Prompt tokens of a chat: content plus a per-message format overhead."""
    return sum(count(m.content) + PER_MESSAGE_OVERHEAD for m in messages)


def counted_usage(rt: Runtime, target: Target, prompt: Sequence[Message] | None, text: str) -> Usage:
    """The tokens of a stopped stream, counted here (the provider reported none): the
    provider's own tokenizer when it has one, else tiktoken (offline) or an estimate."""
    exact: Counter | None = None
    if text:  # text arrived, so the adapter (and a local model) is loaded: counting is quick
        try:
            own = getattr(rt.adapter(target.provider), "count_tokens", None)
        except Exception:  # counting must never turn a stop into an error
            own = None
        if own is not None:
            def exact(s: str) -> int:
                return int(own(s, target.model))
    count, how = counter_for(target.provider, target.model, exact)
    try:
        completion = count(text)
        prompt_tokens = None if prompt is None else count_messages(prompt, count)
    except Exception:  # a tokenizer failing now: the estimate still says something
        count, how = estimate_tokens, "estimate"
        completion = count(text)
        prompt_tokens = None if prompt is None else count_messages(prompt, count)
    return Usage(prompt_tokens, completion, counted="estimate" if how == "estimate" else "exact", source="local")


@dataclass(frozen=True)
class Budget:
    """How many prompt tokens a call may send."""

    window: int
    max_output: int
    margin: int = DEFAULT_MARGIN

    @property
    def prompt_tokens(self) -> int:
        return self.window - self.max_output - self.margin


def make_budget(max_input_tokens: int | None, max_output_tokens: int | None, window: int | None = None,
                margin: int = DEFAULT_MARGIN) -> Budget | None:
    """The budget from settings and (for local models) the loaded context size."""
    limits = [w for w in (max_input_tokens, window) if w]
    if not limits:
        return None
    win = min(limits)
    # The reserved output may take at most half the window: the seed's local model asks
    # for 8,192 output tokens in an 8,192-token context, which would leave no prompt.
    out = min(max_output_tokens or 0, win // 2)
    return Budget(win, out, margin)


def _cut_text(text: str, limit: int, count: Counter, keep: str) -> str:
    """The longest head or tail (``keep`` = "head" | "tail") of ``text`` within ``limit`` tokens."""
    if limit <= 0:
        return ""
    if count(text) <= limit:
        return text
    lo, hi = 0, len(text)  # number of characters kept; binary search for the largest that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        piece = text[:mid] if keep == "head" else text[len(text) - mid:]
        if count(piece) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] if keep == "head" else text[len(text) - lo:]


def _middle_out(text: str, limit: int, count: Counter) -> str:
    """Head and tail of ``text`` joined by an ellipsis, within ``limit`` tokens."""
    room = limit - count(ELLIPSIS)
    if room <= 0:
        return _cut_text(text, limit, count, "tail")
    head = _cut_text(text, room // 2, count, "head")
    tail = _cut_text(text[len(head):], room - count(head), count, "tail")
    return head + ELLIPSIS + tail


@dataclass
class Truncation:
    messages: tuple[Message, ...]
    before: int
    after: int
    dropped_messages: int
    strategy: str
    system_kept: bool = False  # a system prompt was there, and kept

    def note(self, budget: int) -> str:
        """Says which turns went (a chat's user reads it in the footer): "truncated the prompt
        from 3,100 to 1,950 tokens (keep-recent; dropped the 4 oldest turns, kept the system
        prompt) to fit a 2,000-token budget"."""
        n = self.dropped_messages
        turns = f"{n} turn{'s' if n != 1 else ''}"
        what = (f"dropped {turns} after the first" if self.strategy == "head-tail" else f"dropped the {n} oldest "
                f"turn{'s' if n != 1 else ''}") if n else "shortened a turn, dropped none"
        if self.system_kept:
            what += ", kept the system prompt"
        return (f"truncated the prompt from {self.before:,} to {self.after:,} tokens ({self.strategy}; {what}) "
                f"to fit a {budget:,}-token budget")


def truncate(messages: Sequence[Message], budget: int, count: Counter, strategy: str = "keep-recent") -> Truncation:
    """Fit ``messages`` into ``budget`` prompt tokens; the system prompt is always kept.

    Raises ContextTooLongError when even the system prompt alone does not fit.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown truncation strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    msgs = list(messages)
    before = count_messages(msgs, count)
    if before <= budget:
        return Truncation(tuple(msgs), before, before, 0, strategy)
    system = [m for m in msgs if m.role == "system"]
    turns = [m for m in msgs if m.role != "system"]
    room = budget - count_messages(system, count)
    if room < PER_MESSAGE_OVERHEAD + 1 or not turns:
        raise ContextTooLongError(f"the system prompt alone ({before - count_messages(turns, count):,} tokens) "
                                  f"does not fit a {budget:,}-token budget")

    if strategy == "middle-out":
        # Shorten the longest turn in its middle first; then fall back to keep-recent.
        longest = max(range(len(turns)), key=lambda i: len(turns[i].content))
        others = count_messages(turns, count) - count_messages([turns[longest]], count)
        limit = room - others - PER_MESSAGE_OVERHEAD
        if limit > count(ELLIPSIS):
            turns[longest] = Message(turns[longest].role, _middle_out(turns[longest].content, limit, count))
            kept = turns
        else:
            kept = _keep_recent(turns, room, count)
    elif strategy == "head-tail":
        kept = _head_tail(turns, room, count)
    else:
        kept = _keep_recent(turns, room, count)
    out = tuple(system + kept)
    return Truncation(out, before, count_messages(out, count), len(turns) - len(kept), strategy, bool(system))


def _keep_recent(turns: list[Message], room: int, count: Counter) -> list[Message]:
    kept: list[Message] = []
    used = 0
    for m in reversed(turns):
        cost = count(m.content) + PER_MESSAGE_OVERHEAD
        if used + cost <= room:
            kept.insert(0, m)
            used += cost
            continue
        if not kept:  # the newest turn alone is too long: keep its end
            kept.insert(0, Message(m.role, _cut_text(m.content, room - PER_MESSAGE_OVERHEAD, count, "tail")))
        break
    return kept


def _head_tail(turns: list[Message], room: int, count: Counter) -> list[Message]:
    if len(turns) < 3:
        return _keep_recent(turns, room, count)
    first = turns[0]
    first_cost = count(first.content) + PER_MESSAGE_OVERHEAD
    if first_cost >= room // 2:  # the opening turn would crowd out the latest: keep-recent instead
        return _keep_recent(turns, room, count)
    tail = _keep_recent(turns[1:], room - first_cost, count)
    return [first, *tail]


def _no_room(max_input_tokens: int | None, window: int | None, budget: Budget, system_tokens: int) -> str:
    """Why a budget holds no question, in the words of the setting that made it small."""
    held = f"the system prompt ({system_tokens:,} tokens) and the question" if system_tokens else "the question"
    kept = (f"{budget.max_output:,} tokens for the answer and " if budget.max_output else "") + f"{budget.margin} as a safety margin"
    shorten = " or shorten the system prompt" if system_tokens else ""
    if max_input_tokens and (window is None or max_input_tokens <= window):
        return f"max_input_tokens={max_input_tokens:,} cannot hold {held} (it keeps {kept}); raise max_input_tokens{shorten}"
    return f"the model's {budget.window:,}-token context cannot hold {held} (it keeps {kept}); lower max_tokens{shorten}"


def fit_request(request: Request, count: Counter, window: int | None, strategy: str | None,
                shrink: float = 1.0) -> tuple[Request, list[str]]:
    """Return (request, notes): the request fitted to its model's budget.

    A cheap upper bound (UTF-8 bytes: no tokenizer makes more tokens than bytes, and the
    estimate is below it too) settles the common case without counting. ``shrink`` < 1
    tightens the budget after a provider said "too long" despite our count.
    """
    from dataclasses import replace

    s = request.settings
    known = make_budget(s.max_input_tokens, s.max_output_tokens, window)
    guessed = known is None
    if known is not None:
        budget = known
    else:
        if shrink >= 1.0:
            return request, []
        # No known window, but the provider said "too long": aim below what was sent,
        # or the retry would send the very same prompt.
        budget = Budget(count_messages(request.messages, count) + (s.max_output_tokens or 0), s.max_output_tokens or 0, 0)
    notes: list[str] = []
    if s.max_output_tokens and budget.max_output < s.max_output_tokens:
        notes.append(f"max output capped at {budget.max_output:,} tokens: the window is {budget.window:,}")
    limit = budget.prompt_tokens
    if shrink < 1.0:  # the provider refused what we counted as fitting: aim below its actual size
        limit = int(min(limit, count_messages(request.messages, count)) * shrink)
    upper = sum(len(m.content.encode("utf-8")) + PER_MESSAGE_OVERHEAD for m in request.messages)
    if upper <= limit and shrink == 1.0:
        return (replace(request, settings=replace(s, max_output_tokens=budget.max_output)) if notes else request), notes
    if count_messages(request.messages, count) <= limit:
        return (replace(request, settings=replace(s, max_output_tokens=budget.max_output)) if notes else request), notes
    system_tokens = count_messages([m for m in request.messages if m.role == "system"], count)
    if not guessed and shrink == 1.0 and limit - system_tokens <= PER_MESSAGE_OVERHEAD:
        raise ContextTooLongError(_no_room(s.max_input_tokens, window, budget, system_tokens))
    if not strategy:
        raise ContextTooLongError(
            f"the prompt ({count_messages(request.messages, count):,} tokens) exceeds the {limit:,}-token budget "
            f"and truncation is off")
    try:
        cut = truncate(request.messages, limit, count, strategy)
    except ContextTooLongError:
        if guessed:  # too little to cut (the output, not the prompt, may be what is too long): the
            return request, []  # retry gets the provider's own "too long" back, which is the clearer message
        raise
    notes.append(cut.note(limit))
    return replace(request, messages=cut.messages, settings=replace(s, max_output_tokens=budget.max_output)), notes
