"""Files someone else made: the cache and replay readers never unpickle, and a crafted
cache entry, database or archive is refused without running anything.

Every payload here would create a marker file if it were unpickled (proved against plain
diskcache / pickle first); while eliza_nb reads, ``pickle`` itself is booby-trapped so any
attempt to unpickle fails the test, whether or not the payload would have run. A store whose
schema is not exactly ours (triggers, views, other tables or columns) is refused whole.
"""

from __future__ import annotations

import ast
import json
import pickle
import shutil
import sqlite3
from pathlib import Path

import fakeprov
import numpy as np
import pytest

from eliza_nb.core.cache.generations import generation_key
from eliza_nb.core.cache.tiers import EmbeddingSpace, encode_record
from eliza_nb.core.embeddings.service import _dims_key
from eliza_nb.core.generation import plan_call, planned_request
from eliza_nb.core.runtime import Runtime

PACKAGE = Path(__file__).resolve().parents[2] / "eliza_nb"
SPACE = EmbeddingSpace("fake", "fake-embed", 8, True)


class Evil:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def trap_pickle(monkeypatch) -> list[str]:
    """From now on any unpickling is recorded and fails (payload or not)."""
    calls: list[str] = []

    def trap(name):
        def refuse(*a, **k):
            calls.append(name)
            raise AssertionError(f"pickle.{name} was called")
        return refuse

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, trap(name))
    return calls


@pytest.fixture
def no_unpickling(monkeypatch) -> list[str]:
    return trap_pickle(monkeypatch)


def db_of(home: Path) -> Path:
    return home / "cache" / "store" / "cache.db"


def insert(db: Path, key: bytes, value: bytes | str) -> None:
    con = sqlite3.connect(str(db))
    with con:
        con.execute("INSERT OR REPLACE INTO entries (key, tag, value, stored_at, accessed_at, hits)"
                    " VALUES (?, 'x', ?, 0, 0, 0)", (key, value))
    con.close()


def make_rt(home: Path) -> Runtime:
    return Runtime(home, config=fakeprov.fake_config({"generation": True}), env={})


def gen_key(rt: Runtime, prompt: str) -> bytes:
    return bytes.fromhex(generation_key(planned_request(rt, plan_call(rt, prompt, {"cache": True}))))


def test_pickled_entries_on_every_read_path_are_refused_without_running(rhome, tmp_path, monkeypatch):
    rt = make_rt(rhome)
    rt.embed(["seed"])
    rt.generate("seed", cache=True)
    targets = {
        "single-text lookup": SPACE.key("one"),
        "batch lookup": SPACE.key("two"),
        "generation cache": gen_key(rt, "cached question"),
        "learned dimensions": _dims_key("fake", "unsized-model")[0],
    }
    rt.close()
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Evil(marker))
    pickle.loads(payload)  # the payload is live
    assert marker.exists()
    marker.unlink()
    db = db_of(rhome)
    for key in targets.values():
        insert(db, key, payload)
    insert(db, SPACE.key("three"), payload.decode("latin-1"))  # the same bytes as a TEXT value
    insert(db, SPACE.key("four"), SPACE.prefix + payload)  # behind a valid header

    trapped = trap_pickle(monkeypatch)
    rt = make_rt(rhome)
    fake = rt.adapter("fake")
    assert np.allclose(rt.embed("one"), fakeprov.vector_for("fake-embed", "one", 8), atol=1e-6)
    out = rt.embed(["two", "three", "four"])
    assert np.allclose(out, np.stack([fakeprov.vector_for("fake-embed", t, 8) for t in ("two", "three", "four")]), atol=1e-6)
    answer = rt.generate("cached question", cache=True)
    assert not answer.cached and fake.generate_calls == 1  # the planted answer was refused, the provider asked
    assert rt.embed("x", model="unsized-model").shape == (8,)
    rt.cache.stats()
    rt.cache.prune("1d")
    rt.cache.clear(kind="embed")
    assert trapped == [] and not marker.exists()
    assert sorted(fake.embedded) == ["four", "one", "three", "two", "x"]
    con = sqlite3.connect(str(db))
    assert con.execute("SELECT count(*) FROM entries WHERE instr(value, ?) > 0", (payload,)).fetchone() == (0,)
    con.close()
    rt.close()


