"""Saved benchmark runs: one JSON-lines file per run in the home, written as rows finish.

    <home>/bench_runs/<run_id>.jsonl
      line 1   the header: {"format": "eliza_nb.bench_run", "version": 1, "run_id": ..., "started": ...,
               "created": <unix time>, "status": "running", "spec": {models, presets, grid, prompts, cases,
               repeats, scorer, settings, config_columns, columns, ...}}
      then     {"row": {...}} for each finished call, in the order they finished, and
               {"status": "finished" | "stopped" | "interrupted", "finished": ...} when a run ends,
               {"status": "running", "resumed": ...} when ``resume=`` reopens it

Nothing is ever rewritten: a line is appended (and flushed) as soon as it is known, so a
run killed at any moment leaves a readable file whose status is still "running" (or
"interrupted" when the interpreter had time to say so), and ``resume=run_id`` finishes it.
A line cut short by a crash mid-write is skipped on reading (and cut off before the file is
appended to again). The file is plain JSON (no pickle): NaN and infinities are written as
null, numpy scalars and arrays as numbers and lists. Every string written is masked: the
value of any key variable (``*_API_KEY``, ``*_TOKEN``, ... in the environment, and every key
the HTTP adapters sent) becomes ``[redacted]``, as in replay archives and saved conversations.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import secrets as _random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ConfigError

FORMAT = "eliza_nb.bench_run"
VERSION = 1
FOLDER = "bench_runs"
SUFFIX = ".jsonl"
#: a run id is a plain file name: letters, digits, '.', '_' and '-' (and never '..')
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: row columns that hold floats: null (NaN when written) is read back as NaN even when a
#: column holds nothing else, so a reloaded frame has the dtypes the original had
FLOAT_COLUMNS = ("latency_s", "ttft_s", "queue_s", "tokens_per_s", "cost_usd", "judge_cost_usd", "score")
LIST_COLUMNS = ["run_id", "started", "status", "rows", "configs", "cases", "calls"]


def runs_dir(home: str | os.PathLike[str]) -> Path:
    """The folder of saved runs in ``home``."""
    return Path(home).expanduser() / FOLDER


def check_run_id(run_id: Any) -> str:
    """``run_id`` when it is a safe file name; a one-line ConfigError otherwise (a path, '..')."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise ConfigError(f"{run_id!r} is not a benchmark run id (like '20261130-174800-ab12'; see eliza_nb.bench_runs())")
    return run_id


def run_path(home: str | os.PathLike[str], run_id: str) -> Path:
    """The file of run ``run_id`` in ``home`` (the id checked first)."""
    return runs_dir(home) / (check_run_id(run_id) + SUFFIX)


# -- writing ------------------------------------------------------------------------------

class RunLog:
    """Appends one run's rows to its file as they finish; :meth:`finish` appends the status.

    Thread-safe: rows may arrive from several worker threads at once."""

    def __init__(self, path: Path, run_id: str, secrets: Iterable[str] | None = None) -> None:
        self.path = path
        self.run_id = run_id
        self.rows = 0  # rows appended by this RunLog
        self._secrets = _secret_list(secrets)  # read once: the environment's keys do not change mid-run
        self._lock = threading.Lock()

    @classmethod
    def start(cls, home: str | os.PathLike[str], spec: Mapping[str, Any], *, secrets: Iterable[str] | None = None,
              run_id: str | None = None) -> RunLog:
        """A new run in ``home`` whose header holds ``spec`` (masked, NaN as null) and status
        "running". ``secrets``: values to mask besides the key variables of the environment
        and the keys already sent (pass ``catalog.secret_values(...)`` when a runtime is at hand)."""
        folder = runs_dir(home)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot save the benchmark run in {folder}: {exc.strerror or exc}") from None
        keys = _secret_list(secrets)
        now = dt.datetime.now().astimezone()
        for attempt in range(20):
            rid = check_run_id(run_id) if run_id is not None else f"{now:%Y%m%d-%H%M%S}-{_random.token_hex(2)}"
            path = folder / (rid + SUFFIX)
            header = {"format": FORMAT, "version": VERSION, "run_id": rid, "started": now.isoformat(timespec="seconds"),
                      "created": time.time(), "status": "running", "spec": plain(dict(spec), keys)}
            try:
                # "x": two runs started in the same second never share a file
                with open(path, "x", encoding="utf-8") as fh:
                    fh.write(_dumps(header) + "\n")
            except FileExistsError:
                if run_id is not None or attempt == 19:
                    raise ConfigError(f"a benchmark run {rid!r} already exists in {folder}") from None
                continue
            except OSError as exc:
                raise ConfigError(f"cannot save the benchmark run to {path}: {exc.strerror or exc}") from None
            return cls(path, rid, keys)
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def reopen(cls, home: str | os.PathLike[str], run_id: str, *, secrets: Iterable[str] | None = None) -> RunLog:
        """Run ``run_id`` again, to append the rest of its rows (``resume=``): a line cut short
        by a crash is cut off first, then a {"status": "running", "resumed": ...} line is added."""
        path = run_path(home, run_id)
        _read(path)  # ours, and readable: one-line ConfigError otherwise
        try:
            with open(path, "rb+") as fh:
                end = _complete_end(fh)
                fh.seek(end)
                tail = fh.read()
                if tail and _is_json(tail):
                    fh.write(b"\n")  # a whole last line that only lacks its newline: load() counted it, keep it
                else:
                    fh.truncate(end)  # the crash's half-written line: load() skipped it, so must the next writer
        except OSError as exc:
            raise ConfigError(f"cannot append to the benchmark run {path}: {exc.strerror or exc}") from None
        log = cls(path, run_id, secrets)
        log._write({"status": "running", "resumed": _now()})
        return log

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one finished row as a line, at once (flushed)."""
        self._write({"row": plain(dict(row), self._secrets)})
        with self._lock:
            self.rows += 1

    def finish(self, status: str = "finished") -> None:
        """Append the run's final status ("finished", "stopped", "interrupted"); nothing is rewritten."""
        self._write({"status": str(status), "finished": _now()})

    def _write(self, obj: Mapping[str, Any]) -> None:
        line = _dumps(obj) + "\n"
        # one write per line in append mode: a crash can cut the last line, never mix two
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()

    def __repr__(self) -> str:
        return f"<RunLog {self.run_id} ({self.rows} rows appended) at {self.path}>"


