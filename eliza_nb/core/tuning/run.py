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

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, ElizaError
from .frame import BenchmarkFrame
from .grid import Grid, expand, parse_cases, parse_grid, parse_prompts, render

#: a row's columns when the grid sweeps nothing; a grid's axes follow "prompt"
COLUMNS = ["config", "model", "preset", "prompt", "case_id", "repeat", "input", "expected", "output", "latency_s", "ttft_s",
           "queue_s", "prompt_tokens", "completion_tokens", "tokens_per_s", "cost_usd", "judge_cost_usd", "cache_hit",
           "score", "passed", "checks", "reason", "error"]


def columns_for(axes: Sequence[str]) -> list[str]:
    at = COLUMNS.index("prompt") + 1
    return [*COLUMNS[:at], *axes, *COLUMNS[at:]]


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
    return {"config": job["config"], "model": job["model"], "preset": job["preset"] or "none", "prompt": job["prompt"] or "",
            **job["grid"], "case_id": job["case"]["id"], "repeat": job["repeat"], "input": job["case"]["input"],
            "expected": job["case"]["expected"], "output": None, "latency_s": math.nan, "ttft_s": math.nan,
            "queue_s": math.nan, "prompt_tokens": math.nan, "completion_tokens": math.nan, "tokens_per_s": math.nan,
            "cost_usd": math.nan, "judge_cost_usd": math.nan, "cache_hit": False, "score": math.nan, "passed": None,
            "checks": None, "reason": None, "error": error}


def run_job(runtime: Any, job: Mapping[str, Any], check: Callable[[Mapping[str, Any], dict[str, Any]], Mapping[str, Any]],
            options: Mapping[str, Any]) -> dict[str, Any]:
    """One grid cell: the call (streamed, for TTFT) with the cell's grid settings and prompt,
    its measures, and its checks, as a row."""
    row = empty_row(job)
    t0 = time.perf_counter()
    try:
        stream = runtime.stream(render(job["template"], job["case"]["input"]), provider=job["model"],
                                preset=job["preset"] or "", failover=False, **{**options, **job["grid"]})
        for _ in stream:
            pass
        r = stream.result
    except Exception as exc:  # an ElizaError, or a crash in one case: either way the run goes on
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
    try:
        with runtime.ledger.capture() as graded:  # the judge's calls, if any: their cost is the row's judge_cost_usd
            row.update(check(job["case"], row))
    except Exception as exc:  # a user's check that raises: that row's error, not the run's
        row["error"] = f"check failed: {type(exc).__name__}: {exc}"
    judged = [r.cost_usd for r in graded if r.purpose == "judge"]
    if judged:
        row["judge_cost_usd"] = math.fsum(c for c in judged if c == c) if any(c == c for c in judged) else math.nan
    return row


#: runs the jobs somewhere else (a Dask cluster: eliza_nb/scale):
#: ``runner(jobs, scoring, options, concurrency, on_row)`` calls ``on_row(index, row)`` as each job
#: finishes and stops submitting when it returns False; ``scoring`` is build_checker's arguments
Runner = Callable[..., None]


