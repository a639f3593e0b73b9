"""Record / replay through the runtime (in process, scripted provider): what is served,
what is refused and how the refusal reads, failover, occurrences, secrets, cache hits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scripted import CALLS, FAKE_KEY

from eliza_nb.core.errors import MissingKeyError, ReplayMismatch
from eliza_nb.core.replay import tape as replay
from eliza_nb.notebook.display import footer_html, render_bundle


def session(rt):
    """A small session: two generations, a stream, embeddings of every shape."""
    out = {
        "a": rt.generate("What is the capital of France?", temperature=0, max_tokens=20),
        "b": rt.generate([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
                         temperature=0.7, seed=3),
    }
    s = rt.stream("Count to three.", temperature=0)
    out["chunks"] = list(s)
    out["streamed"] = s.result
    out["one"] = rt.embed("a cat")
    out["many"] = rt.embed(["a cat", "a dog", "a cat"])
    out["series"] = rt.embed(pd.Series(["a dog", "a bird"], index=[10, 20], name="t"))
    return out


def archive_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_record_then_replay_without_key_gives_identical_outputs(make_rt, paid_env, tmp_path):
    rt = make_rt(env=paid_env)
    replay.start_recording(rt, "s.replay")
    live = session(rt)
    replay.stop(rt)
    assert not any(r.replayed for r in (live["a"], live["b"], live["streamed"]))

    CALLS.clear()
    rt2 = make_rt(env={}, home="fresh-home")  # no key, no cache
    replay.start_replay(rt2, "s.replay")
    again = session(rt2)
    assert CALLS == {}, "nothing may reach the provider while replaying"
    for name in ("a", "b", "streamed"):
        live_r, rep = live[name], again[name]
        assert rep.text == live_r.text and rep.replayed and not live_r.replayed
        assert (rep.provider, rep.model, rep.finish_reason) == (live_r.provider, live_r.model, live_r.finish_reason)
        assert (rep.usage.prompt_tokens, rep.usage.completion_tokens) == (live_r.usage.prompt_tokens, live_r.usage.completion_tokens)
        assert rep.metadata()["replayed"] is True and "replayed" in rep.footer()
        assert "replayed" in footer_html(rep) and "replayed" in render_bundle(rep)["text/plain"]
    assert len(again["chunks"]) > 1 and "".join(again["chunks"]) == live["streamed"].text  # a replay still streams
    for name in ("one", "many"):
        assert again[name].dtype == np.float32 and np.array_equal(again[name], live[name])
    assert list(again["series"].index) == [10, 20] and again["series"].name == "t"
    assert all(np.array_equal(a, b) for a, b in zip(again["series"], live["series"], strict=True))
    ledger = rt2.ledger.dataframe()
    assert ledger.replayed.all() and (ledger.cost_usd == 0).all()
    # and without the replay, the same runtime needs its key
    replay.stop(rt2)
    with pytest.raises(MissingKeyError):
        rt2.generate("What is the capital of France?", temperature=0, max_tokens=20)


def test_rerecording_gives_byte_identical_archives(make_rt, paid_env, tmp_path):
    for name in ("one.replay", "two.replay"):
        rt = make_rt(env=paid_env, home=name + "-home")
        replay.start_recording(rt, name)
        session(rt)
        replay.stop(rt)
    assert archive_bytes(tmp_path / "one.replay") == archive_bytes(tmp_path / "two.replay")
    # the order calls were made in does not matter either: records are sorted
    rt = make_rt(env=paid_env, home="three-home")
    replay.start_recording(rt, "three.replay")
    rt.embed(["a bird", "a dog", "a cat"])
    rt.stream("Count to three.", temperature=0).text()
    rt.generate([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
                temperature=0.7, seed=3)
    rt.generate("What is the capital of France?", temperature=0, max_tokens=20)
    replay.stop(rt)
    assert archive_bytes(tmp_path / "three.replay") == archive_bytes(tmp_path / "one.replay")


@pytest.fixture
def replaying(make_rt, paid_env):
    rt = make_rt(env=paid_env)
    replay.start_recording(rt, "s.replay")
    session(rt)
    replay.stop(rt)
    rt2 = make_rt(env={}, home="replay-home")
    replay.start_replay(rt2, "s.replay")
    CALLS.clear()
    return rt2


@pytest.mark.parametrize("call, field", [
    ({"prompt": "What is the capital of Spain?", "temperature": 0, "max_tokens": 20}, "messages[0].content"),
    ({"prompt": "What is the capital of France?", "temperature": 0.2, "max_tokens": 20}, "settings.temperature"),
    ({"prompt": "What is the capital of France?", "temperature": 0, "max_tokens": 21}, "settings.max_output_tokens"),
    ({"prompt": "What is the capital of France?", "temperature": 0, "max_tokens": 20, "model_class": "large"}, "model"),
    ({"prompt": "Name a colour.", "temperature": 0.7, "seed": 4, "system": "Be brief."}, "settings.seed"),
    ({"prompt": "Name a colour.", "temperature": 0.7, "seed": 3, "system": "Be short."}, "messages[0].content"),
])
def test_strict_replay_names_the_differing_field(replaying, call, field):
    call = dict(call)
    prompt = call.pop("prompt")
    with pytest.raises(ReplayMismatch) as info:
        replaying.generate(prompt, **call)
    msg = str(info.value)
    assert "\n" not in msg and f"differs in {field} (" in msg, msg
    assert "--fallthrough" in msg and "s.replay" in msg
    assert CALLS == {}  # refused before any provider work


def test_strict_replay_message_reads_well(replaying):
    with pytest.raises(ReplayMismatch) as info:
        replaying.generate("What is the capital of Spain?", temperature=0, max_tokens=20)
    assert str(info.value).startswith(
        "no recorded answer for this paid:s-model request in s.replay: the nearest recorded request (line ")
    assert "messages[0].content ('What is the capital of Spain?' here, 'What is the capital of France?' recorded)" in str(info.value)
    # streams refuse the same way, before any chunk
    with pytest.raises(ReplayMismatch):
        next(iter(replaying.stream("Count to four.", temperature=0)))


def test_strict_replay_refuses_unrecorded_embeddings(replaying):
    with pytest.raises(ReplayMismatch) as info:
        replaying.embed(["a cat", "a kitten"])
    msg = str(info.value)
    assert "texts[1] 'a kitten'" in msg and "nearest recorded text" in msg and "'a cat'" in msg and "\n" not in msg
    with pytest.raises(ReplayMismatch) as info:
        replaying.embed("a cat", provider="free")
    assert "no recorded embeddings from free:e-model" in str(info.value) and "paid:e-model" in str(info.value)


def test_fallthrough_sends_only_unmatched_requests_live(make_rt, paid_env):
    rt = make_rt(env=paid_env)
    replay.start_recording(rt, "s.replay")
    session(rt)
    replay.stop(rt)
    CALLS.clear()
    rt2 = make_rt(env=paid_env, home="other-home")
    replay.start_replay(rt2, "s.replay", strict=False)
    assert rt2.generate("What is the capital of France?", temperature=0, max_tokens=20).replayed
    live = rt2.generate("What is the capital of Spain?", temperature=0, max_tokens=20)
    assert not live.replayed and "Spain" in live.text
    mixed = rt2.embed(["a cat", "a kitten"])
    assert mixed.shape == (2, 8)
    assert CALLS == {"paid.generate": 1, "paid.embed": 1}  # one live generation, one live text
    assert rt2.tape.live == 2


def test_failover_during_recording_replays_as_it_happened(make_rt, paid_env):
    rt = make_rt(env=paid_env, failover=["free:small"])
    replay.start_recording(rt, "f.replay")
    r = rt.generate("hello", model_class="medium", temperature=0)  # paid:gone is a 404 -> free answers
    replay.stop(rt)
    assert r.provider == "free" and [a.outcome for a in r.attempts] == ["NotFoundError", "ok"]
    CALLS.clear()
    rt2 = make_rt(env={}, home="h2", failover=["free:small"])
    replay.start_replay(rt2, "f.replay")
    again = rt2.generate("hello", model_class="medium", temperature=0)
    assert CALLS == {}
    assert again.text == r.text and again.provider == "free" and again.replayed
    assert [(a.target, a.outcome) for a in again.attempts] == [("paid:gone", "NotFoundError"), ("free:s-model", "ok")]
    assert "tried paid:gone → free:s-model" in again.footer()


def test_repeated_requests_replay_their_answers_in_order(make_rt, paid_env, tmp_path):
    rt = make_rt(env=paid_env, vary=True)
    replay.start_recording(rt, "v.replay")
    first = [rt.generate("roll a die", temperature=1.0).text for _ in range(3)]
    replay.stop(rt)
    assert len(set(first)) == 3
    lines = (tmp_path / "v.replay" / "requests.jsonl").read_text().splitlines()
    assert sum('"n": ' in line for line in lines[1:]) == 3
    rt2 = make_rt(env={}, home="h2", vary=True)
    replay.start_replay(rt2, "v.replay")
    assert [rt2.generate("roll a die", temperature=1.0).text for _ in range(4)] == [*first, first[-1]]


def test_cache_hits_are_recorded_too(make_rt, paid_env):
    rt = make_rt(env=paid_env)
    rt.embed(["a cat", "a dog"])  # now cached
    rt.generate("cached?", temperature=0, cache=True)
    replay.start_recording(rt, "c.replay")
    CALLS.clear()
    rt.embed(["a cat", "a dog"])
    hit = rt.generate("cached?", temperature=0, cache=True)
    replay.stop(rt)
    assert hit.cached and CALLS == {}
    rt2 = make_rt(env={}, home="h2")  # a fresh kernel on Binder: no cache at all
    replay.start_replay(rt2, "c.replay")
    assert rt2.generate("cached?", temperature=0, cache=True).text == hit.text
    assert rt2.embed(["a cat", "a dog"]).shape == (2, 8)


def test_interrupted_streams_are_not_recorded(make_rt, paid_env, tmp_path):
    rt = make_rt(env=paid_env)
    replay.start_recording(rt, "i.replay")
    s = rt.stream("Count to three.", temperature=0)
    next(iter(s))
    s.close()
    replay.stop(rt)
    assert '"kind": "generate"' not in (tmp_path / "i.replay" / "requests.jsonl").read_text()


def test_keys_never_reach_the_archive_and_leaked_values_are_redacted(make_rt, paid_env, tmp_path):
    rt = make_rt(env=paid_env)
    replay.start_recording(rt, "k.replay")
    rt.generate("hello", temperature=0)
    with pytest.warns(RuntimeWarning, match="redacted"):
        rt.generate(f"my key is {FAKE_KEY}", temperature=0)  # a user pasting a key into a prompt
    rt.embed([f"text with {FAKE_KEY}"])
    replay.stop(rt)
    for blob in archive_bytes(tmp_path / "k.replay").values():
        assert FAKE_KEY.encode() not in blob
    assert "[redacted]" in (tmp_path / "k.replay" / "requests.jsonl").read_text()


def test_start_record_over_replay_and_status(make_rt, paid_env, tmp_path):
    rt = make_rt(env=paid_env)
    assert replay.status(rt) == "not recording or replaying"
    rec = replay.start_recording(rt, "a.replay", note="made in a test")
    assert (tmp_path / "a.replay" / "requests.jsonl").exists()  # written at once, empty
    assert replay.status(rt).startswith("recording to")
    rt.generate("hi", temperature=0)
    assert replay.stop(rt) is rec and rt.tape is None
    rep = replay.start_replay(rt, "a.replay")
    assert replay.status(rt).startswith("replaying") and "1 generations" in replay.status(rt)
    r = rt.generate("hi", temperature=0)
    assert "made in a test" in r.notes and "replayed from a.replay" in r.notes
    assert replay.stop(rt) is rep
    assert not rt.generate("hi", temperature=0).replayed
