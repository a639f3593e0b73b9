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

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import product
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .errors import ConfigError, ElizaError

COLUMNS = ["model", "preset", "case_id", "repeat", "input", "expected", "output", "latency_s", "ttft_s",
           "queue_s", "prompt_tokens", "completion_tokens", "tokens_per_s", "cost_usd", "cache_hit", "score", "error"]
SCORERS = ("exact", "contains", "regex", "json-valid", "embedding-similarity")


# -- scorers ----------------------------------------------------------------------------
def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def score_exact(output: str, expected: Any) -> float:
    return float(_norm(output) == _norm(expected))


def score_contains(output: str, expected: Any) -> float:
    return float(_norm(expected) in _norm(output))


def score_regex(output: str, expected: Any) -> float:
    return float(re.search(str(expected), output, re.S | re.I) is not None)


def score_json_valid(output: str, expected: Any = None) -> float:
    text = output.strip()
    fenced = re.match(r"^```[\w-]*\s*\n(.*?)\n\s*```$", text, re.S)
    try:
        json.loads(fenced.group(1) if fenced else text)
        return 1.0
    except (ValueError, RecursionError):  # nested deeper than json follows: not usable JSON
        return 0.0


def make_scorer(scorer: str | Callable[[str, Any], float], runtime: Any = None) -> Callable[[str, Any], float]:
    """A scorer by name, or the callable itself (``f(output, expected) -> float``)."""
    if callable(scorer):
        return scorer
    named = {"exact": score_exact, "contains": score_contains, "regex": score_regex, "json-valid": score_json_valid}
    if scorer in named:
        return named[scorer]
    if scorer == "embedding-similarity":
        if runtime is None:
            raise ConfigError("the embedding-similarity scorer needs a runtime")

        def score_similarity(output: str, expected: Any) -> float:
            a, b = runtime.embed([output or " ", str(expected)])
            return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))

        return score_similarity
    raise ConfigError(f"unknown scorer {scorer!r}; choose one of: {', '.join(SCORERS)}, or pass a function")


# -- cases ------------------------------------------------------------------------------
def parse_cases(cases: Any) -> list[dict[str, Any]]:
    """A list of dicts or a DataFrame with ``input`` (and ``expected``, optional ``id``)."""
    if isinstance(cases, pd.DataFrame):
        records = cases.to_dict("records")
    elif isinstance(cases, (Mapping, str)):
        raise ConfigError("cases must be a list of dicts or a DataFrame with an 'input' column")
    else:
        records = list(cases)
    out = []
    for i, case in enumerate(records):
        if isinstance(case, str):
            case = {"input": case}
        if not isinstance(case, Mapping) or "input" not in case:
            raise ConfigError(f"case {i} has no 'input' (got {type(case).__name__}); each case needs input, and expected for scoring")
        cid = case.get("id")
        out.append({"id": str(cid) if cid is not None and cid == cid else str(i), "input": str(case["input"]),
                    "expected": case.get("expected")})
    if not out:
        raise ConfigError("no cases to run")
    return out


# -- the frame --------------------------------------------------------------------------
class BenchmarkFrame(pd.DataFrame):
    """The tidy result: one row per model x preset x case x repeat, plus ``summary()`` and ``chart()``."""

    _metadata: ClassVar[list[str]] = ["scorer_name"]  # pandas carries these attributes to derived frames

    @property
    def _constructor(self) -> type[BenchmarkFrame]:
        return BenchmarkFrame

    def summary(self) -> pd.DataFrame:
        """Per model x preset: runs, p50/p95 latency and mean TTFT (service time), mean queue wait,
        tokens/s, mean score, total cost, error rate."""
        if self.empty:
            return pd.DataFrame()
        g = pd.DataFrame(self).groupby(["model", "preset"], sort=False)
        ok = pd.DataFrame(self)[self["error"].isna()].groupby(["model", "preset"], sort=False)
        out = pd.DataFrame({
            "runs": g.size(),
            "p50_latency_s": ok["latency_s"].median(),
            "p95_latency_s": ok["latency_s"].quantile(0.95),
            "mean_ttft_s": ok["ttft_s"].mean(),
            "mean_queue_s": ok["queue_s"].mean(),
            "tokens_per_s": ok["tokens_per_s"].mean(),
            "mean_score": g["score"].mean(),
            "total_cost_usd": g["cost_usd"].sum(min_count=1),
            "error_rate": g["error"].apply(lambda s: float(s.notna().mean())),
        })
        return out.reset_index()

    def chart(self) -> LatencyScoreChart:
        """Latency (p50) against mean score per model x preset, as inline SVG (no network)."""
        return LatencyScoreChart(self.summary())


#: a point label longer than this is cut (the full text is the point's tooltip); GLYPH_PX is the
#: rough advance of an 11 px sans-serif glyph, to tell whether a label fits right of its point
LABEL_CHARS, GLYPH_PX = 48, 6.2


@dataclass
class LatencyScoreChart:
    summary: pd.DataFrame
    width: int = 560
    height: int = 320

    def __repr__(self) -> str:
        # What a static export or a terminal shows instead of the SVG.
        if self.summary.empty:
            return "LatencyScoreChart (no results)"
        cols = ["model", "preset", "p50_latency_s", "mean_score"]
        return "p50 latency vs mean score\n" + str(self.summary[cols].to_string(index=False))

    def _repr_svg_(self) -> str:
        from html import escape

        s = self.summary.dropna(subset=["p50_latency_s"]) if not self.summary.empty else self.summary
        w, h, pad = self.width, self.height, 48
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
                 f'<rect width="{w}" height="{h}" fill="white"/>',
                 f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#444"/>',
                 f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad}" stroke="#444"/>',
                 f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">p50 latency (s)</text>',
                 f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">mean score</text>']
        if not s.empty:
            xmax = float(s["p50_latency_s"].max()) * 1.15 or 1.0
            palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"]
            for i, row in enumerate(s.itertuples(index=False)):
                score = 0.0 if row.mean_score != row.mean_score else float(row.mean_score)
                x = pad + (w - pad - 20) * float(row.p50_latency_s) / xmax
                y = (h - pad) - (h - pad - 20) * max(0.0, min(1.0, score))
                full = f"{row.model} · {row.preset}"
                shown = full if len(full) <= LABEL_CHARS else full[:LABEL_CHARS - 1] + "…"
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{palette[i % len(palette)]}"><title>'
                             f'{escape(full)}: {row.p50_latency_s:.3f} s, score {score:.2f}</title></circle>')
                if x + 9 + GLYPH_PX * len(shown) > w - 4:  # would run off the right edge: left of the point
                    parts.append(f'<text x="{x - 9:.1f}" y="{y + 4:.1f}" text-anchor="end">{escape(shown)}</text>')
                else:
                    parts.append(f'<text x="{x + 9:.1f}" y="{y + 4:.1f}">{escape(shown)}</text>')
            for frac in (0, 0.5, 1):
                y = (h - pad) - (h - pad - 20) * frac
                parts.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{frac:g}</text>')
            parts.append(f'<text x="{w - 10}" y="{h - pad + 14}" text-anchor="end">{xmax:.2f}</text>')
        parts.append("</svg>")
        return "".join(parts)


# -- the runner -------------------------------------------------------------------------
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
    from .generation import CALL_OPTIONS

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
