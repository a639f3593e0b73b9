"""Benchmark grids on a Dask cluster: each grid cell is one task on a worker's runtime.

:func:`cluster_runner` plugs into ``core.tuning.benchmark`` (its ``runner``): the rows are
the ones a single process makes (``core.tuning.run_job`` builds them on the worker, with the
notebook's session state), in grid order; the progress bar moves as tasks finish, and the
dashboard link is printed first. A task whose worker died is run again by Dask elsewhere;
one that could not be finished at all becomes a row with its error, like any failed call.
The workers' ledger rows come back with each cell into the notebook's ledger.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..core.ledger import LedgerRow
from ..core.runtime import Runtime
from ..core.session import SessionState
from ..core.tuning import empty_row, run_job
from ..core.tuning.checks import build_checker
from .workers import WorkerSpec, attach, runtime_for


def cluster_runner(client: Any, rt: Runtime) -> Callable[..., None]:
    """A ``runner`` for :func:`eliza_nb.core.tuning.benchmark` that runs the grid on ``client``."""
    spec = attach(client, rt)

    def run(jobs: list[dict[str, Any]], scoring: dict[str, Any], options: dict[str, Any], concurrency: int | None,
            on_row: Callable[[int, dict[str, Any]], bool]) -> None:
        from distributed import as_completed

        link = getattr(client, "dashboard_link", None)
        if link:
            # Where to watch the run is part of the answer, like the progress bar below it.
            print(f"Dask dashboard: {link}")  # noqa: T201
        state = rt.session.state
        pending = iter(enumerate(jobs))
        index: dict[Any, int] = {}
        go = True

        def submit() -> Any:
            nxt = next(pending, None) if go else None
            if nxt is None:
                return None
            i, job = nxt
            fut = client.submit(grid_cell, spec, state, job, scoring, options, pure=False)
            index[fut] = i
            return fut

        window = len(jobs) if concurrency is None else concurrency
        running = as_completed([f for f in (submit() for _ in range(window)) if f is not None])
        for fut in running:
            i = index.pop(fut, None)
            if i is None:  # cancelled after a stop
                continue
            try:
                row, ledger, pid = fut.result()
                if pid != os.getpid():  # %eliza usage and the spending cap see the workers' calls
                    rt.ledger.add(ledger)  # (a worker in this process logged them here already)
            except Exception as exc:  # the task itself failed (e.g. its workers kept dying)
                row = empty_row(jobs[i], f"{type(exc).__name__}: {exc}")
            fut.release()
            go = on_row(i, row) and go
            if not go:  # a stop: what is queued is not run; what runs lands
                for queued in list(index):
                    queued.cancel()
                    index.pop(queued)
                continue
            nxt = submit()
            if nxt is not None:
                running.add(nxt)

    return run


def grid_cell(spec: WorkerSpec, state: SessionState, job: dict[str, Any], scoring: dict[str, Any],
              options: dict[str, Any]) -> tuple[dict[str, Any], list[LedgerRow], int]:
    """One grid cell on a worker, with the notebook's session choices (the task body):
    its row, the ledger rows its calls logged, and the worker's process id."""
    rt = runtime_for(spec)
    if rt.session.state != state:
        rt.session.update(provider=state.provider, model_class=state.model_class, model=state.model,
                          preset=state.preset, **state.settings.as_dict(include_unset=True))
    with rt.ledger.capture() as ledger:
        check = build_checker(scoring["scorer"], rt, [job["case"]], judge=scoring.get("judge"))
        row = run_job(rt, job, check, options)
    return row, ledger, os.getpid()
