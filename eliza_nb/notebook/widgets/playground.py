"""Playground: a chat panel over a named Conversation: the transcript above, a prompt box,
Run / Stop / Clear below.

Each Run is the conversation's next turn (``Conversation.stream``): the same object as
``%%eliza chat --name NAME`` and ``eliza_nb.chat(NAME)``, so a chat started in cells goes
on here and the other way round. The answer streams on a background thread, so the kernel
stays free (other cells run, the panel's sliders keep working); widget updates from that
thread are safe, ipykernel sends comm messages through its IOPub thread. Stop keeps the
text so far as the assistant turn, marked interrupted (the conversation does that); Clear
resets the conversation. Calls use the session's settings, so the ParameterPanel steers it.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as W

from ...core.errors import ElizaError, StreamInterrupted
from ...core.types import Result
from ..display import footer_html, partial_result
from .reconnect import connection_guard, display_with_note

# Inline styles: class names alone would need a CSS file. column-reverse keeps the scroll
# pinned to the newest turn without any script.
_BOX = ("display:flex;flex-direction:column-reverse;max-height:460px;overflow-y:auto;max-width:720px;padding:4px 8px;"
        "border:1px solid var(--jp-border-color2,#ddd);border-radius:4px;background:var(--jp-layout-color1,#fff)")
_TEXT = "white-space:pre-wrap;font-family:var(--jp-content-font-family,sans-serif);padding:6px 10px;border-radius:8px;"
_USER = _TEXT + "margin:6px 0 4px 60px;background:var(--jp-layout-color2,#eef2f7)"
_ASSISTANT = _TEXT + "margin:6px 60px 0 0;border:1px solid var(--jp-border-color2,#ddd)"
_MUTED = "font-size:0.85em;color:var(--jp-ui-font-color2,#777)"


class Playground(W.VBox):
    """A chat: type a prompt, press Run, the answer streams into the transcript; Stop keeps
    what came so far (marked interrupted); Clear starts the conversation afresh."""

    def __init__(self, runtime: Any = None, prompt: str | None = "", system: str | None = None,
                 min_interval_s: float = 0.05, options: dict[str, Any] | None = None,
                 name: str | None = None, new: bool = False, **kwargs: Any) -> None:
        import eliza_nb

        self.runtime = eliza_nb.runtime() if runtime is None else runtime
        #: call options that override the session for this playground (e.g. max_tokens=64)
        self.options = dict(options or {})
        # eliza_nb.playground(name=..., new=...) reaches here through ``options``
        name = name if name is not None else self.options.pop("name", None)
        new = bool(self.options.pop("new", new))
        self.conversation = self.runtime.conversation(name or "default", new=new)
        self.system = system
        self._interval = min_interval_s
        self.transcript = W.HTML().add_class("eliza-playground-transcript").add_class("eliza-playground-answer")
        self.answer = self.transcript  # the pre-chat name, kept for scripts and tests
        self.prompt = W.Textarea(value=prompt or "", placeholder="Ask something, then press Run",
                                 layout=W.Layout(width="720px", height="80px")).add_class("eliza-playground-prompt")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play").add_class("eliza-run")
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop", disabled=True).add_class("eliza-stop-button")
        self.clear_button = W.Button(description="Clear", icon="trash").add_class("eliza-clear")
        self.usage = W.HTML().add_class("eliza-playground-usage")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.clear_button.on_click(lambda _: self.clear())
        title = f"<b>eliza_nb</b> · chat <code>{html.escape(self.conversation.name)}</code> (uses the session's settings)"
        self.guard = connection_guard("this playground", ".eliza-playground")
        super().__init__(children=[W.HTML(title), self.guard, self.transcript, self.usage, self.prompt,
                                   W.HBox([self.run_button, self.stop_button, self.clear_button])], **kwargs)
        self.add_class("eliza-playground")
        self.text = ""  # the answer streaming now (or the last one)
        self.chunks = 0  # chunks received in the last run (tests and curious users)
        self.result: Result | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._finished = True
        self._target: Any = None
        self._history = ""  # the transcript's HTML when the current run began
        self.refresh()

    # -- control ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self, prompt: str | None = None) -> None:
        """Send ``prompt`` (default: the prompt box) as the next turn; the answer streams on a background thread."""
        text = (self.prompt.value if prompt is None else prompt).strip()
        if self.running:
            self._set_usage("still answering: Stop first", error=True)
            return
        if not text:
            self._set_usage("type a prompt first", error=True)
            return
        options = dict(self.options)
        if self.system:
            options["system"] = self.system
        try:
            stream = self.conversation.stream(text, **options)  # bad settings fail here, in the click
        except ElizaError as exc:
            self._set_usage(str(exc), error=True)
            return
        self._stop.clear()
        self.text, self.chunks, self.result, self.error = "", 0, None, None
        self._finished, self._target = False, stream.target
        self.prompt.value = ""
        self._history = self._turns_html() + _bubble(_USER, text, "user")
        self._show_live("▌")
        self._set_usage("streaming…")
        self.run_button.disabled, self.stop_button.disabled, self.clear_button.disabled = True, False, True
        self._thread = threading.Thread(target=self._work, args=(stream, text), name="eliza-playground", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the answer: the text so far stays as the assistant turn, marked interrupted."""
        if not self.running:
            return
        self._stop.set()
        # Show it at once; the worker closes the stream when the next chunk (or the end) arrives.
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self.result = partial_result(self._target, self.text, "interrupted by the user")
        self._show_live("", self.result)
        self._set_usage(self.result.footer(), error=True)

    def clear(self) -> None:
        """Reset the conversation (its system prompt stays) and empty the transcript."""
        self.stop()
        self.wait(30)  # the stopped turn must land before the reset, not after it
        self.conversation.reset()
        self.refresh()
        self._set_usage("cleared")

    def wait(self, timeout: float | None = 120.0) -> Result | None:
        """Block until the current run ends (for scripts and tests); returns its Result."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def refresh(self) -> None:
        """Redraw the transcript from the conversation (after turns made in cells)."""
        self.transcript.value = _frame(self._turns_html())

    # -- worker ------------------------------------------------------------------------------
    def _work(self, stream: Any, prompt: str) -> None:
        last, error = 0.0, None
        try:
            for chunk in stream:
                if self._stop.is_set():
                    stream.close()  # closed from this thread (the generator runs here): the turn is kept
                    break
                with self._lock:
                    self.text += chunk
                    self.chunks += 1
                now = time.monotonic()
                if now - last >= self._interval and not self._stop.is_set():
                    last = now
                    self._show_live(self.text + "▌")
        except StreamInterrupted:
            pass  # the conversation kept the partial text, marked interrupted
        except ElizaError as exc:
            error = str(exc)
        except Exception as exc:  # never let a thread die silently: show it in the widget
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._finished = True
            # the conversation's own Result (or None: failed, or stopped before any text)
            self.result = stream.result if stream.result is not None else self.result
            self.error = error
        self.refresh()
        if error is not None:
            self.prompt.value = self.prompt.value or prompt  # give the prompt back to retry
            self._set_usage(error, error=True)
        elif stream.result is not None:
            self._set_usage(stream.result.footer(), error=stream.result.interrupted)
        else:
            self._set_usage("stopped before any text: nothing kept", error=True)
        self.run_button.disabled, self.stop_button.disabled, self.clear_button.disabled = False, True, False

    # -- rendering -----------------------------------------------------------------------------
    def _turns_html(self) -> str:
        conv = self.conversation
        parts = [f"<div style='{_MUTED};margin:4px 0'>system: {html.escape(conv.system)}</div>"] if conv.system else []
        for t in conv.turns:
            if t.role == "user":
                parts.append(_bubble(_USER, t.content, "user"))
            else:
                parts.append(_bubble(_ASSISTANT, t.content, "assistant", t.result))
        return "".join(parts)

    def _show_live(self, text: str, result: Result | None = None) -> None:
        live = _bubble(_ASSISTANT, result.text if result is not None else text, "assistant", result)
        self.transcript.value = _frame(self._history + live)

    def _set_usage(self, text: str, error: bool = False) -> None:
        style = _MUTED + (";color:#b91c1c" if error else "")
        self.usage.value = f"<span style='{style}'>{html.escape(text)}</span>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = super()._repr_mimebundle_(**kwargs)
        text = f"eliza_nb chat playground (needs a live kernel with widgets)\n{self.conversation.transcript()}"
        data["text/plain"] = text
        data["text/html"] = f"<pre>{html.escape(text)}</pre>"
        return data

    def _ipython_display_(self) -> None:
        display_with_note(self, "eliza_nb chat playground")


def _bubble(style: str, text: str, role: str, result: Result | None = None) -> str:
    """One turn; an answer carries its footer (provider:model, tokens, latency, interrupted)."""
    cls = f"eliza-turn eliza-turn-{role}" + (" eliza-turn-interrupted" if result is not None and result.interrupted else "")
    footer = footer_html(result) if result is not None else ""
    return f"<div class='{cls}'><div class='eliza-turn-text' style='{style}'>{html.escape(text)}</div>{footer}</div>"


def _frame(inner: str) -> str:
    inner = inner or f"<div class='eliza-playground-empty' style='{_MUTED};padding:6px 0'>no turns yet: type below and press Run</div>"
    return f"<div style='{_BOX}'><div>{inner}</div></div>"
