"""The archive's settings fields come from the settings declaration: top_p round-trips, and an
archive recorded before a setting existed still replays."""

from __future__ import annotations

import json

import pytest
from scripted import CALLS

from eliza_nb.core.errors import ReplayMismatch
from eliza_nb.core.replay import tape as replay
from eliza_nb.core.replay.archive import RECORDS, load
from eliza_nb.core.settings import SETTINGS


def generation_lines(folder):
    lines = (folder / RECORDS).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[1:]]


def test_top_p_round_trips_through_an_archive(make_rt, paid_env, tmp_path):
    rt = make_rt(env=paid_env)
    replay.start_recording(rt, "p.replay")
    live = rt.generate("Name a colour.", top_p=0.9, seed=2)
    replay.stop(rt)
    (record,) = generation_lines(tmp_path / "p.replay")
    settings = record["request"]["settings"]
    assert set(settings) == set(SETTINGS)  # every declared setting, unset ones as null
    assert settings["top_p"] == 0.9 and settings["seed"] == 2 and settings["temperature"] == 0.5
    assert settings["max_input_tokens"] is None

    CALLS.clear()
    rt2 = make_rt(env={}, home="fresh")
    replay.start_replay(rt2, "p.replay")
    again = rt2.generate("Name a colour.", top_p=0.9, seed=2)
    assert again.replayed and again.text == live.text and CALLS == {}
    with pytest.raises(ReplayMismatch, match=r"differs in settings.top_p \(0.8 here, 0.9 recorded\)"):
        rt2.generate("Name a colour.", top_p=0.8, seed=2)


def test_float_settings_are_stored_as_floats(make_rt, paid_env, tmp_path):
    rt = make_rt(env=paid_env)
    replay.start_recording(rt, "f.replay")
    rt.generate("hi", top_p=1, temperature=0, max_tokens=5)
    replay.stop(rt)
    (record,) = generation_lines(tmp_path / "f.replay")
    settings = record["request"]["settings"]
    assert (repr(settings["top_p"]), repr(settings["temperature"]), repr(settings["max_output_tokens"])) == ("1.0", "0.0", "5")


def test_an_archive_from_before_a_setting_existed_still_replays(make_rt, paid_env, tmp_path):
    rt = make_rt(env=paid_env)
    replay.start_recording(rt, "old.replay")
    live = rt.generate("Name a colour.", temperature=0)
    replay.stop(rt)
    path = tmp_path / "old.replay" / RECORDS
    header, line = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    del record["request"]["settings"]["top_p"]  # what a recording made before top_p looks like
    path.write_text(header + "\n" + json.dumps(record, sort_keys=True) + "\n", encoding="utf-8")
    assert load(tmp_path / "old.replay").generations[0].request["settings"]["top_p"] is None

    rt2 = make_rt(env={}, home="fresh")
    replay.start_replay(rt2, "old.replay")
    assert rt2.generate("Name a colour.", temperature=0).text == live.text


def test_a_bad_setting_in_an_archive_names_its_line(make_rt, paid_env, tmp_path):
    rt = make_rt(env=paid_env)
    replay.start_recording(rt, "bad.replay")
    rt.generate("hi")
    replay.stop(rt)
    path = tmp_path / "bad.replay" / RECORDS
    header, line = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    record["request"]["settings"]["top_p"] = 3.0
    path.write_text(header + "\n" + json.dumps(record, sort_keys=True) + "\n", encoding="utf-8")
    from eliza_nb.core.errors import ReplayArchiveError

    with pytest.raises(ReplayArchiveError, match="line 2: bad request: top_p: expected a number from 0 to 1, got 3.0"):
        load(tmp_path / "bad.replay")
