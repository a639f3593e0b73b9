"""Honest settings mapping: what an API does not take is dropped with a note, never sent.

:func:`wire_settings` maps :class:`ModelSettings` to a protocol's wire names from the
settings declaration (core/settings.py) and collects notes for the Result
("presence_penalty=0.7 dropped: anthropic's API does not take it"). A value equal to the
API's own neutral default (a penalty of 0, an empty stop list) is left out silently:
dropping it changes nothing, so a note would only be noise. Adapters map their special
cases themselves (``own``) before calling it, so their notes come first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ..core.catalog import NO_RULES, ModelRules
from ..core.settings import SETTINGS, ModelSettings


def is_neutral(name: str, value: Any) -> bool:
    """True when sending ``value`` would not change anything (None always; a setting's neutral value)."""
    if value is None:
        return True
    spec = SETTINGS.get(name)
    return spec is not None and spec.is_neutral(value)


def drop(notes: list[str], provider: str, name: str, value: Any, why: str | None = None) -> None:
    """Record that ``name`` was not sent (no note when the value is neutral)."""
    if is_neutral(name, value):
        return
    shown = list(value) if isinstance(value, tuple) else value
    notes.append(f"{name}={shown!r} dropped: {why or f'{provider} does not take it'}")


def wire_settings(settings: ModelSettings, protocol: str, provider: str, notes: list[str], *,
                  own: Collection[str] = (), drops: Collection[str] = (), why: str | None = None) -> dict[str, Any]:
    """``{wire name: value}`` for every set, non-neutral setting ``protocol`` takes.

    ``own``: settings the adapter maps itself (skipped here). ``drops``: settings the
    catalog entry says the endpoint rejects (dropped with a note). ``why``: the note for a
    setting the protocol has no name for; ``{setting}`` in it becomes the setting's name in
    words ("Gemini has no {setting}").
    """
    out: dict[str, Any] = {}
    for name, spec in SETTINGS.items():
        value = getattr(settings, name)
        if value is None or name in own or not spec.sent:
            continue
        wire = spec.wire.get(protocol)
        if name in drops:
            drop(notes, provider, name, value)
        elif wire is None:
            drop(notes, provider, name, value, why.format(setting=name.replace("_", " ")) if why else None)
        elif not spec.is_neutral(value):
            out[wire] = list(value) if isinstance(value, tuple) else value
    return out


def family_settings(settings: ModelSettings, rules: ModelRules, provider: str, model: str,
                    notes: list[str], defaults: ModelSettings | None = None) -> ModelSettings:
    """``settings`` without what the model's family rejects (catalog ``model_rules``): each
    ``drop_settings`` entry, and all but the first set one of a ``one_of`` group, dropped with a
    note. A dropped value equal to the provider's catalog default (``defaults``) goes silently:
    the user did not ask for it, and a note on every call would be noise."""
    if rules is NO_RULES:
        return settings
    gone: dict[str, None] = {}
    for name in sorted(rules.drop_settings):
        value = getattr(settings, name)
        if defaults is None or value != getattr(defaults, name):
            drop(notes, provider, name, value, rules.why or f"{model} does not take it")
        gone[name] = None
    chosen = [n for n in rules.one_of if n not in gone and not is_neutral(n, getattr(settings, n))]
    if len(chosen) > 1:
        # What the user set beats the catalog's default; among equals, the first listed.
        asked = [n for n in chosen if defaults is None or getattr(settings, n) != getattr(defaults, n)]
        kept = (asked or chosen)[0]
        for name in chosen:
            if name != kept:
                value = getattr(settings, name)
                if name in asked:
                    drop(notes, provider, name, value, f"{model} takes {kept} or {name}, not both; {kept} was sent")
                gone[name] = None
    return dataclasses.replace(settings, **gone) if gone else settings


def user_first(messages: list[Any], notes: list[str], provider: str) -> list[Any]:
    """``messages`` (system ones already taken out) without leading assistant turns, which
    Anthropic and Gemini refuse: a history trimmed to its recent turns can start with one."""
    first = next((i for i, m in enumerate(messages) if m.role != "assistant"), len(messages))
    if first:
        notes.append(f"left out {first} assistant turn{'s' if first > 1 else ''} at the start of the history: "
                     f"{provider} needs a user turn first")
    return messages[first:]


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
    width, height = options.get("width"), options.get("height")
    return (int(width) if width else None), (int(height) if height else None)
