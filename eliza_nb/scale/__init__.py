"""eliza_nb on a Dask cluster (the ``[dask]`` extra): ``eliza_nb.embed(dask_series)`` and
``eliza_nb.benchmark(..., client=client)`` run on the workers, with the notebook's config,
one cache store and provider limits counted across the cluster. See docs/scale.md.

Nothing else in eliza_nb imports this package (or Dask) unless a Dask collection or a
``client=`` is passed.
"""

from __future__ import annotations

from .workers import WorkerSpec, attach, detach, runtime_for

__all__ = ["WorkerSpec", "attach", "detach", "runtime_for"]
