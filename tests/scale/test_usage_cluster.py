"""The workers' calls reach the notebook's ledger (%eliza usage, the spending cap)."""

from __future__ import annotations

import threading

import eliza_nb
from eliza_nb.core.ledger import Ledger
from eliza_nb.core.types import ModelClass, Target


def test_a_benchmark_on_the_cluster_logs_every_call_once_in_the_notebooks_ledger(scale_rt, cluster):
    before = len(scale_rt.ledger)
    frame = eliza_nb.benchmark(["one", "two", "three"], models=["lb:small"], repeats=2, client=cluster, progress=False)
    assert frame["error"].isna().all()
    rows = scale_rt.ledger.rows()[before:]
    assert len(rows) == 6  # one per grid cell: not lost on the workers, not doubled
    assert {(r.provider, r.status) for r in rows} == {("lb", "ok")}
    assert sum(r.completion_tokens or 0 for r in rows) == frame["completion_tokens"].sum()


def test_capture_collects_only_the_rows_of_its_own_thread():
    ledger, target = Ledger(), Target("p", ModelClass.SMALL, "m")
    with ledger.capture() as mine:
        ledger.log("generate", target)
        other = threading.Thread(target=lambda: ledger.log("embed", target))
        other.start()
        other.join()
    ledger.log("generate", target)  # after the block: not captured
    assert [r.kind for r in mine] == ["generate"]
    assert len(ledger) == 3
    copy = Ledger()
    copy.add(mine)
    assert copy.rows() == mine
