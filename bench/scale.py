"""Scale-out on Dask: ``eliza_nb.embed`` in one process against ``eliza_nb.embed(dask_series)``
on a 2-worker LocalCluster (processes, 1 thread each), alone:
``.venv/bin/python bench/scale.py [--texts 20000] [--partitions 8]`` (``--texts 2000`` for a quick try).

- cold runs (a fresh home each, the converted MiniLM copied in, nothing cached): the loopback
  server (bench/loopback.py, its own process) with ``--delay`` ms a request and
  ``--batch`` texts a request, without a rate limit and with ``--rpm`` requests per
  ``--window`` seconds; and the local MiniLM (CPU-bound). Throughput against the ideal:
  one process sends its requests one after another (batch / delay texts/s), the cluster
  two at a time (2 x that), a rate limit caps both at rpm x batch / window.
- cached runs: the same call again in the same session (each path on its own home), and
  both paths on one home with the memory tier off (every look-up a SQLite read): the
  Dask path's overhead per text.
- probes for the many-worker estimate in docs/scale.md: the round trip of the scheduler
  RPCs a request makes on a cluster (cool-down check and clear, rate-limit booking), a
  distributed.Semaphore acquire/release, the scheduler's cost per task, and the cache
  store's time per batch transaction.

Writes bench/results/scale.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, table, write_result
from loopback import Loopback

sys.path.insert(0, str(ROOT))

WORKERS = 2
VOCAB = ["river", "stone", "garden", "window", "painter", "music", "morning", "winter", "table", "letter", "mountain",
         "bridge", "candle", "forest", "harbor", "lantern", "meadow", "orchard", "pencil", "quiet", "rabbit", "silver",
         "thunder", "valley", "yellow"]


def make_texts(n: int) -> list[str]:
    """``n`` distinct sentences of 12-19 common words and a number (about 20 MiniLM tokens)."""
    return [" ".join([*(VOCAB[(i * 7 + j * (1 + i % 5)) % len(VOCAB)] for j in range(12 + i % 8)), str(i)])
            for i in range(n)]


def lb_entry(base: str, delay_ms: int, batch: int, **extra: Any) -> dict[str, Any]:
    """A keyless OpenAI-protocol provider on the loopback server (64-dim embeddings)."""
    return {"protocol": "openai", "endpoint": f"{base}/d{delay_ms}/v1", "key_env": [],
            "models": {"small": "lb-small", "medium": "lb-small", "large": "lb-small", "embedding": "lb-embed"},
            "embedding_dims": 64, "embedding_batch_size": batch, **extra}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def max_in_window(times: list[float], span: float) -> int:
    """The most arrivals in any half-open window of ``span`` seconds."""
    times, best, j = sorted(times), 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - span:
            j += 1
        best = max(best, i - j + 1)
    return best


def log_bookings(limiter: Any) -> list[float]:
    """Record the start (wall clock) of every slot ``limiter`` books from now on; returns the log."""
    log: list[float] = []
    reserve = limiter.reserve

    def logged(*args: Any, **kwargs: Any) -> Any:
        booked = reserve(*args, **kwargs)
        if booked is not None:  # (start on the limiter's monotonic clock, wait)
            log.append(booked[0] + time.time() - time.monotonic())
        return booked

    limiter.reserve = logged
    return log


def arrival_lags(booked: list[float], arrived: list[float]) -> list[float]:
    """The k-th arrival at the server less the k-th booked start, sorted (requests carry no id to pair them)."""
    return sorted(a - b for a, b in zip(sorted(arrived), sorted(booked), strict=False))


# -- task bodies shipped to the workers and the scheduler (cloudpickled by value from __main__) ------
def _book_on_scheduler(dask_scheduler: Any = None) -> None:
    from eliza_nb.scale.limits import PLUGIN_NAME

    plugin = dask_scheduler.plugins[PLUGIN_NAME]
    plugin.bench_log = log_bookings(plugin.limiter)


def _booked_on_scheduler(dask_scheduler: Any = None) -> list[float]:
    from eliza_nb.scale.limits import PLUGIN_NAME

    return list(dask_scheduler.plugins[PLUGIN_NAME].bench_log)


def _noop(i: int) -> int:
    return i


def _rpc_probe(n: int) -> dict[str, float]:
    """Median seconds of each scheduler RPC a cluster request makes, from this worker's task thread."""
    from distributed import Semaphore, get_worker

    from eliza_nb.scale.limits import SchedulerCalls

    call = SchedulerCalls(get_worker())
    me = get_worker().address
    ops = {"cool_left": ("eliza_nb_cool_left", {"target": "probe", "caller": f"{me}/1"}),
           "cool_clear": ("eliza_nb_cool_clear", {"target": "probe"}),
           "reserve": ("eliza_nb_reserve", {"provider": f"probe-{me}", "limits": {"rpm": 1e9, "window_s": 1.0},
                                            "tokens": 0.0, "max_wait": None})}
    out = {}
    for name, (op, kwargs) in ops.items():
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            call(op, **kwargs)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    sem, times = Semaphore(max_leases=1000, name="eliza_nb-bench-probe"), []
    for _ in range(max(10, n // 4)):
        t0 = time.perf_counter()
        sem.acquire()
        sem.release()
        times.append(time.perf_counter() - t0)
    out["semaphore"] = statistics.median(times)
    return out


class Bench:
    """The cluster, the loopback server, the prepared model home and the texts of one run."""

    def __init__(self, args: argparse.Namespace, tmp: Path, server: Loopback, client: Any) -> None:
        import dask.dataframe as dd
        import pandas as pd

        from eliza_nb.adapters.local_models import MINILM, prepare_embedding_model

        self.args, self.tmp, self.server, self.client = args, tmp, server, client
        self.models_home = tmp / "models_home"
        prepare_embedding_model(self.models_home, MINILM)
        self.series = pd.Series(make_texts(args.texts), name="text")
        self.ds = dd.from_pandas(self.series, npartitions=args.partitions)
        self.homes = 0

    def runtime(self, config: dict[str, Any], home: Path | None = None) -> Any:
        """A Runtime on ``home`` (default: a fresh one with the converted model), installed as eliza_nb's."""
        import eliza_nb
        from eliza_nb.core.runtime import Runtime

        if home is None:
            self.homes += 1
            home = self.tmp / f"home{self.homes}"
            shutil.copytree(self.models_home / "models", home / "models")
        rt = Runtime(home, config=config, env={})
        eliza_nb.set_runtime(rt)
        return rt

    def single(self, provider: str, as_array: bool = False) -> tuple[float, Any]:
        import eliza_nb

        return timed(lambda: eliza_nb.embed(self.series, provider=provider, as_array=as_array))

    def dask(self, provider: str, as_array: bool = False) -> tuple[float, Any]:
        import eliza_nb

        return timed(lambda: eliza_nb.embed(self.ds, provider=provider, client=self.client,
                                            as_array=as_array).compute())

    def repeat(self, fn: Callable[[], tuple[float, Any]]) -> float:
        return statistics.median(fn()[0] for _ in range(self.args.repeats))

    def requests(self) -> dict[str, Any]:
        hits = self.server.hits()
        return {"n": len(hits["hits"]), "inflight": hits["max_inflight"], "times": [h[0] for h in hits["hits"]]}

    def scenario(self, label: str, config: dict[str, Any], provider: str, window: float | None) -> dict[str, Any]:
        """Cold runs of both paths (fresh homes), then each path's second run; returns the figures."""
        import numpy as np

        from eliza_nb.scale import attach, detach

        out: dict[str, Any] = {"label": label}
        rt_single = self.runtime(config)
        booked = {"single": log_bookings(rt_single.ratelimits)}
        self.server.reset()
        out["single_s"], single = self.single(provider)
        out["single_req"] = self.requests()
        self.server.reset()
        out["single_second_s"] = self.repeat(lambda: self.single(provider))
        out["single_second_req"] = self.requests()["n"]
        rt_cluster = self.runtime(config)
        out["attach_s"] = timed(lambda: attach(self.client, rt_cluster))[0]
        if window is not None:
            self.client.run_on_scheduler(_book_on_scheduler)
        self.server.reset()
        out["dask_s"], clustered = self.dask(provider)
        out["dask_req"] = self.requests()
        if window is not None:
            booked["dask"] = self.client.run_on_scheduler(_booked_on_scheduler)
        self.server.reset()
        out["dask_second_s"] = self.repeat(lambda: self.dask(provider))
        out["dask_second_req"] = self.requests()["n"]
        a, b = np.stack(single.to_numpy()), np.stack(clustered.to_numpy())
        out["same_index"] = bool(single.index.equals(clustered.index))
        out["max_diff"] = float(np.abs(a - b).max())
        if window is not None:
            for side in ("single", "dask"):  # as the limiter booked them, and as they reached the server
                times = out[f"{side}_req"]["times"]
                lags = arrival_lags(booked[side], times)
                out[f"{side}_window_max"] = (max_in_window(booked[side], window), max_in_window(times, window),
                                             lags[int(0.99 * (len(lags) - 1))], lags[-1])
        detach(self.client)
        out["home"] = rt_single.home
        rt_single.close()
        rt_cluster.close()
        return out

    def same_home(self, label: str, config: dict[str, Any], provider: str, home: Path) -> dict[str, Any]:
        """Both paths reading one fully cached home with the memory tier off: the Dask path's overhead."""
        from eliza_nb.scale import attach, detach

        cfg = {**config, "cache": {"memory_max_entries": 0}}
        rt = self.runtime(cfg, home)
        attach(self.client, rt)
        self.server.reset()
        out: dict[str, Any] = {"label": label}
        for as_array in (False, True):
            runs: dict[str, list[float]] = {"single": [], "dask": []}
            self.single(provider, as_array)  # warm-up: the store's pages in the OS cache, the workers' runtimes
            self.dask(provider, as_array)
            for _ in range(self.args.repeats):  # alternating, so drift in the machine's load hits both
                runs["single"].append(self.single(provider, as_array)[0])
                runs["dask"].append(self.dask(provider, as_array)[0])
            kind = "array" if as_array else "series"
            out[kind] = {k: statistics.median(v) for k, v in runs.items()}
        out["requests"] = self.requests()["n"]
        detach(self.client)
        rt.close()
        return out

    def probes(self) -> dict[str, Any]:
        """RPC round trips from the workers, the scheduler's cost per task, the store's per-batch write."""
        import numpy as np

        from eliza_nb.core.cache.tiers import Cache, EmbeddingSpace
        from eliza_nb.core.ratelimit import RateLimiter
        from eliza_nb.scale.limits import LimitsPlugin

        c, out = self.client, {}
        c.register_plugin(LimitsPlugin())
        workers = sorted(c.scheduler_info(n_workers=-1)["workers"])
        c.submit(_rpc_probe, 20, workers=workers[:1], pure=False).result()  # warm-up
        out["rpc_one"] = c.submit(_rpc_probe, 400, workers=workers[:1], pure=False).result()
        both = [c.submit(_rpc_probe, 400, workers=[w], pure=False) for w in workers]
        res = c.gather(both)
        out["rpc_both"] = {k: statistics.median(r[k] for r in res) for k in res[0]}
        limiter, limits, times = RateLimiter(time.monotonic, lambda s: None), {"rpm": 1e9, "window_s": 1.0}, []
        for _ in range(2000):
            t0 = time.perf_counter()
            limiter.reserve("probe", limits)
            times.append(time.perf_counter() - t0)
        out["reserve_local"] = statistics.median(times)
        c.gather(c.map(_noop, range(200), pure=False))  # warm-up
        m = 2000
        out["per_task"] = timed(lambda: c.gather(c.map(_noop, range(m), pure=False)))[0] / m
        out["task_rtt"] = statistics.median(timed(lambda i=i: c.submit(_noop, i, pure=False).result())[0]
                                            for i in range(50))
        cache = Cache(self.tmp / "store_probe")
        rng = np.random.default_rng(7)
        for dims, batch in ((64, self.args.batch), (384, 64)):
            space, times = EmbeddingSpace("probe", f"m{dims}", dims, True), []
            for r in range(200):
                recs = [(space.key(f"{r} {i}"), space.record(rng.standard_normal(dims).astype(np.float32)))
                        for i in range(batch)]
                t0 = time.perf_counter()
                cache.persist_new(recs, space.tag)
                times.append(time.perf_counter() - t0)
            out[f"write_{dims}"] = (batch, statistics.median(times))
        keys = [EmbeddingSpace("probe", "m384", 384, True).key(f"{r} {i}") for r in range(40) for i in range(64)]
        disk = cache.disk
        disk.get_many(keys)
        out["read_2560"] = statistics.median(timed(lambda: disk.get_many(keys))[0] for _ in range(5))
        cache.close()
        return out


def _slack(window: float) -> float:
    try:
        from eliza_nb.core.ratelimit import arrival_slack
    except ImportError:  # a version without the slack
        return 0.0
    return float(arrival_slack(window))


def _ideal(args: argparse.Namespace, workers: int, rpm: float | None = None) -> float:
    """Texts/s when requests take exactly the delay, ``workers`` at a time, capped by the rate limit."""
    rate = workers * args.batch / (args.delay / 1000)
    return rate if rpm is None else min(rate, rpm * args.batch / args.window)


def render(args: argparse.Namespace, runs: list[dict[str, Any]], same: list[dict[str, Any]], probe: dict[str, Any],
           load_start: tuple[float, float, float], loads: list[tuple[str, float]], wall: float) -> str:
    n = args.texts
    rows = []
    for r in runs:
        ideal = r.get("ideal")
        for path, key, workers in (("one process", "single", 1), (f"{WORKERS}-worker cluster", "dask", WORKERS)):
            secs, req = r[f"{key}_s"], r[f"{key}_req"]
            rate = n / secs
            want = ideal[workers] if ideal else None  # MiniLM: CPU-bound, only the speed-up says anything
            vs = "" if key == "single" else f"{r['single_s'] / secs:.2f}x"
            most = r.get(f"{key}_window_max")
            window = (f" (most in any {args.window:g} s: booked {most[0]}, at the server {most[1]}; arrival lag p99 "
                      f"{most[2] * 1000:.0f} ms, max {most[3] * 1000:.0f} ms)" if most else "")
            rows.append([r["label"], path, f"{secs:.1f}", f"{rate:,.0f}", f"{want:,.0f}" if want else "—",
                         f"{rate / want:.2f}" if want else "—", vs,
                         f"{req['n']:,}{window}" if ideal else "—", req["inflight"] if ideal else "—"])
    body = "**Cold runs** (a fresh home each, nothing cached):\n\n" + table(
        ["provider", "path", "time s", "texts/s", "ideal texts/s", "fraction of ideal", "speed-up over one process",
         "requests sent", "most in flight"], rows)
    rows = []
    for r in runs:
        rows.append([r["label"], f"{r['single_second_s'] * 1000:.0f}", f"{r['dask_second_s'] * 1000:.0f}",
                     f"{(r['dask_second_s'] - r['single_second_s']) / n * 1e6:.1f}",
                     f"{r['single_second_req']} / {r['dask_second_req']}"])
    body += ("\n\n**Second run**, everything cached (the same call again in the same session; each path on its own "
             "home, memory tier on):\n\n" + table(
                 ["provider", "one process ms", f"{WORKERS}-worker cluster ms", "cluster overhead µs/text",
                  "requests sent (one process / cluster)"], rows))
    rows = []
    for s in same:
        for kind, what in (("series", "Series of vectors"), ("array", "`as_array=True`")):
            m = s[kind]
            rows.append([s["label"], what, f"{m['single'] * 1000:.0f}", f"{m['dask'] * 1000:.0f}",
                         f"{(m['dask'] - m['single']) / n * 1e6:.1f}", f"{m['dask'] / m['single']:.1f}x"])
    body += ("\n\n**One cached home, both paths, memory tier off** (`[cache] memory_max_entries = 0`: every look-up "
             "reads the SQLite store; requests sent: " + ", ".join(str(s["requests"]) for s in same) + "):\n\n"
             + table(["provider", "returns", "one process ms", f"{WORKERS}-worker cluster ms",
                      "cluster overhead µs/text", "cluster / one process"], rows))
    one, both = probe["rpc_one"], probe["rpc_both"]
    rows = [[f"scheduler RPC `{op}` from a worker's task (one worker / both at once)",
             f"{one[op] * 1e6:.0f} / {both[op] * 1e6:.0f} µs"] for op in ("cool_left", "cool_clear", "reserve")]
    rows += [["`distributed.Semaphore` acquire + release (one worker / both)",
              f"{one['semaphore'] * 1e3:.2f} / {both['semaphore'] * 1e3:.2f} ms"],
             ["RateLimiter.reserve in-process (for comparison)", f"{probe['reserve_local'] * 1e6:.1f} µs"],
             ["scheduler throughput: 2,000 no-op tasks mapped and gathered", f"{probe['per_task'] * 1e3:.2f} ms a task"],
             ["one task submitted and its result back (median of 50)", f"{probe['task_rtt'] * 1e3:.2f} ms"]]
    for dims in (64, 384):
        batch, secs = probe[f"write_{dims}"]
        rows.append([f"cache store: one batch of {batch} new {dims}-d vectors, one transaction (first writer wins)",
                     f"{secs * 1e3:.2f} ms ({batch / secs:,.0f} vectors/s under one write lock)"])
    rows.append(["cache store: read 2,560 384-d vectors by key (one look-up, warm)",
                 f"{probe['read_2560'] * 1e3:.1f} ms ({probe['read_2560'] / 2560 * 1e6:.1f} µs a vector)"])
    body += "\n\n**What a cluster adds per request and per task** (medians):\n\n" + table(["measured", "value"], rows, "lr")
    checks = []
    for r in runs:
        same_vecs = "bitwise equal" if r["max_diff"] == 0 else f"max |Δ| {r['max_diff']:.1e}"
        checks.append(f"{r['label']}: {same_vecs}, index {'kept' if r['same_index'] else '**not kept**'}")
    body += (
        f"\n\n{n:,} distinct sentences (12-19 words and a number, about 20 MiniLM tokens), a dask Series of "
        f"{args.partitions} partitions ({n // args.partitions:,} texts each) from `dd.from_pandas`; the cluster a "
        f"`LocalCluster` of {WORKERS} worker processes x 1 thread started once, the loopback server its own process. "
        f"Loopback: {args.delay} ms a request, {args.batch} texts a request (`embedding_batch_size`), 64-dim vectors; "
        f"the rate limit `rate_limit = {{ rpm = {args.rpm:g}, window_s = {args.window:g} }}` ({args.rpm:g} requests "
        f"per {args.window:g} s, counted on the scheduler for the cluster). Ideal = requests of exactly the delay, one "
        f"at a time in one process, {WORKERS} at a time on the cluster, capped by rpm x batch / window; a partition's "
        "last request may be short, so the cluster sends a few more requests than one process. MiniLM: the local "
        "llama.cpp model, 2 threads in one process, 1 thread in each worker (the runtime plugin's share of the 2 "
        "cores); CPU-bound, so the 2 cores are the ceiling for both paths and only the speed-up is shown (one process's "
        "2 llama.cpp threads meet at every layer, two 1-thread processes never wait on each other). Cold times: one "
        "run each (the embed call to its result; the cluster's `attach`, making the workers' runtimes, timed apart: "
        + ", ".join(f"{r['label']} {r['attach_s'] * 1000:.0f} ms" for r in runs)
        + f"). Cached times: medians of {args.repeats} runs; with the memory tier off the cluster's two workers "
        "read the store in parallel, which offsets some of its overhead. Rate limit: the most requests in any "
        f"{args.window:g} s as the limiter booked their starts (on the scheduler for the cluster) and as they reached "
        "the server; the arrival lag pairs the k-th booking with the k-th arrival (requests carry no id). The limiter "
        f"keeps bookings {_slack(args.window) * 1000:.0f} ms more than the window apart (`arrival_slack`), so only a "
        "lag beyond that puts one request too many into the server's window. "
        "Cluster against one process: " + "; ".join(checks)
        + " (MiniLM's vectors depend by ~1e-4 on which texts share a llama.cpp batch, and partitions cut the batches "
        f"differently). Load average at the start {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f} "
        "(1 / 5 / 15 min), 1-min load after each part: " + ", ".join(f"{k} {v:.2f}" for k, v in loads)
        + f" (the machine is shared with other work); measured in {wall:.0f} s.")
    return body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16, help="texts per loopback request")
    parser.add_argument("--delay", type=int, default=50, help="ms per loopback request")
    parser.add_argument("--rpm", type=float, default=30, help="requests per --window seconds in the rate-limited run")
    parser.add_argument("--window", type=float, default=1.0, help="the rate limit's window_s")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cached measurement (median)")
    parser.add_argument("--skip", default="", help="comma list of: loopback, rpm, minilm, probes")
    parser.add_argument("--out", default="scale", help="bench/results/OUT.md")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    from distributed import Client, LocalCluster

    load_start, t0 = os.getloadavg(), time.perf_counter()
    runs, same, loads = [], [], []
    with (tempfile.TemporaryDirectory(prefix="eliza-bench-scale-") as tmp, Loopback.start() as server,
          LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0",
                       silence_logs=40) as lc, Client(lc) as client):
        b = Bench(args, Path(tmp), server, client)
        lb = {"lb": lb_entry(server.base, args.delay, args.batch)}
        label = f"loopback, {args.delay} ms"
        if "loopback" not in skip:
            r = b.scenario(label, {"providers": lb}, "lb", None)
            r["ideal"] = {1: _ideal(args, 1), WORKERS: _ideal(args, WORKERS)}
            runs.append(r)
            loads.append(("loopback", os.getloadavg()[0]))
            print(f"{label}: one process {r['single_s']:.1f} s, cluster {r['dask_s']:.1f} s", flush=True)
        if "rpm" not in skip:
            limited = {"lb": {**lb["lb"], "rate_limit": {"rpm": args.rpm, "window_s": args.window}}}
            r = b.scenario(f"{label}, {args.rpm:g} per {args.window:g} s", {"providers": limited}, "lb", args.window)
            r["ideal"] = {1: _ideal(args, 1, args.rpm), WORKERS: _ideal(args, WORKERS, args.rpm)}
            runs.append(r)
            loads.append(("rate limit", os.getloadavg()[0]))
            print(f"rate-limited: one process {r['single_s']:.1f} s, cluster {r['dask_s']:.1f} s", flush=True)
        if "minilm" not in skip:
            r = b.scenario("local MiniLM", {}, "llama_local", None)
            for side in ("single", "dask"):
                r[f"{side}_req"] = {"n": 0, "inflight": 0, "times": []}
            r["ideal"] = None
            runs.append(r)
            loads.append(("MiniLM", os.getloadavg()[0]))
            print(f"MiniLM: one process {r['single_s']:.1f} s, cluster {r['dask_s']:.1f} s", flush=True)
        for r in runs:
            if r["label"] in (label, "local MiniLM"):
                same.append(b.same_home(r["label"], {"providers": lb} if r["label"] == label else {},
                                        "lb" if r["label"] == label else "llama_local", r["home"]))
        probe = b.probes() if "probes" not in skip else None
        loads.append(("cached runs and probes", os.getloadavg()[0]))
        import eliza_nb

        eliza_nb.set_runtime(None)
    if probe is None or not runs:
        print("(partial run: nothing written)")
        return
    body = render(args, runs, same, probe, load_start, loads, time.perf_counter() - t0)
    how = f"bench/scale.py --texts {args.texts} --partitions {args.partitions} --batch {args.batch} --delay {args.delay} " \
          f"--rpm {args.rpm:g} --window {args.window:g} --repeats {args.repeats}"
    write_result(args.out, "Scale-out: one process against a 2-worker Dask LocalCluster", body, how)


if __name__ == "__main__":
    main()
