"""Benchmarks and tuning: grids of calls through the runtime, scored, as a tidy frame.

    run.py     benchmark(): the grid's calls (threads here, or a runner: a Dask cluster), one row each
    grid.py    the cases, and what the grid expands to
    checks.py  scoring an answer
    frame.py   BenchmarkFrame: summary, chart
"""

from __future__ import annotations

from .checks import SCORERS, make_scorer
from .frame import BenchmarkFrame, LatencyScoreChart
from .grid import parse_cases
from .run import COLUMNS, Runner, benchmark, benchmark_embeddings, empty_row, run_job

__all__ = ["COLUMNS", "SCORERS", "BenchmarkFrame", "LatencyScoreChart", "Runner", "benchmark", "benchmark_embeddings",
           "empty_row", "make_scorer", "parse_cases", "run_job"]
