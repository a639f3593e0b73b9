"""Rich output: a streaming display that the final render replaces, with provenance metadata."""

from __future__ import annotations

import html
import json
import re
import time
from typing import Any

from IPython.display import display

from ..core.types import Result

_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n\s*```\s*$", re.S)


def provenance(result: Result) -> dict[str, Any]:
    """Output metadata for a Result (never a key)."""
    return {"eliza_nb": result.metadata()}


class StreamView:
    """A display handle that shows text as it streams, throttled, then the final render."""

    def __init__(self, min_interval_s: float = 0.05) -> None:
        self.parts: list[str] = []
        self._last = 0.0
        self._interval = min_interval_s
        self.handle = display({"text/plain": "…"}, raw=True, display_id=True)
        self.updates = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def append(self, chunk: str) -> None:
        self.parts.append(chunk)
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._show({"text/plain": self.text + "▌", "text/markdown": self.text + "▌"})

    def _show(self, bundle: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        self.updates += 1
        if self.handle is not None:
            self.handle.update(bundle, raw=True, metadata=metadata or {})

    def finish(self, result: Result, fmt: str = "markdown") -> None:
        self._show(render_bundle(result, fmt), provenance(result))


def _strip_fence(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


def render_bundle(result: Result, fmt: str = "markdown") -> dict[str, Any]:
    """The MIME bundle for a finished Result in the requested format."""
    text, footer = result.text, result.footer()
    small = f"<sub>{html.escape(footer)}</sub>"
    plain = f"{text}\n— {footer}"
    if fmt == "json":
        try:
            obj = json.loads(_strip_fence(text))
        except ValueError as exc:
            note = f"not valid JSON: {exc}"
            return {"text/plain": f"{text}\n— {note}\n— {footer}", "text/markdown": f"```\n{text}\n```\n\n**{note}**\n\n{small}"}
        pretty = json.dumps(obj, indent=2, ensure_ascii=False)
        return {"application/json": obj, "text/plain": f"{pretty}\n— {footer}", "text/markdown": f"```json\n{pretty}\n```\n\n{small}"}
    if fmt == "code":
        m = re.match(r"^\s*```([\w+-]*)", text)
        lang = (m.group(1) if m else "") or "python"
        code = _strip_fence(text)
        return {"text/plain": f"{code}\n— {footer}", "text/markdown": f"```{lang}\n{code}\n```\n\n{small}"}
    if fmt == "text":
        return {"text/plain": plain, "text/html": f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre>{small}"}
    return {"text/plain": plain, "text/markdown": f"{text}\n\n{small}"}


def show_result(result: Result, fmt: str = "markdown") -> None:
    """Display a finished Result (no streaming)."""
    display(render_bundle(result, fmt), raw=True, metadata=provenance(result))
