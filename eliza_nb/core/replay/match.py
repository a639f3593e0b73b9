"""Why a strict replay refused a request: the nearest recorded one, and the field that differs.

Requests are compared as flat fields (``provider``, ``model``, ``messages[1].content``,
``settings.temperature``, ...); the nearest recorded request has the same provider and
model if any does, then the fewest differing fields, then the closest texts.
"""

from __future__ import annotations

import difflib
from typing import Any


def explain_generation_miss(archive: str, records: list[Any], request: dict[str, Any]) -> str:
    """One line for a generation the archive has no answer for (``records``: GenRecords)."""
    fix = (f"to call providers for unmatched requests use %eliza replay {archive} --fallthrough "
           f"(Python: eliza_nb.replay.replay(path, strict=False))")
    if not records:
        return f"{archive} has no recorded generations; {fix}"
    here = _flatten(request)
    best = min(records, key=lambda g: (_distance(here, _flatten(g.request)), g.line))
    there = _flatten(best.request)
    diffs = _differences(here, there)
    field = diffs[0]
    more = f" and {len(diffs) - 1} more ({', '.join(diffs[1:4])}{', ...' if len(diffs) > 4 else ''})" if len(diffs) > 1 else ""
    a, b = _pair(here.get(field, _MISSING), there.get(field, _MISSING))
    return (f"no recorded answer for this {request['provider']}:{request['model']} request in {archive}: "
            f"the nearest recorded request (line {best.line}) differs in {field} ({a} here, {b} recorded){more}; {fix}")


def explain_embedding_miss(archive: str, embeddings: list[Any], items: list[str], text: str, target: Any,
                           normalized: bool) -> str:
    """One line for a text the archive has no vector for (``embeddings``: EmbRecords)."""
    field = "text" if len(items) == 1 else f"texts[{items.index(text)}]"
    same = [e for e in embeddings if (e.provider, e.model, e.normalized) == (target.provider, target.model, normalized)]
    fix = f"to embed unmatched texts live use %eliza replay {archive} --fallthrough"
    if not same:
        models = sorted({f"{e.provider}:{e.model}" for e in embeddings}) or ["none"]
        return f"no recorded embeddings from {target} in {archive} (it has: {', '.join(models)}); the model differs; {fix}"
    best = max(same[:5000], key=lambda e: (difflib.SequenceMatcher(None, text, e.text).ratio(), -e.line))
    a, b = _pair(text, best.text)
    return f"no recorded embedding for {field} {a} from {target} in {archive}; nearest recorded text (line {best.line}): {b}; {fix}"


def _flatten(req: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"provider": req["provider"], "model": req["model"], "messages": len(req["messages"])}
    for i, m in enumerate(req["messages"]):
        out[f"messages[{i}].role"] = m["role"]
        out[f"messages[{i}].content"] = m["content"]
    for name, value in sorted(req["settings"].items()):
        out[f"settings.{name}"] = value
    return out


_MISSING = object()


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    fields = list(a) + [k for k in b if k not in a]
    diffs = [f for f in fields if a.get(f, _MISSING) != b.get(f, _MISSING)]
    # "messages" (the count) only matters when no single message explains the difference
    return [f for f in diffs if f != "messages"] or diffs


def _distance(a: dict[str, Any], b: dict[str, Any]) -> tuple[int, float]:
    """Same provider and model first, then the fewest differing fields, then the closest texts."""
    diffs = _differences(a, b)
    unlike = sum(1 - difflib.SequenceMatcher(None, a[f], b[f]).quick_ratio() for f in diffs
                 if isinstance(a.get(f), str) and isinstance(b.get(f), str))
    return 1000 * ("provider" in diffs) + 100 * ("model" in diffs) + len(diffs), unlike


def _pair(a: Any, b: Any, width: int = 48) -> tuple[str, str]:
    """Short reprs of two values; long texts are cut around where they first differ."""
    if isinstance(a, str) and isinstance(b, str) and max(len(a), len(b)) > width:
        start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        lo = max(0, start - width // 3)
        return _clip(a, lo, width), _clip(b, lo, width)
    return tuple("(none)" if v is _MISSING else repr(v) for v in (a, b))  # type: ignore[return-value]


def _clip(text: str, lo: int, width: int) -> str:
    part = text[lo:lo + width]
    return ("…" if lo else "") + repr(part) + ("…" if lo + width < len(text) else "")


