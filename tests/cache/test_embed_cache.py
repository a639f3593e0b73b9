"""Runtime.embed through the two tiers, on the counting fake provider."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakeprov import vector_for

from eliza_nb.core.errors import EmbeddingDimensionError, InvalidEmbeddingError


def fake(rt, pid="fake"):
    return rt.adapter(pid)


def test_dedupe_sends_exactly_the_unique_misses_and_keeps_input_order(rt):
    uniques = [f"text {i}" for i in range(500)]
    texts = uniques + uniques[::-1]  # 1,000 texts, 50% repeats
    out = rt.embed(texts)
    p = fake(rt)
    assert sorted(p.embedded) == sorted(uniques) and len(p.embedded) == 500
    assert out.shape == (1000, 8) and out.dtype == np.float32
    for i in (0, 17, 499, 500, 999):
        assert np.allclose(out[i], vector_for("fake-embed", texts[i], 8), atol=1e-6)
    # half of a new list cached: only the new half is sent
    more = uniques[:250] + [f"new {i}" for i in range(250)]
    rt.embed(more)
    assert len(p.embedded) == 750 and set(p.embedded[500:]) == {f"new {i}" for i in range(250)}
    rt.embed(texts)
    assert len(p.embedded) == 750


def test_ledger_counts_cache_hits_and_misses(rt):
    rt.embed(["a", "b"])
    rt.embed(["a", "b", "c"])
    df = rt.ledger.dataframe()
    emb = df[df.kind == "embed"]
    assert list(zip(emb.cache_hit, emb["items"], strict=True)) == [(False, 2), (True, 2), (False, 1)]
    assert emb[emb.cache_hit].cost_usd.eq(0).all()


def test_provider_sized_batches(make_rt):
    rt = make_rt(batch=7)
    rt.embed([f"t{i}" for i in range(20)])
    assert fake(rt).batches == [7, 7, 6]


def test_single_text_list_series_and_array_forms(rt):
    one = rt.embed("hello")
    assert one.shape == (8,) and one.flags.writeable
    one[:] = 0  # the caller's copy: the cache is not touched
    assert np.allclose(rt.embed("hello"), vector_for("fake-embed", "hello", 8), atol=1e-6)
    s = pd.Series(["x", "y", "x"], index=[10, 20, 30], name="col")
    got = rt.embed(s)
    assert isinstance(got, pd.Series) and list(got.index) == [10, 20, 30] and got.name == "col"
    assert got[10].shape == (8,) and np.array_equal(got[10], got[30])
    arr = rt.embed(s, as_array=True)
    assert isinstance(arr, np.ndarray) and arr.shape == (3, 8)
    assert isinstance(rt.embed(["x", "y"], as_array=False), list)
    assert rt.embed([]).shape == (0, 8)
    with pytest.raises(ValueError, match="missing"):
        rt.embed(pd.Series(["x", None]))


def test_switching_provider_model_or_dims_never_returns_another_models_vector(make_rt, cache_home):
    rt = make_rt()
    a = rt.embed(["shared text"])
    b = rt.embed(["shared text"], provider="fake2")
    assert a.shape == (1, 8) and b.shape == (1, 16)
    assert fake(rt, "fake2").embedded == ["shared text"]  # not answered from fake's entry
    c = rt.embed(["shared text"], provider="fake", model="another-model")  # same provider, other model
    assert c.shape == (1, 8) and not np.allclose(a, c)
    assert fake(rt).embedded == ["shared text", "shared text"]
    tags = set(rt.cache.stats().query("tier == 'disk'").model)
    assert tags == {"fake-embed", "other-embed", "another-model"}
    # a runtime whose catalog says the model now has 12 dims looks in another key space
    rt12 = make_rt(dims=12)
    v = rt12.embed(["shared text"])
    assert v.shape == (1, 12) and fake(rt12).embedded == ["shared text"]
    # and the 8-d space still answers with 8-d vectors
    rt8 = make_rt()
    assert rt8.embed(["shared text"]).shape == (1, 8) and fake(rt8).embedded == []


def test_wrong_dimension_is_never_stored_and_regenerate_stores_under_the_right_key(make_rt):
    rt = make_rt(dims=8, returned=12)  # the catalog says 8, the model answers 12
    with pytest.raises(EmbeddingDimensionError) as err:
        rt.embed(["a", "b"])
    assert "12" in str(err.value) and "8" in str(err.value) and "regenerate=True" in str(err.value)
    assert rt.cache.stats().query("tier == 'disk'").entries.sum() == 0
    v = rt.embed(["a", "b"], regenerate=True)
    assert v.shape == (2, 12)
    calls = len(fake(rt).embedded)
    again = rt.embed(["a", "b"])  # now a hit, in the 12-d space
    assert again.shape == (2, 12) and len(fake(rt).embedded) == calls and np.array_equal(v, again)
    disk = rt.cache.stats().query("tier == 'disk'")
    assert list(disk[disk.entries > 0].dims) == [12]
    # the learned size survives a new runtime
    rt2 = make_rt(dims=8, returned=12)
    assert rt2.embed(["a"]).shape == (1, 12) and fake(rt2).embedded == []


def test_regenerate_replaces_a_cached_vector(rt):
    rt.embed(["a"])
    rt.embed(["a"], regenerate=True)
    assert fake(rt).embedded == ["a", "a"]
    rows = rt.ledger.dataframe()
    assert not rows.cache_hit.any()


def test_nan_vectors_are_never_stored(rt):
    with pytest.raises(InvalidEmbeddingError, match="NaN"):
        rt.embed(["fine", "bad NaN!"])
    assert rt.cache.stats().query("tier == 'disk'").entries.sum() == 0
    rt.embed(["fine"])
    assert fake(rt).embedded.count("fine") == 2


def test_disk_tier_answers_when_memory_has_expired(make_rt):
    rt = make_rt(cache={"memory_ttl_s": 0.05})
    first = rt.embed(["a", "b"])
    import time

    time.sleep(0.1)
    again = rt.embed(["a", "b"])
    assert np.array_equal(first, again) and fake(rt).embedded == ["a", "b"]
    st = rt.cache.stats().set_index("tier")
    assert st.loc["disk", "hits"] == 2 and st.loc["memory", "misses"] >= 2


def test_memory_only_config(make_rt, cache_home):
    rt = make_rt(cache={"disk": False})
    rt.embed(["a"])
    rt.embed(["a"])
    assert fake(rt).embedded == ["a"] and not (cache_home / "cache").exists()


def test_eviction_keeps_the_store_under_its_size_limit(make_rt):
    rt = make_rt(cache={"disk_size_limit": 200_000, "eviction_policy": "least-recently-stored"})
    for round_ in range(6):
        rt.embed([f"r{round_} t{i}" for i in range(300)])
    disk = rt.cache.disk
    assert disk.volume() <= 200_000
    entries = int(rt.cache.stats().query("tier == 'disk'").entries.sum())
    assert 0 < entries < 1800
    rt.cache.memory.remove_where(lambda tag, age: False)
    rt.embed([f"r5 t{i}" for i in range(300)])  # the newest survived
    assert len(fake(rt).embedded) == 1800


def test_stats_clear_and_prune(make_rt):
    import eliza_nb

    rt = make_rt()
    old = eliza_nb.set_runtime(rt)
    try:
        rt.embed(["a", "b"])
        rt.embed(["a"], provider="fake2")
        st = eliza_nb.cache.stats()
        assert set(st.columns) >= {"tier", "model", "entries", "bytes", "hits", "misses"}
        disk = st[st.tier == "disk"].set_index("model")
        assert disk.loc["fake-embed", "entries"] == 2 and disk.loc["other-embed", "entries"] == 1
        assert disk.loc["fake-embed", "bytes"] > 2 * 8 * 4
        assert st.attrs["disk"] and st.attrs["directory"].endswith("store")
        assert eliza_nb.cache.clear(model="other-embed") == {"memory": 1, "disk": 1}
        rt.embed(["a"], provider="fake2")
        assert fake(rt, "fake2").embedded == ["a", "a"]
        assert eliza_nb.cache.clear(model="fake2:other-embed") == {"memory": 1, "disk": 1}
        rt.embed(["a"], provider="fake2")
        assert eliza_nb.cache.prune("1d") == {"memory": 0, "disk": 0}
        removed = eliza_nb.cache.prune(0)
        assert removed["disk"] == 3 and removed["memory"] == 3
        eliza_nb.cache.clear()
        assert eliza_nb.cache.stats().query("tier == 'disk'").entries.sum() == 0
        with pytest.raises(ValueError, match="duration"):
            eliza_nb.cache.prune("soon")
    finally:
        eliza_nb.set_runtime(old)


def test_least_recently_used_eviction_keeps_what_was_read(make_rt, cache_home):
    import sqlite3

    rt = make_rt(cache={"eviction_policy": "least-recently-used"})
    old, newer = [f"old {i}" for i in range(200)], [f"newer {i}" for i in range(200)]
    rt.embed(old)
    rt.embed(newer)
    volume = rt.cache.disk.volume()
    con = sqlite3.connect(str(cache_home / "cache" / "store" / "cache.db"))
    with con:  # pretend everything was last read a day ago
        con.execute("UPDATE entries SET accessed_at = accessed_at - 86400, stored_at = stored_at - 86400")
    con.close()
    cfg = {"disk_size_limit": int(volume * 1.05), "eviction_policy": "least-recently-used"}
    reader = make_rt(cache=cfg)
    reader.embed(old)  # a disk read in a new runtime records the access
    assert reader.adapter("fake").embedded == []
    reader.embed([f"fill {i}" for i in range(200)])  # over the limit by about 200 entries
    disk = reader.cache.disk
    assert disk.volume() <= cfg["disk_size_limit"]
    space = reader.embeddings.space(reader.resolve_embedding())
    on_disk = lambda texts: len(disk.get_many([space.key(t) for t in texts]))
    assert on_disk(newer) == 0  # the unread ones went first
    assert on_disk(old) > 100 and on_disk([f"fill {i}" for i in range(200)]) == 200
