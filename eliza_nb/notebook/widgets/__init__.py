"""The widget panels, one import away: ``from eliza_nb.notebook.widgets import ...``.

Each lives in its own module (panel.py, playground.py, explorer/ + explorer.js, benchview/ +
benchview.js; reconnect.py is what every widget shows when its kernel is gone); this module
only gathers them and offers the functions ``eliza_nb.panel()`` etc.
All of them go through the runtime; none keeps settings of its own.
"""

from __future__ import annotations

from typing import Any

from .benchview import BenchmarkView, styled, summarize
from .explorer import EmbeddingExplorer, nearest_neighbours, pca_2d
from .panel import ParameterPanel
from .playground import Playground

__all__ = ["BenchmarkView", "EmbeddingExplorer", "ParameterPanel", "Playground", "benchmark_view", "explorer",
           "nearest_neighbours", "panel", "pca_2d", "playground", "styled", "summarize"]


def panel(runtime: Any = None) -> ParameterPanel:
    """The parameter panel, bound to the (shared) runtime's session."""
    return ParameterPanel(runtime)


def playground(prompt: str = "", runtime: Any = None, system: str | None = None, name: str | None = None,
               new: bool = False, **options: Any) -> Playground:
    """A chat: the conversation ``name`` (the one ``%%eliza chat --name`` and ``eliza_nb.chat``
    use; "default" when None) above, a prompt box with Run / Stop / Clear below. ``new``
    starts it fresh; ``options`` (max_tokens=64, temperature=0, ...) override the session."""
    return Playground(runtime, prompt=prompt, system=system, options=options, name=name, new=new)


def explorer(data: Any, **kwargs: Any) -> EmbeddingExplorer:
    """A 2-D map of embedded texts: a list of texts, or a DataFrame with text and vector columns."""
    return EmbeddingExplorer(data, **kwargs)


def benchmark_view(results: Any, **kwargs: Any) -> BenchmarkView:
    """Sortable summary and run tables, with bars, of a benchmark DataFrame."""
    return BenchmarkView(results, **kwargs)