def benchmark(runtime: Any, cases: Any, models: Sequence[str] | None = None, presets: Sequence[str | None] | None = None,
              repeats: int = 3, concurrency: int | None = None, scorer: str | Callable[[str, Any], float] = "contains",
              cache: bool = False, progress: bool = True, runner: Runner | None = None, *,
              grid: Mapping[str, Any] | None = None, prompts: Mapping[str, str] | None = None, judge: str | None = None,
              dry_run: bool = False, max_cost_usd: float | None = None, confirm: bool = False, resume: str | None = None,
              save: bool = True, **settings: Any) -> Any:
    """Run models × presets × grid points × prompt variants × cases × repeats, ``concurrency``
    calls at once (default 4 here; on a cluster, as many as its threads), each row carrying
    the values that produced it; see ``eliza_nb.benchmark`` for the options."""
    from ..settings import ModelSettings, pop_settings
    from .checks import build_checker
    from .estimate import estimate

    if repeats < 1 or (concurrency is not None and concurrency < 1):
        raise ConfigError("repeats and concurrency must be at least 1")
    options = _call_options(settings, cache)
    fixed = pop_settings(dict(options))
    try:
        ModelSettings.from_mapping(fixed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"benchmark: {exc}") from None
    case_list = parse_cases(cases)
    axes = parse_grid(grid)
    both = sorted(set(axes) & set(fixed))
    if both:
        raise ConfigError(f"{', '.join(both)} both fixed and swept by the grid: give it in one place")
    state = runtime.session.state
    model_list = list(models or [f"{state.provider}:{state.model or state.model_class}"])
    preset_list: list[str | None] = list(presets) if presets else [None]
    for m in model_list:  # fail fast on a typo, before any call
        runtime.resolve(m)
    for p in preset_list:
        runtime.presets.get(p)
    plan = expand(case_list, model_list, preset_list, axes, parse_prompts(prompts), repeats, confirm=confirm or dry_run)
    check = build_checker(scorer, runtime, case_list, judge=judge)
    if dry_run:
        return estimate(runtime, plan, options, check)
    if max_cost_usd is not None:  # counted only when asked for: it tokenizes every cell's prompt
        cost = estimate(runtime, plan, options, check)
        expected = float(cost["est_cost_usd"].sum(min_count=1)) if len(cost) else 0.0
        if expected == expected and expected > max_cost_usd:
            raise ConfigError(f"this grid is estimated at ${expected:.4f}, over max_cost_usd ${max_cost_usd:g}; "
                              "see dry_run=True for the estimate per provider")
    columns = columns_for(plan.axes)
    log, done = _run_log(runtime, resume, save, plan, columns, scorer, repeats, settings, model_list, preset_list, prompts, grid)
    keys = [(job["config"], job["case"]["id"], job["repeat"]) for job in plan.jobs]
    todo = [i for i, key in enumerate(keys) if key not in done]
    rows: dict[int, dict[str, Any]] = {i: done[key] for i, key in enumerate(keys) if key in done}
    guard = _CostGuard(max_cost_usd, rows.values())
    bar = _progress(len(todo), progress)
    lock = threading.Lock()

    def on_row(i: int, row: dict[str, Any]) -> bool:
        with lock:
            rows[i] = row
            if log is not None:
                log.append(row)
            if bar is not None:
                bar.update(1)
            return guard.add(row)

    status = "finished"
    try:
        jobs = [plan.jobs[i] for i in todo]
        if runner is not None:
            runner(jobs, {"scorer": scorer, "judge": judge}, options, concurrency, lambda k, row: on_row(todo[k], row))
        else:
            _run_threads(runtime, jobs, check, options, concurrency or 4, lambda k, row: on_row(todo[k], row))
        if guard.stopped:
            status = "stopped"
    except BaseException:
        status = "interrupted"
        raise
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.finish(status)
    frame = BenchmarkFrame([rows[i] for i in sorted(rows)], columns=columns)
    frame.scorer_name = scorer if isinstance(scorer, str) else getattr(scorer, "__name__", "custom")
    frame.config_columns = plan.config_columns
    frame.run_id = log.run_id if log is not None else resume
    if guard.stopped:
        frame.attrs["stopped"] = guard.message(len(rows), len(plan.jobs))
        runtime.warn(frame.attrs["stopped"])
    return frame


def _call_options(settings: Mapping[str, Any], cache: bool) -> dict[str, Any]:
    """The options every call gets: settings, and the call options a benchmark leaves to the
    user; anything else is a one-line error before any call."""
    from ..generation import CALL_OPTIONS
    from ..settings import ALIASES, SETTINGS

    ours = {"provider", "model_class", "model", "preset", "failover"}  # set per cell by the grid
    allowed = (set(CALL_OPTIONS) - ours) | set(SETTINGS) | set(ALIASES)
    unknown = sorted(set(settings) - allowed)
    if unknown:
        valid = ("repeats, concurrency, scorer, cache, progress, grid, prompts, judge, dry_run, max_cost_usd, confirm, "
                 "resume, save, client, and the settings")
        raise ConfigError(f"benchmark: unknown option(s) {', '.join(unknown)}; valid: {valid} ({', '.join(SETTINGS)})")
    options = dict(settings)
    options["cache"] = cache  # timings must be real: the generation cache stays off unless asked
    return options


