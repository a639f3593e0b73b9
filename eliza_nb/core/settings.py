"""Presets and the settings merge rule.

Merge order (later wins where a value is set): catalog < preset < session (panel,
``%eliza config``) < call arguments. ``None`` means "not set"; 0 is a value.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ConfigError
from .types import ModelSettings

#: The seed's temperature presets.
BUILTIN_PRESETS: dict[str, ModelSettings] = {
    "creative": ModelSettings(temperature=0.8, frequency_penalty=0.7, presence_penalty=0.7),
    "balanced": ModelSettings(temperature=0.5, frequency_penalty=0.3, presence_penalty=0.3),
    "precise": ModelSettings(temperature=0.2, frequency_penalty=0.0, presence_penalty=0.0),
}


class Presets:
    """Built-in presets plus user ones (config file ``[presets.NAME]`` or :meth:`register`)."""

    def __init__(self, user: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._presets: dict[str, ModelSettings] = dict(BUILTIN_PRESETS)
        for name, values in (user or {}).items():
            self.register(name, **dict(values))

    def register(self, name: str, **settings: Any) -> ModelSettings:
        """Add or replace a preset; unknown setting names are a one-line error."""
        name = name.strip().lower()
        if not name.isidentifier():
            raise ConfigError(f"preset name {name!r} must be a single word")
        try:
            preset = ModelSettings.from_mapping(settings)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"preset {name}: {exc}") from None
        self._presets[name] = preset
        return preset

    def get(self, name: str | None) -> ModelSettings | None:
        """The preset's settings; None for no preset; a one-line error for an unknown name."""
        if name is None or name == "":
            return None
        key = str(name).strip().lower()
        try:
            return self._presets[key]
        except KeyError:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(self._presets)}") from None

    def names(self) -> list[str]:
        return list(self._presets)

    def table(self) -> dict[str, dict[str, Any]]:
        return {n: p.as_dict() for n, p in self._presets.items()}


def merge_settings(
    catalog: ModelSettings,
    preset: ModelSettings | None = None,
    session: ModelSettings | None = None,
    call: Mapping[str, Any] | ModelSettings | None = None,
) -> ModelSettings:
    """Apply the layers in order; see the module docstring."""
    return catalog.merged(preset, session, call)
