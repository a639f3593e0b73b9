"""Where eliza_nb keeps its files: one directory, set by ``ELIZA_NB_HOME``.

Layout::

    $ELIZA_NB_HOME/
      config.toml        user overrides: defaults, presets, providers, failover chains
      models/            converted local models (all-MiniLM-L6-v2 as GGUF)
      cache/             the persistent cache (SQLite, JSON + raw float32 only)
      listings/          each provider's model listing (JSON, one file per provider; %eliza models)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib as tomllib  # re-exported (the explicit alias): catalog.py reads TOML through it too
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from .errors import ConfigError


def home_dir() -> Path:
    """The eliza_nb home: ``$ELIZA_NB_HOME``, else ``$XDG_CACHE_HOME/eliza_nb``, else ``~/.cache/eliza_nb``."""
    explicit = os.environ.get("ELIZA_NB_HOME")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "eliza_nb"


def config_path(home: Path | None = None) -> Path:
    return (home or home_dir()) / "config.toml"


def load_user_config(home: Path | None = None) -> dict[str, Any]:
    """Read ``config.toml`` from the home; a missing file is an empty config.

    A malformed file is a one-line ConfigError naming the file and the parser's reason.
    """
    path = config_path(home)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge nested dicts: override's values win, sub-tables merge key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
