"""Driving a notebook in JupyterLab from Playwright: the helpers every browser test shares
(imported by name, as tests/providers/provider_helpers.py is)."""

from __future__ import annotations

import re
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
