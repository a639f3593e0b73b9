"""Per-call overhead: eliza_nb against the clients a user would pick instead, on the wire.

    .venv/bin/python bench/overhead.py [--calls 500] [--block 10] [--reps 3]

A loopback OpenAI-compatible server (bench/loopback.py, its own process, TCP_NODELAY)
answers every chat call at once with a fixed body, so what is timed is the client: raw
httpx (a reused ``httpx.Client``), the openai SDK, litellm, jupyter-ai's ``%%ai``
(``openai-chat-custom`` with ``openai_api_base``), eliza_nb's API (``eliza_nb.generate``)
and ``%%eliza generate`` run as an IPython cell; an empty cell and a cell calling raw httpx
are the floors under any magic. Each client runs in its own process, in the venv that has
it (bench/envs.py), driven by bench/clients.py. Sequential calls run in blocks of
``--block`` (10), the clients taking turns in a new random order every round, until each
made ``--calls``: drift on a shared machine hits every client alike, and no client always
follows the same neighbour. eliza_nb's API runs right next to raw httpx (A/B, then B/A) and
``%%eliza`` right next to the raw-httpx cell, so each pair shares the same conditions. The server counts the TCP
connections each client opens (one each = its connection was reused).

Then the concurrency curves: 1, 4 and 16 threads sharing one client/runtime, against the
instant server (throughput: what the client costs under the GIL) and against a server that
answers after 50 ms (wall time against the ideal ceil(calls / threads) x 50 ms).

Writes bench/results/overhead.md (sequential, streaming) and bench/results/concurrency.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, check, ms, pct, ratio, table, write_result
from envs import python_for
from loopback import Loopback

OURS = Path(sys.executable)
#: client -> (label, venv: None = eliza_nb's own)
CLIENTS: dict[str, tuple[str, str | None]] = {
    "httpx": ("raw httpx (reused Client)", None),
    "openai": ("openai SDK", "sdk"),
    "litellm": ("litellm", "sdk"),
    "eliza_api": ("**eliza_nb API** `eliza_nb.generate`", None),
    "empty_cell": ("empty IPython cell (floor)", None),
    "httpx_cell": ("raw httpx called in a cell", None),
    "jupyter_ai": ("jupyter-ai `%%ai`", "jupyterai"),
    "eliza_magic": ("**`%%eliza generate`** cell", None),
}
API_TARGET, MAGIC_TARGET = 0.00015, 0.002  # eliza_nb.generate: within 0.15 ms of raw httpx; a cell: 2 ms
BLOCK = 10  # calls per turn (set from --block)


class Worker:
    """One client process (bench/clients.py) answering JSON commands."""

    def __init__(self, name: str, python: Path, base: str) -> None:
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        self.name = name
        self.proc = subprocess.Popen([str(python), str(ROOT / "bench" / "clients.py"), name, base], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines()
            raise RuntimeError(f"{name} did not start: {err[-1] if err else 'no output'}")
        self.info = json.loads(line)

    def ask(self, **cmd: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} died: {self.proc.stderr.read()[-500:]}")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def start_workers(server: Loopback, notes: list[str], only: list[str] | None = None) -> tuple[dict[str, Worker], dict[str, int]]:
    workers, conns = {}, {}
    for name, (_, venv) in CLIENTS.items():
        if only and name not in only:
            continue
        python = OURS if venv is None else python_for(venv)
        if python is None:
            notes.append(f"{name}: skipped, its venv .venv-bench-{venv} is missing (run `make bench-envs`).")
            continue
        before = server.connections()
        try:
            workers[name] = Worker(name, python, server.base)
        except RuntimeError as exc:
            notes.append(f"{name}: skipped ({exc}).")
            continue
        conns[name] = server.connections() - before  # the warm-up calls' connections
    return workers, conns


def sequential(server: Loopback, workers: dict[str, Worker], calls: int, block: int) -> dict[tuple[str, str], dict]:
    jobs = [(n, m) for n, w in workers.items() for m in ("gen", "stream") if m == "gen" or w.info["stream"]]
    out = {job: {"t": [], "ttfc": [], "conns": 0, "blocks": []} for job in jobs}
    # eliza_nb and its baseline run back to back (A/B, B/A alternating by round), so each pair
    # shares whatever ran before it; the units come in a new random order every round, since a
    # block's first calls pay for their neighbour (a fixed order always put litellm first).
    paired = {("eliza_api", m): ("httpx", m) for m in ("gen", "stream")}
    paired[("eliza_magic", "gen")] = ("httpx_cell", "gen")
    paired[("eliza_magic", "stream")] = ("httpx_cell", "gen")
    units, taken = [], set()
    for job in jobs:
        if job in paired and paired[job] in jobs and paired[job] not in taken and job not in taken:
            units.append([paired[job], job])
            taken.update((job, paired[job]))
    units += [[job] for job in jobs if job not in taken]
    for r in range(-(-calls // block)):
        n = min(block, calls - r * block)
        rng = random.Random(r)
        order = [job for unit in rng.sample(units, len(units)) for job in (unit if r % 2 else unit[::-1])]
        for name, mode in order:
            before = server.connections()
            res = workers[name].ask(op="run", mode=mode, n=n)
            out[(name, mode)]["conns"] += server.connections() - before
            out[(name, mode)]["t"] += res["t"]
            out[(name, mode)]["ttfc"] += res["ttfc"]
            out[(name, mode)]["blocks"].append(statistics.median(res["t"]))  # for ratios paired by round
    return out


def concurrency(workers: dict[str, Worker], reps: int) -> dict[tuple[str, str, int], dict]:
    names = [n for n, w in workers.items() if w.info["conc"]]
    out: dict[tuple[str, str, int], dict] = {}
    for path, per_thread in (("", 200), ("/d50", 16)):
        for threads in (1, 4, 16):
            calls = per_thread * threads if path else 400
            for rep in range(reps):
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    res = workers[name].ask(op="conc", threads=threads, calls=calls, path=path)
                    row = out.setdefault((name, path, threads), {"wall": [], "t": [], "calls": calls})
                    row["wall"].append(res["wall"])
                    row["t"] += res["t"]
    return out


def paired(seq: dict, name: str, mode: str, base: str = "httpx") -> float | None:
    """Median over rounds of (this client's block p50 / the baseline's block p50 in the same round)."""
    a, b = seq.get((name, mode), {}).get("blocks"), seq.get((base, mode), {}).get("blocks")
    return statistics.median(x / y for x, y in zip(a, b, strict=True)) if a and b else None


def report_sequential(seq: dict, warm: dict[str, int], calls: int, notes: list[str]) -> tuple[str, list[str]]:
    def p(name: str, mode: str, q: float, key: str = "t") -> float | None:
        xs = seq.get((name, mode), {}).get(key)
        return pct(xs, q) if xs else None

    raw50, raw95 = p("httpx", "gen", 50), p("httpx", "gen", 95)
    cell50 = p("httpx_cell", "gen", 50)
    rows, verdicts = [], []
    for name, (label, _) in CLIENTS.items():
        if (name, "gen") not in seq:
            continue
        p50, p95 = p(name, "gen", 50), p(name, "gen", 95)
        is_cell = name in ("empty_cell", "httpx_cell", "jupyter_ai", "eliza_magic")
        target, ok = "", None
        if name == "eliza_api":
            target, ok = "<= raw + 0.15 ms", p50 - raw50 <= API_TARGET
        elif name == "eliza_magic":
            target, ok = "<= 2 ms", p50 <= MAGIC_TARGET
        over_cell = f"+{(p50 - cell50) * 1e3:.2f} ms" if is_cell and cell50 and name not in ("httpx_cell", "empty_cell") else ""
        rows.append([label, ms(p50, 3), ms(p95, 3), ratio(p50, raw50), ratio(p95, raw95), over_cell,
                     seq[(name, "gen")]["conns"], target, check(ok)])
        if ok is not None:
            verdicts.append(f"{label}: p50 {ms(p50, 3)} ({ratio(p50, raw50)} raw; paired by round "
                            f"{paired(seq, name, 'gen'):.2f}x) — {'met' if ok else 'OVER'} {target}")
    body = table(["client", "p50", "p95", "p50 vs raw httpx", "p95 vs raw httpx", "over a cell calling raw httpx",
                  f"new TCP connections in the {calls} calls", "target", "met"], rows)
    srows = []
    sraw50, sraw_f = p("httpx", "stream", 50), p("httpx", "stream", 50, "ttfc")
    for name, (label, _) in CLIENTS.items():
        if (name, "stream") not in seq:
            continue
        p50, p95, f50 = p(name, "stream", 50), p(name, "stream", 95), p(name, "stream", 50, "ttfc")
        target, ok = ("", None)
        if name == "eliza_api":
            target, ok = "<= raw + 0.15 ms", p50 - sraw50 <= API_TARGET
        elif name == "eliza_magic":
            target, ok = "<= 2 ms", p50 <= MAGIC_TARGET
        srows.append([label, ms(p50, 3), ms(p95, 3), ratio(p50, sraw50), ms(f50, 3), ratio(f50, sraw_f),
                      seq[(name, "stream")]["conns"], target, check(ok)])
        if ok is not None:
            verdicts.append(f"{label} streaming: p50 {ms(p50, 3)} ({ratio(p50, sraw50)} raw; paired by round "
                            f"{paired(seq, name, 'stream'):.2f}x) — {'met' if ok else 'OVER'} {target}")
    body += ("\n\n**Streaming** (the same answer as 6 SSE content events + usage + `[DONE]`; time to the first "
             "text chunk where the client exposes it):\n\n")
    body += table(["client", "total p50", "total p95", "p50 vs raw httpx", "first chunk p50", "first chunk vs raw",
                   f"new TCP connections in the {calls} streams", "target", "met"], srows)
    warmed = ", ".join(f"{CLIENTS[n][0].replace('*', '')} {c}" for n, c in warm.items())
    body += (f"\n\n{calls} sequential calls per client and mode, in blocks of {BLOCK} taking turns. The server counts "
             "TCP connections: 0 new ones means every timed call reused the connection opened during warm-up "
             f"(warm-up: 3 calls, and 3 streams where the client streams; it opened {warmed}); a count near {calls} means the client "
             "reconnected for every call. `%%ai` has no streaming mode. " + " ".join(notes))
    api_g, api_s = paired(seq, "eliza_api", "gen"), paired(seq, "eliza_api", "stream")
    if api_g and api_s:
        body += (f" Ratios paired by round (each round's block p50 over raw httpx's in the same round, median over "
                 f"rounds), which cancels slow drift in the machine's load: eliza_nb API {api_g:.2f}x, "
                 f"streaming {api_s:.2f}x.")
    return body, verdicts


def report_concurrency(conc: dict) -> str:
    names = [n for n in CLIENTS if any(k[0] == n for k in conc)]
    head = ["threads"] + [CLIENTS[n][0] for n in names] + ["eliza_nb vs raw"]
    rows = []
    for threads in (1, 4, 16):
        tput = {n: conc[(n, "", threads)]["calls"] / statistics.median(conc[(n, "", threads)]["wall"]) for n in names}
        rows.append([threads] + [f"{tput[n]:,.0f} calls/s" for n in names]
                    + [f"{tput['eliza_api'] / tput['httpx']:.2f}x" if "eliza_api" in tput and "httpx" in tput else "—"])
    body = "**Instant server**: throughput (calls per second, higher is better) with N threads sharing one client:\n\n"
    body += table(head, rows)
    rows = []
    for threads in (1, 4, 16):
        calls = conc[(names[0], "/d50", threads)]["calls"]
        ideal = -(-calls // threads) * 0.050
        cells = []
        for n in names:
            wall = statistics.median(conc[(n, "/d50", threads)]["wall"])
            cells.append(f"{wall:.3f} s ({ideal / wall:.2f})")
        rows.append([threads, calls, f"{ideal:.2f} s", *cells])
    body += ("\n\n**Server answering after 50 ms**: wall time of `calls` calls on N threads, and (in brackets) the "
             "fraction of the ideal ceil(calls / N) x 50 ms — 1.00 is perfect overlap:\n\n")
    body += table(["threads", "calls", "ideal"] + [CLIENTS[n][0] for n in names], rows)
    return body + "\n\nMedian of the repetitions; clients take turns. On 2 cores with the GIL, throughput against an " \
                  "instant server cannot grow with threads: the curve shows what each client's own work costs when calls overlap."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--block", type=int, default=10, help="calls per turn")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each concurrency point")
    ap.add_argument("--no-concurrency", action="store_true")
    ap.add_argument("--only", nargs="+", choices=list(CLIENTS), help="a subset of the clients (while working on one)")
    args = ap.parse_args()
    global BLOCK
    BLOCK = args.block
    notes: list[str] = []
    with Loopback.start() as server:
        workers, warm = start_workers(server, notes, args.only)
        try:
            seq = sequential(server, workers, args.calls, args.block)
            conc = None if args.no_concurrency else concurrency(workers, args.reps)
        finally:
            for w in workers.values():
                w.close()
    body, verdicts = report_sequential(seq, warm, args.calls, notes)
    how = f"bench/overhead.py --calls {args.calls} --block {args.block}"
    write_result("overhead", "Per-call overhead against a loopback server that answers at once", body, how)
    if conc is not None:
        write_result("concurrency", "Concurrent calls: 1, 4 and 16 threads sharing one client", report_concurrency(conc),
                     f"bench/overhead.py --reps {args.reps}")
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
