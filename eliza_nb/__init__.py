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

import sys
import threading
from typing import TYPE_CHECKING, Any

from .core.errors import (
    AuthError,
    BadResponseError,
    BudgetExceeded,
    ConfigError,
    ContentBlocked,
    ContextTooLongError,
    CoolingDown,
    ElizaError,
    EmbeddingDimensionError,
    InvalidEmbeddingError,
    InvalidRequestError,
    MissingKeyError,
    ModelPackageMissing,
    ModelRetired,
    NotFoundError,
    RateLimitedError,
    RateLimitWaitError,
    ReplayArchiveError,
    ReplayMismatch,
    StreamInterrupted,
    TransientError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .core.conversation import Conversation
    from .core.generation import GenerationStream
    from .core.runtime import Runtime
    from .core.tuning import BenchmarkFrame
    from .core.types import ImageResult, Result

__all__ = [
    # calls
    "generate", "stream", "chat", "embed", "similar", "image", "benchmark", "benchmark_embeddings", "bench_runs", "load_bench",
    "select_model_class", "validate_embedding", "is_valid_embedding",
    # the session and its state
    "runtime", "set_runtime", "providers", "models", "usage", "set_budget", "presets", "cache", "replay",
    # widgets and the IPython extension
    "panel", "playground", "explorer", "benchmark_view", "load_ipython_extension", "unload_ipython_extension",
    # types
    "Runtime", "Result", "Conversation", "ImageResult", "ModelSettings", "ModelClass", "ProviderName",
    # errors a user may catch
    "ElizaError", "ConfigError", "ModelPackageMissing", "MissingKeyError", "AuthError", "NotFoundError",
    "ModelRetired",
    "RateLimitedError", "RateLimitWaitError", "CoolingDown", "ContextTooLongError", "TransientError",
    "BadResponseError", "InvalidRequestError", "ContentBlocked",
    "StreamInterrupted", "EmbeddingDimensionError", "InvalidEmbeddingError", "BudgetExceeded",
    "ReplayArchiveError", "ReplayMismatch",
]

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


def stream(prompt: Any, **options: Any) -> GenerationStream:
    """Stream text chunks; the returned object's ``.result`` holds the Result when drained."""
    return runtime().stream(prompt, **options)


def chat(name: str | None = None, new: bool = False) -> Conversation:
    """The named conversation of the shared runtime (``"default"`` when None): ``.say(text,
    **options) -> Result``, ``.stream(text, ...)``, ``.messages``, ``.turns``, ``.reset()``,
    ``.to_dataframe()``, ``.save(path)``; the same object ``%%eliza chat --name NAME`` uses.
    ``new=True`` starts it afresh. ``eliza_nb.chat.load(path)`` loads a saved one."""
    return runtime().conversation("default" if name is None else name, new=new)


def _load_chat(path: str, name: str | None = None) -> Conversation:
    """Load a conversation saved with ``.save(path)`` (JSON) into the shared runtime, under
    its saved name (or ``name``), replacing a conversation of that name; returns it."""
    from .core.conversation import Conversation, check_name

    rt = runtime()
    conv = Conversation.load(path, rt)
    if name is not None:
        conv.name = check_name(name)
    rt.conversations[conv.name] = conv
    return conv


chat.load = _load_chat  # type: ignore[attr-defined]


def embed(texts: Any, **options: Any) -> Any:
    """Embed through the cache: a text -> (d,) float32 array, a list -> (n, d), a pandas
    Series -> a Series of vectors (``as_array=True`` for (n, d)); ``regenerate=True``
    asks the provider again. See :meth:`Runtime.embed`.

    A dask Series (the ``[dask]`` extra) -> a dask Series of vectors, or a dask array with
    ``as_array=True``, computed partition by partition on the cluster (``client=``, else
    the current one) through the same cache; a list or pandas Series with ``client=`` is
    embedded on the cluster and returned as here. See docs/scale.md."""
    if "client" in options or _is_dask(texts):
        from .scale.embed import embed_collection

        return embed_collection(runtime(), texts, **options)
    return runtime().embed(texts, **options)


def _is_dask(obj: Any) -> bool:
    # A dask collection can only exist once dask is imported: never import it to find out.
    dask = sys.modules.get("dask")
    return dask is not None and bool(dask.is_dask_collection(obj))


def similar(query: Any, texts_or_vectors: Any, k: int = 5, **options: Any) -> pd.DataFrame:
    """The ``k`` most cosine-similar candidates, best first: a DataFrame(text, score).

    Texts are embedded through the cache; vectors (an (n, d) array, a list, a Series or a
    DataFrame with a ``vector`` column) are used as given. Options: provider, model,
    normalized (True promises unit-length vectors)."""
    from .core.embeddings.similarity import similar as _similar

    return _similar(runtime(), query, texts_or_vectors, k, **options)


def image(prompt: str, provider: str | None = None, model: str | None = None, **options: Any) -> ImageResult:
    """Generate one image (shows inline in a notebook); see :meth:`Runtime.image` for options
    (size, steps, seed, negative_prompt, quality, style, guidance, timeout_s, failover)."""
    return runtime().image(prompt, provider=provider, model=model, **options)


def providers() -> pd.DataFrame:
    """Every provider as a DataFrame: endpoint, model per class, key variable, key present (never the key)."""
    return runtime().providers_table()


def models(provider: str | None = None, refresh: bool = False) -> pd.DataFrame:
    """The model ids each provider's own listing names, as a DataFrame (provider, model,
    catalog_class, context_window, input_price / output_price per 1M tokens, created, source),
    cached in the home for a day; ``refresh=True`` asks again. ``provider=None``: every
    provider usable now; notes (skipped providers, a cached list shown because the live
    one failed) are in ``df.attrs["notes"]``. See :meth:`Runtime.models`."""
    return runtime().models(provider, refresh)


def usage(by: str | None = None) -> pd.DataFrame:
    """The session's usage ledger as a DataFrame: one row per call attempt (cache hits and
    failures included), or totals ``by="provider"``, ``"model"``, ``"kind"`` or ``"preset"``."""
    ledger = runtime().ledger
    return ledger.dataframe() if by is None else ledger.totals(by)


def set_budget(max_usd: float | None) -> None:
    """Cap this session's known spending in USD (None removes the cap). Free calls always run."""
    runtime().spending.set(max_usd)


def benchmark(cases: Any, models: Any = None, presets: Any = None, client: Any = None, **options: Any) -> BenchmarkFrame:
    """Run cases on models × presets × grid points × prompt variants × repeats through the
    runtime -> a tidy BenchmarkFrame (one row per call, carrying the values that produced
    it) with ``.summary()`` (means with 95% intervals), ``.compare(a, b)``, ``.best()`` and
    ``.chart()``.

    Options: ``grid={"temperature": [0, 0.8], ...}`` (settings swept), ``prompts={"terse":
    "One word: {input}"}`` (templates), ``repeats``, ``concurrency``, ``scorer`` (a name,
    "judge", or a function; a case's own ``checks`` list wins), ``judge="provider:class"``
    (default the local model), ``dry_run=True`` (the cost estimate, nothing sent),
    ``max_cost_usd`` (refuse a grid estimated above it; stop one that spends past it),
    ``confirm=True`` (a grid over 10,000 calls), ``resume=run_id`` (finish a saved run:
    same arguments again), ``save=False``, ``cache``, ``progress``, and any generate
    setting (temperature, max_tokens, ...). ``client=`` a Dask ``distributed.Client``: the
    grid runs on its workers (docs/scale.md)."""
    from .core.tuning import benchmark as _benchmark

    rt = runtime()
    if client is not None:
        from .scale.bench import cluster_runner

        options["runner"] = cluster_runner(client, rt)
    return _benchmark(rt, cases, models, presets, **options)


def bench_runs() -> pd.DataFrame:
    """The benchmark runs saved in the home, newest first: run_id, started, status
    ("finished", "stopped", "interrupted"; "running" for one cut short), rows saved, configs
    and cases among them, calls planned. ``load_bench(run_id)`` reopens one;
    ``benchmark(..., resume=run_id)`` finishes one."""
    from .core.tuning.runs import list_runs

    return list_runs(_home())


def load_bench(run_id: str) -> BenchmarkFrame:
    """A saved benchmark run as a BenchmarkFrame (``.summary()``, ``.compare(a, b)``, ...), as
    it was when it was saved; two runs' frames compare like two configurations. An unknown
    or malformed run is one ConfigError."""
    from .core.tuning.runs import load

    frame: BenchmarkFrame = load(_home(), run_id)
    return frame


def _home() -> Any:
    """The shared runtime's home, without starting a runtime just to read saved files."""
    if _runtime is not None:
        return _runtime.home
    from .core.home import home_dir

    return home_dir()


def benchmark_embeddings(texts: Any, models: Any = None, repeats: int = 3) -> pd.DataFrame:
    """Latency and dims per embedding model (measured on the provider, cache bypassed)."""
    from .core.tuning import benchmark_embeddings as _bench

    return _bench(runtime(), texts, models, repeats)


def select_model_class(speed: str | None = None, complexity: str | None = None, budget: str | None = None,
                       **kw: Any) -> Any:
    """The seed's selection rule: fast -> small, high complexity -> large, else medium."""
    from .core.selection import select_model_class as _select

    return _select(speed, complexity, budget, **kw)


def panel() -> Any:
    """The parameter panel (ipywidgets), two-way bound to the runtime's session."""
    from .notebook.widgets import panel as _panel

    return _panel()


def playground(prompt: str = "", name: str | None = None, new: bool = False, **options: Any) -> Any:
    """A chat panel on the conversation ``name`` (the one ``%%eliza chat`` and :func:`chat`
    use): the transcript above, a prompt box with Run / Stop / Clear below; ``new`` starts it
    fresh; ``options`` (max_tokens=64, system="...", ...) override the session for it."""
    from .notebook.widgets import playground as _playground

    return _playground(prompt, name=name, new=new, **options)


def explorer(data: Any, **options: Any) -> Any:
    """A 2-D scatter (PCA) of embedded texts: a list of texts, or a DataFrame with text and vector columns."""
    from .notebook.widgets import explorer as _explorer

    return _explorer(data, **options)


def benchmark_view(results: Any, **options: Any) -> Any:
    """Sortable tables with bars of a benchmark DataFrame (summary per model x preset, and runs)."""
    from .notebook.widgets import benchmark_view as _view

    return _view(results, **options)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext eliza_nb``: register the %eliza / %%eliza magics."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)


def __getattr__(name: str) -> Any:
    # Lazy access to the public types without importing them at package import.
    if name == "Conversation":
        from .core.conversation import Conversation

        return Conversation
    if name in ("Result", "ImageResult", "ModelClass", "ProviderName"):
        from .core import types

        return getattr(types, name)
    if name == "ModelSettings":
        from .core.settings import ModelSettings

        return ModelSettings
    if name == "Runtime":
        from .core.runtime import Runtime

        return Runtime
    if name == "presets":
        return runtime().presets
    if name in ("validate_embedding", "is_valid_embedding"):
        from .core.embeddings import vectors

        return getattr(vectors, name)
    if name in ("cache", "replay"):  # eliza_nb.cache.stats(), eliza_nb.replay.record(...): loaded on first use
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name == "errors":
        from .core import errors

        return errors
    raise AttributeError(f"module 'eliza_nb' has no attribute {name!r}")
