"""The EmbeddingExplorer at 50,000 points in a real JupyterLab + chromium: the points are
drawn on the canvas (WebGL; and canvas 2D, forced, as where WebGL is missing), hovering a point shows its
text fetched from the kernel, a click lists the same neighbours the kernel computes, the
search box highlights exactly the texts the kernel finds, and drag / wheel move the view."""

from __future__ import annotations

import json
import os
import re
import urllib.request

import pytest
from lab import open_notebook, output, rerun, run_all, write_notebook
from playwright.sync_api import expect

pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]
expect.set_options(timeout=60_000)
SHOTS = os.environ.get("UI_SCREENSHOTS")  # a folder: also save a screenshot of the passing run

CELLS = [
    "import numpy as np\nfrom eliza_nb.notebook.widgets import EmbeddingExplorer\n"
    "rng = np.random.default_rng(7)\nn, d = 50_000, 64\n"
    "centres = rng.normal(size=(5, d)).astype(np.float32) * 3\ntopic = rng.integers(0, 5, n)\n"
    "vecs = centres[topic] + rng.normal(size=(n, d)).astype(np.float32)\n"
    "names = ['alpha', 'beta', 'gamma', 'delta', 'omega']\n"
    "texts = [f'point {i} about {names[t]}' for i, t in enumerate(topic)]\n"
    "ex = EmbeddingExplorer(texts, vectors=vecs, labels=[names[t] for t in topic], k=5)\nex",          # 0
    "print('SELECTED', ex.selected, ex.neighbours()['index'].tolist() if ex.selected >= 0 else [])",   # 1
    "print('MATCHES', len(ex.search('about omega')))",                                                 # 2
    "EmbeddingExplorer(texts, vectors=vecs, labels=[names[t] for t in topic], renderer='canvas2d')",   # 3
]

#: non-transparent pixels on the points canvas (read back through a 2-D canvas)
INKED = """el => { const src = el.querySelector('canvas.eliza-explorer-canvas');
  const c = document.createElement('canvas'); c.width = src.width; c.height = src.height;
  const ctx = c.getContext('2d'); ctx.drawImage(src, 0, 0);
  const px = ctx.getImageData(0, 0, c.width, c.height).data; let k = 0;
  for (let i = 3; i < px.length; i += 4) if (px[i] > 0) k++; return k; }"""


