"""Damaged, hostile or unwritable cache directories: detected, survived, and never run code."""

from __future__ import annotations

import pickle
import sqlite3

import numpy as np
import pytest
from fakeprov import vector_for

from eliza_nb.core.cache.tiers import EmbeddingSpace

SPACE = EmbeddingSpace("fake", "fake-embed", 8, True)


def db_of(home):
    return home / "cache" / "store" / "cache.db"


def filled(make_rt, n=500):
    rt = make_rt()
    rt.embed([f"t{i}" for i in range(n)])
    rt.close()
    return rt


@pytest.mark.parametrize("damage", ["garbage_header", "truncated", "garbage_pages"])
def test_a_damaged_store_is_moved_aside_rebuilt_and_work_goes_on(make_rt, cache_home, damage):
    filled(make_rt)
    db = db_of(cache_home)
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        if damage == "garbage_header":
            fh.write(b"\x00not sqlite\xff" * 10)
        elif damage == "truncated":
            fh.truncate(int(size * 0.4))
        else:
            fh.seek(8192)
            fh.write(b"\xde\xad\xbe\xef" * 4096)
    rt = make_rt()
    with pytest.warns(RuntimeWarning, match="unreadable"):
        v = rt.embed([f"t{i}" for i in range(500)])
    assert np.allclose(v[3], vector_for("fake-embed", "t3", 8), atol=1e-6)
    moved = list((cache_home / "cache").glob("store.corrupt-*"))
    assert len(moved) == 1 and (moved[0] / "cache.db").exists()
    assert sum("unreadable" in w for w in rt.warnings) == 1
    # the rebuilt store works: a new runtime reads everything back without the provider
    rt2 = make_rt()
    rt2.embed([f"t{i}" for i in range(500)])
    assert rt2.adapter("fake").embedded == [] and rt2.warnings == []


def test_an_unwritable_home_runs_on_the_memory_tier_and_says_so_once(make_rt, cache_home):
    (cache_home / "cache").write_text("a file where the cache directory should be")
    rt = make_rt()
    with pytest.warns(RuntimeWarning, match="memory only"):
        rt.embed(["a", "b"])
    rt.embed(["a", "b", "c"])
    rt.generate("hi", cache=True)
    rt.generate("hi", cache=True)
    assert rt.adapter("fake").embedded == ["a", "b", "c"]
    assert sum("memory only" in w for w in rt.warnings) == 1
    st = rt.cache.stats()
    assert st.attrs["disk"] is False and "cache" in st.attrs["disk_note"]
    assert rt.generate("hi", cache=True).cached


class Evil:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def insert_row(db, key: bytes, value):
    con = sqlite3.connect(str(db))
    with con:
        con.execute("INSERT OR REPLACE INTO entries (key, tag, value, stored_at, accessed_at, hits)"
                    " VALUES (?, 'x', ?, 0, 0, 0)", (key, value))
    con.close()


def test_a_crafted_pickle_entry_is_refused_without_running_code(make_rt, cache_home, tmp_path):
    filled(make_rt, n=3)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Evil(marker))
    pickle.loads(payload)  # the payload is live: unpickling it runs code
    assert marker.exists()
    marker.unlink()
    insert_row(db_of(cache_home), SPACE.key("hello"), payload)
    insert_row(db_of(cache_home), SPACE.key("as text"), payload.decode("latin-1"))  # the same bytes as a TEXT value
    rt = make_rt()
    v = rt.embed("hello")
    both = rt.embed(["as text", "t0"])
    assert not marker.exists()
    assert np.allclose(v, vector_for("fake-embed", "hello", 8), atol=1e-6)
    assert np.allclose(both[0], vector_for("fake-embed", "as text", 8), atol=1e-6)
    assert rt.adapter("fake").embedded == ["hello", "as text"]  # refused, so fetched again
    assert rt.cache.stats().attrs["rejected"] == 2
    con = sqlite3.connect(str(db_of(cache_home)))
    assert con.execute("SELECT count(*) FROM entries WHERE typeof(value) != 'blob'").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM entries WHERE value = ?", (payload,)).fetchone() == (0,)
    con.close()


