"""The notebook surface in a real browser: JupyterLab and Notebook 7 on loopback, Debian
chromium driven by Playwright, the local models answering.

JupyterLab: Run All; the parameter panel renders; moving its temperature slider changes
the temperature the next generate uses (read back from a later cell's output); the
playground streams an answer; the embedding explorer draws its points, shows a text on
hover and lists neighbours on click; the benchmark view sorts on a header click; after
``eliza_nb.models``, a panel's model id field offers the listed ids and picking one sets the session.
Notebook 7: the same notebook renders the panel, playground and explorer.
"""

from __future__ import annotations

import os
import re

import pytest
from lab import open_notebook, output, rerun, run_all
from playwright.sync_api import expect

pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]
# Cells run on a 2-core machine that may be busy: give kernel-bound expectations time.
expect.set_options(timeout=60_000)

SHOTS = os.environ.get("UI_SCREENSHOTS")  # a folder: also save screenshots of passing runs

def test_jupyterlab_panel_playground_explorer(jupyter, page):
    base, token, _, _ = jupyter
    open_notebook(page, f"{base}/lab/tree/ui_lab.ipynb?token={token}&reset")
    run_all(page)
    cells = page.locator(".jp-Notebook .jp-Cell")

    # -- the parameter panel renders, bound to the session -------------------------------
    panel = page.locator(".eliza-panel").first  # cell 9 draws a second one
    expect(panel).to_be_visible(timeout=90_000)
    expect(output(cells, 0)).to_contain_text("LOADED llama_local")
    expect(output(cells, 3)).to_contain_text("USED temperature 0.3")  # the catalog's value
    expect(panel.locator(".eliza-panel-status")).to_contain_text("next call: llama_local:smollm2-135m-instruct")
    expect(panel.locator(".eliza-provider select")).to_have_value("llama_local — no key needed")

    # -- move the temperature slider: 0.30 -> 0.40, then re-run the generate --------------
    handle = panel.locator(".eliza-temperature .noUi-handle")
    handle.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    expect(panel.locator(".eliza-temperature .widget-readout")).to_have_text("0.40")
    # the status line is written by Python after the session changed: the round trip is done
    expect(panel.locator(".eliza-panel-status")).to_contain_text("t 0.4 ")
    rerun(page, cells, 2)
    expect(output(cells, 2)).to_contain_text("t 0.4")  # the answer's footer
    rerun(page, cells, 3)
    expect(output(cells, 3)).to_contain_text("USED temperature 0.4")

    # -- the playground streams an answer from the local model ----------------------------
    pg = page.locator(".eliza-playground")
    expect(pg).to_be_visible()
    answer = pg.locator(".eliza-playground-answer")
    # record every text the answer shows in the page, to see it arrive in pieces
    answer.evaluate("""node => { window.__answers = [];
        new MutationObserver(() => window.__answers.push(node.innerText))
          .observe(node, {subtree: true, childList: true, characterData: true}); }""")
    pg.locator("button.eliza-run").click()
    expect(pg.locator(".eliza-playground-usage")).to_contain_text("tok", timeout=60_000)
    expect(pg.locator(".eliza-playground-usage")).to_contain_text("llama_local:smollm2-135m-instruct")
    assert answer.inner_text().strip(), "an answer is shown"
    seen = page.evaluate("window.__answers")
    assert any(t.strip().endswith("▌") for t in seen), f"no partial answer was shown: {seen}"
    assert seen[-1].strip() and not seen[-1].strip().endswith("▌"), "the final answer replaced the stream"
    expect(pg.locator("button.eliza-run")).to_be_enabled()
    rerun(page, cells, 5)
    expect(output(cells, 5)).to_contain_text(re.compile(r"PLAYGROUND (\d+) True True"))
    chunks = int(re.search(r"PLAYGROUND (\d+)", output(cells, 5).inner_text()).group(1))
    assert chunks > 1

    # -- the embedding explorer draws its points; hover and click -------------------------
    ex_root = page.locator(".eliza-explorer")
    expect(ex_root).to_have_attribute("data-drawn", "1")
    expect(ex_root).to_have_attribute("data-points", "6")
    ex_root.scroll_into_view_if_needed()
    at = ex_root.evaluate("el => el.__explorer.screenOf(0)")  # where point 0 is drawn, in page pixels
    page.mouse.move(at["x"], at["y"])
    expect(page.locator(".eliza-explorer-tooltip")).to_contain_text("The cat sat on the mat.")
    at = ex_root.evaluate("el => el.__explorer.screenOf(2)")
    page.mouse.click(at["x"], at["y"])  # the nearest point to the mouse wins, so overlaps do not matter
    neighbours = page.locator(".eliza-explorer-neighbour")
    expect(neighbours).to_have_count(3)
    expect(neighbours.first).to_contain_text("Shares dropped on Wall Street.")
    rerun(page, cells, 7)
    expect(output(cells, 7)).to_contain_text("SELECTED 2 ['Shares dropped on Wall Street.'")

    # -- the benchmark view sorts on a header click ---------------------------------------
    bench = page.locator(".eliza-bench")
    expect(bench.locator(".eliza-bench-table")).to_be_visible()
    first_model = bench.locator("tbody tr").first.locator("td").first
    expect(first_model).to_have_text("fast")  # summary in run order
    bench.locator("th[data-column='p50_latency_s']").click()
    bench.locator("th[data-column='p50_latency_s']").click()  # second click: descending
    expect(bench.locator("th[data-column='p50_latency_s']")).to_contain_text("▼")
    expect(first_model).to_have_text("slow")

    # -- the model id field offers the listed ids; picking one reaches the session ----------
    expect(output(cells, 9).first).to_contain_text("LISTED")
    model_box = page.locator(".eliza-panel").nth(1).locator(".eliza-model input")
    listed = model_box.evaluate("el => Array.from(el.list ? el.list.options : []).map(o => o.value)")
    assert "smollm2-135m-instruct" in listed and "all-minilm-l6-v2" in listed, listed
    model_box.fill("all-minilm-l6-v2")
    model_box.press("Enter")
    expect(page.locator(".eliza-panel").nth(1).locator(".eliza-panel-status")).to_contain_text(
        "next call: llama_local:all-minilm-l6-v2")
    rerun(page, cells, 10)
    expect(output(cells, 10)).to_contain_text("NEXT MODEL all-minilm-l6-v2")
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "jupyterlab.png"), full_page=True)
    assert not page.errors, page.errors


def test_notebook7_renders_the_widgets(jupyter, page):
    base, token, _, _ = jupyter
    open_notebook(page, f"{base}/notebooks/ui_nb7.ipynb?token={token}")
    run_all(page)
    expect(page.locator(".eliza-panel").first).to_be_visible(timeout=90_000)
    expect(page.locator(".eliza-panel .eliza-panel-status").first).to_contain_text("next call: llama_local:smollm2-135m-instruct")
    expect(page.locator(".eliza-playground button.eliza-run")).to_be_visible()
    expect(page.locator(".eliza-explorer")).to_have_attribute("data-drawn", "1")
    expect(page.locator(".eliza-bench-table")).to_be_visible()
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(output(cells, 3)).to_contain_text("USED temperature 0.3")
    # Notebook 7.6's own shell raises these on every page, /tree included, with no widget in sight.
    shell_noise = ("reading 'schema'", "'filebrowser:open-path' not registered")
    ours = [e for e in page.errors if not any(n in e for n in shell_noise)]
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "notebook7.png"), full_page=True)
    assert not ours, ours
