"""Conversations in process (core/conversation.py): the history sent per turn (on the wire of a
loopback server), failures and interrupts, trimming to the budget, names, save/load, and
record/replay with the real local model."""

from __future__ import annotations

import json

import fault_server as fs
import pytest
from fx_helpers import CHAT, delta, sent
from provider_helpers import SECRET

from eliza_nb.core.conversation import Conversation
from eliza_nb.core.errors import AuthError, ConfigError, ReplayMismatch, StreamInterrupted
from eliza_nb.core.runtime import Runtime

# ``server`` (the loopback fault server) and ``frt`` (a Runtime whose default provider ``fx``
# is that server, key SECRET) are fixtures of tests/conftest.py.


def reply(text: str, prompt_tokens: int = 5) -> fs.Behaviour:
    return fs.json_reply({"model": "m-small", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                            "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 2}})


# -- the history on the wire ---------------------------------------------------------------

def test_each_turn_sends_the_whole_history_with_the_right_roles(frt, server):
    server.script(CHAT, reply("Hi Ada."), reply("Your name is Ada."), reply("Bye."))
    conv = frt.conversation("t1")
    conv.system = "Be terse."
    answers = [conv.say(q, temperature=0.3).text for q in ("I am Ada.", "Who am I?", "Goodbye")]
    assert answers == ["Hi Ada.", "Your name is Ada.", "Bye."]
    wire = sent(server)
    assert wire[0] == [("system", "Be terse."), ("user", "I am Ada.")]
    assert wire[1] == [("system", "Be terse."), ("user", "I am Ada."), ("assistant", "Hi Ada."), ("user", "Who am I?")]
    assert wire[2] == [*wire[1], ("assistant", "Your name is Ada."), ("user", "Goodbye")]
    assert all(r.body["temperature"] == 0.3 for r in server.requests_to(CHAT)), "options reach every turn"
    assert conv.messages == [{"role": r, "content": c} for r, c in [*wire[2], ("assistant", "Bye.")]]
    # each answer carries its provenance: who, settings, usage, latency, when
    turns = conv.turns
    assert [t.role for t in turns] == ["user", "assistant"] * 3 and len(conv) == 6
    last = turns[-1]
    assert last.result is not None and last.result.provider == "fx" and last.result.model == "m-small"
    assert last.result.settings["temperature"] == 0.3 and last.result.usage.prompt_tokens == 5
    assert last.result.latency_s > 0 and last.when.endswith("+00:00")
    meta = last.metadata()
    assert meta["result"]["provider"] == "fx" and meta["result"]["completion_tokens"] == 2
    # .messages and .turns are copies
    conv.messages.append({"role": "user", "content": "x"})
    conv.turns.clear()
    assert len(conv) == 6


def test_a_failed_turn_leaves_the_conversation_unchanged(frt, server):
    server.script(CHAT, reply("one"), fs.json_reply({"error": {"message": "bad key"}}, 401), reply("two"))
    conv = frt.conversation("t2")
    conv.say("first")
    before = conv.messages
    with pytest.raises(AuthError):
        conv.say("this one fails", system="a new system prompt")
    assert conv.messages == before and conv.system is None, "neither the turn nor its system prompt is kept"
    conv.say("second")
    assert sent(server)[-1] == [("user", "first"), ("assistant", "one"), ("user", "second")]
    with pytest.raises(ConfigError, match="some text"):
        conv.say("   ")
    with pytest.raises(ConfigError, match="unknown option"):
        conv.say("hello", temprature=1)
    assert len(conv) == 4


def test_system_option_is_kept_from_that_turn_on(frt, server):
    server.script(CHAT, reply("a"), reply("b"))
    conv = frt.conversation("sys")
    conv.say("q1", system="You are a pirate.")
    conv.say("q2")
    assert conv.system == "You are a pirate."
    assert sent(server)[1][0] == ("system", "You are a pirate.")


def test_stream_turn_then_cut_stream_keeps_the_partial_answer(frt, server):
    server.script(CHAT, fs.sse([delta("Hel"), delta("lo", "stop")]),
                  fs.sse([delta("Par"), delta("tial "), delta("never", "stop")], cut_after=2), reply("ok"))
    conv = frt.conversation("t3")
    s = conv.stream("hi")
    assert list(s) == ["Hel", "lo"] and s.result is not None and s.result.text == "Hello"
    assert conv.messages[-1] == {"role": "assistant", "content": "Hello"}
    s = conv.stream("tell me more")
    got = []
    with pytest.raises(StreamInterrupted):
        for chunk in s:
            got.append(chunk)
    assert got == ["Par", "tial "]
    assert s.result is not None and s.result.interrupted and s.result.text == "Partial "
    assert conv.turns[-1].interrupted and conv.turns[-1].content == "Partial "
    assert s.result.notes[0].startswith("interrupted: ")
    conv.say("go on")
    assert sent(server)[-1][-3:] == [("user", "tell me more"), ("assistant", "Partial "), ("user", "go on")], \
        "what the user saw of the cut answer is sent with the next turn"


def test_closing_a_stream_keeps_what_was_shown_and_nothing_when_nothing_was(frt, server):
    server.script(CHAT, fs.sse([delta("a "), delta("b "), delta("c", "stop")]))
    conv = frt.conversation("t4")
    s = conv.stream("q")
    assert next(s) == "a "
    s.close()  # the stop button
    assert s.result is not None and s.result.interrupted and s.result.notes == ["interrupted by the user"]
    assert [t.content for t in conv.turns] == ["q", "a "] and conv.turns[1].interrupted
    s.close()  # idempotent
    assert len(conv) == 2
    s2 = conv.stream("never started")
    s2.close()
    assert s2.result is None and len(conv) == 2, "stopped before any text: nothing kept"
    with pytest.raises(StopIteration):
        next(s2)


# -- the context budget --------------------------------------------------------------------

def test_trimming_drops_the_oldest_turns_keeps_the_system_prompt_and_says_so(frt, server):
    server.script(CHAT, *[reply(f"answer number {i} " + "word " * 20) for i in range(6)])
    conv = frt.conversation("trim")
    conv.system = "SYSTEM PROMPT stays."
    for i in range(5):
        r = conv.say(f"question number {i} " + "word " * 20, max_input_tokens=200, max_tokens=16)
    wire = sent(server)[-1]
    assert wire[0] == ("system", "SYSTEM PROMPT stays.")
    assert wire[-1] == ("user", "question number 4 " + "word " * 20)
    dropped = 2 * 4 + 1 - (len(wire) - 1)  # 9 turns were there to send (4 exchanges and the question)
    assert dropped > 0
    note = next(n for n in r.notes if n.startswith("truncated the prompt"))
    assert f"dropped the {dropped} oldest turns, kept the system prompt" in note
    assert "keep-recent" in note and "; ".join(r.notes) in r.footer()
    assert len(conv) == 10, "the conversation keeps every turn; only what is sent is trimmed"


# -- names -------------------------------------------------------------------------------------

def test_names_keep_conversations_apart_and_new_starts_afresh(frt, server):
    server.script(CHAT, reply("x"))
    a, b = frt.conversation("a"), frt.conversation("b")
    assert a is frt.conversation("a") and a is not b and frt.conversation().name == "default"
    a.system = "sys A"
    a.say("to a")
    b.say("to b")
    assert sent(server)[-1] == [("user", "to b")]
    assert len(a) == 2 and len(b) == 2
    again = frt.conversation("a", new=True)
    assert again is a and len(a) == 0 and a.system is None and len(b) == 2
    b.system = "kept"
    b.reset()
    assert len(b) == 0 and b.system == "kept" and b.name == "b"
    with pytest.raises(ConfigError, match="name"):
        frt.conversation("")
    with pytest.raises(ConfigError, match="one line"):
        frt.conversation("two\nlines")


def test_eliza_nb_chat_is_the_shared_runtimes_conversation(shared_runtime, tmp_path):
    import eliza_nb

    conv = eliza_nb.chat()
    assert conv is shared_runtime.conversation("default") and eliza_nb.chat("x") is shared_runtime.conversation("x")
    assert eliza_nb.Conversation is Conversation and "Conversation" in eliza_nb.__all__ and "chat" in eliza_nb.__all__
    conv.system = "saved system"
    path = conv.save(tmp_path / "c.json")
    loaded = eliza_nb.chat.load(path, name="restored")
    assert loaded is eliza_nb.chat("restored") and loaded.system == "saved system" and loaded.runtime is shared_runtime


# -- save / load ----------------------------------------------------------------------------

def test_save_load_round_trip_is_json_and_masks_keys(frt, server, tmp_path):
    server.script(CHAT, reply("first answer"), fs.sse([delta("cut "), delta("short", "stop")], cut_after=1),
                  reply("after load"))
    conv = frt.conversation("saved")
    conv.system = "Be kind."
    conv.say(f"my key is {SECRET}, keep it", temperature=0.1)
    with pytest.raises(StreamInterrupted):
        list(conv.stream("second"))
    path = conv.save(tmp_path / "talk.json")
    raw = path.read_text(encoding="utf-8")
    assert raw.startswith("{") and SECRET not in raw and "[redacted]" in raw
    data = json.loads(raw)
    assert data["format"] == "eliza_nb.conversation" and data["version"] == 1 and data["name"] == "saved"
    assert not list(tmp_path.glob(".talk.json.*")), "no temporary file left"

    back = Conversation.load(path, frt)
    assert back.name == "saved" and back.system == "Be kind." and len(back) == 4
    for a, b in zip(conv.turns, back.turns, strict=True):
        assert (a.role, a.when) == (b.role, b.when)
        if a.result is None:
            assert b.result is None
            continue
        assert b.result is not None
        assert (b.result.provider, b.result.model, b.result.usage, b.result.settings, b.result.notes,
                b.result.interrupted, b.result.finish_reason) == (
                a.result.provider, a.result.model, a.result.usage, a.result.settings, a.result.notes,
                a.result.interrupted, a.result.finish_reason)
    assert back.turns[0].content == "my key is [redacted], keep it" and back.turns[3].interrupted
    back.say("continue")
    assert sent(server)[-1] == [("system", "Be kind."), ("user", "my key is [redacted], keep it"),
                                ("assistant", "first answer"), ("user", "second"), ("assistant", "cut "),
                                ("user", "continue")]
    readonly = Conversation.load(path)
    assert readonly.runtime is None and len(readonly) == 4
    with pytest.raises(ConfigError, match="no runtime"):
        readonly.say("hello")


@pytest.mark.parametrize("content, why", [
    (b"\x80\x81 not utf-8", "not JSON"),
    (b"{not json", "not JSON"),
    (b"[1, 2]", "format"),
    (json.dumps({"format": "eliza_nb.conversation", "version": 2, "turns": []}).encode(), "version 2"),
    (json.dumps({"format": "eliza_nb.conversation", "version": 1, "turns": {}}).encode(), "turns is not a list"),
    (json.dumps({"format": "eliza_nb.conversation", "version": 1,
                 "turns": [{"role": "tool", "content": "x"}]}).encode(), "turn 0: role 'tool'"),
    (json.dumps({"format": "eliza_nb.conversation", "version": 1,
                 "turns": [{"role": "user", "content": 3}]}).encode(), "content is not text"),
    (json.dumps({"format": "eliza_nb.conversation", "version": 1,
                 "turns": [{"role": "assistant", "content": "x", "result": {"provider": 1}}]}).encode(),
     "provider is int"),
    (json.dumps({"format": "eliza_nb.conversation", "version": 1, "name": "",
                 "turns": []}).encode(), "name"),
    (b'{"format": "eliza_nb.conversation", "version": 1, "turns": [{"role": "user", "content": "\\ud800"}]}',
     "surrogate"),
    (b"[" * 100000, "not JSON"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path, content, why):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        Conversation.load(path)
    message = str(err.value)
    assert "bad.json" in message and why in message and "\n" not in message


def test_missing_and_oversized_files_are_refused_before_reading(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the conversation .*nothere.json"):
        Conversation.load(tmp_path / "nothere.json")
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:  # sparse: its size says it all, nothing is read
        fh.truncate(64 * 2**20)
    with pytest.raises(ConfigError, match=r"big.json: 67,108,864 bytes is above"):
        Conversation.load(big)


def test_dataframe_rows(frt, server):
    server.script(CHAT, reply("pong"))
    conv = frt.conversation("df")
    conv.system = "sys"
    conv.say("ping")
    df = conv.to_dataframe()
    assert list(df["role"]) == ["system", "user", "assistant"] and list(df["turn"]) == [0, 1, 1]
    row = df.iloc[2]
    assert row["content"] == "pong" and row["provider"] == "fx" and row["model"] == "m-small"
    assert row["prompt_tokens"] == 5 and row["tokens"] == 7 and row["latency_s"] > 0 and not row["interrupted"]
    assert {"notes", "when", "finish_reason", "cached", "replayed"} <= set(df.columns)
    assert "[1] assistant · fx:m-small\npong" in conv.transcript()


# -- record / replay with the real local model -----------------------------------------------

def test_three_turns_replay_without_a_provider_and_a_changed_turn_is_named(local_runtime, tmp_path):
    from eliza_nb.core.replay.tape import start_recording, start_replay, stop

    archive = tmp_path / "chat.replay"
    questions = ["Name a color.", "Name another.", "And one more?"]
    start_recording(local_runtime, archive)
    try:
        conv = local_runtime.conversation("recorded", new=True)
        answers = [conv.say(q, temperature=0, max_tokens=4).text for q in questions]
    finally:
        stop(local_runtime)
    assert len(conv) == 6 and all(answers)

    fresh = Runtime(tmp_path / "other_home", config={}, env={})
    start_replay(fresh, archive, strict=True)

    def no_provider(pid):
        raise AssertionError(f"a provider was asked: {pid}")

    fresh.adapter = no_provider  # type: ignore[method-assign]
    again = fresh.conversation("recorded")
    replayed = [again.say(q, temperature=0, max_tokens=4) for q in questions]
    assert [r.text for r in replayed] == answers and all(r.replayed for r in replayed)
    assert all(t.result.replayed for t in again.turns if t.result is not None)
    assert sum(1 for row in fresh.ledger.rows() if row.replayed) == 3

    # an earlier turn edited (in a saved copy): the next turn's request is not in the archive
    data = json.loads(again.save(tmp_path / "again.json").read_text(encoding="utf-8"))
    data["turns"] = data["turns"][:2]
    data["turns"][0]["content"] = "Name a colour."
    (tmp_path / "edited.json").write_text(json.dumps(data), encoding="utf-8")
    changed = Conversation.load(tmp_path / "edited.json", fresh)
    with pytest.raises(ReplayMismatch, match=r"differs in messages\[1\]\.content \('Name a colour.' here, "
                                             r"'Name a color.' recorded\)"):
        changed.say(questions[1], temperature=0, max_tokens=4)
    assert len(changed) == 2, "the refused turn is not kept"
    fresh.close()
