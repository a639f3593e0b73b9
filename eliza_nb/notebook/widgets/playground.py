"""Playground: a prompt box, Run and Stop, the answer streaming in, and a usage line.

Runs ``runtime.stream(...)`` on a background thread, so the kernel stays free while the
answer streams (other cells run, the panel's sliders keep working). It uses the session's
settings, like every other surface, so the ParameterPanel steers it. Widget updates from
a background thread are safe: ipykernel sends comm messages through its IOPub thread.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as W

from ...core.errors import ElizaError, StreamInterrupted
from ...core.types import Result
from ..display import partial_result

_ANSWER_STYLE = ("white-space:pre-wrap;font-family:var(--jp-content-font-family,sans-serif);min-height:3em;"
                 "padding:6px 8px;border:1px solid var(--jp-border-color2,#ddd);border-radius:4px;"
                 "background:var(--jp-layout-color1,#fff);max-width:720px")
_MUTED = "font-size:0.85em;color:var(--jp-ui-font-color2,#777)"


class Playground(W.VBox):
    """Type a prompt, press Run: the answer streams in; Stop keeps what came so far."""

    def __init__(self, runtime: Any = None, prompt: str = "", system: str | None = None,
                 min_interval_s: float = 0.05, options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        import eliza_nb

        self.runtime = eliza_nb.runtime() if runtime is None else runtime
        self.system = system
        #: call options that override the session for this playground (e.g. max_tokens=64)
        self.options = dict(options or {})
        self._interval = min_interval_s
        self.prompt = W.Textarea(value=prompt, placeholder="Ask something, then press Run",
                                 layout=W.Layout(width="720px", height="80px")).add_class("eliza-playground-prompt")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play").add_class("eliza-run")
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop", disabled=True).add_class("eliza-stop-button")
        self.answer = W.HTML(f"<div style='{_ANSWER_STYLE}'></div>").add_class("eliza-playground-answer")
        self.usage = W.HTML().add_class("eliza-playground-usage")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        super().__init__(children=[W.HTML("<b>eliza_nb</b> · playground (uses the session's settings)"), self.prompt,
                                   W.HBox([self.run_button, self.stop_button]), self.answer, self.usage], **kwargs)
        self.add_class("eliza-playground")
        self.text = ""
        self.chunks = 0  # chunks received in the last run (tests and curious users)
        self.result: Result | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- control ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self, prompt: str | None = None) -> None:
        """Start streaming an answer to ``prompt`` (default: the prompt box) on a background thread."""
        if prompt is not None:
            self.prompt.value = prompt
        text = self.prompt.value.strip()
        if self.running:
            return
        if not text:
            self._set_usage("type a prompt first", error=True)
            return
        options = dict(self.options)
        if self.system:
            options["system"] = self.system
        try:
            stream = self.runtime.stream(text, **options)  # bad settings fail here, in the click
        except ElizaError as exc:
            self._set_usage(str(exc), error=True)
            return
        self._stop.clear()
        self.text, self.chunks, self.result, self.error = "", 0, None, None
        self._finished = False
        self._stream_target = stream.target
        self._show("")
        self._set_usage("streaming…")
        self.run_button.disabled, self.stop_button.disabled = True, False
        self._thread = threading.Thread(target=self._work, args=(stream,), name="eliza-playground", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the stream: the text so far stays, marked interrupted; nothing is cached."""
        if not self.running:
            return
        self._stop.set()
        # Show it at once; the worker closes the stream when the next chunk (or the end) arrives.
        with self._lock:
            text = self.text
        self._finish(partial_result(self._stream_target, text, "interrupted by the user"))

    def wait(self, timeout: float | None = 120.0) -> Result | None:
        """Block until the current run ends (for scripts and tests); returns its Result."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.result

    # -- worker ------------------------------------------------------------------------------
    def _work(self, stream: Any) -> None:
        last = 0.0
        try:
            for chunk in stream:
                if self._stop.is_set():
                    stream.close()  # closed from this thread: the generator runs here
                    return
                with self._lock:
                    self.text += chunk
                    self.chunks += 1
                now = time.monotonic()
                if now - last >= self._interval:
                    last = now
                    self._show(self.text + "▌")
            self._finish(stream.result)
        except StreamInterrupted as exc:
            self._finish(partial_result(stream.target, exc.partial or self.text, f"interrupted: {exc}"))
        except ElizaError as exc:
            self.error = str(exc)
            self._finish(None, error=str(exc))
        except Exception as exc:  # never let a thread die silently: show it in the widget
            self.error = f"{type(exc).__name__}: {exc}"
            self._finish(None, error=self.error)

    def _finish(self, result: Result | None, error: str | None = None) -> None:
        with self._lock:
            if self._finished:
                return  # the first ending wins (Stop racing the last chunk)
            self._finished = True
            self.result = result
        if result is not None:
            self._show(result.text)
            self._set_usage(result.footer(), error=result.interrupted)
        else:
            self._show(self.text)
            self._set_usage(error or "failed", error=True)
        self.run_button.disabled, self.stop_button.disabled = False, True

    _stream_target: Any = None
    _finished = True

    # -- rendering -----------------------------------------------------------------------------
    def _show(self, text: str) -> None:
        self.answer.value = f"<div style='{_ANSWER_STYLE}'>{html.escape(text)}</div>"

    def _set_usage(self, text: str, error: bool = False) -> None:
        style = _MUTED + (";color:#b91c1c" if error else "")
        self.usage.value = f"<span style='{style}'>{html.escape(text)}</span>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = super()._repr_mimebundle_(**kwargs)
        text = "eliza_nb playground (needs a live kernel with widgets)"
        if self.result is not None:
            text += f"\nlast answer: {self.result.text}\n— {self.result.footer()}"
        data["text/plain"] = text
        data["text/html"] = f"<pre>{html.escape(text)}</pre>"
        return data
