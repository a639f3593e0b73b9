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
    assert estimate_tokens("日本語のテキスト") == 16  # 8 chars x 2
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


def test_limits_from_provider_messages():
    from eliza_nb.core.windows import StatedLimits, limits_from_message

    openai = "This model's maximum context length is 8192 tokens. However, your messages resulted in 10240 tokens."
    assert limits_from_message(openai) == StatedLimits(8192, 10240)
    assert limits_from_message("prompt is too long: 210,000 tokens > 200,000 maximum") == StatedLimits(200000, 210000)
    assert limits_from_message("input too long") is None
    # LiteLLM in front of a llama.cpp server (issue 19): the completion's share comes off the room
    litellm = ("litellm.ContextWindowExceededError: maximum context length is 2048 tokens. However, you requested 3690 "
               "tokens (3680 in the messages, 10 in the completion). Please reduce the length of the messages.")
    stated = limits_from_message(litellm)
    assert stated == StatedLimits(2048, 3680, 10) and stated.room == 2038
    vllm = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens in the messages."
    assert limits_from_message(vllm) == StatedLimits(4096, 5000)
    gemini = "The input token count (1048580) exceeds the maximum number of tokens allowed (1048576)."
    assert limits_from_message(gemini) == StatedLimits(1048576, 1048580)
    llama_cpp = "the request exceeds the available context size, try increasing it (n_prompt_tokens 3680, n_ctx 2048)"
    assert limits_from_message(llama_cpp) == StatedLimits(2048, 3680)


def test_llama_cpp_server_error_fields_become_stated_limits():
    """llama.cpp's server puts the sizes in JSON fields, not in its message."""
    from eliza_nb.adapters.failures import error_for_status, provider_message
    from eliza_nb.core.windows import StatedLimits

    body = {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it",
                      "type": "exceed_context_size_error", "n_prompt_tokens": 3680, "n_ctx": 2048}}
    message, code = provider_message(body)
    exc = error_for_status(400, message, code, provider="lab", key=None, what="[lab] chat")
    assert isinstance(exc, ContextTooLongError) and exc.stated == StatedLimits(2048, 3680)


def test_numbers_past_the_message_cut_are_still_read():
    from eliza_nb.adapters.failures import MAX_MESSAGE, error_for_status

    message = "x" * (MAX_MESSAGE * 2) + " maximum context length is 2048 tokens. However, you requested 3000 tokens"
    exc = error_for_status(400, message, None, provider="lab", key=None, what="[lab] chat")
    assert "3000" not in str(exc) and exc.stated.limit == 2048 and exc.stated.actual == 3000


def test_litellm_exception_chain_is_dropped_from_the_message():
    from eliza_nb.adapters.failures import error_for_status

    said = ("litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - "
            "This model's maximum context length is 2048 tokens.")
    exc = error_for_status(400, said, None, provider="gw", key=None, what="[gw] chat")
    assert str(exc).endswith("(HTTP 400): This model's maximum context length is 2048 tokens.")


def test_learned_windows_keep_the_window_and_the_highest_factor():
    from eliza_nb.core.windows import LearnedWindows

    w = LearnedWindows()
    assert w.get("gw", "smol").window is None and w.get("gw", "smol").factor == 1.0
    w.learn("gw", "smol", window=2048, actual=1200, counted=1000)
    w.learn("gw", "smol", actual=900, counted=1000)  # a lower factor never lowers what was learned
    facts = w.get("gw", "smol")
    assert facts.window == 2048 and facts.factor == pytest.approx(1.2)
    assert w.get("gw", "other").window is None


def test_bytes_bound_is_never_below_a_real_tokenizer(local_runtime):
    """The retry's bound: UTF-8 bytes against SmolLM2's own tokenizer on mixed scripts."""
    from eliza_nb.core.windows import bytes_bound

    adapter = local_runtime.adapter("llama_local")
    model = local_runtime.resolve("llama_local", "small").model
    for text in ("plain English words", "word123 alpha beta " * 50, "日本語のテキスト" * 20, "emoji 🎉🚀" * 30,
                 "<|im_start|>user\n" * 5, " " * 100, "\u0000\u200b" * 10):
        assert adapter.count_tokens(text, model) <= bytes_bound(text), text[:20]


def test_the_estimate_is_not_below_a_real_tokenizer(local_runtime):
    """Conservative, not low: prose, digit-heavy lists, code, JSON, CSV, runs of spaces, German,
    Japanese, emoji and Russian against SmolLM2's own tokenizer (digit-heavy text was 20% under
    before digits counted a token each)."""
    adapter = local_runtime.adapter("llama_local")
    model = local_runtime.resolve("llama_local", "small").model
    texts = [" ".join(f"word{i} alpha beta" for i in range(300)),
             "The river wound slowly through the valley, past old farms and quiet villages. " * 10,
             "def f(x):\n    return [i * 2 for i in range(x) if i % 3 == 0]\n" * 10,
             '{"id": 12345, "name": "widget", "tags": ["a", "b"], "price": 19.99}\n' * 10,
             "Die Straßenbahn fährt über die Brücke zur Universität. " * 10,
             "2024-01-15,3.14159,-42,1e-9,0x1F\n" * 20, "a  b   c    " * 20, "日本語のテキストです。" * 10,
             "🎉🚀 ok " * 10, "Привет, как дела? " * 10]
    for text in texts:
        assert estimate_tokens(text) >= adapter.count_tokens(text, model), text[:30]
