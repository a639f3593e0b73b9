"""Benchmarks and tuning: grids of calls through the runtime, scored, as a tidy frame.

    run.py     benchmark(): the grid's calls (threads here, or a runner: a Dask cluster), one row each
    grid.py    the cases, and what the grid expands to
    estimate.py  calls, tokens and the cost ceiling before a run (dry_run)
    checks.py  a case's checks and the scorers; judge.py the LLM judge
    frame.py   BenchmarkFrame: summary with intervals, compare, best, chart; stats.py the bootstrap maths
    runs.py    every run saved as JSON lines in the home (bench_runs, load_bench, resume)
"""

from __future__ import annotations

from .checks import SCORERS, make_scorer
from .frame import BenchmarkFrame, LatencyScoreChart
from .grid import parse_cases
from .run import COLUMNS, Runner, benchmark, benchmark_embeddings, empty_row, run_job
from .stats import Best, Comparison, bootstrap_ci

__all__ = ["COLUMNS", "SCORERS", "BenchmarkFrame", "Best", "Comparison", "LatencyScoreChart", "Runner", "benchmark",
           "benchmark_embeddings", "bootstrap_ci", "empty_row", "make_scorer", "parse_cases", "run_job"]
