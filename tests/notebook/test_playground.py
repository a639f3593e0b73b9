"""Playground's Python side on the real local model: background streaming, Stop, errors."""

from __future__ import annotations

import threading
import time

import pytest

Q = "What is the capital of France?"


@pytest.fixture
def pg(rt):
    from eliza_nb.notebook.widgets.playground import Playground

    rt.session.update(temperature=0.0)
    p = Playground(rt, min_interval_s=0.0)
    yield p
    p.stop()
    p.wait(30)
    p.close()


def test_run_streams_on_a_background_thread(pg, rt):
    rt.session.update(max_output_tokens=20)
    seen = []
    pg.answer.observe(lambda c: seen.append(c["new"]), names="value")
    pg.run(Q)
    assert pg.running and pg.run_button.disabled and not pg.stop_button.disabled  # run() returned at once
    assert threading.current_thread() is threading.main_thread()
    result = pg.wait(60)
    assert result is not None and not result.interrupted and "Paris" in result.text
    assert pg.chunks > 1 and len(seen) > 2 and any("▌" in v for v in seen), "the answer grew chunk by chunk"
    assert "Paris" in pg.answer.value and "▌" not in pg.answer.value
    assert "llama_local:smollm2-135m-instruct" in pg.usage.value and "tok" in pg.usage.value
    assert not pg.run_button.disabled and pg.stop_button.disabled
    assert result.settings["temperature"] == 0.0 and result.settings["max_output_tokens"] == 20  # the session's


def test_the_button_runs_it(pg, rt):
    rt.session.update(max_output_tokens=4)
    pg.prompt.value = Q
    pg.run_button.click()
    assert pg.wait(60) is not None and pg.result.text


def test_stop_keeps_the_partial_text_marked_interrupted(pg, rt):
    rt.session.update(max_output_tokens=300, temperature=0.8)
    pg.run("Write a long story about a cat who travels the world, with many details.")
    deadline = time.monotonic() + 30
    while pg.chunks < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    pg.stop()
    result = pg.result
    assert result.interrupted and result.text and "interrupted" in pg.usage.value
    pg.wait(30)
    assert not pg.running, "the worker closed the stream and ended"
    assert pg.chunks < 300 and pg.result is result
    assert not pg.run_button.disabled


def test_kernel_stays_responsive_while_streaming(pg, rt):
    rt.session.update(max_output_tokens=60)
    pg.run("Count from one to twenty in words.")
    t0 = time.monotonic()
    rt.session.update(temperature=0.5)  # the main thread is free to do other work
    assert time.monotonic() - t0 < 0.5 and pg.running
    pg.wait(60)


def test_errors_show_in_the_usage_line(pg, rt):
    pg.run("   ")
    assert "type a prompt first" in pg.usage.value and not pg.running
    rt.session.update(provider="openai")  # no key in this runtime's env
    pg.run(Q)
    pg.wait(30)
    assert pg.result is None and "OPENAI_API_KEY" in pg.usage.value and "color:#b91c1c" in pg.usage.value
    assert not pg.run_button.disabled


def test_fallback_text(pg, rt):
    rt.session.update(max_output_tokens=4)
    pg.run(Q)
    pg.wait(60)
    bundle = pg._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "last answer:" in bundle["text/plain"] and "llama_local" in bundle["text/plain"]


def test_call_options_override_the_session(rt):
    import eliza_nb

    rt.session.update(max_output_tokens=50, temperature=0.0)
    pg = eliza_nb.playground(Q, max_tokens=3, system="Be brief.")
    try:
        pg.run()
        result = pg.wait(60)
        assert result.settings["max_output_tokens"] == 3 and result.settings["temperature"] == 0.0
        assert result.usage.completion_tokens <= 3
    finally:
        pg.close()
