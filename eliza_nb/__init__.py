"""eliza_nb: the ElizaOS model system in Jupyter.

    %load_ext eliza_nb

    %%eliza generate --preset precise
    What is the capital of France?

or from Python::

    import eliza_nb
    eliza_nb.generate("What is the capital of France?", temperature=0).text
    eliza_nb.embed(["a cat on a mat", "stocks fell"]).shape   # (2, 384)

Importing this package is cheap: numpy, pandas, httpx, llama_cpp and the widget stack
load on first use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .core.runtime import Runtime
    from .core.types import Result

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """The session's shared Runtime (created on first use from ``$ELIZA_NB_HOME``)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                from .core.runtime import Runtime

                _runtime = Runtime()
    return _runtime


def set_runtime(rt: Runtime | None) -> Runtime | None:
    """Replace the shared runtime (tests, or a user with two configs). Returns the old one."""
    global _runtime
    with _runtime_lock:
        old, _runtime = _runtime, rt
    return old


def generate(prompt: Any, **options: Any) -> Result:
    """Generate text through the runtime pipeline; see :meth:`Runtime.generate` for options."""
    return runtime().generate(prompt, **options)


def stream(prompt: Any, **options: Any):
    """Stream text chunks; the returned object's ``.result`` holds the Result when drained."""
    return runtime().stream(prompt, **options)


def embed(texts: Any, **options: Any):
    """Embed a text -> (d,) float32 array, or a list of texts -> (n, d) float32 array."""
    return runtime().embed(texts, **options)


def providers():
    """Every provider as a DataFrame: endpoint, model per class, key variable, key present (never the key)."""
    return runtime().providers_table()


def usage():
    """The session's usage ledger as a DataFrame (one row per call attempt)."""
    return runtime().ledger.dataframe()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext eliza_nb``: register the %eliza / %%eliza magics."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)


def __getattr__(name: str) -> Any:
    # Lazy access to the public types without importing them at package import.
    if name in ("Result", "ModelSettings", "ModelClass", "ProviderName"):
        from .core import types

        return getattr(types, name)
    if name == "Runtime":
        from .core.runtime import Runtime

        return Runtime
    if name == "errors":
        from .core import errors

        return errors
    raise AttributeError(f"module 'eliza_nb' has no attribute {name!r}")
