"""Playground's Python side on the real local model: a chat over a named Conversation,
background streaming, Stop (partial turn kept, interrupted), Clear, errors."""

from __future__ import annotations

import threading
import time

import pytest

Q = "What is the capital of France?"
LONG = "Write a long story about a cat who travels the world, with many details."


@pytest.fixture
def pg(rt):
    from eliza_nb.notebook.widgets.playground import Playground

    rt.session.update(temperature=0.0)
    p = Playground(rt, min_interval_s=0.0, name="pg-test", new=True)
    yield p
    p.stop()
    p.wait(30)
    p.close()


def wait_chunks(pg, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while pg.chunks < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pg.chunks >= n, "the answer never started"


def test_run_streams_on_a_background_thread(pg, rt):
    rt.session.update(max_output_tokens=20)
    seen = []
    pg.answer.observe(lambda c: seen.append(c["new"]), names="value")
    pg.run(Q)
    assert pg.running and pg.run_button.disabled and not pg.stop_button.disabled  # run() returned at once
    assert pg.clear_button.disabled and pg.prompt.value == ""  # the prompt moved into the transcript
    assert threading.current_thread() is threading.main_thread()
    result = pg.wait(60)
    assert result is not None and not result.interrupted and "Paris" in result.text
    assert pg.chunks > 1 and len(seen) > 2 and any("▌" in v for v in seen), "the answer grew chunk by chunk"
    assert "Paris" in pg.answer.value and "▌" not in pg.answer.value
    assert "llama_local:smollm2-135m-instruct" in pg.usage.value and "tok" in pg.usage.value
    assert not pg.run_button.disabled and pg.stop_button.disabled and not pg.clear_button.disabled
    assert result.settings["temperature"] == 0.0 and result.settings["max_output_tokens"] == 20  # the session's
    assert pg.conversation.turns[-1].result is result


def test_turns_accumulate_in_the_shared_conversation(pg, rt):
    rt.session.update(max_output_tokens=12)
    conv = rt.conversation("pg-test")
    assert pg.conversation is conv, "the same object as %%eliza chat --name pg-test"
    pg.run(Q)
    first = pg.wait(60)
    pg.prompt.value = "And of Germany?"
    pg.run_button.click()
    second = pg.wait(60)
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    assert conv.messages[2]["content"] == "And of Germany?" and conv.turns[3].result is second
    assert second.usage.prompt_tokens > first.usage.prompt_tokens, "the second turn sent the history"
    html = pg.transcript.value
    assert html.count("eliza-turn-user") == 2 and html.count("eliza-turn-assistant") == 2
    assert html.count("eliza-footer") == 2 and html.count("llama_local:smollm2-135m-instruct") == 2
    assert "And of Germany?" in html and "ms" in html and "tok" in html
    conv.say("Thanks!", max_tokens=4)  # a turn from a cell shows after a refresh (and on the next Run)
    pg.refresh()
    assert pg.transcript.value.count("eliza-turn-assistant") == 3 and "Thanks!" in pg.transcript.value


def test_a_chat_started_in_cells_continues_in_the_panel(rt):
    from eliza_nb.notebook.widgets.playground import Playground

    conv = rt.conversation("pg-cells", new=True)
    conv.say(Q, max_tokens=6, temperature=0)
    p = Playground(rt, name="pg-cells", options={"max_tokens": 6})
    try:
        assert p.transcript.value.count("eliza-turn-assistant") == 1 and Q in p.transcript.value
        p.run("Say it again.")
        p.wait(60)
        assert len(conv.turns) == 4 and conv.turns[2].content == "Say it again."
    finally:
        p.close()
        conv.reset()


def test_clear_resets_the_conversation(pg, rt):
    rt.session.update(max_output_tokens=6)
    pg.run(Q)
    pg.wait(60)
    assert len(pg.conversation.turns) == 2
    pg.clear_button.click()
    assert pg.conversation.messages == [] and pg.conversation.turns == []
    assert "eliza-turn" not in pg.transcript.value and "no turns yet" in pg.transcript.value
    assert "cleared" in pg.usage.value


def test_stop_keeps_the_partial_text_marked_interrupted(pg, rt):
    rt.session.update(max_output_tokens=300, temperature=0.8)
    pg.run(LONG)
    wait_chunks(pg, 3)
    pg.stop()
    shown = pg.result
    assert shown.interrupted and shown.text and "interrupted" in pg.usage.value  # at once, before the worker ends
    assert "eliza-turn-interrupted" in pg.transcript.value
    pg.wait(30)
    assert not pg.running, "the worker closed the stream and ended"
    assert pg.chunks < 300 and not pg.run_button.disabled
    turn = pg.conversation.turns[-1]
    assert turn.role == "assistant" and turn.interrupted and turn.content.startswith(shown.text)
    assert pg.result is turn.result, "the playground's Result is the conversation's turn"
    # the tokens counted so far (the local model's own tokenizer) and the time it ran, not "? → ? tok · 0 ms"
    u = turn.result.usage
    assert u.completion_tokens and u.prompt_tokens and u.counted == "exact" and turn.result.latency_s > 0
    assert "?" not in turn.result.footer().split("tok")[0] and " 0 ms" not in turn.result.footer()
    assert "eliza-turn-interrupted" in pg.transcript.value and "interrupted by the user" in pg.transcript.value
    # the next turn goes on from the partial answer
    rt.session.update(max_output_tokens=6)
    pg.run("Go on.")
    pg.wait(60)
    assert len(pg.conversation.turns) == 4 and pg.conversation.turns[1].interrupted


def test_clear_while_streaming_stops_then_resets(pg, rt):
    rt.session.update(max_output_tokens=300, temperature=0.8)
    pg.run(LONG)
    wait_chunks(pg, 2)
    pg.clear()
    assert not pg.running and pg.conversation.turns == [], "the stopped turn landed before the reset"
    assert "eliza-turn" not in pg.transcript.value


def test_kernel_stays_responsive_while_streaming(pg, rt):
    rt.session.update(max_output_tokens=60)
    pg.run("Count from one to twenty in words.")
    t0 = time.monotonic()
    rt.session.update(temperature=0.5)  # the main thread is free to do other work
    assert time.monotonic() - t0 < 0.5 and pg.running
    pg.run("A second prompt while the first streams.")
    assert "Stop first" in pg.usage.value
    pg.wait(60)


def test_errors_show_in_the_usage_line(pg, rt):
    pg.run("   ")
    assert "type a prompt first" in pg.usage.value and not pg.running
    rt.session.update(provider="openai")  # no key in this runtime's env
    pg.run(Q)
    pg.wait(30)
    assert pg.result is None and "OPENAI_API_KEY" in pg.usage.value and "color:#b91c1c" in pg.usage.value
    assert not pg.run_button.disabled
    assert pg.conversation.turns == [] and pg.prompt.value == Q, "a failed turn leaves nothing; the prompt is back"
    assert Q not in pg.transcript.value


def test_fallback_text(pg, rt):
    rt.session.update(max_output_tokens=4)
    pg.run(Q)
    pg.wait(60)
    bundle = pg._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert Q in bundle["text/plain"] and "llama_local:smollm2-135m-instruct" in bundle["text/plain"]


def test_call_options_override_the_session(rt):
    import eliza_nb

    rt.session.update(max_output_tokens=50, temperature=0.0)
    pg = eliza_nb.playground(Q, new=True, max_tokens=3, system="Be brief.")
    try:
        assert pg.conversation is rt.conversation("default")
        pg.run()
        result = pg.wait(60)
        assert result.settings["max_output_tokens"] == 3 and result.settings["temperature"] == 0.0
        assert result.usage.completion_tokens <= 3
        assert pg.conversation.messages[0] == {"role": "system", "content": "Be brief."}
        assert "system: Be brief." in pg.transcript.value
    finally:
        pg.close()
        rt.conversation("default", new=True)  # leave the shared runtime's default chat clean


def test_named_playground_from_the_facade(rt):
    import eliza_nb

    pg = eliza_nb.playground(name="pg-facade", max_tokens=3)
    try:
        assert pg.conversation is rt.conversation("pg-facade") and "name" not in pg.options
        assert "pg-facade" in pg.children[0].value
    finally:
        pg.close()
