"""Honest settings mapping: what an API does not take is dropped with a note, never sent.

Each adapter maps :class:`ModelSettings` to its wire names and collects notes for the
Result ("presence_penalty=0.7 dropped: anthropic's API does not take it"). A value equal to
the API's own neutral default (a penalty of 0, an empty stop list) is left out silently:
dropping it changes nothing, so a note would only be noise.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

#: the value that means "off" for each setting, where one exists
NEUTRAL: dict[str, Any] = {"frequency_penalty": 0.0, "presence_penalty": 0.0, "repetition_penalty": 0.0}


def is_neutral(name: str, value: Any) -> bool:
    """True when sending ``value`` would not change anything."""
    if value is None:
        return True
    if name == "stop":
        return not value
    return name in NEUTRAL and value == NEUTRAL[name]


def drop(notes: list[str], provider: str, name: str, value: Any, why: str | None = None) -> None:
    """Record that ``name`` was not sent (no note when the value is neutral)."""
    if is_neutral(name, value):
        return
    shown = list(value) if isinstance(value, tuple) else value
    notes.append(f"{name}={shown!r} dropped: {why or f'{provider} does not take it'}")


def configured_drops(extra: Mapping[str, Any]) -> frozenset[str]:
    """Settings a catalog entry says its endpoint rejects (``drop_settings = [...]``)."""
    value = extra.get("drop_settings") or ()
    return frozenset([value] if isinstance(value, str) else value)


def cap_list(notes: list[str], name: str, values: Iterable[str], limit: int | None, provider: str) -> list[str]:
    """Keep the first ``limit`` entries of a list setting, with a note when some are cut."""
    values = list(values)
    if limit is not None and len(values) > limit:
        notes.append(f"{name}: {provider} takes at most {limit}; sent the first {limit} of {len(values)}")
        return values[:limit]
    return values


def image_size(options: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(width, height) from ``size="1024x768"`` or ``width``/``height`` options."""
    size = options.get("size")
    if size:
        try:
            w, _, h = str(size).lower().partition("x")
            return int(w), int(h)
        except ValueError:
            from ..core.errors import ConfigError

            raise ConfigError(f"image size {size!r} should look like 1024x1024") from None
    w, h = options.get("width"), options.get("height")
    return (int(w) if w else None), (int(h) if h else None)