def plain(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` as plain JSON: NaN/inf -> None, numpy scalars and arrays -> Python numbers
    and lists, tuples and sets -> lists, dict keys -> str, anything else -> its str; every
    string masked (``secrets`` and the keys redact remembers -> ``[redacted]``)."""
    from .. import redact

    keys = list(secrets)

    def walk(v: Any) -> Any:
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, str):
            return redact.mask_answer(v, keys)[0]
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v) if math.isfinite(v) else None
        if isinstance(v, Mapping):
            return {str(walk(k)) if not isinstance(k, str) else walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, set, frozenset)):
            items = sorted(v, key=repr) if isinstance(v, (set, frozenset)) else v
            return [walk(x) for x in items]
        kind = type(v).__module__.split(".")[0]
        if kind == "numpy":
            return walk(v.tolist()) if hasattr(v, "tolist") else walk(str(v))
        if kind == "pandas":
            import pandas as pd

            if v is pd.NaT or v is pd.NA:
                return None
            if isinstance(v, pd.Timestamp):
                return v.isoformat()
        if isinstance(v, (dt.datetime, dt.date)):
            return v.isoformat()
        if callable(v):
            return getattr(v, "__name__", "function")
        return walk(str(v))

    return walk(value)


def _secret_list(secrets: Iterable[str] | None) -> list[str]:
    """The values to mask: ``secrets`` and every key-named variable of the environment."""
    from ..catalog import SECRET_VARS

    found = {s for s in (secrets or ()) if s}
    found.update(v.strip() for k, v in os.environ.items() if SECRET_VARS.match(k) and v and len(v.strip()) >= 8)
    return sorted(found, key=len, reverse=True)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return True


def _complete_end(fh: BinaryIO) -> int:
    """The byte offset just past the file's last newline (its end when it ends in one)."""
    size = fh.seek(0, os.SEEK_END)
    pos, chunk = size, 4096
    while pos > 0:
        start = max(0, pos - chunk)
        fh.seek(start)
        block = fh.read(pos - start)
        i = block.rfind(b"\n")
        if i != -1:
            return start + i + 1
        pos = start
    return 0


# -- reading ------------------------------------------------------------------------------

class _Run:
    """A saved run as read: header, rows (one per config/case/repeat, the last kept), status."""

    def __init__(self, header: dict[str, Any], rows: list[dict[str, Any]], status: str, finished: str | None) -> None:
        self.header, self.rows, self.status, self.finished = header, rows, status, finished

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.header.get("spec")
        return spec if isinstance(spec, dict) else {}


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, whether it is the file's last line and has no newline)."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            yield number, raw, not raw.endswith(b"\n")


def _read(path: Path) -> _Run:
    """Run file ``path``: a missing, foreign or malformed file is one ConfigError naming it;
    a last line cut short (a crash mid-write) is skipped."""
    name = path.name
    header: dict[str, Any] | None = None
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    status, finished = "running", None
    try:
        for number, raw, cut in _lines(path):
            try:
                obj = json.loads(raw)
            except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                if cut and header is not None:
                    break  # the crash's half-written line: everything before it stands
                what = "no header line" if number == 1 else f"line {number} is not JSON"
                raise ConfigError(f"{name} is not a saved benchmark run: {what}") from None
            if header is None:
                if not isinstance(obj, dict) or obj.get("format") != FORMAT:
                    raise ConfigError(f"{name} is not a saved benchmark run: no \"format\": \"{FORMAT}\" header")
                version = obj.get("version")
                if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
                    raise ConfigError(f"{name}: benchmark run format version {version!r} (this eliza_nb reads {VERSION})")
                header = obj
                status = str(obj.get("status", "running"))
                continue
            if not isinstance(obj, dict):
                raise ConfigError(f"{name} is not a saved benchmark run: line {number} is not an object")
            if "row" in obj:
                row = obj["row"]
                if not isinstance(row, dict):
                    raise ConfigError(f"{name} is not a saved benchmark run: line {number}'s row is not an object")
                rows[(row.get("config"), str(row.get("case_id")), row.get("repeat"))] = row  # a row written twice: the last
            elif "status" in obj:
                status = str(obj["status"])
                finished = obj.get("finished") if status != "running" else None
    except FileNotFoundError:
        raise ConfigError(f"no benchmark run {path.stem!r} in {path.parent} (see eliza_nb.bench_runs())") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the benchmark run {path}: {exc.strerror or exc}") from None
    if header is None:
        raise ConfigError(f"{name} is not a saved benchmark run: it is empty")
    return _Run(header, list(rows.values()), status, finished)


def load(home: str | os.PathLike[str], run_id: str) -> Any:
    """Run ``run_id`` of ``home`` as a BenchmarkFrame: its rows (in the order they finished),
    columns in the saved order, metadata scorer_name, config_columns and run_id set; its
    status ("finished", "stopped", "interrupted", "running": cut short) in ``attrs``."""
    import numpy as np
    import pandas as pd

    from .frame import BenchmarkFrame

    run = _read(run_path(home, run_id))
    spec = run.spec
    columns = [c for c in spec.get("columns") or [] if isinstance(c, str)]
    for row in run.rows:  # columns the header did not name (an older writer): after the named ones
        columns += [k for k in row if k not in columns]
    records = []
    for row in run.rows:
        checks = row.get("checks")
        if isinstance(checks, dict):  # a check's NaN score was written as null
            row = {**row, "checks": {k: (np.nan if v is None else v) for k, v in checks.items()}}
        records.append(row)
    frame = BenchmarkFrame(records, columns=columns)  # built as benchmark() builds it: the same dtypes
    for col in FLOAT_COLUMNS:
        if col in frame.columns and frame[col].dtype == object:  # all null, or empty
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    # object.__setattr__: pandas would warn that a list attribute is not a column when frame.py's
    # _metadata does not name it
    object.__setattr__(frame, "scorer_name", spec.get("scorer"))
    object.__setattr__(frame, "config_columns", list(spec.get("config_columns") or ["model", "preset"]))
    object.__setattr__(frame, "run_id", str(run.header.get("run_id", run_id)))
    frame.attrs.update({"run_status": run.status, "started": run.header.get("started"), "finished": run.finished,
                        "spec": spec})
    return frame


def done_keys(home: str | os.PathLike[str], run_id: str) -> set[tuple[str, str, int]]:
    """(config, case_id, repeat) of every row run ``run_id`` holds: what ``resume=`` skips."""
    run = _read(run_path(home, run_id))
    out = set()
    for row in run.rows:
        try:
            out.add((str(row["config"]), str(row["case_id"]), int(row["repeat"])))
        except (KeyError, TypeError, ValueError):
            continue  # a row without its key cannot be matched to a job: it is run again
    return out


def list_runs(home: str | os.PathLike[str]) -> Any:
    """The saved runs of ``home``, newest first: run_id, started, status, rows (saved),
    configs and cases (distinct, among the rows), calls (planned). A file in the folder
    that is not a run is listed with status "unreadable: <why>"."""
    import pandas as pd

    folder = runs_dir(home)
    entries: list[tuple[float, dict[str, Any]]] = []
    paths = sorted(folder.glob("*" + SUFFIX)) if folder.is_dir() else []
    for path in paths:
        if not RUN_ID.fullmatch(path.stem) or ".." in path.stem:
            continue
        try:
            run = _read(path)
        except ConfigError as exc:
            mtime = path.stat().st_mtime if path.exists() else 0.0
            entries.append((mtime, {"run_id": path.stem, "started": None, "status": f"unreadable: {exc}", "rows": 0,
                                    "configs": 0, "cases": 0, "calls": None}))
            continue
        created = run.header.get("created")
        order = float(created) if isinstance(created, (int, float)) else path.stat().st_mtime
        calls = run.spec.get("calls")
        entries.append((order, {
            "run_id": str(run.header.get("run_id", path.stem)), "started": run.header.get("started"), "status": run.status,
            "rows": len(run.rows), "configs": len({r.get("config") for r in run.rows}),
            "cases": len({str(r.get("case_id")) for r in run.rows}),
            "calls": calls if isinstance(calls, int) and not isinstance(calls, bool) else None}))
    entries.sort(key=lambda e: (e[0], e[1]["run_id"]), reverse=True)
    return pd.DataFrame([e[1] for e in entries], columns=LIST_COLUMNS)