@pytest.mark.filterwarnings("ignore:eliza_nb cache:RuntimeWarning")  # asserted through rt.warnings
def test_a_diskcache_store_of_pickles_is_moved_aside_unread(rhome, tmp_path, monkeypatch):
    """The layout earlier versions used, holding what plain diskcache unpickles (values in
    its pickle mode, inline and in a file, and a pickled key): never read, kept aside whole."""
    import diskcache

    marker = tmp_path / "pwned"
    store = rhome / "cache" / "store"
    with diskcache.Cache(str(store), disk_min_file_size=1024) as dc:
        dc.set(SPACE.key("one"), Evil(marker))  # pickled inline
        dc.set(SPACE.key("two"), [Evil(marker), "x" * 4096])  # pickled into a file beside the database
        dc.set(("a", "tuple", "key"), SPACE.record(np.ones(8, "<f4")))  # a pickled key
    files = sorted(p.relative_to(store) for p in store.rglob("*") if p.is_file() and not p.name.startswith("cache.db"))
    assert files  # the pickle-in-a-file is there
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    with diskcache.Cache(str(copy)) as dc:  # the payloads are live: plain diskcache runs them
        dc.get(SPACE.key("one"))
    assert marker.exists()
    marker.unlink()

    trapped = trap_pickle(monkeypatch)
    rt = make_rt(rhome)
    out = rt.embed(["one", "two"])
    assert np.allclose(out, np.stack([fakeprov.vector_for("fake-embed", t, 8) for t in ("one", "two")]), atol=1e-6)
    rt.cache.stats()
    assert trapped == [] and not marker.exists()
    assert sorted(rt.adapter("fake").embedded) == ["one", "two"]
    assert len(rt.warnings) == 1 and "diskcache layout" in rt.warnings[0]
    (moved,) = (rhome / "cache").glob("store.foreign-*")
    assert sorted(p.relative_to(moved) for p in moved.rglob("*") if p.is_file() and not p.name.startswith("cache.db")) == files
    rt.close()


def _add_column(con: sqlite3.Connection) -> None:
    con.execute("ALTER TABLE entries ADD COLUMN note TEXT DEFAULT 'x'")


def _settings_table(con: sqlite3.Connection) -> None:
    # diskcache pasted such rows into PRAGMA statements on open
    con.execute("CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value)")
    con.execute("INSERT INTO Settings VALUES ('sqlite_journal_mode', 'delete; DROP TABLE entries')")


POISON = SPACE.record(np.full(8, 1 / np.sqrt(8), dtype="<f4"))  # a valid record of the attacker's vector
TAMPERING = {
    # the attacker's vector written over everything we store
    "poisoning trigger": lambda con: con.execute(
        f"CREATE TRIGGER poison AFTER INSERT ON entries BEGIN "
        f"UPDATE entries SET value = X'{POISON.hex()}' WHERE rowid = NEW.rowid; END"),
    "trigger on update": lambda con: con.execute(
        "CREATE TRIGGER wipe AFTER UPDATE ON entries BEGIN DELETE FROM entries; END"),
    "view": lambda con: con.execute("CREATE VIEW innocent AS SELECT * FROM entries"),
    "index on an expression": lambda con: con.execute("CREATE INDEX entries_evil ON entries (length(value))"),
    "extra column": _add_column,
    "settings table": _settings_table,
    "another application id": lambda con: con.execute("PRAGMA application_id = 0"),
    "an older schema version": lambda con: con.execute("PRAGMA user_version = 0"),
}


@pytest.mark.filterwarnings("ignore:eliza_nb cache:RuntimeWarning")  # asserted through rt.warnings
@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_a_store_whose_schema_is_not_exactly_ours_is_refused_whole(rhome, tampering, no_unpickling):
    """Triggers and views are active content: a crafted store could rewrite every entry we
    store (with a valid record for another vector) or run SQL on each read. Anything in the
    schema that is not ours means the file is not used at all: it is moved aside, with one
    warning, and what is stored afterwards is what was fetched."""
    rt = make_rt(rhome)
    rt.embed(["seed"])
    rt.close()
    db = db_of(rhome)
    con = sqlite3.connect(str(db))
    with con:
        TAMPERING[tampering](con)
    con.close()

    rt = make_rt(rhome)
    texts = ["alpha", "beta", "gamma", "seed"]
    assert np.allclose(rt.embed(texts), np.stack([fakeprov.vector_for("fake-embed", t, 8) for t in texts]), atol=1e-6)
    assert rt.adapter("fake").embedded == texts  # nothing was read from the refused file
    assert len(rt.warnings) == 1 and "moved it to" in rt.warnings[0] and "\n" not in rt.warnings[0], rt.warnings
    rt.close()
    (moved,) = (rhome / "cache").glob("store.foreign-*")
    con = sqlite3.connect(str(db))
    active = con.execute("SELECT name FROM sqlite_master WHERE type IN ('trigger', 'view')").fetchall()
    tables = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    con.close()
    assert active == [] and tables == [("entries",)]
    rt2 = make_rt(rhome)  # a new kernel reads the provider's vectors back, not the attacker's
    got = rt2.embed(texts)
    assert np.allclose(got, np.stack([fakeprov.vector_for("fake-embed", t, 8) for t in texts]), atol=1e-6)
    assert rt2.adapter("fake").embedded == [] and rt2.warnings == []
    rt2.close()
    assert (moved / "cache.db").exists()


