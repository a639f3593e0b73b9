"""One runtime per worker process, made from the notebook's configuration.

A task names the runtime it needs by a :class:`WorkerSpec` (the home directory and the
config, never a key: workers read keys from their own environment). The first task in a
process with that spec makes the runtime; later tasks reuse it, so a worker loads each
local model once. :func:`attach` registers :class:`RuntimePlugin` (the runtime is made as
each worker starts, restarted workers included, with ``n_threads`` fitted to the worker's
share of its machine, and wired to the cluster's limits) and the scheduler's
:class:`~eliza_nb.scale.limits.LimitsPlugin`.

The home is where the vector cache lives. On a LocalCluster it is the notebook's own, so
workers and notebook share one store; elsewhere pass ``home=`` a directory every worker
and the notebook can reach (docs/scale.md says which storage is safe for SQLite).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from distributed.diagnostics.plugin import WorkerPlugin

from ..core.runtime import Runtime

_RUNTIMES: dict[str, Runtime] = {}
_LOCK = threading.Lock()
_ATTACHED: dict[tuple[str, str], str] = {}  # (client id, spec fingerprint) -> the worker plugin's name
PROBE = ".scale-probe"  # a file attach writes in the notebook's home and looks for on the workers
_HOMES: dict[str, str] = {}  # client id -> the home attach(client, home=...) chose, for the later calls on it


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build the notebook's runtime: where the home is, and the config."""

    home: str
    config: Mapping[str, Any]
    fingerprint: str

    @classmethod
    def of(cls, rt: Runtime, home: str | os.PathLike[str] | None = None) -> WorkerSpec:
        where = os.fspath(home) if home is not None else str(rt.home)
        config = copy.deepcopy(dict(rt.config))
        ident = json.dumps([where, config], sort_keys=True, default=str).encode()
        return cls(where, config, hashlib.sha256(ident).hexdigest()[:20])


def runtime_for(spec: WorkerSpec) -> Runtime:
    """This process's runtime for ``spec``: the notebook's own when the task runs in the
    notebook's process (a threaded scheduler), else one made on first use and kept."""
    with _LOCK:
        rt = _RUNTIMES.get(spec.fingerprint)
        if rt is None:
            rt = _RUNTIMES[spec.fingerprint] = Runtime(spec.home, config=spec.config)
        return rt


def use_here(spec: WorkerSpec, rt: Runtime) -> None:
    """Tasks for ``spec`` that run in this process use ``rt`` (the notebook's runtime)."""
    with _LOCK:  # replaced, not kept: an earlier runtime with the same spec may be closed by now
        _RUNTIMES[spec.fingerprint] = rt


