"""After the stop button or a cut stream: the footer shows the tokens counted so far (the
model's own tokenizer, else an estimate marked ~) and the time it ran; the ledger and
``%eliza usage`` count the call as interrupted, not as an error; ``%eliza usage`` shows whole
numbers and local clock times; the notes open on click; the line form of generate says where
the prompt goes."""

from __future__ import annotations

import json
import os
import re
import signal

import fault_server as fs
import pandas as pd
import pytest
from fx_helpers import CHAT, delta
from IPython.core.error import UsageError

from eliza_nb.core.tokens import estimate_tokens

PIECES = ["The capital ", "of France ", "is Paris, ", "a city of "]


def stop_button_after(pieces: list[str]) -> fs.Behaviour:
    """Stream ``pieces``, then press the stop button: SIGINT to this process (the kernel's
    interrupt), while the client waits for more; then stay silent until the server stops."""

    def run(h):
        fs._start_chunked(h, "text/event-stream")
        for p in pieces:
            fs._chunk(h, f"data: {delta(p)}\n\n".encode())
        h.server.stopping.wait(0.3)  # the client reads them and waits for the next
        os.kill(os.getpid(), signal.SIGINT)
        h.server.stopping.wait(10)

    return run


def test_stop_button_footer_counts_tokens_and_time(fx, server, ip, run):
    server.script(CHAT, stop_button_after(PIECES))
    cell = run("%%eliza generate -o cut\nWhat is the capital of France?")
    assert cell.ok, "the stop button is handled: the cell ends with the text so far"
    cut = ip.user_ns["cut"]
    text = "".join(PIECES)
    assert cut.interrupted and cut.text == text
    u = cut.usage
    assert u.counted == "estimate" and u.completion_tokens == estimate_tokens(text) and u.prompt_tokens > 0
    assert cut.latency_s >= 0.3 and cut.ttft_s is not None and cut.ttft_s < cut.latency_s
    footer = cut.footer()
    assert f"~{u.prompt_tokens} → ~{u.completion_tokens} tok" in footer and "?" not in footer
    assert f"{cut.latency_s * 1000:.0f} ms" in footer and " 0 ms" not in footer
    assert "interrupted by the user" in footer
    final = cell.outputs[-1]
    assert f"~{u.completion_tokens} tok" in final.data["text/plain"]
    m = final.metadata["eliza_nb"]
    assert m["interrupted"] is True and m["tokens_counted"] == "estimate" and m["completion_tokens"] == u.completion_tokens

    row = fx.ledger.rows()[-1]
    assert row.status == "interrupted" and row.error.startswith("StreamInterrupted: ") and "stopped by the user" in row.error
    title = run("%eliza usage -o u").outputs[0].data["text/plain"].splitlines()[0]
    assert "1 interrupted" in title and "error" not in title
    run("%eliza usage --by provider -o by")
    by = ip.user_ns["by"].set_index("provider")
    assert by.loc["fx", "interrupted"] == 1 and by.loc["fx", "errors"] == 0


def test_cut_stream_footer_and_ledger(fx, server, ip, run):
    events = [delta(p) for p in PIECES] + [delta("done.", "stop")]
    server.script(CHAT, fs.sse(events, cut_after=3))
    assert run("%%eliza generate -o cut\nWhat is the capital of France?").ok
    cut = ip.user_ns["cut"]
    text = "".join(PIECES[:3])
    assert cut.interrupted and cut.text == text and cut.usage.completion_tokens == estimate_tokens(text)
    assert cut.latency_s > 0 and "? → ?" not in cut.footer() and "interrupted: " in cut.footer()
    assert [r.status for r in fx.ledger.rows()] == ["interrupted"]
    assert fx.ledger.totals("provider")[["errors", "interrupted"]].values.tolist() == [[0, 1]]


