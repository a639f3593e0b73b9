"""What a widget leaves in a saved notebook besides itself: a "re-run the cell to reconnect" note.

A notebook saved without widget state and opened again (by its owner, so trusted) shows
jupyterlab-manager's "Error displaying widget: model not found" for every widget: its renderer
for the widget-view mime type outranks every other type in the bundle, so a bundle's own
``text/html`` fallback is never reached there. A second output right after the widget can be:
this note, hidden by default, is shown (and the error line hidden) by CSS only when the output
before it is that error node, which the manager marks with the class ``jupyter-widgets`` on the
output element itself (a live view carries the class on its child instead). Where a sanitizer
drops the ``<style>`` (an untrusted notebook, a static viewer) the note's inline
``display:none`` keeps it hidden: there the bundle's own text fallback is shown anyway.
"""

from __future__ import annotations

import html
from typing import Any

import anywidget
import traitlets

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_ERROR_NODE = ".jp-OutputArea-child:has(> .jp-OutputArea-output.jupyter-widgets)"
RECONNECT_CSS = (
    ".jp-OutputArea-child:has(.eliza-reconnect){display:none}"
    f"{_ERROR_NODE}+.jp-OutputArea-child:has(.eliza-reconnect){{display:flex}}"
    f"{_ERROR_NODE}+.jp-OutputArea-child .eliza-reconnect{{display:block!important}}"
    f"{_ERROR_NODE}:has(+.jp-OutputArea-child .eliza-reconnect){{display:none}}"
)


def reconnect_note(what: str) -> str:
    """HTML for the output that follows a widget: invisible while the widget renders; after a
    reopen without saved widget state it replaces the manager's "model not found" line."""
    return (f"<div class='eliza-reconnect' style='display:none;font-size:13px;padding:4px 0;color:#92400e'>"
            f"{html.escape(what)}: the interactive view is not in this saved notebook (widget state was not saved). "
            "Re-run the cell to reconnect.</div>"
            f"<style>{RECONNECT_CSS}</style>")


def display_with_note(widget: Any, what: str) -> None:
    """Display ``widget`` (its own mime bundle, with ``{"eliza_nb": {"widget": <class>}}`` in the
    metadata) and then the reconnect note as a second output."""
    from IPython.display import display

    bundle = widget._repr_mimebundle_()
    data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})  # anywidget: (data, meta); ipywidgets: data
    meta = dict(meta or {})
    meta.setdefault("eliza_nb", {})["widget"] = type(widget).__name__
    display(data, metadata=meta, raw=True)
    display({"text/html": reconnect_note(what), "text/plain": ""}, raw=True)


# -- a kernel-bound panel that lost its kernel -----------------------------------------------------

# ipywidgets marks every view whose model has no live comm with the class
# `jupyter-widgets-disconnected` (its DOMWidgetView follows `model.comm_live`): a view drawn from
# a notebook's saved widget state, and every view after the widget manager disconnected on a
# kernel restart. The guard watches that class on the panel's box (its host; an anywidget's own
# element misses the restart's update) and, for a kernel that died without a restart, the
# kernel's status on every press inside the panel. It does not time a ping: a live kernel
# running the rest of a Run All answers late, and would look gone.
_GUARD_ESM = """
function render({ model, el }) {
  el.classList.add("eliza-guard", "eliza-panel-offline");
  el.textContent = model.get("message");
  let host = null, off = null;
  const gone = () => {
    // the panel's own box view carries the class (an anywidget's element does not always)
    if (host.classList.contains("jupyter-widgets-disconnected") || el.classList.contains("jupyter-widgets-disconnected")) return true;
    const k = model.widget_manager && model.widget_manager.kernel;
    return !!k && (k.status === "dead" || k.connectionStatus === "disconnected");
  };
  const check = () => {
    if (!host) return false;
    const now = gone();
    if (now === off) return now;
    off = now;
    el.dataset.connected = now ? "0" : "1";
    host.classList.toggle("eliza-disconnected", now);
    for (const c of host.querySelectorAll("input, button, textarea, select")) {
      if (now && !c.disabled) { c.disabled = true; c.dataset.elizaGuard = "1"; }
      else if (!now && c.dataset.elizaGuard) { c.disabled = false; delete c.dataset.elizaGuard; }
    }
    for (const c of host.children) if (c !== el && !c.contains(el)) c.inert = now;
    return now;
  };
  const press = (e) => { if (check()) { e.preventDefault(); e.stopPropagation(); } };
  const observer = new MutationObserver(check);
  // the box appends its children after they render: look for the host until it is there
  let tries = 0;
  const timer = setInterval(() => {
    host = el.closest(model.get("host"));
    if (host) {
      clearInterval(timer);
      observer.observe(host, { attributes: true, attributeFilter: ["class"] });
      observer.observe(el, { attributes: true, attributeFilter: ["class"] });
      host.addEventListener("pointerdown", press, true);
      host.addEventListener("keydown", press, true);
      check();
    } else if (++tries > 240) clearInterval(timer);
  }, 100);
  return () => {
    observer.disconnect(); clearInterval(timer);
    if (host) { host.removeEventListener("pointerdown", press, true); host.removeEventListener("keydown", press, true); }
  };
}
export default { render };
"""
_GUARD_CSS = """
.eliza-guard { display: none; }
.eliza-guard.jupyter-widgets-disconnected, .eliza-guard[data-connected="0"] { display: block; margin: 4px 0; padding: 4px 8px;
  border: 1px solid #f59e0b; border-radius: 4px; background: #fffbeb; color: #92400e; font-weight: 600; }
.eliza-guard.jupyter-widgets-disconnected::before { display: none; }
.eliza-disconnected > :not(.eliza-guard) { opacity: 0.55; }
.eliza-disconnected .jupyter-widgets-disconnected::before, .eliza-disconnected.jupyter-widgets-disconnected::before {
  display: none; } /* ipywidgets' broken-link icon on every control: the banner says it once */
"""


class ConnectionGuard(anywidget.AnyWidget):
    """A child widget for a kernel-bound panel (the CSS selector ``host``, e.g. ".eliza-panel"):
    hidden while the kernel is there; without it (a notebook reopened from saved widget state, a
    restarted or dead kernel) it shows ``message`` as a banner and disables the panel's inputs,
    so nothing looks live that no longer changes anything."""

    _esm = _GUARD_ESM
    _css = _GUARD_CSS
    message = traitlets.Unicode().tag(sync=True)
    host = traitlets.Unicode().tag(sync=True)


def connection_guard(what: str, host: str) -> ConnectionGuard:
    """The guard for ``what`` ("this panel") inside ``host``, with the "re-run the cell" banner."""
    return ConnectionGuard(message=f"disconnected — {what} is not connected to a running kernel "
                                   "(a saved view, or the kernel restarted): re-run the cell to use it again",
                           host=host)