def threads_for(nthreads: int, address: str, hosts: Mapping[str, int]) -> int:
    """A worker's llama.cpp threads: its own thread count, but never more than its share of
    the machine's cores (more threads than cores make every layer wait on a futex)."""
    sharing = max(1, hosts.get(urlparse(address).hostname or "", 1))
    return max(1, min(int(nthreads), (os.cpu_count() or 1) // sharing))


class RuntimePlugin(WorkerPlugin):
    """Makes the spec's runtime as a worker starts, fitted to it and wired to the cluster."""

    def __init__(self, spec: WorkerSpec, hosts: Mapping[str, int]) -> None:
        self.spec, self.hosts = spec, dict(hosts)
        self.name = f"eliza_nb-runtime-{spec.fingerprint}"

    def setup(self, worker: Any) -> None:
        from .limits import cluster_limits

        self._made: Runtime | None = None
        with _LOCK:
            if self.spec.fingerprint in _RUNTIMES:  # a worker in the notebook's process: its runtime
                return
        config = copy.deepcopy(dict(self.spec.config))
        local = dict(config.get("local") or {})
        local.setdefault("n_threads", threads_for(worker.state.nthreads, worker.address, self.hosts))
        config["local"] = local
        rt = Runtime(self.spec.home, config=config)
        cluster_limits(rt, worker)
        rt.http_client()  # made now, not after the first call's rate-limit slot was booked (it would arrive late)
        with _LOCK:
            if _RUNTIMES.setdefault(self.spec.fingerprint, rt) is rt:
                self._made = rt
                return
        rt.close()

    def teardown(self, worker: Any) -> None:
        made: Runtime | None = getattr(self, "_made", None)
        if made is None:
            return
        with _LOCK:
            if _RUNTIMES.get(self.spec.fingerprint) is made:
                del _RUNTIMES[self.spec.fingerprint]
        made.close()


def attach(client: Any, rt: Runtime | None = None, home: str | os.PathLike[str] | None = None) -> WorkerSpec:
    """Make ``client``'s workers run eliza_nb calls with the notebook's runtime: the same
    config and cache home, local models loaded once per worker, provider limits counted
    across the cluster. Called for you by ``embed``/``benchmark`` with a cluster; call it
    yourself to pass ``home=`` (a directory all workers and the notebook share): later calls
    on ``client`` use it until :func:`detach`."""
    if rt is None:
        import eliza_nb

        rt = eliza_nb.runtime()
    if home is None:  # embed / benchmark attach without a home: the one chosen for this client, if any
        home = _HOMES.get(str(client.id))
    else:
        _HOMES[str(client.id)] = os.fspath(home)
    spec = WorkerSpec.of(rt, home)
    if home is None or os.fspath(home) == str(rt.home):
        use_here(spec, rt)
    mark = (str(client.id), spec.fingerprint)
    if mark in _ATTACHED:
        return spec
    from .limits import LimitsPlugin

    hosts: dict[str, int] = {}
    for address in client.scheduler_info(n_workers=-1).get("workers", {}):
        host = urlparse(address).hostname or ""
        hosts[host] = hosts.get(host, 0) + 1
    client.register_plugin(LimitsPlugin())
    plugin = RuntimePlugin(spec, hosts)
    client.register_plugin(plugin)
    _ATTACHED[mark] = plugin.name
    apart = workers_apart(client, rt, spec)
    if apart:
        rt.warn(f"{apart} of the cluster's workers do not see this notebook's cache store ({rt.home}): what "
                "eliza_nb.embed(dask_series) computes there stays in their stores. eliza_nb.embed(texts, client=) "
                "looks up and stores here; or attach(client, home=...) a directory both see (docs/scale.md)")
    return spec


def workers_apart(client: Any, rt: Runtime, spec: WorkerSpec) -> int:
    """How many workers find another cache store at their home than the notebook's (other
    machines, another home=): a random token written here is looked for there."""
    token = secrets.token_hex(16)
    probe = rt.home / PROBE
    try:
        rt.home.mkdir(parents=True, exist_ok=True)
        probe.write_text(token)
    except OSError:  # a home that cannot be written has no disk cache to share
        return 0
    try:
        seen = client.run(read_probe, spec.home)
    finally:
        probe.unlink(missing_ok=True)
    return sum(1 for value in seen.values() if value != token)


def read_probe(home: str) -> str | None:
    """On a worker: the token the notebook wrote, if this worker sees the same home."""
    try:
        return (Path(home) / PROBE).read_text()
    except OSError:
        return None


def detach(client: Any) -> int:
    """Close the runtimes :func:`attach` made on ``client``'s workers (their local models
    and cache connections); the next eliza_nb call on the cluster attaches again. Returns
    how many were closed."""
    _HOMES.pop(str(client.id), None)
    names = [(mark, name) for mark, name in _ATTACHED.items() if mark[0] == str(client.id)]
    for mark, name in names:
        client.unregister_worker_plugin(name)
        del _ATTACHED[mark]
        with _LOCK:  # the notebook's own runtime stays open: only forgotten here
            _RUNTIMES.pop(mark[1], None)
    return len(names)
