"""Files someone else made: the cache and replay readers never unpickle, and a crafted
cache entry, database or archive is refused without running anything.

Every payload here would create a marker file if it were unpickled (proved against plain
diskcache / pickle first); while eliza_nb reads, ``pickle`` itself is booby-trapped so any
attempt to unpickle fails the test, whether or not the payload would have run.
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

from eliza_nb.core.cache import EmbeddingSpace, encode_record
from eliza_nb.core.embedding import _dims_key
from eliza_nb.core.gencache import generation_key
from eliza_nb.core.generation import plan_call, planned_request
from eliza_nb.core.runtime import Runtime

PACKAGE = Path(__file__).resolve().parents[2] / "eliza_nb"
SPACE = EmbeddingSpace("fake", "fake-embed", 8, True)
MODE_RAW, MODE_BINARY, MODE_PICKLE = 1, 2, 4  # diskcache's value modes


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


def insert(db: Path, key: bytes, value: bytes, mode: int, raw: int = 1, filename: str | None = None) -> None:
    con = sqlite3.connect(str(db))
    with con:
        con.execute("INSERT OR REPLACE INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag,"
                    " size, mode, filename, value) VALUES (?, ?, 0, NULL, 0, 0, 'x', 0, ?, ?, ?)",
                    (key, raw, mode, filename, value))
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
    db = db_of(rhome)
    for key in targets.values():
        insert(db, key, payload, MODE_PICKLE)
    insert(db, SPACE.key("three"), payload, MODE_RAW)  # raw mode, but the bytes are a pickle
    evil_file = tmp_path / "value.pkl"
    evil_file.write_bytes(payload)
    insert(db, SPACE.key("four"), b"", MODE_PICKLE, filename=str(evil_file))  # diskcache's pickle-in-a-file
    insert(db, pickle.dumps("five"), payload, MODE_PICKLE, raw=0)  # a pickled KEY (diskcache's raw = 0)

    # the payloads are live: plain diskcache runs them
    import diskcache

    copy = tmp_path / "copy"
    shutil.copytree(db.parent, copy)
    with diskcache.Cache(str(copy)) as dc:
        dc.get(targets["batch lookup"])
    assert marker.exists()
    marker.unlink()

    trapped = trap_pickle(monkeypatch)
    rt = make_rt(rhome)
    fake = rt.provider("fake")
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
    assert con.execute("SELECT count(*) FROM Cache WHERE mode != 1 AND raw = 1").fetchone() == (0,)
    con.close()
    assert evil_file.read_bytes() == payload  # never read, never deleted
    rt.close()


def test_a_crafted_database_cannot_run_sql_of_its_own_or_poison_entries(rhome, tmp_path, no_unpickling):
    """Triggers and views are active content: a crafted store could rewrite every entry we
    store (with a valid record for another vector) or run SQL on each read. Only diskcache's
    own bookkeeping triggers survive opening, and what is stored is what was fetched."""
    rt = make_rt(rhome)
    rt.embed(["seed"])
    rt.close()
    db = db_of(rhome)
    poison = SPACE.record(np.full(8, 1 / np.sqrt(8), dtype="<f4"))  # a valid record of the attacker's vector
    con = sqlite3.connect(str(db))
    with con:
        con.execute(f"CREATE TRIGGER poison_insert AFTER INSERT ON Cache BEGIN "
                    f"UPDATE Cache SET value = X'{poison.hex()}' WHERE rowid = NEW.rowid; END")
        con.execute(f"CREATE TRIGGER poison_update AFTER UPDATE OF value ON Cache BEGIN "
                    f"UPDATE Cache SET value = X'{poison.hex()}' WHERE rowid = NEW.rowid AND value != X'{poison.hex()}'; END")
        con.execute("CREATE TRIGGER wipe_settings AFTER UPDATE ON Settings BEGIN DELETE FROM Cache; END")
        con.execute("CREATE VIEW innocent AS SELECT * FROM Cache")
        # diskcache's own trigger names, with other bodies
        con.execute("DROP TRIGGER Settings_count_insert")
        con.execute(f"CREATE TRIGGER Settings_count_insert AFTER INSERT ON Cache BEGIN "
                    f"UPDATE Cache SET value = X'{poison.hex()}' WHERE rowid = NEW.rowid; END")
        con.execute("INSERT OR REPLACE INTO Settings VALUES ('sqlite_journal_mode', 'delete; DROP TABLE Cache')")
        con.execute("INSERT OR REPLACE INTO Settings VALUES ('disk_pickle_protocol', 'not a number')")
    con.close()

    rt = make_rt(rhome)
    texts = ["alpha", "beta", "gamma"]
    assert np.allclose(rt.embed(texts), np.stack([fakeprov.vector_for("fake-embed", t, 8) for t in texts]), atol=1e-6)
    assert rt.warnings == []
    rt.close()
    con = sqlite3.connect(str(db))
    left = {name: " ".join(sql.split()) for name, sql in con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type IN ('trigger', 'view')")}
    con.close()
    assert all(name.startswith("Settings_") and "UPDATE Settings SET value" in sql and "Cache SET" not in sql
               for name, sql in left.items()), left
    rt2 = make_rt(rhome)  # a new kernel reads the provider's vectors back, not the attacker's
    got = rt2.embed(texts + ["seed"])
    assert np.allclose(got, np.stack([fakeprov.vector_for("fake-embed", t, 8) for t in texts + ["seed"]]), atol=1e-6)
    assert rt2.provider("fake").embedded == []
    rt2.close()
    assert no_unpickling == []


def test_records_with_hostile_json_headers_are_refused(rhome, no_unpickling):
    rt = make_rt(rhome)
    rt.embed(["seed"])
    key = gen_key(rt, "json bomb")
    rt.close()
    db = db_of(rhome)
    deep = "[" * 100_000 + "]" * 100_000  # deeper than json's recursion limit
    insert(db, key, encode_record({"kind": "generate"}, deep.encode()), MODE_RAW)
    insert(db, SPACE.key("huge dims"), encode_record({"kind": "embed", "dims": 10**12}, b"\x00" * 16), MODE_RAW)
    insert(db, SPACE.key("lying length"), b"ENB1" + (2**32 - 1).to_bytes(4, "little") + b"{}", MODE_RAW)
    rt = make_rt(rhome)
    assert not rt.generate("json bomb", cache=True).cached
    out = rt.embed(["huge dims", "lying length"])
    assert np.isfinite(out).all() and out.shape == (2, 8)
    rt.close()
    assert no_unpickling == []


# -- replay archives -------------------------------------------------------------------------
def test_crafted_replay_archives_are_refused_without_running_anything(tmp_path, no_unpickling):
    replay_archive = pytest.importorskip("eliza_nb.core.replay_archive", reason="the replay module does not exist yet")
    from eliza_nb.core.errors import ReplayArchiveError

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
