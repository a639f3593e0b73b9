"""Benchmarks: models x presets x cases x repeats through the runtime, as a tidy DataFrame.

Every call goes through :class:`Runtime` (settings merge, budgets, rate limits, ledger) with
the cache off by default, so timings are real; failover is off, so each row measures the
model it names. A failing case records its error and the run goes on.

``latency_s`` and ``ttft_s`` are service time: what a call spent waiting before its model
started on it (``queue_s``: the local model runs one call at a time, so at concurrency 4 the
fourth equal call waits for three) is its own column, so p50/p95 compare like with like at
any concurrency.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from itertools import product
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, ElizaError
from .checks import make_scorer, score_json_valid
from .frame import BenchmarkFrame
from .grid import parse_cases

COLUMNS = ["model", "preset", "case_id", "repeat", "input", "expected", "output", "latency_s", "ttft_s",
           "queue_s", "prompt_tokens", "completion_tokens", "tokens_per_s", "cost_usd", "cache_hit", "score", "error"]


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress is a nicety; the run goes on without it
        return None
    return tqdm(total=total, desc="benchmark", unit="call", leave=True)


def empty_row(job: Mapping[str, Any], error: str | None = None) -> dict[str, Any]:
    """A job's row before (or without) an answer: what it asked, every measure NaN."""
    return {"model": job["model"], "preset": job["preset"] or "none", "case_id": job["case"]["id"],
            "repeat": job["repeat"], "input": job["case"]["input"], "expected": job["case"]["expected"],
            "output": None, "latency_s": math.nan, "ttft_s": math.nan, "queue_s": math.nan,
            "prompt_tokens": math.nan, "completion_tokens": math.nan, "tokens_per_s": math.nan, "cost_usd": math.nan,
            "cache_hit": False, "score": math.nan, "error": error}


def run_job(runtime: Any, job: Mapping[str, Any], score: Callable[[str, Any], float], options: Mapping[str, Any]) -> dict[str, Any]:
    """One grid cell: the call (streamed, for TTFT), its measures and its score, as a row."""
    row = empty_row(job)
    t0 = time.perf_counter()
    try:
        stream = runtime.stream(job["case"]["input"], provider=job["model"], preset=job["preset"] or "", failover=False, **dict(options))
        for _ in stream:
            pass
        r = stream.result
    except ElizaError as exc:
        row["latency_s"] = time.perf_counter() - t0
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    except Exception as exc:  # a crash in one case must not end the run
        row["latency_s"] = time.perf_counter() - t0
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    # Service time: the wait for a model busy with another call of this run is queue_s, apart.
    queue_s = 0.0 if r.cached else r.queue_s
    latency_s = r.latency_s - queue_s
    ttft_s = r.ttft_s - queue_s if r.ttft_s is not None else math.nan
    gen_s = latency_s - (0.0 if math.isnan(ttft_s) else ttft_s)
    row.update(output=r.text, latency_s=latency_s, ttft_s=ttft_s, queue_s=queue_s,
               prompt_tokens=r.usage.prompt_tokens if r.usage.prompt_tokens is not None else math.nan,
               completion_tokens=r.usage.completion_tokens if r.usage.completion_tokens is not None else math.nan,
               cache_hit=r.cached)
    if r.usage.completion_tokens:
        row["tokens_per_s"] = r.usage.completion_tokens / (gen_s if gen_s > 0 else latency_s)
    entry = runtime.catalog.get(r.provider)
    p_in, p_out = entry.price(r.model)
    if r.usage.prompt_tokens is not None or r.usage.completion_tokens is not None:
        row["cost_usd"] = 0.0 if r.cached else ((r.usage.prompt_tokens or 0) * p_in + (r.usage.completion_tokens or 0) * p_out) / 1e6
    if job["case"]["expected"] is not None or score is score_json_valid:
        try:
            row["score"] = float(score(r.text, job["case"]["expected"]))
        except Exception as exc:
            row["error"] = f"scorer failed: {type(exc).__name__}: {exc}"
    return row


