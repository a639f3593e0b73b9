"""Saved benchmark runs (core/tuning/runs.py): JSON lines written as rows finish, read back in
a new process, crash-tolerant, listed newest first, masked, and refused when not ours."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

import eliza_nb
from eliza_nb.core.errors import ConfigError
from eliza_nb.core.tuning import runs
from eliza_nb.core.tuning.frame import BenchmarkFrame
from eliza_nb.core.tuning.run import columns_for

COLUMNS = columns_for(["temperature"])
SPEC = {"models": ["llama_local:small"], "presets": [None], "grid": {"temperature": [0, 0.8]}, "prompts": {"terse": "One word: {input}"},
        "repeats": 2, "scorer": "contains", "settings": {"max_tokens": 16},
        "cases": [{"id": "fr", "input": "France?", "expected": "Paris"}],
        "config_columns": ["model", "preset", "prompt", "temperature"], "columns": COLUMNS, "calls": 4}


def make_row(temperature: float, repeat: int, score: float = 0.5, **extra) -> dict:
    """A row as run_job builds one, with the awkward values a real run holds (numpy scalars, NaN)."""
    config = f"llama_local:small · none · temperature={temperature} · prompt=terse"
    row = {"config": config, "model": "llama_local:small", "preset": "none", "prompt": "terse", "temperature": np.float64(temperature),
           "case_id": "fr", "repeat": np.int64(repeat), "input": "One word: France?", "expected": "Paris", "output": "Paris.",
           "latency_s": np.float32(0.25), "ttft_s": 0.1, "queue_s": 0.0, "prompt_tokens": np.int64(12), "completion_tokens": 3,
           "tokens_per_s": 30.0, "cost_usd": 0.0, "judge_cost_usd": float("nan"), "cache_hit": np.bool_(False), "score": score,
           "passed": score >= 1.0,
           "checks": {"contains:Paris": score, "judge": float("nan")}, "reason": None, "error": None}
    row.update(extra)
    return {c: row[c] for c in COLUMNS}


def rows_for_a_run() -> list[dict]:
    return [make_row(0, 0, 1.0), make_row(0, 1, float("nan"), output="", error="TransientError: boom", passed=None, checks=None),
            make_row(0.8, 0, 0.0, reason="wrong city"), make_row(0.8, 1, 1.0)]


def save_run(home, rows, status="finished", spec=SPEC):
    log = runs.RunLog.start(home, spec)
    for row in rows:
        log.append(row)
    if status is not None:
        log.finish(status)
    return log


def load_in_new_process(home, run_id, tmp_path):
    """The run loaded by a fresh interpreter; handed back as a pickle (the transport of this test only)."""
    out = tmp_path / "loaded.pkl"
    code = ("import json\nfrom eliza_nb.core.tuning import runs\n"
            f"f = runs.load({str(home)!r}, {run_id!r})\n"
            f"f.to_pickle({str(out)!r})\n"
            "print(json.dumps({'type': type(f).__name__, 'scorer_name': f.scorer_name, 'config_columns': f.config_columns,"
            " 'run_id': f.run_id, 'status': f.attrs['run_status']}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return pd.read_pickle(out), json.loads(done.stdout.strip().splitlines()[-1])


def test_rows_reload_equal_in_a_new_process(tmp_path):
    rows = rows_for_a_run()
    log = save_run(tmp_path, rows)
    assert log.path == tmp_path / "bench_runs" / f"{log.run_id}.jsonl" and log.rows == 4
    original = BenchmarkFrame(rows, columns=COLUMNS)
    loaded, meta = load_in_new_process(tmp_path, log.run_id, tmp_path)
    assert meta == {"type": "BenchmarkFrame", "scorer_name": "contains", "config_columns": SPEC["config_columns"],
                    "run_id": log.run_id, "status": "finished"}
    assert list(loaded.columns) == COLUMNS
    # numpy scalars came back as Python numbers; float32 0.25 is exact, so every value compares equal
    expected = pd.DataFrame(original).astype({"repeat": "int64", "prompt_tokens": "int64", "cache_hit": bool, "latency_s": float})
    pd.testing.assert_frame_equal(pd.DataFrame(loaded).drop(columns=["checks"]), expected.drop(columns=["checks"]))
    assert loaded["score"].isna().tolist() == [False, True, False, False]  # NaN positions kept
    assert loaded["error"].notna().tolist() == [False, True, False, False] and loaded["passed"].tolist() == [True, None, False, True]
    checks = loaded["checks"].tolist()
    assert checks[1] is None and checks[0]["contains:Paris"] == 1.0 and math.isnan(checks[0]["judge"]), "a check's NaN stays NaN"
    # and the same in this process, through the public wrapper
    summary_ready = runs.load(tmp_path, log.run_id)
    assert summary_ready.score.dtype == float and summary_ready.run_id == log.run_id


def test_the_file_is_plain_json_lines_header_first_footer_last(tmp_path):
    log = save_run(tmp_path, [make_row(0, 0, float("inf"), latency_s=float("-inf"))], status="stopped")
    lines = log.path.read_text(encoding="utf-8").splitlines()
    assert "NaN" not in log.path.read_text() and "Infinity" not in log.path.read_text()
    objs = [json.loads(line) for line in lines]  # strict JSON: every line
    header, row, footer = objs
    assert header["format"] == "eliza_nb.bench_run" and header["status"] == "running" and header["run_id"] == log.run_id
    assert header["spec"] == SPEC, "the spec is written exactly as given"
    assert row["row"]["score"] is None and row["row"]["latency_s"] is None
    assert row["row"]["checks"] == {"contains:Paris": None, "judge": None}
    assert type(row["row"]["repeat"]) is int and row["row"]["cache_hit"] is False
    assert footer["status"] == "stopped" and footer["finished"]
    assert runs.load(tmp_path, log.run_id).attrs["run_status"] == "stopped"


def test_a_run_cut_short_is_running_and_its_half_written_last_line_is_skipped(tmp_path):
    log = save_run(tmp_path, rows_for_a_run()[:2], status=None)
    with open(log.path, "a", encoding="utf-8") as fh:
        fh.write('{"row": {"config": "llama_local:small · none · temperature=0.8')  # the crash, mid-write
    frame = runs.load(tmp_path, log.run_id)
    assert len(frame) == 2 and frame.attrs["run_status"] == "running"
    assert runs.done_keys(tmp_path, log.run_id) == {(frame.config[0], "fr", 0), (frame.config[0], "fr", 1)}
    # resume: the half line is cut off before anything is appended, so the file stays readable
    again = runs.RunLog.reopen(tmp_path, log.run_id)
    again.append(make_row(0.8, 0))
    again.append(make_row(0.8, 1))
    again.finish("finished")
    assert all(json.loads(line) for line in log.path.read_text(encoding="utf-8").splitlines())
    frame = runs.load(tmp_path, log.run_id)
    assert len(frame) == 4 and frame.attrs["run_status"] == "finished" and list(frame.repeat) == [0, 1, 0, 1]
    assert runs.list_runs(tmp_path).set_index("run_id").loc[log.run_id, "rows"] == 4


def test_a_whole_last_line_missing_only_its_newline_is_kept_on_reopen(tmp_path):
    log = save_run(tmp_path, [make_row(0, 0)], status=None)
    text = log.path.read_text(encoding="utf-8")
    log.path.write_text(text.rstrip("\n"), encoding="utf-8")
    assert len(runs.load(tmp_path, log.run_id)) == 1
    runs.RunLog.reopen(tmp_path, log.run_id).append(make_row(0, 1))
    assert len(runs.load(tmp_path, log.run_id)) == 2


def test_an_interrupted_status_and_a_resumed_run_that_crashes_again(tmp_path):
    log = save_run(tmp_path, [make_row(0, 0)], status="interrupted")
    assert runs.list_runs(tmp_path).status.tolist() == ["interrupted"]
    runs.RunLog.reopen(tmp_path, log.run_id).append(make_row(0, 1))  # and no finish: the second crash
    assert runs.list_runs(tmp_path).status.tolist() == ["running"]


def test_list_runs_newest_first_with_counts(tmp_path):
    assert list(runs.list_runs(tmp_path).columns) == runs.LIST_COLUMNS and runs.list_runs(tmp_path).empty
    first = save_run(tmp_path, rows_for_a_run())
    second = save_run(tmp_path, rows_for_a_run()[:1], status="stopped")
    third = save_run(tmp_path, [], status=None)
    (tmp_path / "bench_runs" / "notes.jsonl").write_text('{"hello": 1}\n', encoding="utf-8")
    listed = runs.list_runs(tmp_path)
    ours = listed[~listed.status.str.startswith("unreadable")]
    assert ours.run_id.tolist() == [third.run_id, second.run_id, first.run_id]
    assert ours.status.tolist() == ["running", "stopped", "finished"]
    assert ours.rows.tolist() == [0, 1, 4] and ours.configs.tolist() == [0, 1, 2] and ours.cases.tolist() == [0, 1, 1]
    assert ours.calls.tolist() == [4, 4, 4] and ours.started.notna().all()
    foreign = listed[listed.run_id == "notes"]
    assert len(foreign) == 1 and "notes.jsonl is not a saved benchmark run" in foreign.status.iloc[0]
    assert len({first.run_id, second.run_id, third.run_id}) == 3, "runs started in the same second get distinct ids"


def test_done_keys_are_what_resume_skips(tmp_path):
    log = save_run(tmp_path, rows_for_a_run()[:3], status="interrupted")
    c0, c8 = make_row(0, 0)["config"], make_row(0.8, 0)["config"]
    assert runs.done_keys(tmp_path, log.run_id) == {(c0, "fr", 0), (c0, "fr", 1), (c8, "fr", 0)}
    assert all(type(k[2]) is int for k in runs.done_keys(tmp_path, log.run_id))


@pytest.mark.parametrize("bad", ["../outside", "a/b", "..", "x..y", "", "/etc/passwd", "a\\b", None, 3])
def test_a_bad_run_id_is_one_line(tmp_path, bad):
    for call in (runs.load, runs.done_keys, runs.RunLog.reopen):
        with pytest.raises(ConfigError) as info:
            call(tmp_path, bad)
        assert "\n" not in str(info.value) and "is not a benchmark run id" in str(info.value)


def test_a_missing_run_and_foreign_or_broken_files_are_one_line_naming_them(tmp_path):
    with pytest.raises(ConfigError, match="no benchmark run 'nosuch'"):
        runs.load(tmp_path, "nosuch")
    folder = tmp_path / "bench_runs"
    folder.mkdir()
    cases = {"foreign": '{"format": "something.else"}\n{"row": {}}\n', "notjson": "hello\n", "empty": "",
             "newer": json.dumps({"format": runs.FORMAT, "version": 99}) + "\n",
             "middle": json.dumps({"format": runs.FORMAT, "version": 1, "spec": {}}) + "\n{broken\n{\"row\": {}}\n"}
    for name, text in cases.items():
        (folder / f"{name}.jsonl").write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            runs.load(tmp_path, name)
        message = str(info.value)
        assert "\n" not in message and f"{name}.jsonl" in message, message
    with pytest.raises(ConfigError, match="line 2 is not JSON"):
        runs.load(tmp_path, "middle")
    with pytest.raises(ConfigError, match="version 99"):
        runs.done_keys(tmp_path, "newer")


def test_key_values_are_never_written(tmp_path, monkeypatch):
    key, given = "sk-test-0123456789abcdefXYZ", "gsk_explicit_value_42abc"
    monkeypatch.setenv("SOMEVENDOR_API_KEY", key)
    spec = {**SPEC, "settings": {"system": f"you may use {key}", "max_tokens": 8}, "note": [given]}
    log = runs.RunLog.start(tmp_path, spec, secrets=[given])
    log.append(make_row(0, 0, output=f"the key is {key}", input=f"echo {given}"))
    log.finish()
    text = log.path.read_text(encoding="utf-8")
    assert key not in text and given not in text and text.count("[redacted]") == 4
    frame = runs.load(tmp_path, log.run_id)
    assert frame.output[0] == "the key is [redacted]" and frame.attrs["spec"]["settings"]["system"] == "you may use [redacted]"
    assert frame.attrs["spec"]["settings"]["max_tokens"] == 8


def test_rows_from_many_threads_each_make_one_whole_line(tmp_path):
    log = runs.RunLog.start(tmp_path, SPEC)
    long_output = "word " * 2000  # lines larger than a pipe buffer still land whole

    def work(t: int) -> None:
        for r in range(25):
            log.append(make_row(t, r, output=long_output))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    log.finish()
    frame = runs.load(tmp_path, log.run_id)
    assert len(frame) == 200 == log.rows and (frame.output == long_output).all()
    assert len(runs.done_keys(tmp_path, log.run_id)) == 200


def test_public_wrappers_use_the_home(tmp_path, monkeypatch):
    monkeypatch.setattr(eliza_nb, "_runtime", None)
    monkeypatch.setenv("ELIZA_NB_HOME", str(tmp_path))
    log = save_run(tmp_path, rows_for_a_run())
    assert "bench_runs" in eliza_nb.__all__ and "load_bench" in eliza_nb.__all__
    assert eliza_nb.bench_runs().run_id.tolist() == [log.run_id]
    assert eliza_nb._runtime is None, "listing runs does not start a runtime"
    frame = eliza_nb.load_bench(log.run_id)
    assert isinstance(frame, BenchmarkFrame) and len(frame) == 4 and frame.run_id == log.run_id
    with pytest.raises(ConfigError, match="is not a benchmark run id"):
        eliza_nb.load_bench("../../etc/passwd")


def test_a_benchmark_is_saved_as_it_runs_and_reloads_equal_in_a_new_process(scripted, tmp_path):
    from eliza_nb.core.tuning import benchmark

    cases = [{"id": "a", "input": "hello", "expected": "echo"}, {"id": "b", "input": "please FAIL", "expected": "x"}]
    df = benchmark(scripted, cases, models=["cheap:small"], grid={"temperature": [0, 0.5]}, repeats=2, progress=False)
    assert df.run_id and len(df) == 8
    listed = runs.list_runs(scripted.home)
    assert listed.run_id.tolist() == [df.run_id] and listed.status.tolist() == ["finished"] and listed.rows.tolist() == [8]
    loaded, meta = load_in_new_process(scripted.home, df.run_id, tmp_path)
    assert meta["config_columns"] == list(df.config_columns) and meta["scorer_name"] == df.scorer_name
    key = ["config", "case_id", "repeat"]
    a = pd.DataFrame(df).sort_values(key).reset_index(drop=True)
    b = pd.DataFrame(loaded).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(b.drop(columns=["checks"]), a.drop(columns=["checks"]), check_dtype=False)
    assert b["score"].isna().tolist() == a["score"].isna().tolist() and b["score"].isna().sum() == 4
