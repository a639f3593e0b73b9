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

from ..core.types import ImageResult, Result, Usage, close_fence, code_blocks

# Inline styles survive JupyterLab's HTML sanitizer (class names alone would need a CSS file).
_FOOTER_STYLE = "margin-top:0.4em;font-size:0.8em;color:var(--jp-ui-font-color2,#777);font-family:var(--jp-ui-font-family,sans-serif)"
_NOTES_STYLE = "margin:0.2em 0 0 1.2em;white-space:pre-wrap"
_FORMAT_NOTE_STYLE = "font-size:0.85em;color:#b45309;font-family:var(--jp-ui-font-family,sans-serif)"
_PROSE_SUMMARY = "font-size:0.85em;color:var(--jp-ui-font-color2,#777);font-family:var(--jp-ui-font-family,sans-serif)"
_BADGE = {
    "warn": "color:#b45309;font-weight:600",
    "good": "color:#15803d",
    "bad": "color:#b91c1c;font-weight:600",
    "replay": "color:#1d4ed8;font-weight:600",
}


def footer_html(result: Result | ImageResult) -> str:
    """The footer (``result.footer_parts()``) as one small HTML line.

    Notes sit behind a ``notes (N)`` marker: the whole line is a ``<details>`` summary that a
    click opens (JupyterLab's sanitizer keeps <details>/<summary> and drops inline handlers),
    and the marker's title shows them on hover too. Plain text, no icon glyph: ⓘ and the like
    render as an empty box with common Linux fonts.
    """
    spans, notes = [], ""
    for text, tone in result.footer_parts():
        t = html.escape(text)
        if tone == "strong":
            spans.append(f"<b>{t}</b>")
        elif tone.startswith("note:"):
            n, notes = int(tone[5:]), text
            spans.append(f"<span title='{html.escape(text, quote=True)}' style='text-decoration:underline dotted'>"
                         f"notes ({n})</span>")
        elif tone in _BADGE:
            spans.append(f"<span style='{_BADGE[tone]}'>{t}</span>")
        else:
            spans.append(t)
    line = " · ".join(spans)
    if not notes:
        return f"<div class='eliza-footer' style='{_FOOTER_STYLE}'>{line}</div>"
    return (f"<details class='eliza-footer' style='{_FOOTER_STYLE}'><summary style='cursor:pointer'>{line}</summary>"
            f"<div class='eliza-notes' style='{_NOTES_STYLE}'>{html.escape(notes)}</div></details>")


def partial_result(target: Any, text: str, note: str, *, usage: Usage | None = None, latency_s: float = 0.0,
                   ttft_s: float | None = None) -> Result:
    """The Result of a stream stopped part-way: the text so far, marked interrupted, with the
    tokens counted so far (``usage``, ``Usage.counted`` set) and the time it ran."""
    return Result(text=text, provider=target.provider, model=target.model, model_class=target.model_class.value,
                  usage=usage or Usage(), latency_s=latency_s, ttft_s=ttft_s, interrupted=True, notes=[note])


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


