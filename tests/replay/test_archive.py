"""The archive format: deterministic bytes, and every damaged archive refused with its line."""

from __future__ import annotations

import json
import pickle
import zlib

import numpy as np
import pytest
from scripted import FAKE_KEY

from eliza_nb.core.errors import ReplayArchiveError
from eliza_nb.core.replay import tape as replay
from eliza_nb.core.replay.archive import RECORDS, VECTORS, load


@pytest.fixture
def archive(make_rt, tmp_path):
    """A small recorded archive: two generations, three embeddings (lines 2-3 and 4-6)."""
    rt = make_rt(env={"PAID_API_KEY": FAKE_KEY})
    replay.start_recording(rt, "a.replay")
    rt.generate("first", temperature=0)
    rt.generate("second", temperature=0)
    rt.embed(["a cat", "a dog", "a bird"])
    replay.stop(rt)
    return tmp_path / "a.replay"


def lines_of(folder):
    return (folder / RECORDS).read_text(encoding="utf-8").splitlines()


def write_lines(folder, lines, end="\n"):
    (folder / RECORDS).write_text("\n".join(lines) + end, encoding="utf-8")


def refused(folder) -> str:
    with pytest.raises(ReplayArchiveError) as info:
        load(folder)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_layout_is_readable_json_lines_and_raw_float32(archive):
    lines = lines_of(archive)
    header = json.loads(lines[0])
    assert header == {"format": "eliza_nb.replay", "version": 1, "records": 5, "vector_file": VECTORS,
                      "vector_dtype": "<f4"}
    records = [json.loads(line) for line in lines[1:]]
    assert [r["kind"] for r in records] == ["generate", "generate", "embed", "embed", "embed"]
    assert [r["text"] for r in records[2:]] == ["a bird", "a cat", "a dog"]  # sorted, not call order
    assert all(list(r) == sorted(r) for r in records)  # sorted keys
    data = (archive / VECTORS).read_bytes()
    assert len(data) == 3 * 8 * 4
    first = np.frombuffer(data[:32], dtype="<f4")
    assert f"{zlib.crc32(data[:32]):08x}" == records[2]["crc32"] and np.isfinite(first).all()
    loaded = load(archive)
    assert len(loaded.generations) == 2 and len(loaded.embeddings) == 3
    assert loaded.embeddings[0].vector.dtype == np.float32


def test_truncated_mid_line(archive):
    data = (archive / RECORDS).read_bytes()
    (archive / RECORDS).write_bytes(data[: len(data) - 40])
    msg = refused(archive)
    assert msg.startswith("a.replay/requests.jsonl line 6: not valid JSON") and "truncated" in msg


def test_truncated_at_a_line_boundary(archive):
    write_lines(archive, lines_of(archive)[:-2])
    msg = refused(archive)
    assert "line 4" in msg and "promises 5 records" in msg and "truncated" in msg


def test_newer_format_version(archive):
    lines = lines_of(archive)
    header = json.loads(lines[0])
    header["version"] = 2
    write_lines(archive, [json.dumps(header), *lines[1:]])
    msg = refused(archive)
    assert msg.startswith("a.replay/requests.jsonl line 1: format version 2 is newer") and "upgrade eliza_nb" in msg


def test_not_an_archive_and_missing(tmp_path, archive):
    write_lines(archive, ['{"format": "something else"}'])
    assert "line 1: not an eliza_nb replay archive" in refused(archive)
    with pytest.raises(ReplayArchiveError, match="no replay archive at nowhere.replay: expected a folder"):
        load("nowhere.replay")  # relative to the notebook's folder (the fixtures chdir to tmp_path)


def test_bad_json_edited_by_hand(archive):
    lines = lines_of(archive)
    lines[2] = lines[2].replace('"n": 0,', '"n": 0,,')
    write_lines(archive, lines)
    assert refused(archive).startswith("a.replay/requests.jsonl line 3: not valid JSON (Expecting")


def test_wrong_field_types_and_unknown_kinds(archive):
    lines = lines_of(archive)
    gen = json.loads(lines[1])
    gen["response"]["text"] = 42
    write_lines(archive, [lines[0], json.dumps(gen), *lines[2:]])
    assert "line 2: 'response.text' should be str, not int" in refused(archive)
    gen["response"]["text"] = "ok"
    gen["request"]["settings"]["wobble"] = 1
    write_lines(archive, [lines[0], json.dumps(gen), *lines[2:]])
    assert "line 2: bad request: unknown setting(s) wobble" in refused(archive)
    write_lines(archive, [lines[0], '{"kind": "exec", "code": "import os"}', *lines[2:]])
    assert "line 2: unknown record kind 'exec'" in refused(archive)


def test_wrong_vector_length(archive):
    lines = lines_of(archive)
    rec = json.loads(lines[4])
    rec["dims"] = 9
    write_lines(archive, [*lines[:4], json.dumps(rec), *lines[5:]])
    msg = refused(archive)
    assert msg.startswith("a.replay/requests.jsonl line 5: a 9-dimensional vector, but line 4 recorded 8") and "wrong vector length" in msg


def test_checksum_mismatch(archive):
    data = bytearray((archive / VECTORS).read_bytes())
    data[40] ^= 0xFF  # inside the second vector (line 5)
    (archive / VECTORS).write_bytes(bytes(data))
    msg = refused(archive)
    assert msg.startswith("a.replay/requests.jsonl line 5: the vector's checksum does not match vectors.f32 bytes 32-64")


def test_vector_file_truncated_or_too_long(archive):
    data = (archive / VECTORS).read_bytes()
    (archive / VECTORS).write_bytes(data[:70])
    assert "line 6: vectors.f32 ends at byte 70, before this record's vector (bytes 64-96)" in refused(archive)
    (archive / VECTORS).write_bytes(data + b"\0" * 8)
    assert "vectors.f32 holds 8 bytes after the last vector" in refused(archive)


def test_text_edits_in_a_record_change_only_that_request(archive):
    # Editing a request by hand is allowed (the request is the key); its vector is still checked.
    lines = lines_of(archive)
    lines[1] = lines[1].replace('"first"', '"first, edited"')
    write_lines(archive, lines)
    loaded = load(archive)
    assert any(g.request["messages"][-1]["content"] == "first, edited" for g in loaded.generations)


def test_duplicate_records_are_refused(archive):
    lines = lines_of(archive)
    header = json.loads(lines[0])
    header["records"] = 6
    write_lines(archive, [json.dumps(header), lines[1], lines[1], *lines[2:]])
    assert "line 3: the same request as line 2" in refused(archive)


def test_nothing_from_an_archive_is_unpickled_or_evaluated(archive, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("an archive must never be unpickled or evaluated")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(np, "load", boom)
    monkeypatch.setattr("builtins.eval", boom)
    lines = lines_of(archive)
    gen = json.loads(lines[1])
    gen["response"]["text"] = "__import__('os').system('echo pwned')"  # stays text
    write_lines(archive, [lines[0], json.dumps(gen), *lines[2:]])
    loaded = load(archive)
    assert any(g.response["text"].startswith("__import__") for g in loaded.generations)


def test_replay_refuses_a_damaged_archive_before_switching_on(make_rt, archive):
    rt = make_rt()
    (archive / VECTORS).write_bytes(b"")
    with pytest.raises(ReplayArchiveError, match="line 4"):
        replay.start_replay(rt, archive)
    assert rt.tape is None
