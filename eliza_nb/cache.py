"""Look at and manage the shared runtime's cache (embeddings and opt-in generations).

    import eliza_nb
    eliza_nb.cache.stats()                    # entries, bytes, hits, misses per tier and model
    eliza_nb.cache.clear(model="all-minilm-l6-v2")
    eliza_nb.cache.prune(older_than="7d")

The cache lives in ``$ELIZA_NB_HOME/cache/store``: a SQLite database holding JSON headers
and raw float32 vectors (never pickles, never the texts themselves), under a memory tier.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _cache() -> Any:
    import eliza_nb

    return eliza_nb.runtime().cache


def stats() -> pd.DataFrame:
    """A DataFrame, one row per tier and model: entries, bytes, hits, misses.

    ``.attrs`` holds the directory, whether the disk tier is on, its size, limit and policy.
    """
    return _cache().stats()


def clear(model: str | None = None, *, provider: str | None = None, kind: str | None = None) -> dict[str, int]:
    """Remove every entry, or those of one model (``"model"`` or ``"provider:model"``),
    provider or kind (``"embed"``, ``"generate"``). Returns the count removed per tier."""
    return _cache().clear(model, provider=provider, kind=kind)


def prune(older_than: float | str) -> dict[str, int]:
    """Remove entries stored more than ``older_than`` ago: seconds, or ``"7d"``, ``"12h"``, ``"30m"``."""
    return _cache().prune(older_than)


def directory() -> Path:
    """Where the disk tier lives."""
    return _cache().directory


__all__ = ["stats", "clear", "prune", "directory"]
