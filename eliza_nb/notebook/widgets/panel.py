"""ParameterPanel: the session's settings as ipywidgets, two-way bound.

The panel keeps no copy of the settings. Moving a control writes the runtime's Session
(``session.update``); every Session change (from this panel, another panel,
``%eliza config set`` or ``%config Eliza.*``) re-renders the controls from the Session.
So the next ``%%eliza generate`` uses exactly what the panel shows.

"Not set" (None) cannot be shown by a slider, so each setting row shows the *effective*
value (catalog < preset < session) with its source beside it, and a ↺ button that unsets
the session value. Moving the control makes it a session value.

Only a user's change may write the session, never the panel's own display. A guard flag
around the Python-side update is not enough: a browser answers some programmatic updates
with a value of its own *after* the flag is cleared (ipywidgets' FloatSlider snaps the value
to its step grid on the kernel's ``set`` and, with ``continuous_update``, sends the snapped
0.7000000000000001 back). So sliders send only at the end of a user's drag or key press
(``continuous_update=False``: the slider's ``change`` event, which a programmatic set never
fires), and a value coming from a control that equals what the panel shows, or what it
showed a moment ago, is taken as that echo and ignored.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as W

from ...core.errors import ConfigError, ElizaError
from ...core.settings import SETTINGS, Setting
from .reconnect import connection_guard, display_with_note

_LABEL = {"description_width": "110px"}
_WIDTH = "420px"  # every control gets this width, so the ↺ buttons line up in a column
_MUTED = "font-size:0.85em;color:var(--jp-ui-font-color2,#777)"
#: how long a value the panel displayed may still come back from the browser as an echo
ECHO_WINDOW_S = 3.0
_ESCAPES = {"\n": "n", "\r": "r", "\t": "t"}
_UNESCAPE = re.compile(r"\\(\\|n|r|t|x[0-9a-fA-F]{2})")


def _labelled(text: str, control: W.Widget, width: str = "424px") -> W.HBox:  # 420 + a control's 2 x 2px margin
    """A right-aligned 110px label (like a slider's description) before a control."""
    label = W.HTML(f"<div style='text-align:right;padding-right:8px'>{html.escape(text)}</div>",
                   layout=W.Layout(width="110px", min_width="110px"))
    return W.HBox([label, control], layout=W.Layout(width=width, align_items="center"))


def _zero_unsets(spec: Setting) -> bool:
    """A number box shows "not set" as 0 where 0 is not a valid value (max tokens)."""
    try:
        spec.check(0)
    except ConfigError:
        return True
    return False


def stop_label(text: str) -> str:
    """A stop sequence as a chip shows it: newlines, tabs and other control characters as
    ``\\n``, ``\\t``, ``\\x1b`` (a ``"\\n\\n"`` stop would otherwise be an empty chip); a
    backslash is doubled only where it would read as one of those. :func:`stop_value` inverts it."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\" if text[i + 1:i + 2] in ("\\", "n", "r", "t", "x") else ch)
        elif ch in _ESCAPES:
            out.append("\\" + _ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def stop_value(label: str) -> str:
    """The stop sequence a chip's text means: ``\\n`` typed or shown is a newline."""
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code == "\\":
            return "\\"
        if code[0] == "x":
            return chr(int(code[1:], 16))
        return {"n": "\n", "r": "\r", "t": "\t"}[code]

    return _UNESCAPE.sub(one, label)


def setting_control(spec: Setting) -> W.Widget:
    """The control for one setting, from its declaration: a slider for a float with a range,
    a number box for other numbers, chips for a list of strings."""
    css = f"eliza-{spec.user_name.replace('_', '-')}"
    if spec.kind is str:
        return W.TagsInput(allow_duplicates=False, tooltip=spec.summary(), layout=W.Layout(width="300px")).add_class(css)
    if spec.kind is float and spec.panel_range is not None:
        lo, hi = spec.panel_range
        # continuous_update=False: the value is sent when a drag or key press ends, never in answer
        # to the kernel setting it (module docstring).
        return W.FloatSlider(min=lo, max=hi, step=spec.step, description=spec.label or spec.name, readout_format=".2f",
                             continuous_update=False, tooltip=spec.summary(), style=_LABEL,
                             layout=W.Layout(width=_WIDTH)).add_class(css)
    box = W.IntText if spec.kind is int else W.FloatText
    tip = spec.summary() + ("; 0 = not set" if _zero_unsets(spec) else "")
    return box(tooltip=tip, layout=W.Layout(width="120px")).add_class(css)


def control_value(spec: Setting, value: Any) -> Any:
    """The session value for what a control shows."""
    if spec.kind is str:
        return tuple(stop_value(v) for v in value)
    if isinstance(value, float):
        value = round(value, 4)  # slider steps accumulate float noise (0.30000000000000004)
    return None if value == 0 and _zero_unsets(spec) else value


def shown_value(control: W.Widget, spec: Setting, value: Any) -> Any:
    """What a control shows for a session value (None: the control's empty value)."""
    if spec.kind is str:
        return [stop_label(v) for v in value or ()]
    if value is None:
        return 0
    if isinstance(control, W.FloatSlider):
        return max(control.min, min(control.max, float(value)))
    return value


def _runtime(runtime: Any) -> Any:
    if runtime is not None:
        return runtime
    import eliza_nb

    return eliza_nb.runtime()


def provider_options(rt: Any) -> list[tuple[str, str]]:
    """Dropdown (label, id) pairs with each provider's key status (the variable name, never the key)."""
    from ...core.catalog import key_status

    return [(f"{entry.id} — {key_status(entry, rt.env).phrase}", entry.id) for entry in rt.catalog]


def model_options(rt: Any, provider: str) -> tuple[str, ...]:
    """The model ids the provider's cached listing names (``%eliza models -p X`` fills it),
    catalog ids first; () when nothing is cached. Never a network call."""
    from ...core.discovery import cached_ids

    try:
        entry = rt.catalog.get(provider)
    except ElizaError:
        return ()
    ids = cached_ids(rt.home, entry)
    if not ids:
        return ()
    ours = [m for m in dict.fromkeys(entry.models.values()) if m in ids]
    return tuple(dict.fromkeys([*ours, *ids]))


class ParameterPanel(W.VBox):
    """Provider, model class, model id, preset and a control per model setting (sliders,
    number boxes, stop chips), bound to ``runtime.session`` (the shared runtime's by default).
    ``max_tokens`` and ``stop`` name those two controls for convenience."""

    def __init__(self, runtime: Any = None, **kwargs: Any) -> None:
        self.runtime = _runtime(runtime)
        self._syncing = False
        #: per control: the value the panel shows (from the session), and the values it sent the
        #: browser in the last ECHO_WINDOW_S seconds (monotonic time, value): what an echo may carry
        self._shown: dict[str, Any] = {}
        self._listing: tuple[Any, Any, tuple[str, ...]] = (None, None, ())  # provider, file stamp, ids
        self._recent: dict[str, list[tuple[float, Any]]] = {}
        rt = self.runtime
        self.status = W.HTML().add_class("eliza-panel-status")
        self.provider = W.Dropdown(options=provider_options(rt), description="provider", style=_LABEL,
                                   layout=W.Layout(width=_WIDTH)).add_class("eliza-provider")
        self.model_class = W.ToggleButtons(options=["small", "medium", "large"]).add_class("eliza-model-class")
        self.model_class.style.button_width = "80px"
        # A Combobox: any id may be typed; the ids of the provider's cached listing
        # (%eliza models) are offered. Read from the cache only: drawing makes no network call.
        self.model = W.Combobox(description="model id", style=_LABEL, continuous_update=False, ensure_option=False,
                                layout=W.Layout(width=_WIDTH)).add_class("eliza-model")
        self.preset = W.ToggleButtons(options=[("none", ""), *[(n, n) for n in rt.presets.names()]],
                                      ).add_class("eliza-preset")
        self.preset.style.button_width = "80px"
        #: every setting's control, by setting name: sliders, then number boxes, then lists
        self.controls: dict[str, W.Widget] = {}
        self.sources: dict[str, W.HTML] = {}
        self.unset_buttons: dict[str, W.Button] = {}
        rows = []
        for spec in sorted(SETTINGS.values(), key=lambda s: (float, int, str).index(s.kind)):
            control = self.controls[spec.name] = setting_control(spec)
            shown = control if isinstance(control, W.FloatSlider) else _labelled(spec.label or spec.name, control)
            rows.append(self._row(spec.name, shown))
        self.sliders: dict[str, W.FloatSlider] = {n: c for n, c in self.controls.items() if isinstance(c, W.FloatSlider)}
        self.max_tokens = self.controls["max_output_tokens"]
        self.stop = self.controls["stop"]
        self.reset_button = W.Button(description="reset to defaults", layout=W.Layout(width="160px")).add_class("eliza-reset")
        self.reset_button.on_click(lambda _: self._reset_all())
        title = W.HTML("<b>eliza_nb</b> · parameters (shared with %%eliza and %eliza config)")
        # A notebook reopened from saved widget state (or a restarted kernel) leaves a panel that
        # changes nothing: the guard then shows "disconnected — re-run the cell" and disables it.
        self.guard = connection_guard("this parameter panel", ".eliza-panel")
        super().__init__(children=[title, self.guard, self.provider, _labelled("model class", self.model_class, "auto"), self.model,
                                   _labelled("preset", self.preset, "auto"), *rows,
                                   self.reset_button, self.status], **kwargs)
        self.add_class("eliza-panel")
        self._refresh()
        self._wire()
        self._unsubscribe = rt.session.observe(self._on_session)

    # -- layout ------------------------------------------------------------------------
    def _row(self, name: str, control: W.Widget) -> W.HBox:
        source = W.HTML(layout=W.Layout(width="150px")).add_class("eliza-source")
        button = W.Button(description="↺", tooltip=f"unset {name} (back to preset / catalog)",
                          layout=W.Layout(width="32px")).add_class("eliza-unset")
        button.on_click(lambda _, n=name: self._write(**{n: None}))
        self.sources[name], self.unset_buttons[name] = source, button
        return W.HBox([control, button, source], layout=W.Layout(align_items="center"))

    # -- panel -> session -----------------------------------------------------------------
    def _wire(self) -> None:
        # A choice equal to the session's is no change (and must not clear the model id).
        self.provider.observe(lambda c: self._choose("provider", c["new"], model=None), names="value")
        self.model_class.observe(lambda c: self._choose("model_class", c["new"], model=None), names="value")
        self.model.observe(lambda c: self._choose("model", c["new"].strip() or None), names="value")
        self.preset.observe(lambda c: self._choose("preset", c["new"] or None), names="value")
        for name, control in self.controls.items():
            control.observe(lambda c, n=name: self._from_control(n, c["new"]), names="value")

    def _choose(self, field: str, value: Any, **also: Any) -> None:
        if not self._syncing and getattr(self.runtime.session.state, field) != value:
            self._write(**{field: value}, **also)

    def _from_control(self, name: str, value: Any) -> None:
        """A setting control changed: a user's change writes the session; an echo of the
        panel's own display (module docstring) is dropped."""
        if self._syncing:
            return
        spec = SETTINGS[name]
        new = control_value(spec, value)
        if name in self._shown and new == control_value(spec, self._shown[name]):
            return  # what the panel shows already: no change
        now = time.monotonic()
        if any(now - t <= ECHO_WINDOW_S and new == control_value(spec, v) for t, v in self._recent.get(name, ())):
            # A late echo of an earlier display: put the current one back in the browser.
            with self._sync():
                self.controls[name].value = self._shown[name]
            return
        # The browser sent this after the displays it had seen: none of those can echo later.
        self._recent.pop(name, None)
        before = self.runtime.session.state
        self._write(**{name: new})
        if self.runtime.session.state is before:  # nothing changed (0 = not set, already unset):
            self._refresh()                       # show the effective value again

    def _write(self, **changes: Any) -> None:
        if self._syncing:  # our own refresh moving a control: not a user change
            return
        try:
            self.runtime.session.update(**changes)
        except (ElizaError, KeyError, TypeError, ValueError) as exc:
            self._error(str(exc))

    def _reset_all(self) -> None:
        from ..config import eliza_config

        self.runtime.session.reset()
        eliza_config().apply_to_session()

    # -- session -> panel -------------------------------------------------------------------
    def _on_session(self, name: str, value: Any) -> None:
        self._refresh()

    @contextmanager
    def _sync(self) -> Iterator[None]:
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _listed_ids(self, provider: str) -> tuple[str, ...]:
        """The model ids to offer, read again only when the provider or its listing file
        changed: the panel redraws on every slider move."""
        from ...core.discovery import cache_path

        try:
            stamp = cache_path(self.runtime.home, provider).stat().st_mtime_ns
        except OSError:
            stamp = None
        if self._listing[:2] != (provider, stamp):
            self._listing = (provider, stamp, model_options(self.runtime, provider))
        return self._listing[2]

    def _refresh(self) -> None:
        """Show the session (and the effective values where the session says nothing)."""
        rt = self.runtime
        state = rt.session.state
        with self._sync():
            options = provider_options(rt)
            if list(self.provider.options) != options:
                self.provider.options = options
            self.provider.value = state.provider
            self.model_class.value = state.model_class if state.model_class in self.model_class.options else "small"
            listed = self._listed_ids(state.provider)
            if tuple(self.model.options) != listed:
                self.model.options = listed
            self.model.value = state.model or ""
            self.preset.value = state.preset or ""
            try:
                target = rt.resolve()
                entry = rt.catalog.get(target.provider)
                preset = rt.presets.get(state.preset) if state.preset else None
                effective = rt.effective_settings(target)
            except ElizaError as exc:
                self._error(str(exc))
                return
            self.model.placeholder = entry.models.get(target.model_class, "") or "(no model for this class)"
            for name, control in self.controls.items():
                self._show(name, control, shown_value(control, SETTINGS[name], getattr(effective, name)))
            for name, source in self.sources.items():
                mine = getattr(state.settings, name)
                if mine is not None:
                    text, bold = "session", True
                elif preset is not None and getattr(preset, name) is not None:
                    text, bold = f"preset {state.preset}", False
                elif name == "max_output_tokens" and effective.max_output_tokens != entry.settings.max_output_tokens:
                    # the class's default length (the catalog's value is the ceiling): what the next call uses
                    text, bold = f"{target.model_class.value} default", False
                elif getattr(entry.settings, name) is not None:
                    text, bold = f"catalog {entry.id}", False
                else:
                    text, bold = "provider default", False
                source.value = f"<span style='{_MUTED}{';font-weight:600' if bold else ''}'>{html.escape(text)}</span>"
                self.unset_buttons[name].disabled = mine is None
            temp = effective.temperature
            self.status.value = (
                f"<span style='{_MUTED}'>next call: <b>{html.escape(str(target))}</b> · "
                f"t {'—' if temp is None else f'{temp:g}'} · preset {html.escape(state.preset or '—')} · "
                f"max {effective.max_output_tokens or '—'} tok</span>"
            )

    def _show(self, name: str, control: W.Widget, value: Any) -> None:
        """Display ``value`` on a control, remembering it as a value the browser may echo."""
        self._shown[name] = value
        spec = SETTINGS[name]
        # Only a real change goes to the browser: pushing back the rounded form of what a user
        # just sent (0.05 for 0.05000000000000002) would move a slider that has gone on since.
        if control_value(spec, control.value) != control_value(spec, value):
            now = time.monotonic()
            recent = [(t, v) for t, v in self._recent.get(name, ()) if now - t <= ECHO_WINDOW_S]
            self._recent[name] = [*recent, (now, value)]
            control.value = value

    def _error(self, message: str) -> None:
        self.status.value = f"<span style='color:#b91c1c'>{html.escape(message)}</span>"

    # -- plain views ------------------------------------------------------------------------
    def summary(self) -> str:
        """What the next call uses, as one line (also the panel's plain-text fallback)."""
        rt = self.runtime
        try:
            target = rt.resolve()
            s = rt.effective_settings(target).as_dict()
        except ElizaError as exc:
            return f"eliza_nb parameters: {exc}"
        preset = rt.session.state.preset or "none"
        shown = ", ".join(f"{k}={v}" for k, v in s.items() if k not in ("max_input_tokens",))
        return f"eliza_nb parameters: {target} ({target.model_class.value}), preset {preset}; {shown}"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Where widgets cannot render (static export, terminal), the text says what is set.
        data = super()._repr_mimebundle_(**kwargs)
        text = self.summary()
        data["text/plain"] = text
        data["text/html"] = f"<pre>{html.escape(text)}</pre>"
        return data

    def _ipython_display_(self) -> None:
        display_with_note(self, "eliza_nb parameter panel")

    def close(self) -> None:
        """Stop following the session and close the controls."""
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
            self._unsubscribe = None
        for child in list(self.children):
            child.close()
        super().close()
