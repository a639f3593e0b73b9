"""Damaged, hostile or unwritable cache directories: detected, survived, and never run code."""

from __future__ import annotations

import pickle
import shutil
import sqlite3

import numpy as np
import pytest

from eliza_nb.core.cache import EmbeddingSpace
from fakeprov import vector_for

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
    assert rt2.provider("fake").embedded == [] and rt2.warnings == []


def test_an_unwritable_home_runs_on_the_memory_tier_and_says_so_once(make_rt, cache_home):
    (cache_home / "cache").write_text("a file where the cache directory should be")
    rt = make_rt()
    with pytest.warns(RuntimeWarning, match="memory only"):
        rt.embed(["a", "b"])
    rt.embed(["a", "b", "c"])
    rt.generate("hi", cache=True)
    rt.generate("hi", cache=True)
    assert rt.provider("fake").embedded == ["a", "b", "c"]
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


def insert_row(db, key: bytes, value: bytes, mode: int, filename=None):
    con = sqlite3.connect(str(db))
    with con:
        con.execute("INSERT OR REPLACE INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag,"
                    " size, mode, filename, value) VALUES (?, 1, 0, NULL, 0, 0, 'x', 0, ?, ?, ?)",
                    (key, mode, filename, value))
    con.close()


def test_a_crafted_pickle_entry_is_refused_without_running_code(make_rt, cache_home, tmp_path):
    filled(make_rt, n=3)
    marker = tmp_path / "pwned"
    insert_row(db_of(cache_home), SPACE.key("hello"), pickle.dumps(Evil(marker)), mode=4)  # diskcache's MODE_PICKLE
    # the payload is live: plain diskcache would run it
    import diskcache

    copy = tmp_path / "copy"
    shutil.copytree(cache_home / "cache" / "store", copy)
    with diskcache.Cache(str(copy)) as dc:
        dc.get(SPACE.key("hello"))
    assert marker.exists()
    marker.unlink()
    rt = make_rt()
    v = rt.embed("hello")
    assert not marker.exists()
    assert np.allclose(v, vector_for("fake-embed", "hello", 8), atol=1e-6)
    assert rt.provider("fake").embedded == ["hello"]  # refused, so fetched again
    assert rt.cache.stats().attrs["rejected"] == 1
    con = sqlite3.connect(str(db_of(cache_home)))
    assert con.execute("SELECT count(*) FROM Cache WHERE mode != 1").fetchone() == (0,)
    con.close()


def test_crafted_records_filenames_and_settings_do_no_harm(make_rt, cache_home, tmp_path):
    filled(make_rt, n=3)
    db = db_of(cache_home)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    # a raw record with the wrong header, a wrong length and NaN values, and one naming a file
    insert_row(db, SPACE.key("bad header"), b"ENB1" + b"\x00" * 40, mode=1)
    insert_row(db, SPACE.key("nan"), SPACE.record(np.full(8, np.nan, "<f4")), mode=1)  # checksum right, values not
    flipped = bytearray(SPACE.record(np.ones(8, "<f4")))
    flipped[len(SPACE.prefix) + 5] ^= 0x10  # one flipped bit in a float: only the checksum sees it
    insert_row(db, SPACE.key("bit flip"), bytes(flipped), mode=1)
    insert_row(db, SPACE.key("short"), SPACE.prefix + b"\x00" * 12, mode=1)
    insert_row(db, SPACE.key("victim"), b"x", mode=2, filename=str(precious))  # MODE_BINARY, absolute path
    con = sqlite3.connect(str(db))
    with con:
        con.execute("INSERT INTO Settings VALUES ('sqlite_query_only', 1)")  # would make every write fail
    con.close()
    rt = make_rt()
    out = rt.embed(["bad header", "nan", "short", "victim", "bit flip", "t0"])
    assert np.isfinite(out).all() and out.shape == (6, 8)
    assert sorted(rt.provider("fake").embedded) == ["bad header", "bit flip", "nan", "short", "victim"]
    assert np.allclose(out[4], vector_for("fake-embed", "bit flip", 8), atol=1e-6)
    assert precious.read_text() == "keep me"
    rt.embed(["victim"], regenerate=True)  # overwriting a row never deletes the file it named
    assert precious.read_text() == "keep me" and rt.warnings == []
    rt2 = make_rt()
    rt2.embed(["bad header", "nan", "short", "victim", "bit flip", "t0"])
    assert rt2.provider("fake").embedded == []  # the good replacements were stored
