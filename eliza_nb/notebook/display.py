"""Rich output: a streaming display that the final render replaces, with provenance metadata.

Every output eliza_nb puts in a notebook carries ``metadata["eliza_nb"]``: for answers,
images and embeddings their provenance (``core.types.provenance``: provider, model, and
settings, tokens, latency, cache key or dims and counts), for tables the command that made
them. Keys never appear: settings and catalog rows hold none. The footer's pieces come
from ``Result.footer_parts()``; this module only turns them into HTML.
"""

from __future__ import annotations

import html
import json
import re
import time
from typing import Any

from IPython.display import display

from ..core.types import ImageResult, Result, Usage

_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n\s*```\s*$", re.S)

# Inline styles survive JupyterLab's HTML sanitizer (class names alone would need a CSS file).
_FOOTER_STYLE = "margin-top:0.4em;font-size:0.8em;color:var(--jp-ui-font-color2,#777);font-family:var(--jp-ui-font-family,sans-serif)"
_BADGE = {
    "warn": "color:#b45309;font-weight:600",
    "good": "color:#15803d",
    "bad": "color:#b91c1c;font-weight:600",
    "replay": "color:#1d4ed8;font-weight:600",
}


def footer_html(result: Result | ImageResult) -> str:
    """The footer (``result.footer_parts()``) as one small HTML line."""
    spans = []
    for text, tone in result.footer_parts():
        t = html.escape(text)
        if tone == "strong":
            spans.append(f"<b>{t}</b>")
        elif tone.startswith("note:"):  # notes can be long: a marker, the text on hover
            n = int(tone[5:])
            spans.append(f"<span title='{html.escape(text, quote=True)}' style='cursor:help'>ⓘ {n} note{'s' if n > 1 else ''}</span>")
        elif tone in _BADGE:
            spans.append(f"<span style='{_BADGE[tone]}'>{t}</span>")
        else:
            spans.append(t)
    return f"<div class='eliza-footer' style='{_FOOTER_STYLE}'>{' · '.join(spans)}</div>"


def partial_result(target: Any, text: str, note: str) -> Result:
    """The Result of a stream stopped part-way: the text so far, marked interrupted."""
    return Result(text=text, provider=target.provider, model=target.model, model_class=target.model_class.value,
                  usage=Usage(), interrupted=True, notes=[note])


class StreamView:
    """A display handle that shows text as it streams, throttled, then the final render."""

    def __init__(self, min_interval_s: float = 0.05, show_footer: bool = True) -> None:
        self.parts: list[str] = []
        self._last = 0.0
        self._interval = min_interval_s
        self._footer = show_footer
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
        self._show(render_bundle(result, fmt, footer=self._footer), answer_metadata(result, fmt))


def _strip_fence(text: str) -> str:
    m = _FENCE.match(text)
    return m.group(1) if m else text


def render_bundle(result: Result, fmt: str = "markdown", footer: bool = True) -> dict[str, Any]:
    """The MIME bundle for a finished Result in the requested format."""
    text = result.text
    small = footer_html(result) if footer else ""
    tail = f"\n— {result.footer()}" if footer else ""
    if fmt == "json":
        try:
            obj = json.loads(_strip_fence(text))
        except (ValueError, RecursionError) as exc:  # a model's answer can nest deeper than json follows
            note = f"not valid JSON: {exc}"
            return {"text/plain": f"{text}\n— {note}{tail}", "text/markdown": f"```\n{text}\n```\n\n**{note}**\n\n{small}"}
        pretty = json.dumps(obj, indent=2, ensure_ascii=False)
        return {"application/json": obj, "text/plain": f"{pretty}{tail}", "text/markdown": f"```json\n{pretty}\n```\n\n{small}"}
    if fmt == "code":
        m = re.match(r"^\s*```([\w+-]*)", text)
        lang = (m.group(1) if m else "") or "python"
        code = _strip_fence(text)
        return {"text/plain": f"{code}{tail}", "text/markdown": f"```{lang}\n{code}\n```\n\n{small}"}
    if fmt == "text":
        return {"text/plain": f"{text}{tail}", "text/html": f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre>{small}"}
    return {"text/plain": f"{text}{tail}", "text/markdown": f"{text}\n\n{small}"}


def show_result(result: Result, fmt: str = "markdown", footer: bool = True) -> None:
    """Display a finished Result (no streaming)."""
    display(render_bundle(result, fmt, footer=footer), raw=True, metadata=answer_metadata(result, fmt))


def answer_metadata(result: Result, fmt: str) -> dict[str, Any]:
    """Output metadata for an answer shown in ``fmt``: the Result's provenance (never a key)."""
    return {"eliza_nb": {**result.metadata(), "format": fmt}}


def show_table(df: Any, *, command: str, title: str = "", note: str = "", html_table: str | None = None,
               meta: dict[str, Any] | None = None) -> None:
    """Display a DataFrame as an HTML table with a title line, plain text, and command metadata."""
    head = f"<div style='font-weight:600;margin:0.2em 0'>{html.escape(title)}</div>" if title else ""
    foot = f"<div class='eliza-footer' style='{_FOOTER_STYLE}'>{html.escape(note)}</div>" if note else ""
    body = html_table if html_table is not None else df.to_html(index=False, border=0, na_rep="")
    plain = "\n".join(p for p in (title, plain_table(df) if len(df) else "(empty)", note) if p)
    display({"text/plain": plain, "text/html": head + body + foot}, raw=True,
            metadata={"eliza_nb": {"command": command, "rows": int(len(df)), **(meta or {})}})


def plain_table(df: Any) -> str:
    """``df.to_string`` with text columns left-aligned (pandas right-aligns everything)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    formatters = {}
    for col in df.columns:
        if not (is_numeric_dtype(df[col]) or is_bool_dtype(df[col])):
            width = max([len(str(col)), *(len(str(v)) for v in df[col])])
            formatters[col] = lambda v, w=width: str(v).ljust(w)
    return df.to_string(index=False, formatters=formatters, justify="left")
