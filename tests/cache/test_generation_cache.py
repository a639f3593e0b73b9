"""The opt-in generation cache inside the runtime pipeline."""

from __future__ import annotations

import pytest

from eliza_nb.core.cache.generations import generation_key
from eliza_nb.core.errors import StreamInterrupted
from eliza_nb.core.generation import plan_call, with_default_system


def calls(rt):
    return rt.adapter("fake").generate_calls


def test_off_by_default_and_on_per_call(rt):
    a, b = rt.generate("hi", temperature=0), rt.generate("hi", temperature=0)
    assert calls(rt) == 2 and not a.cached and not b.cached
    c = rt.generate("hi", temperature=0, cache=True)
    d = rt.generate("hi", temperature=0, cache=True)
    assert calls(rt) == 3 and not c.cached and d.cached
    assert d.text == c.text and d.usage.prompt_tokens == c.usage.prompt_tokens and d.finish_reason == "stop"
    assert d.cache_key == c.cache_key and len(d.cache_key) == 64
    assert "cache hit" in d.footer() and d.metadata()["cached"] is True
    rows = rt.ledger.dataframe()
    assert list(rows.cache_hit) == [False, False, False, True] and rows.cost_usd.iloc[-1] == 0


def test_every_setting_and_message_is_part_of_the_key(rt):
    base = {"temperature": 0, "seed": 1, "cache": True}
    rt.generate("hi", **base)
    for variant in (dict(base, temperature=0.5), dict(base, seed=2), dict(base, max_tokens=5), dict(base, stop=["x"]),
                    dict(base, system="be terse"), dict(base, provider="fake2")):
        assert not rt.generate("hi", **variant).cached, variant
    assert not rt.generate("hello", **base).cached
    assert rt.generate("hi", **base).cached


def test_config_turns_it_on_and_no_cache_turns_it_off(make_rt):
    from eliza_nb.notebook.parser import GenerateArgs, generate_parser

    rt = make_rt(cache={"generation": True})
    rt.generate("hi")
    assert rt.generate("hi").cached
    ns = generate_parser().parse_args(["--no-cache", "-t", "0"])
    args = GenerateArgs(no_cache=ns.no_cache, settings=ns.settings)
    assert args.call_options()["cache"] is False
    assert not rt.generate("hi", **args.call_options()).cached


def test_streams_replay_from_the_cache_and_partial_streams_are_never_stored(rt):
    s = rt.stream("tell me", temperature=0, cache=True)
    assert "".join(s).strip() == s.result.text and not s.result.cached
    again = rt.stream("tell me", temperature=0, cache=True)
    assert "".join(again) == s.result.text and again.result.cached
    # a stream the reader abandons is not stored
    cut = rt.stream("other", temperature=0, cache=True)
    next(cut)
    cut.close()
    assert not rt.generate("other", temperature=0, cache=True).cached


def test_an_interrupted_stream_is_not_cached(rt, monkeypatch):
    p = rt.adapter("fake")
    original = p.stream

    def broken(request):
        gen = original(request)
        yield next(gen)
        raise StreamInterrupted("cut", provider="fake", partial="echo:")

    monkeypatch.setattr(p, "stream", broken)
    with pytest.raises(StreamInterrupted):
        "".join(rt.stream("x", temperature=0, cache=True))
    monkeypatch.setattr(p, "stream", original)
    assert not rt.generate("x", temperature=0, cache=True).cached


def test_generations_persist_across_runtimes_and_keys_are_deterministic(make_rt):
    rt = make_rt()
    first = rt.generate("persist me", temperature=0, seed=3, cache=True)
    rt2 = make_rt()
    hit = rt2.generate("persist me", temperature=0, seed=3, cache=True)
    assert hit.cached and hit.text == first.text and calls(rt2) == 0
    assert hit.cache_key == first.cache_key
    plan = plan_call(rt2, "persist me", {"temperature": 0, "seed": 3})
    from eliza_nb.core.types import Request

    t = plan.targets[0]
    req = Request(t, with_default_system(rt2, t, plan.messages), rt2.effective_settings(t, None, plan.call), plan.timeout_s)
    assert generation_key(req) == first.cache_key
    st = rt2.cache.stats()
    assert (st.kind == "generate").any()
    assert rt2.cache.clear(kind="generate")["disk"] == 1
    assert not rt2.generate("persist me", temperature=0, seed=3, cache=True).cached
