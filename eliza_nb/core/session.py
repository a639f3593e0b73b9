"""The session's current choices: what the next call uses when it does not say.

The parameter panel, ``%eliza config`` and ``%config Eliza.*`` all write here, and every
generate reads here, so they can never disagree. Observers are plain callbacks (core
stays free of traitlets); the widget layer binds them to traitlets.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from .settings import ModelSettings, pop_settings

Observer = Callable[[str, Any], None]

FIELDS = ("provider", "model_class", "model", "preset", "settings")


@dataclass
class SessionState:
    provider: str = "llama_local"
    model_class: str = "small"
    model: str | None = None  # an explicit model id overrides the class's catalog model
    preset: str | None = None
    settings: ModelSettings = field(default_factory=ModelSettings)


class Session:
    """Thread-safe holder of SessionState with change notification."""

    def __init__(self, state: SessionState | None = None) -> None:
        self._state = state or SessionState()
        self._initial = replace(self._state)
        self._observers: list[Observer] = []
        self._lock = threading.RLock()

    @property
    def state(self) -> SessionState:
        """A snapshot: later changes do not show in it."""
        with self._lock:
            return replace(self._state)

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
            new = replace(self._state.settings, **setting_changes)
            for name, value in changes.items():
                if getattr(self._state, name) != value:
                    setattr(self._state, name, value)
                    fired.append((name, value))
            if new != self._state.settings:
                self._state.settings = new
                for k in setting_changes:
                    fired.append((k, getattr(new, k)))
        for name, value in fired:
            for fn in list(self._observers):
                fn(name, value)

    def reset(self) -> None:
        """Back to the values the session started with (config file defaults)."""
        initial = replace(self._initial)
        self.update(
            provider=initial.provider, model_class=initial.model_class, model=initial.model,
            preset=initial.preset, **initial.settings.as_dict(include_unset=True),
        )