def test_crafted_records_do_no_harm(make_rt, cache_home):
    filled(make_rt, n=3)
    db = db_of(cache_home)
    # a record with the wrong header, a wrong length, NaN values, a flipped bit, and values not bytes
    insert_row(db, SPACE.key("bad header"), b"ENB1" + b"\x00" * 40)
    insert_row(db, SPACE.key("nan"), SPACE.record(np.full(8, np.nan, "<f4")))  # checksum right, values not
    flipped = bytearray(SPACE.record(np.ones(8, "<f4")))
    flipped[len(SPACE.prefix) + 5] ^= 0x10  # one flipped bit in a float: only the checksum sees it
    insert_row(db, SPACE.key("bit flip"), bytes(flipped))
    insert_row(db, SPACE.key("short"), SPACE.prefix + b"\x00" * 12)
    insert_row(db, SPACE.key("a number"), 12345)
    rt = make_rt()
    texts = ["bad header", "nan", "short", "a number", "bit flip", "t0"]
    out = rt.embed(texts)
    assert np.isfinite(out).all() and out.shape == (6, 8)
    assert sorted(rt.adapter("fake").embedded) == ["a number", "bad header", "bit flip", "nan", "short"]
    assert np.allclose(out[4], vector_for("fake-embed", "bit flip", 8), atol=1e-6)
    assert rt.warnings == []
    rt2 = make_rt()
    rt2.embed(texts)
    assert rt2.adapter("fake").embedded == []  # the good replacements were stored


def test_an_old_diskcache_store_is_moved_aside_once_and_a_new_one_started(make_rt, cache_home):
    import diskcache

    store = cache_home / "cache" / "store"
    with diskcache.Cache(str(store)) as old:  # the layout earlier versions wrote, with a record of theirs
        old.set(SPACE.key("a"), SPACE.record(np.ones(8, "<f4")), tag="x")
    rt = make_rt()
    with pytest.warns(RuntimeWarning, match="diskcache layout"):
        v = rt.embed(["a", "b"])
    assert np.allclose(v[0], vector_for("fake-embed", "a", 8), atol=1e-6)
    assert rt.adapter("fake").embedded == ["a", "b"] and len(rt.warnings) == 1
    assert "moved it to" in rt.warnings[0] and "\n" not in rt.warnings[0]
    moved = list((cache_home / "cache").glob("store.foreign-*"))
    assert len(moved) == 1
    with diskcache.Cache(str(moved[0])) as old:  # kept as it was, for the user to delete
        assert old.get(SPACE.key("a")) == SPACE.record(np.ones(8, "<f4"))
    rt2 = make_rt()
    rt2.embed(["a", "b"])
    assert rt2.adapter("fake").embedded == [] and rt2.warnings == []


def test_a_store_of_a_newer_version_is_left_alone_and_the_tier_turned_off(make_rt, cache_home):
    filled(make_rt, n=3)
    con = sqlite3.connect(str(db_of(cache_home)))
    con.execute("PRAGMA user_version = 99")
    con.close()
    rt = make_rt()
    with pytest.warns(RuntimeWarning, match="newer eliza_nb"):
        rt.embed(["t0", "t1"])
    rt.embed(["t0"])
    assert rt.adapter("fake").embedded == ["t0", "t1"]
    assert len(rt.warnings) == 1 and "memory only" in rt.warnings[0]
    assert not list((cache_home / "cache").glob("store.*-*"))
    con = sqlite3.connect(str(db_of(cache_home)))
    assert con.execute("PRAGMA user_version").fetchone() == (99,)
    assert con.execute("SELECT count(*) FROM entries").fetchone()[0] >= 3
    con.close()