def test_explorer_50k_points(jupyter, page):
    base, token, nbdir, _ = jupyter
    write_notebook(nbdir / "explorer_50k.ipynb", CELLS)
    open_notebook(page, f"{base}/lab/tree/explorer_50k.ipynb?token={token}&reset")
    run_all(page)
    cells = page.locator(".jp-Notebook .jp-Cell")
    root = page.locator(".eliza-explorer").first
    expect(root).to_have_attribute("data-drawn", "1", timeout=120_000)
    expect(root).to_have_attribute("data-points", "50000")
    assert root.get_attribute("data-renderer") in ("webgl2", "webgl", "canvas2d")
    inked = root.evaluate(INKED)
    assert inked > 5_000, f"only {inked} pixels drawn"
    expect(root.locator(".eliza-explorer-key")).to_have_count(5)
    root.scroll_into_view_if_needed()

    # -- hover: the point under the mouse shows its text, asked of the kernel ----------------
    pos = root.evaluate("el => el.__explorer.screenOf(123)")
    j = root.evaluate("(el, p) => el.__explorer.pick(p.x, p.y)", pos)
    assert j >= 0, "a point is under its own position"
    page.mouse.move(pos["x"], pos["y"])
    tip = root.locator(".eliza-explorer-tooltip")
    expect(tip).to_have_attribute("data-index", str(j))
    expect(tip).to_contain_text(re.compile(rf"^point {j} about \w+"))
    assert float(root.get_attribute("data-hover-ms")) >= 0

    # -- click: the neighbours listed are the kernel's --------------------------------------
    page.mouse.click(pos["x"], pos["y"])
    items = root.locator(".eliza-explorer-neighbour")
    expect(items).to_have_count(5)
    shown = [int(x) for x in items.evaluate_all("els => els.map(e => e.dataset.index)")]
    rerun(page, cells, 1)
    expect(output(cells, 1)).to_contain_text(f"SELECTED {j} {shown}")

    # -- search: the highlighted count is the kernel's -----------------------------------------
    rerun(page, cells, 2)
    expect(output(cells, 2)).to_contain_text("MATCHES")
    want = re.search(r"MATCHES (\d+)", output(cells, 2).inner_text()).group(1)
    root.locator(".eliza-explorer-search").fill("About OMEGA")
    expect(root).to_have_attribute("data-matches", want)
    expect(root.locator(".eliza-explorer-found")).to_contain_text(f"{int(want):,} matches")
    if SHOTS:
        page.wait_for_timeout(300)
        root.screenshot(path=os.path.join(SHOTS, "explorer_50k_search.png"))
    root.locator(".eliza-explorer-search").fill("")
    expect(root.locator(".eliza-explorer-found")).to_have_text("")

    # -- drag pans, the wheel zooms ---------------------------------------------------------------
    before = root.evaluate("el => el.__explorer.view()")
    page.mouse.move(pos["x"], pos["y"])
    page.mouse.down()
    page.mouse.move(pos["x"] + 80, pos["y"] + 40, steps=5)
    page.mouse.up()
    after = root.evaluate("el => el.__explorer.view()")
    assert after["cx"] < before["cx"] and after["cy"] > before["cy"], (before, after)  # the picture follows the mouse
    page.mouse.wheel(0, -300)
    page.wait_for_function("el => el.__explorer.view().scale > 1.2", arg=root.element_handle())
    page.wait_for_timeout(400)  # redrawn once the view is still
    assert root.evaluate(INKED) > 1_000, "still drawn after panning and zooming"

    # -- the canvas 2-D fallback (no WebGL) draws the same points and still hovers --------------
    flat = page.locator(".eliza-explorer").nth(1)
    expect(flat).to_have_attribute("data-drawn", "1")
    assert flat.get_attribute("data-renderer") == "canvas2d"
    assert flat.evaluate(INKED) > 5_000
    flat.scroll_into_view_if_needed()
    pos = flat.evaluate("el => el.__explorer.screenOf(7)")
    j = flat.evaluate("(el, p) => el.__explorer.pick(p.x, p.y)", pos)
    page.mouse.move(pos["x"], pos["y"])
    expect(flat.locator(".eliza-explorer-tooltip")).to_contain_text(re.compile(rf"^point {j} about \w+"))
    assert not page.errors, page.errors


def _delete_sessions(base: str, token: str) -> None:
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}") as r:
        sessions = json.load(r)
    for s in sessions:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/sessions/{s['id']}?token={token}", method="DELETE")).close()


def test_saved_state_draws_offline_and_says_hover_needs_the_kernel(jupyter, page):
    """Saved with widget state (the UI tests' settings turn saveState on), reopened on a new
    kernel: the points come back from the saved buffers; hover says the text needs the kernel."""
    base, token, nbdir, _ = jupyter
    write_notebook(nbdir / "explorer_saved.ipynb", [CELLS[0].replace("50_000", "2_000")])
    open_notebook(page, f"{base}/lab/tree/explorer_saved.ipynb?token={token}&reset")
    run_all(page)
    root = page.locator(".eliza-explorer")
    expect(root).to_have_attribute("data-drawn", "1")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    saved = nbdir / "explorer_saved.ipynb"
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    state = json.loads(saved.read_text())["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    buffers = [b for m in state.values() for b in m.get("buffers", [])]
    assert {b["path"][0] for b in buffers} == {"xy", "codes"}, "positions and labels saved as binary buffers"
    _delete_sessions(base, token)

    open_notebook(page, f"{base}/lab/tree/explorer_saved.ipynb?token={token}&reset")  # a new kernel
    expect(root).to_have_attribute("data-drawn", "1")
    expect(root).to_have_attribute("data-points", "2000")
    assert root.evaluate(INKED) > 1_000
    root.scroll_into_view_if_needed()
    pos = root.evaluate("el => el.__explorer.screenOf(5)")
    page.mouse.move(pos["x"], pos["y"])
    expect(root.locator(".eliza-explorer-tooltip")).to_contain_text("needs the running kernel")
    expect(root).to_have_attribute("data-offline", "1")
    assert not page.errors, page.errors