def test_records_with_hostile_json_headers_are_refused(rhome, no_unpickling):
    rt = make_rt(rhome)
    rt.embed(["seed"])
    key = gen_key(rt, "json bomb")
    rt.close()
    db = db_of(rhome)
    deep = "[" * 100_000 + "]" * 100_000  # deeper than json's recursion limit
    insert(db, key, encode_record({"kind": "generate"}, deep.encode()))
    insert(db, SPACE.key("huge dims"), encode_record({"kind": "embed", "dims": 10**12}, b"\x00" * 16))
    insert(db, SPACE.key("lying length"), b"ENB1" + (2**32 - 1).to_bytes(4, "little") + b"{}")
    rt = make_rt(rhome)
    assert not rt.generate("json bomb", cache=True).cached
    out = rt.embed(["huge dims", "lying length"])
    assert np.isfinite(out).all() and out.shape == (2, 8)
    rt.close()
    assert no_unpickling == []


# -- replay archives -------------------------------------------------------------------------
def test_crafted_replay_archives_are_refused_without_running_anything(tmp_path, no_unpickling):
    from eliza_nb.core.errors import ReplayArchiveError
    from eliza_nb.core.replay import archive as replay_archive

    marker = tmp_path / "pwned"
    payload = pickle.dumps(Evil(marker))
    records, vectors = replay_archive.RECORDS, getattr(replay_archive, "VECTORS", "vectors.f32")
    header = json.dumps({"format": "eliza_nb.replay", "version": 1, "records": 1})

    def archive(name: str, lines: bytes, vec: bytes | None = None) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / records).write_bytes(lines)
        if vec is not None:
            (folder / vectors).write_bytes(vec)
        return folder

    cases = {
        "pickle as the records": archive("a", payload),
        "pickle after the header": archive("b", header.encode() + b"\n" + payload + b"\n"),
        "pickle as the vectors": archive("c", header.encode() + b"\n", payload),
        "NaN constants": archive("d", header.encode() + b'\n{"kind": "embed", "dims": NaN}\n'),
        "deep nesting": archive("e", header.encode() + b"\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n"),
        "not utf-8": archive("f", b"\xff\xfe" + header.encode("utf-16")),
        "a newer format": archive("g", json.dumps({"format": "eliza_nb.replay", "version": 99}).encode() + b"\n"),
        "records missing": tmp_path,
    }
    for what, folder in cases.items():
        try:
            loaded = replay_archive.load(folder)
        except ReplayArchiveError as exc:
            message = str(exc)
            assert message and len(message.splitlines()) == 1, (what, message)
        else:  # an archive that loads must hold nothing from the payload
            assert not getattr(loaded, "generations", None) and not getattr(loaded, "embeddings", None), what
    assert not marker.exists()
    assert no_unpickling == []


# -- the source: nothing that deserialises code ----------------------------------------------
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}  # __import__("sys") of a literal is fine


def test_the_package_never_imports_an_unpickler_or_evaluates_text():
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [f"{path.name}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
                found.append(f"{path.name}: from {node.module} import ...")
            elif isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                literal = bool(node.args) and all(isinstance(a, ast.Constant) for a in node.args)
                if isinstance(node.func, ast.Name) and name in UNSAFE_CALLS and not (name == "__import__" and literal):
                    found.append(f"{path.name}:{node.lineno}: {name}()")
                numpy_load = name == "load" and isinstance(node.func, ast.Attribute) and \
                    getattr(node.func.value, "id", "") in ("np", "numpy")
                if numpy_load and not any(k.arg == "allow_pickle" and getattr(k.value, "value", True) is False
                                          for k in node.keywords):
                    found.append(f"{path.name}:{node.lineno}: np.load without allow_pickle=False")
    assert not found, found
