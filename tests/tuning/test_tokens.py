"""Token counting, budgets and truncation (property-tested with hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eliza_nb.core.errors import ConfigError, ContextTooLongError
from eliza_nb.core.tokens import (
    ELLIPSIS,
    PER_MESSAGE_OVERHEAD,
    count_messages,
    estimate_tokens,
    make_budget,
    truncate,
)
from eliza_nb.core.types import Message


def words(text: str) -> int:
    """A simple monotone counter: one token per 4 characters, like a coarse BPE."""
    return math.ceil(len(text) / 4)


def test_estimate_is_conservative_for_english_and_counts_non_ascii():
    text = "The quick brown fox jumps over the lazy dog. " * 20
    # real BPEs give ~10 tokens per sentence here; the estimate must not be below that
    assert estimate_tokens(text) >= 10 * 20
    assert estimate_tokens("日本語のテキスト") == 12  # 8 chars x 1.5
    assert estimate_tokens("") == 0


def test_budget_reserves_output_and_margin():
    b = make_budget(128000, 8192)
    assert b.prompt_tokens == 128000 - 8192 - 32
    local = make_budget(32768, 8192, window=8192)  # the loaded context is the real window
    assert local.window == 8192 and local.max_output == 4096  # output may take at most half
    assert make_budget(None, 100) is None


@st.composite
def chats(draw):
    system = draw(st.one_of(st.none(), st.text(min_size=1, max_size=200)))
    turns = draw(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.text(min_size=0, max_size=600)), min_size=1, max_size=12))
    return ([Message("system", system)] if system else []) + [Message(r, c) for r, c in turns]


@settings(max_examples=300, deadline=None)
@given(msgs=chats(), budget=st.integers(min_value=1, max_value=1200))
def test_keep_recent_keeps_system_and_newest_text_and_fits_exactly(msgs, budget):
    system = [m for m in msgs if m.role == "system"]
    turns = [m for m in msgs if m.role != "system"]
    sys_cost = count_messages(system, words)
    if budget - sys_cost < PER_MESSAGE_OVERHEAD + 1:
        with pytest.raises(ContextTooLongError):
            truncate(msgs, budget, words)
        return
    cut = truncate(msgs, budget, words)
    out = list(cut.messages)
    assert out[: len(system)] == system, "the system prompt is always kept, first"
    kept = out[len(system):]
    assert cut.after == count_messages(out, words) <= budget
    if cut.before <= budget:
        assert out == msgs
        return
    # the kept turns are the newest ones; only the oldest kept may be shortened, from its start
    n = len(kept)
    assert n >= 1
    assert kept[1:] == turns[len(turns) - n + 1:]
    oldest, original = kept[0], turns[len(turns) - n]
    assert oldest.role == original.role and original.content.endswith(oldest.content)
    # maximal: one more character (or the previous turn) would not fit
    if oldest.content != original.content:
        longer = original.content[len(original.content) - len(oldest.content) - 1:]
        assert count_messages([*system, Message(oldest.role, longer), *kept[1:]], words) > budget
    elif len(turns) > n:
        prev = turns[len(turns) - n - 1]
        assert count_messages([*system, prev, *kept], words) > budget


@settings(max_examples=200, deadline=None)
@given(msgs=chats(), budget=st.integers(min_value=40, max_value=1200), strategy=st.sampled_from(["head-tail", "middle-out"]))
def test_other_strategies_keep_system_and_fit(msgs, budget, strategy):
    system = [m for m in msgs if m.role == "system"]
    if budget - count_messages(system, words) < PER_MESSAGE_OVERHEAD + 1:
        return
    cut = truncate(msgs, budget, words, strategy)
    assert list(cut.messages[: len(system)]) == system
    assert count_messages(cut.messages, words) <= budget


def test_middle_out_keeps_head_and_tail_of_a_long_document():
    doc = "BEGIN " + "filler text " * 2000 + " END"
    cut = truncate([Message("system", "Summarise."), Message("user", doc)], 300, words, "middle-out")
    text = cut.messages[1].content
    assert text.startswith("BEGIN") and text.endswith("END") and ELLIPSIS in text
    assert count_messages(cut.messages, words) <= 300


def test_head_tail_keeps_the_first_turn():
    msgs = [Message("user", "ORIGINAL TASK: translate")] + [Message("user" if i % 2 else "assistant", f"turn {i} " * 50) for i in range(20)]
    cut = truncate(msgs, 400, words, "head-tail")
    assert cut.messages[0].content == "ORIGINAL TASK: translate"
    assert cut.messages[-1] == msgs[-1] and cut.dropped_messages > 0


def test_unknown_strategy_is_one_line():
    with pytest.raises(ConfigError, match="unknown truncation strategy 'smart'"):
        truncate([Message("user", "x")], 10, words, "smart")


def test_shrink_from_provider_messages():
    from eliza_nb.core.tokens import shrink_from_error

    openai = "This model's maximum context length is 8192 tokens. However, your messages resulted in 10240 tokens."
    assert shrink_from_error(openai) == pytest.approx(8192 / 10240 * 0.95)
    assert shrink_from_error("prompt is too long: 210,000 tokens > 200,000 maximum") == pytest.approx(200000 / 210000 * 0.95)
    assert shrink_from_error("input too long") == 0.75
    # LiteLLM in front of a llama.cpp server (issue 19): the completion's share comes off the room first
    litellm = ("litellm.ContextWindowExceededError: maximum context length is 2048 tokens. However, you requested 3690 "
               "tokens (3680 in the messages, 10 in the completion). Please reduce the length of the messages.")
    assert shrink_from_error(litellm) == pytest.approx((2048 - 10) / 3680 * 0.95)
    vllm = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens in the messages."
    assert shrink_from_error(vllm) == pytest.approx(4096 / 5000 * 0.95)
    gemini = "The input token count (1048580) exceeds the maximum number of tokens allowed (1048576)."
    assert shrink_from_error(gemini) == pytest.approx(1048576 / 1048580 * 0.95)