#: runs the jobs somewhere else (a Dask cluster: eliza_nb/scale) and returns their rows in order:
#: ``runner(jobs, scorer, options, concurrency, progress_bar)``
Runner = Callable[..., list[dict[str, Any]]]


def benchmark(runtime: Any, cases: Any, models: Sequence[str] | None = None, presets: Sequence[str | None] | None = None,
              repeats: int = 3, concurrency: int | None = None, scorer: str | Callable[[str, Any], float] = "contains",
              cache: bool = False, progress: bool = True, runner: Runner | None = None, **settings: Any) -> BenchmarkFrame:
    """Run every case on every model x preset ``repeats`` times, ``concurrency`` calls at once
    (default 4 here; on a cluster, as many as its threads).

    ``models``: "provider:class" or "provider:model" strings (default: the session's).
    ``settings``: any generate option applied to every call (temperature, max_tokens, ...).
    ``runner``: where the calls run instead of this process's threads (eliza_nb.scale).
    """
    if repeats < 1 or (concurrency is not None and concurrency < 1):
        raise ConfigError("repeats and concurrency must be at least 1")
    case_list = parse_cases(cases)
    state = runtime.session.state
    model_list = list(models or [f"{state.provider}:{state.model or state.model_class}"])
    preset_list = list(presets) if presets else [None]
    for m in model_list:  # fail fast on a typo, before any call
        runtime.resolve(m)
    for p in preset_list:
        runtime.presets.get(p)
    score = make_scorer(scorer, runtime)
    from ..generation import CALL_OPTIONS

    options = dict(settings)
    if "cache" in CALL_OPTIONS:  # timings must be real: the generation cache stays off unless asked
        options["cache"] = cache
    jobs = [{"model": m, "preset": p, "case": c, "repeat": r}
            for m, p, c, r in product(model_list, preset_list, case_list, range(repeats))]
    bar = _progress(len(jobs), progress)
    try:
        if runner is not None:
            rows = runner(jobs, scorer, options, concurrency, bar)
        else:
            rows = _run_threads(runtime, jobs, score, options, concurrency or 4, bar)
    finally:
        if bar is not None:
            bar.close()
    frame = BenchmarkFrame(rows, columns=COLUMNS)
    frame.scorer_name = scorer if isinstance(scorer, str) else getattr(scorer, "__name__", "custom")
    return frame


def _run_threads(runtime: Any, jobs: list[dict[str, Any]], score: Callable[[str, Any], float], options: dict[str, Any],
                 concurrency: int, bar: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{} for _ in jobs]
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=min(concurrency, len(jobs)), thread_name_prefix="eliza-bench") as pool:
        futures = {pool.submit(run_job, runtime, job, score, options): i for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            rows[futures[fut]] = fut.result()
            if bar is not None:
                with lock:
                    bar.update(1)
    return rows


def benchmark_embeddings(runtime: Any, texts: Iterable[str], models: Sequence[str] | None = None, repeats: int = 3) -> pd.DataFrame:
    """Latency and dims per embedding model, measured on the provider (the cache is bypassed)."""
    items = [str(t) for t in texts]
    if not items:
        raise ConfigError("benchmark_embeddings needs at least one text")
    rows = []
    specs: list[str | None] = list(models) if models else [None]
    for spec in specs:
        target = runtime.resolve_embedding(spec.split(":")[0] if spec else None, spec.split(":", 1)[1] if spec and ":" in spec else None)
        times, dims, error = [], math.nan, None
        for _ in range(repeats):
            t0 = time.perf_counter()
            try:
                vectors = runtime.embed_raw(items, target)
            except ElizaError as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
            times.append(time.perf_counter() - t0)
            dims = int(np.asarray(vectors).shape[1])
        best = float(np.median(times)) if times else math.nan
        rows.append({"model": str(target), "dims": dims, "texts": len(items), "latency_s": best,
                     "ms_per_text": best / len(items) * 1000, "texts_per_s": len(items) / best if times else math.nan,
                     "error": error})
    return pd.DataFrame(rows)