def test_a_real_error_still_counts_as_an_error(fx, server, run):
    server.script(CHAT, fs.json_reply({"error": {"message": "bad request"}}, status=400))
    assert not run("%%eliza generate --no-stream\nhello").ok
    assert [r.status for r in fx.ledger.rows()] == ["error"]
    title = run("%eliza usage").outputs[0].data["text/plain"].splitlines()[0]
    assert "1 errors" in title and "interrupted" not in title


def test_stop_with_the_local_model_counts_with_its_tokenizer(run, rt, stop_button, ip):
    """The local model has its own tokenizer: the completion count is exact (no ~)."""
    stop_button(rt)  # pressed after three chunks
    cell = run("%%eliza generate -t 0 --max-tokens 30 -o cut\nWhat is the capital of France?")
    assert cell.ok, cell.error
    cut = ip.user_ns["cut"]
    exact = rt.adapter("llama_local").count_tokens(cut.text, cut.model)
    assert cut.text and cut.usage.counted == "exact" and cut.usage.completion_tokens == exact > 0
    assert f"~{cut.usage.prompt_tokens} → {exact} tok" in cut.footer() and cut.latency_s > 0


# -- %eliza usage: whole numbers, local times --------------------------------------------------------

def test_usage_shows_ints_and_local_times(fx, server, ip, run):
    ok = [delta("Paris.", "stop"), json.dumps({"model": "m-small", "choices": [], "usage": {"prompt_tokens": 20,
                                                                                            "completion_tokens": 3}})]
    server.script(CHAT, fs.sse(ok), fs.sse([delta("x")], cut_after=1))
    run("%%eliza generate\nWhat is the capital of France?")
    run("%%eliza generate\nAgain")  # cut: no tokens reported
    cell = run("%eliza usage -o u")
    u = ip.user_ns["u"]
    assert str(u["prompt_tokens"].dtype) == "Int64" and str(u["completion_tokens"].dtype) == "Int64"
    assert u["prompt_tokens"].tolist()[0] == 20 and pd.isna(u["prompt_tokens"].tolist()[1])
    assert u["time"].dt.tz is not None  # local, zone-aware: not a naive UTC timestamp
    html, plain = cell.outputs[0].data["text/html"], cell.outputs[0].data["text/plain"]
    assert "<td>20</td>" in html and "20.0" not in html and "20.0" not in plain and "&lt;NA&gt;" not in html
    assert re.search(r"<td>\d\d:\d\d:\d\d</td>", html) and not re.search(r"\d\d:\d\d:\d\d\.\d", html)
    assert "+00:00" not in html and "<td>—</td>" in html  # the cut call's unknown tokens
    html = run("%eliza usage --by model").outputs[0].data["text/html"]
    assert "<td>20</td>" in html and "20.0" not in html


# -- the notes toggle and the line form ----------------------------------------------------------------

def test_notes_open_on_click_without_an_icon_glyph(fx, server, ip, run):
    server.script(CHAT, fs.sse([delta("Paris.", "stop")]))
    cell = run("%%eliza generate --repetition-penalty 1.1 -o ans\nWhat is the capital of France?")
    assert cell.ok
    assert ip.user_ns["ans"].notes, "the OpenAI protocol has no repetition penalty: a note says it was dropped"
    md = cell.outputs[-1].data["text/markdown"]
    footer = md[md.index("<details class='eliza-footer'"):]
    assert "ⓘ" not in md and re.search(r"notes \(\d\)</span></summary>", footer)
    assert "<summary" in footer and "onclick" not in footer and "class='eliza-notes'" in footer


@pytest.mark.parametrize("line", ["%eliza generate Hello", "%eliza generate -t 0 What is the capital of France",
                                  "%eliza generate"])
def test_line_form_says_to_use_the_cell(fx, run, line):
    err = run(line).error
    assert isinstance(err, UsageError) and "\n" not in str(err)
    assert str(err).startswith("use `%%eliza generate` with the prompt in the cell"), str(err)
    assert fx.ledger.rows() == []  # nothing was sent


def test_a_misspelt_flag_is_still_named(fx, run):
    err = run("%eliza generate --temprature 0").error
    assert isinstance(err, UsageError) and "--temprature" in str(err)
