"""The session's current choices: what the next call uses when it does not say.

The parameter panel, ``%eliza config`` and ``%config Eliza.*`` all write here, and every
generate reads here, so they can never disagree. Observers are plain callbacks (core
stays free of traitlets); the widget layer binds them to traitlets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .settings import ModelSettings, pop_settings

Observer = Callable[[str, Any], None]

FIELDS = ("provider", "model_class", "model", "preset", "settings")


@dataclass(frozen=True)
class SessionState:
    """One immutable snapshot of the session: a change makes a new one."""

    provider: str = "llama_local"
    model_class: str = "small"
    model: str | None = None  # an explicit model id overrides the class's catalog model
    preset: str | None = None
    settings: ModelSettings = field(default_factory=ModelSettings)


class Session:
    """Thread-safe holder of SessionState with change notification."""

    def __init__(self, state: SessionState | None = None) -> None:
        self._state = state or SessionState()
        self._initial = self._state
        self._observers: list[Observer] = []
        self._lock = threading.RLock()

    @property
    def state(self) -> SessionState:
        """The current snapshot (immutable: later changes do not show in it)."""
        return self._state

    def observe(self, fn: Observer) -> Callable[[], None]:
        """Call ``fn(name, value)`` after each change; returns an unsubscribe function."""
        self._observers.append(fn)
        return lambda: self._observers.remove(fn) if fn in self._observers else None

    def update(self, **changes: Any) -> None:
        """Set session fields; setting names (temperature, stop, ...) go into ``settings``.

        A value of None clears a setting back to "not set".
        """
        fired: list[tuple[str, Any]] = []
        with self._lock:
            setting_changes = pop_settings(changes)
            unknown = sorted(set(changes) - set(FIELDS))
            if unknown:
                raise KeyError(f"unknown session field(s): {', '.join(unknown)}")
            # Checked before anything changes: a bad value leaves the session as it was.
            settings = replace(self._state.settings, **setting_changes)
            fired = [(name, value) for name, value in changes.items() if getattr(self._state, name) != value]
            if settings != self._state.settings:
                changes["settings"] = settings
                fired += [(k, getattr(settings, k)) for k in setting_changes]
            if fired:
                self._state = replace(self._state, **changes)
        for name, value in fired:
            for fn in list(self._observers):
                fn(name, value)

    def reset(self) -> None:
        """Back to the values the session started with (config file defaults)."""
        initial = self._initial
        self.update(
            provider=initial.provider, model_class=initial.model_class, model=initial.model,
            preset=initial.preset, **initial.settings.as_dict(include_unset=True),
        )
