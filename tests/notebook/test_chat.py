"""%%eliza chat in process: turns streamed into cells, the history on the wire (loopback
server), names, --new, --show, -o, trimming in the footer, save/load, interrupts, and one
conversation with the real local model."""

from __future__ import annotations

import json

import fault_server as fs
from fx_helpers import CHAT, delta, sent


def answer(text: str) -> fs.Behaviour:
    """A streamed answer in word chunks, with usage."""
    words = [w + " " for w in text.split(" ")]
    words[-1] = words[-1].rstrip()
    usage = json.dumps({"model": "m-small", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": len(words)}})
    return fs.sse([delta(w) for w in words[:-1]] + [delta(words[-1], "stop"), usage])


def plain(text: str) -> fs.Behaviour:
    """An answer in one JSON body (a --no-stream call)."""
    return fs.json_reply({"model": "m-small", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                            "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 9, "completion_tokens": 1}})


def final(cell):
    return cell.outputs[-1]


def test_cells_are_turns_streamed_with_the_history_on_the_wire(run, ip, fx, server):
    server.script(CHAT, answer("Hello Ada, nice to meet you."), answer("You are Ada."))
    ip.user_ns["who"] = "Ada"
    c1 = run("%%eliza chat --system 'Be brief.' -t 0.2\nI am {who}.")
    assert c1.ok, c1.error
    assert c1.outputs[0].data == {"text/plain": "…"} and all(o.update for o in c1.outputs[1:])
    out = final(c1)
    assert out.data["text/markdown"].startswith("Hello Ada, nice to meet you.") and "eliza-footer" in out.data["text/markdown"]
    assert out.metadata["eliza_nb"]["provider"] == "fx" and out.metadata["eliza_nb"]["settings"]["temperature"] == 0.2
    c2 = run("%%eliza chat -o ans\nWho am I?")
    assert c2.ok, c2.error
    assert sent(server) == [
        [("system", "Be brief."), ("user", "I am Ada.")],
        [("system", "Be brief."), ("user", "I am Ada."), ("assistant", "Hello Ada, nice to meet you."), ("user", "Who am I?")],
    ], "interpolated once; --system kept for later turns"
    ans = ip.user_ns["ans"]
    assert ans.text == "You are Ada." and ans.provider == "fx" and ans.usage.completion_tokens == 3
    import eliza_nb

    conv = eliza_nb.chat()
    assert conv is fx.conversation("default") and len(conv) == 4 and conv.turns[-1].result is ans


def test_names_new_and_show(run, ip, fx, server):
    server.script(CHAT, plain("one"), answer("two"), answer("three"))
    assert run("%%eliza chat --name a --no-stream\nto <b>a</b>").ok
    assert run("%%eliza chat --name b\nto b").ok
    assert sent(server)[1] == [("user", "to b")], "another name, another history"
    show = run("%eliza chat --show --name a")
    assert show.ok, show.error
    out = final(show)
    page, shown = out.data["text/html"], out.data["text/plain"]
    assert "&lt;b&gt;a&lt;/b&gt;" in page and "<b>a</b>" not in page.replace("<b>fx:m-small</b>", ""), "text is escaped"
    assert "user" in page and "assistant" in page and "<b>fx:m-small</b>" in page and "conversation &#x27;a&#x27; · 2 turns" in page
    assert shown.startswith("[1] user\nto <b>a</b>") and "[1] assistant · fx:m-small\none" in shown
    meta = out.metadata["eliza_nb"]
    assert meta["command"] == "chat" and meta["conversation"] == "a" and meta["transcript"][1]["result"]["provider"] == "fx"
    new = run("%eliza chat --new --name a")
    assert new.ok and "started a new conversation 'a'" in new.text()
    assert len(fx.conversation("a")) == 0 and len(fx.conversation("b")) == 2
    assert "conversation 'a' is empty" in final(run("%eliza chat --show --name a")).data["text/plain"]
    assert run("%%eliza chat --name a\nfresh").ok
    assert sent(server)[-1] == [("user", "fresh")]
    status = run("%eliza chat --name b")
    assert "conversation 'b': 2 turns" in status.text()


def test_trimming_shows_in_the_footer(run, fx, server):
    server.script(CHAT, *[answer("answer " + "word " * 30) for _ in range(4)])
    fx.conversation().system = "KEEP ME"
    for i in range(4):
        cell = run(f"%%eliza chat --max-input-tokens 220 --max-tokens 16 -o r\nquestion {i} " + "word " * 30)
        assert cell.ok, cell.error
    wire = sent(server)[-1]
    assert wire[0] == ("system", "KEEP ME") and wire[-1][1].startswith("question 3") and len(wire) < 8
    out = final(cell)
    notes = out.metadata["eliza_nb"]["notes"]
    assert any("oldest turns, kept the system prompt" in n for n in notes)
    assert "oldest turns, kept the system prompt" in out.data["text/markdown"], "the footer's note carries it"


def test_save_load_and_bad_file(run, ip, fx, server, tmp_path):
    server.script(CHAT, answer("stored answer"), answer("continued"))
    assert run("%%eliza chat --name keep\nremember this").ok
    path = tmp_path / "keep.json"
    saved = run(f"%eliza chat --name keep --save {path}")
    assert saved.ok and f"saved conversation 'keep' (2 turns) to {path}" in saved.text()
    assert json.loads(path.read_text())["turns"][1]["result"]["provider"] == "fx"
    fx.conversations.clear()  # as after a kernel restart: nothing survives unless saved
    loaded = run(f"%eliza chat --load {path} --name back")
    assert loaded.ok and "loaded conversation 'back' (2 turns)" in loaded.text()
    assert run("%%eliza chat --name back\nand now?").ok
    assert sent(server)[-1] == [("user", "remember this"), ("assistant", "stored answer"), ("user", "and now?")]
    bad = tmp_path / "broken.json"
    bad.write_text("{nope")
    cell = run(f"%eliza chat --load {bad}")
    assert not cell.ok and type(cell.error).__name__ == "ConfigError"
    assert "broken.json is not a saved conversation: not JSON" in str(cell.error) and "\n" not in str(cell.error)
    use = run("%%eliza chat --show\nhello")
    assert not use.ok and "line forms" in str(use.error)
    empty = run("%%eliza chat\n   ")
    assert not empty.ok and "needs your message" in str(empty.error)


def test_cut_stream_and_stop_button_keep_the_partial_turn(run, ip, fx, server, stop_button):
    server.script(CHAT, fs.sse([delta("Par"), delta("tial "), delta("lost", "stop")], cut_after=2),
                  answer("a b c d e f g h"))
    cell = run("%%eliza chat -o cut\nfirst")
    assert cell.ok, "a cut stream is shown, not raised"
    cut = ip.user_ns["cut"]
    assert cut.interrupted and cut.text == "Partial " and final(cell).metadata["eliza_nb"]["interrupted"] is True
    conv = fx.conversation()
    assert conv.turns[-1].result is cut and conv.turns[-1].interrupted

    stop_button(fx)  # pressed after three chunks
    cell = run("%%eliza chat -o stopped\nsecond")
    assert cell.ok, "the interrupt is handled: the kernel carries on"
    stopped = ip.user_ns["stopped"]
    assert stopped.interrupted and stopped.text == "a b c " and stopped.notes == ["interrupted by the user"]
    assert conv.turns[-1].result is stopped and len(conv) == 4
    assert "interrupted" in final(cell).data["text/plain"]
    assert sent(server)[-1][-3:] == [("user", "first"), ("assistant", "Partial "), ("user", "second")]


def test_a_conversation_with_the_local_model(run, ip, rt):
    import eliza_nb

    conv = eliza_nb.chat("local", new=True)
    first = run("%%eliza chat --name local -t 0 --max-tokens 4 --no-stream -o a1\nSay a color.")
    assert first.ok, first.error
    second = run("%%eliza chat --name local -t 0 --max-tokens 4 -o a2\nAnother one.")
    assert second.ok, second.error
    a1, a2 = ip.user_ns["a1"], ip.user_ns["a2"]
    assert a1.provider == a2.provider == "llama_local" and a1.text and a2.text
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    assert a2.usage.prompt_tokens > a1.usage.prompt_tokens, "the second turn sent the first with it"
    assert conv is rt.conversation("local")