def render_bundle(result: Result, fmt: str = "markdown", footer: bool = True) -> dict[str, Any]:
    """The MIME bundle for a finished Result in the requested format; the Result's text is
    never changed, only how it shows. An answer that ends inside an open code fence has the
    fence closed before the footer in every format."""
    text = result.text
    small = footer_html(result) if footer else ""
    tail = f"\n— {result.footer()}" if footer else ""
    if fmt == "json":
        return _json_bundle(result, small, tail)
    if fmt == "code":
        return _code_bundle(result, small, tail)
    if fmt == "text":
        return {"text/plain": f"{text}{tail}", "text/html": f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre>{small}"}
    return {"text/plain": f"{text}{tail}", "text/markdown": f"{close_fence(text)}\n\n{small}"}


def _why_cut(result: Result) -> str:
    if result.finish_reason == "length":
        return "the answer hit --max-tokens"
    if result.interrupted:
        return "the answer was interrupted"
    return "the answer ends inside it"


def _fenced(code: str, lang: str) -> str:
    """``code`` as a Markdown fenced block, the fence longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`{3,}", code)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{code}\n{fence}"


def _note_html(note: str) -> str:
    return f"<div class='eliza-format-note' style='{_FORMAT_NOTE_STYLE}'>{html.escape(note)}</div>"


def _code_bundle(result: Result, small: str, tail: str) -> dict[str, Any]:
    """``-f code``: the first fenced block as a code block (its language, else Python, the
    kernel's), the prose around it collapsed below; no block: all of it, with a note."""
    text = result.text
    blocks = code_blocks(text)
    if blocks:
        first = blocks[0]
        code, lang = first.code.rstrip("\n"), first.lang or "python"
        prose = "\n\n".join(part for part in (text[:first.start].strip(), text[first.end:].strip()) if part)
        note = "" if first.closed else f"the code block is cut: {_why_cut(result)}"
    else:
        code, lang, prose = text.strip("\n"), "python", ""
        note = "no code block in the answer: all of it is shown as code"
    md = [_fenced(code, lang)]
    if note:
        md.append(_note_html(note))
    if prose:
        words = len(prose.split())
        md.append(f"<details><summary style='cursor:pointer;{_PROSE_SUMMARY}'>the rest of the answer "
                  f"({words} word{'s' if words != 1 else ''})</summary>\n\n{close_fence(prose)}\n\n</details>")
    plain = code + (f"\n— {note}" if note else "") + (f"\n\n{prose}" if prose else "")
    return {"text/plain": plain + tail, "text/markdown": "\n\n".join([*md, small])}


def _json_bundle(result: Result, small: str, tail: str) -> dict[str, Any]:
    """``-f json``: the first JSON value of the answer, pretty-printed and highlighted, or the
    answer as it is and one line on why no JSON could be shown."""
    found = first_json(result.text, cut=_why_cut(result))
    if isinstance(found, str):
        return {"text/plain": f"{result.text}\n— {found}{tail}",
                "text/markdown": f"{close_fence(result.text)}\n\n{_note_html(found)}\n\n{small}"}
    pretty = json.dumps(found.value, indent=2, ensure_ascii=False)
    return {"text/plain": f"{pretty}{tail}", "text/markdown": f"{_fenced(pretty, 'json')}\n\n{small}"}


class FoundJSON:
    """A JSON value found in an answer, and where it starts."""

    def __init__(self, value: Any, at: int) -> None:
        self.value, self.at = value, at


#: how many places a JSON value may start at are tried (an answer full of brackets stays cheap)
_JSON_TRIES = 500


def first_json(text: str, cut: str = "the answer ends inside it") -> FoundJSON | str:
    """The first JSON object or array in ``text`` (a ```json block first, else from the first
    ``{`` or ``[``), or one line on why there is none; ``cut`` says why an answer stops
    inside the value."""
    starts = [b.code_start + m.start() for b in code_blocks(text)
              if b.lang.lower() in ("json", "jsonc", "json5", "") and (m := re.search(r"[\[{]", b.code)) is not None
              and not b.code[:m.start()].strip()]
    starts += [m.start() for m in re.finditer(r"[\[{]", text)]
    decoder = json.JSONDecoder()
    best: tuple[int, int, json.JSONDecodeError] | None = None  # (progress, start, error)
    skip_below, tried = -1, 0
    for at in dict.fromkeys(starts):  # in order, once each
        if at < skip_below:
            continue  # inside a value that already failed: a fragment of it is not the answer
        tried += 1
        if tried > _JSON_TRIES:
            break
        try:
            value, _ = decoder.raw_decode(text, at)
            return FoundJSON(value, at)
        except json.JSONDecodeError as exc:
            skip_below = max(skip_below, exc.pos)
            if best is None or exc.pos - at > best[0]:
                best = (exc.pos - at, at, exc)
        except RecursionError:
            return "the JSON nests too deeply to show"
    if best is None:
        return "no JSON value in the answer"
    err = best[2]
    # An unterminated string runs to the end of the text, whatever position the error names.
    if not text[err.pos:].strip() or err.msg.startswith("Unterminated string"):
        return f"the JSON is cut at character {len(text.rstrip())}: {cut}"
    return f"the JSON is not valid at character {err.pos} (line {err.lineno}): {err.msg}"


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


def usage_view(df: Any) -> Any:
    """A ledger table (``Ledger.dataframe`` or ``totals``) as a person reads it: times as local
    clock times to the second (the date too when not all today), token counts as whole
    numbers ("—" where unknown), latencies to the millisecond. Only for showing: ``-o VAR``
    keeps the real DataFrame."""
    import datetime as dt

    view = df.copy()
    if "time" in view and len(view):
        days = set(view["time"].dt.date)
        fmt = "%H:%M:%S" if days == {dt.datetime.now(view["time"].dt.tz).date()} else "%Y-%m-%d %H:%M:%S"
        view["time"] = view["time"].dt.strftime(fmt)
    for col in ("prompt_tokens", "completion_tokens", "items", "calls", "errors", "interrupted", "cache_hits"):
        if col in view:
            view[col] = ["—" if missing else f"{int(v):,}" for v, missing in zip(view[col], view[col].isna(), strict=True)]
    for col in ("latency_s", "mean_latency_s"):
        if col in view:
            view[col] = view[col].round(3)
    return view
