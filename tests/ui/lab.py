"""Driving a notebook in JupyterLab from Playwright: the helpers every browser test shares
(imported by name, as tests/providers/provider_helpers.py is)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

#: true once the current notebook's kernel is connected and idle ("Idle" in the status bar
#: shows earlier, and a Run All before the connection runs nothing)
WAIT_KERNEL = """() => {
  const k = window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""


def write_notebook(path: Path, cells: list[str]) -> None:
    """A notebook of code cells on the python3 kernel."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(src) for src in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def open_notebook(page, url: str) -> None:
    page.goto(url)
    page.locator(".jp-Notebook").first.wait_for(timeout=90_000)
    page.wait_for_function(WAIT_KERNEL, timeout=90_000)


def run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def rerun(page, cells, i: int) -> None:
    """Run cell i in place (Control+Enter: Shift+Enter on the last cell would add a cell)."""
    cells.nth(i).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")


def output(cells, i: int):
    return cells.nth(i).locator(".jp-OutputArea-output")


def api(base: str, token: str, path: str, method: str = "GET", body: object = None) -> object:
    """One call of the Jupyter server's REST API (contents, sessions)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def save_with_widget_state(page, base: str, token: str, name: str) -> dict:
    """Save the open notebook (File > Save's command: a click to focus it for Control+S may land
    on a widget) and wait until the saved file holds the widget state (saveState, set in
    lab-user-settings); returns the contents API model."""
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
    for _ in range(60):
        saved = api(base, token, f"/api/contents/{name}")
        if "application/vnd.jupyter.widget-state+json" in (saved["content"]["metadata"].get("widgets") or {}):
            return saved
        page.wait_for_timeout(500)
    raise AssertionError("saving did not store the widget state")


def shut_down_kernels(base: str, token: str, name: str) -> None:
    """Delete the sessions (and so the kernels) of notebook ``name``."""
    for s in api(base, token, "/api/sessions"):
        if s["path"] == name:
            api(base, token, f"/api/sessions/{s['id']}", "DELETE")
