"""Which adapter speaks which wire protocol: the plugin surface.

core never imports the providers package. Built-in adapters are named here as dotted
paths and imported on first use; a third-party package adds a protocol with an entry
point, exactly like the built-ins::

    [project.entry-points."eliza_nb.protocols"]
    myproto = "my_pkg.adapter:factory"

A factory is called as ``factory(entry, context)`` and returns a Provider.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # catalog imports this module to validate protocol names
    from .catalog import ProviderEntry

BUILTIN_PROTOCOLS: dict[str, str] = {
    "llama_local": "eliza_nb.adapters.llama_local:factory",
    "openai": "eliza_nb.adapters.openai_compat:factory",
    "anthropic": "eliza_nb.adapters.anthropic:factory",
    "claude_vertex": "eliza_nb.adapters.anthropic:vertex_factory",
    "google": "eliza_nb.adapters.google:factory",
}


@dataclass
class AdapterContext:
    """What the runtime hands an adapter factory: shared clients and settings, never global state."""

    home: Path
    http_client: Callable[[], Any]  # returns the runtime's shared httpx.Client
    get_key: Callable[[ProviderEntry], str | None]
    warn: Callable[[str], None]
    options: dict[str, Any]  # the [local] / provider-specific config tables


_factories: dict[str, Callable[..., Any]] = {}
_lock = threading.Lock()


def register_protocol(name: str, factory: Callable[..., Any]) -> None:
    """Register (or replace) the adapter factory for a protocol name."""
    with _lock:
        _factories[name] = factory


def is_known(protocol: str) -> bool:
    """Whether an adapter exists for ``protocol`` (built-in, registered, or an entry point)."""
    if protocol in BUILTIN_PROTOCOLS or protocol in _factories:
        return True
    from importlib.metadata import entry_points

    return any(ep.name == protocol for ep in entry_points(group="eliza_nb.protocols"))


def _import(dotted: str) -> Callable[..., Any]:
    module_name, _, attr = dotted.partition(":")
    factory: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    return factory


def factory_for(protocol: str) -> Callable[..., Any]:
    """The adapter factory for ``protocol``; a one-line error when none is known."""
    with _lock:
        factory = _factories.get(protocol)
        if factory is not None:
            return factory
        try:
            if protocol in BUILTIN_PROTOCOLS:
                factory = _import(BUILTIN_PROTOCOLS[protocol])
            else:
                from importlib.metadata import entry_points

                eps = [ep for ep in entry_points(group="eliza_nb.protocols") if ep.name == protocol]
                if not eps:
                    known = ", ".join(sorted({*BUILTIN_PROTOCOLS, *_factories}))
                    raise ConfigError(f"no adapter for protocol {protocol!r}; known: {known}")
                factory = eps[0].load()
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"the {protocol} adapter could not be loaded ({exc})") from None
        _factories[protocol] = factory
        return factory
