"""Prompt-prefix reuse on the real embedded SmolLM2 (llama_local ``prefix_cache``).

Every test compares the runtime that reuses the KV cache of an evaluated prefix with one
that evaluates every prompt whole (``[local] prefix_cache = false``): temperature 0, the
same seed, the answers must be the same text, and the reusing side must really have
skipped the prefix (``LoadedModel.last_prompt``).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from eliza_nb.core.runtime import Runtime

SYSTEM = "You are a helpful assistant who answers in two or three sentences."
TURNS = ["Tell me about the moon.", "Why is it bright at night?", "What about the sun?", "Name three planets.",
         "Which one is largest?", "Explain tides in one sentence."]
OTHER = ["What is a cat?", "Do cats like milk?", "What do dogs eat?", "Say something about birds."]
ARGS = {"temperature": 0, "max_tokens": 40, "seed": 7}


@pytest.fixture(scope="module")
def runtimes(models_home):
    """(reusing, fresh): two runtimes, each with its own loaded SmolLM2."""
    on = Runtime(models_home, config={}, env={})
    off = Runtime(models_home, config={"local": {"prefix_cache": False}}, env={})
    assert on.adapter("llama_local").config.prefix_cache and not off.adapter("llama_local").config.prefix_cache
    yield on, off
    on.close()
    off.close()


def _model(rt):
    return rt.adapter("llama_local").model(rt.resolve().model, embedding=False)


def _converse(rt, name, turns, reused=None):
    conv = rt.conversation(name, new=True)
    conv.system = SYSTEM
    answers = []
    for text in turns:
        answers.append(conv.say(text, **ARGS).text)
        if reused is not None:
            reused.append(_model(rt).last_prompt)
    return answers


def test_conversation_answers_are_identical_with_and_without_reuse(runtimes):
    on, off = runtimes
    reused: list[tuple[int, int]] = []
    fresh: list[tuple[int, int]] = []
    a = _converse(on, "moon", TURNS, reused)
    b = _converse(off, "moon", TURNS, fresh)
    assert all(t.strip() for t in a), a
    assert a == b
    assert all(start == 0 for start, _ in fresh)  # the fresh side evaluated every prompt whole
    # from turn 2 on, the reusing side kept at least every whole block of the prompt it evaluated last
    for (start, evaluated), (_, whole), (_, before) in zip(reused[1:], fresh[1:], fresh, strict=False):
        assert start >= before // 64 * 64 and start % 64 == 0 and start + evaluated == whole
    # from turn 3 on, the previous answer's blocks were decoded after it (prefill_turn): each turn
    # evaluates its own message and less than a block more, however long the history grows
    assert all(evaluated < 64 + 30 for _, evaluated in reused[2:]), reused
    assert fresh[-1][1] > 4 * 64


def test_an_unrelated_prompt_after_a_conversation_is_not_affected(runtimes):
    on, off = runtimes
    _converse(on, "before", TURNS[:3])
    prompt = "Write a haiku about winter trees and the first snow."
    a = on.generate(prompt, **ARGS)
    start, _ = _model(on).last_prompt
    assert start == 0  # another system prompt: nothing to reuse (the first block differs)
    b = off.generate(prompt, **ARGS)
    assert a.text == b.text and a.text.strip()
    # the same history with a different last question: only the shared blocks are reused
    history = _converse(on, "branch", TURNS[:3])
    conv = on.conversation("branch")
    msgs = [*conv.messages, {"role": "user", "content": "Is the moon a planet?"}]
    assert msgs[0] == {"role": "system", "content": SYSTEM} and len(history) == 3
    a = on.generate(msgs, **ARGS)
    assert 0 < _model(on).last_prompt[0] < a.usage.prompt_tokens
    b = off.generate(msgs, **ARGS)
    assert a.text == b.text


def test_the_same_prompt_twice_gives_the_same_answer(runtimes):
    on, off = runtimes
    prompt = ("A rider climbs a steep hill on a bicycle with twenty-one gears, three at the front and seven at "
              "the back, and wonders which combination to choose. Explain, step by step, how a bicycle's gears "
              "make climbing a hill easier for the rider, and what the rider gives up in exchange.")
    first = on.generate(prompt, system=SYSTEM, **ARGS)
    second = on.generate(prompt, system=SYSTEM, **ARGS)
    start, evaluated = _model(on).last_prompt
    assert start > 0 and 0 < evaluated <= 64 and start + evaluated == second.usage.prompt_tokens  # the last block again
    assert first.text == second.text == off.generate(prompt, system=SYSTEM, **ARGS).text


def test_interleaved_conversations_from_two_threads_do_not_mix(runtimes):
    on, off = runtimes
    expected = {"a": _converse(off, "a", TURNS[:4]), "b": _converse(off, "b", OTHER)}
    got: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(name, turns):
        try:
            conv = on.conversation(name, new=True)
            conv.system = SYSTEM
            got[name] = []
            for text in turns:
                barrier.wait(timeout=60)  # both turns queue on the one llama thread together
                got[name].append(conv.say(text, **ARGS).text)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=("a", TURNS[:4])), threading.Thread(target=run, args=("b", OTHER))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert got == expected


def test_block_reuse_gives_bitwise_the_same_logits(runtimes):
    """The mechanism itself: a prompt evaluated over a reused prefix, after tokens were
    decoded one by one on top of it (as generation does), ends with exactly the logits of
    a fresh evaluation; those one-by-one tokens are what naive prefix matching would keep."""
    import llama_cpp

    on, off = runtimes
    words = ("the quick brown fox jumps over the lazy dog and then runs far away " * 30).encode()

    def logits(rt, tokens, then=()):
        def go(llm):
            _model(rt).evaluate_prompt(llm, tokens, reuse=rt.adapter("llama_local").config.prefix_cache)
            row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()
            for t in then:  # "generated" tokens, decoded alone
                llm.eval([t])
            return row
        return _model(rt).run(go)

    toks = _model(on).run(lambda llm: llm.tokenize(words, add_bos=False, special=False))
    assert len(toks) > 320
    starts = []
    for n in (150, 192, 193, 260, 128, 300):  # longer, exactly at a block edge, shorter, longer
        fresh = logits(off, toks[:n])
        reused = logits(on, toks[:n], then=toks[n : n + 12])
        starts.append(_model(on).last_prompt[0])
        assert np.isfinite(fresh).all() and np.array_equal(fresh, reused), n
    assert starts == [0, 128, 192, 192, 64, 128]


def test_a_prompt_over_the_context_window_is_context_too_long(models_home):
    from eliza_nb.core.errors import ContextTooLongError

    rt = Runtime(models_home, config={"local": {"n_ctx": 256}}, env={})
    try:
        model = _model(rt)
        with pytest.raises(ValueError, match="exceed context window"):
            model.run(lambda llm: model.evaluate_prompt(llm, [1] * 300, reuse=True))
        with pytest.raises(ContextTooLongError):
            rt.generate(" ".join(["word"] * 400), temperature=0, max_tokens=5, truncation="off")
        # the model is still usable after the refusal
        assert rt.generate("Say hi.", temperature=0, max_tokens=5).text.strip()
    finally:
        rt.close()


def test_an_unknown_local_option_is_one_line_naming_the_known_ones(tmp_path):
    from eliza_nb.core.errors import ConfigError

    rt = Runtime(tmp_path, config={"local": {"reuse_prompt_cache": True}}, env={})
    with pytest.raises(ConfigError, match=r"\[local\] in config.toml: unknown key\(s\) reuse_prompt_cache; known: .*prefix_cache"):
        rt.adapter("llama_local")
