"""A real Dask LocalCluster (2 worker processes, 1 thread each) and the loopback
OpenAI-compatible server (bench/loopback.py, its own process), shared by the scale tests.

``scale_rt`` is a fresh home (the converted embedding model copied in) installed as
eliza_nb's shared runtime, with a keyless provider ``lb`` on the loopback server (50 ms a
request, 16 texts per embedding request); ``lb_entry(prefix, **extra)`` builds other
entries on the same server (e.g. ``/r6-2/`` for its own 6-per-2-s limit); import it from
``scale_helpers`` (a module named ``conftest`` is ambiguous across test folders).
"""

from __future__ import annotations

import shutil

import pytest
from scale_helpers import lb_entry

N_WORKERS = 2


@pytest.fixture
def lb(loopback):
    """The loopback server with its hit log cleared."""
    loopback.reset()
    return loopback


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=N_WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as lc, Client(lc) as client:
        yield client


@pytest.fixture
def scale_rt(tmp_path, monkeypatch, models_home, lb, cluster):
    """A fresh home installed as the shared runtime; its worker runtimes are closed after."""
    import eliza_nb
    from eliza_nb.core.runtime import Runtime
    from eliza_nb.scale import detach

    home = tmp_path / "home"
    shutil.copytree(models_home / "models", home / "models")
    monkeypatch.setenv("ELIZA_NB_HOME", str(home))
    config = {"providers": {"lb": lb_entry(lb.base)},
              "retry": {"max_attempts": 2, "max_total_s": 60.0, "timeout_s": 20.0}}
    rt = Runtime(home, config=config)
    old = eliza_nb.set_runtime(rt)
    yield rt
    detach(cluster)
    eliza_nb.set_runtime(old)
    rt.close()


@pytest.fixture
def make_rt(scale_rt):
    """``make_rt(providers, retry=None)``: a runtime on scale_rt's home with more provider
    entries (and [retry] changes), installed as eliza_nb's shared runtime. scale_rt's
    teardown detaches its worker runtimes and restores the shared runtime."""
    import copy

    import eliza_nb
    from eliza_nb.core.runtime import Runtime

    made: list[Runtime] = []

    def make(providers: dict, retry: dict | None = None) -> Runtime:
        config = copy.deepcopy(scale_rt.config)
        config["providers"].update(providers)
        config["retry"].update(retry or {})
        rt = Runtime(scale_rt.home, config=config)
        eliza_nb.set_runtime(rt)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()