class _CostGuard:
    """Stops a run whose spend passes max_cost_usd (the rows done are kept)."""

    def __init__(self, limit: float | None, rows: Iterable[Mapping[str, Any]]) -> None:
        self.limit, self.spent, self.stopped = limit, 0.0, False
        for row in rows:
            self.add(row)

    def add(self, row: Mapping[str, Any]) -> bool:
        for cost in (row.get("cost_usd"), row.get("judge_cost_usd")):
            if isinstance(cost, (int, float)) and cost == cost:
                self.spent += float(cost)
        if self.limit is not None and self.spent > self.limit:
            self.stopped = True
        return not self.stopped

    def message(self, done: int, total: int) -> str:
        return (f"stopped: spent ${self.spent:.4f}, over max_cost_usd ${self.limit:g}; {done} of {total} calls done "
                "(resume= finishes it)")


def _run_log(runtime: Any, resume: str | None, save: bool, plan: Grid, columns: list[str], scorer: Any, repeats: int,
             settings: Mapping[str, Any], models: list[str], presets: list[str | None], prompts: Any,
             grid: Any) -> tuple[Any, dict[Any, dict[str, Any]]]:
    """The saved run to append to (a new one, or ``resume``'s), and the rows it already holds."""
    from ..catalog import secret_values
    from . import runs

    secrets = secret_values(runtime.catalog, runtime.env)  # masked wherever they would appear in the file
    if resume is not None:
        done = {(r["config"], str(r["case_id"]), int(r["repeat"])): r for r in runs.load(runtime.home, resume).to_dict("records")}
        return (runs.RunLog.reopen(runtime.home, resume, secrets=secrets) if save else None), done
    if not save:
        return None, {}
    spec = {"models": models, "presets": presets, "grid": dict(grid or {}), "prompts": dict(prompts or {}), "repeats": repeats,
            "scorer": scorer if isinstance(scorer, str) else getattr(scorer, "__name__", "custom"),
            "settings": dict(settings), "cases": [dict(c) for c in plan_cases(plan)],
            "config_columns": plan.config_columns, "columns": columns, "calls": len(plan.jobs)}
    return runs.RunLog.start(runtime.home, spec, secrets=secrets), {}


def plan_cases(plan: Grid) -> list[dict[str, Any]]:
    """The cases of a grid, once each (callables in their checks named, not saved)."""
    seen: dict[str, dict[str, Any]] = {}
    for job in plan.jobs:
        case = job["case"]
        if case["id"] not in seen:
            checks = case.get("checks")
            seen[case["id"]] = {**case, "checks": None if checks is None else
                                [c if not callable(c) else getattr(c, "__name__", "function") for c in checks]}
    return list(seen.values())


def _run_threads(runtime: Any, jobs: list[dict[str, Any]], check: Any, options: dict[str, Any], concurrency: int,
                 on_row: Callable[[int, dict[str, Any]], bool]) -> None:
    """The jobs on ``concurrency`` threads of this process, submitted as slots free up, so a
    stop (on_row returns False) sends nothing more and the calls in flight still land."""
    if not jobs:
        return
    pending = iter(enumerate(jobs))
    with ThreadPoolExecutor(max_workers=min(concurrency, len(jobs)), thread_name_prefix="eliza-bench") as pool:
        running = {pool.submit(run_job, runtime, job, check, options): i for i, job in itertools.islice(pending, concurrency)}
        go = True
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                go = on_row(running.pop(fut), fut.result()) and go
            for i, job in itertools.islice(pending, len(finished) if go else 0):
                running[pool.submit(run_job, runtime, job, check, options)] = i


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
