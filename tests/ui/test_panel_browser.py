"""The parameter panel's preset round trip and a reopened notebook's widgets, in a real
browser (JupyterLab on loopback, Debian chromium, the local model).

Presets: clicking creative then precise must leave precise's values on the sliders AND in
the kernel's session: the values the browser sends back after the kernel moved a slider
are not user changes (issue 15, item 7). Reopening: a saved notebook whose kernel is gone
shows the saved widget state (the widget manager's ``saveState``, on in
``lab-user-settings`` as ``binder/`` turns it on), and an untrusted copy shows the text
fallback, never "Error displaying widget: model not found" (item 12).
"""

from __future__ import annotations

import json
import os
import re

import pytest
from lab import open_notebook, output, rerun, run_all, save_with_widget_state, shut_down_kernels, write_notebook
from playwright.sync_api import expect

pytestmark = [pytest.mark.ui, pytest.mark.timeout(420)]
expect.set_options(timeout=60_000)  # a busy 2-core machine: kernel-bound expectations need time

SHOTS = os.environ.get("UI_SCREENSHOTS")
SHOW_SESSION = (
    "import re\nrt = eliza_nb.runtime()\ns = rt.session.state\neff = rt.effective_settings(rt.resolve())\n"
    "print('PRESET', s.preset)\n"
    "for n in ('temperature', 'frequency_penalty', 'presence_penalty'):\n"
    "    print('SETTING', n, getattr(s.settings, n), getattr(eff, n), re.sub('<[^>]+>', '', panel.sources[n].value))"
)
PRESET_CELLS = [
    "%load_ext eliza_nb\nimport eliza_nb\n%eliza panel -o panel",   # 0
    SHOW_SESSION,                                                    # 1
    "eliza_nb.runtime().session.update(stop=['\\n\\n', 'END'])",      # 2
]
RUNS = ("import pandas as pd\n"
        "runs = pd.DataFrame([dict(model='llama_local:smollm2-135m-instruct', preset='precise', case_id=c, repeat=0,\n"
        "    output='x', latency_s=0.2, ttft_s=0.05, prompt_tokens=10, completion_tokens=5, tokens_per_s=25.0,\n"
        "    cost_usd=0.0, cache_hit=False, score=1.0, error=None) for c in ('a', 'b')])\n"
        "eliza_nb.benchmark_view(runs)")
REOPEN_CELLS = ["%load_ext eliza_nb\nimport eliza_nb\n%eliza panel", RUNS]


def row(panel, setting: str):
    """A setting's row: the control, the ↺ button and the source text."""
    return panel.locator(f".eliza-{setting}").locator("xpath=ancestor::div[contains(@class,'widget-hbox')][1]")


def expect_preset_shown(page, panel, preset: str, values: dict[str, str]) -> None:
    expect(panel.locator(".eliza-panel-status")).to_contain_text(f"preset {preset} ")
    for setting, shown in values.items():
        expect(panel.locator(f".eliza-{setting} .widget-readout")).to_have_text(shown)
        expect(row(panel, setting).locator(".eliza-source")).to_have_text(f"preset {preset}")


def test_preset_round_trip_in_the_browser(jupyter, page):
    base, token, nbdir, _ = jupyter
    write_notebook(nbdir / "presets_lab.ipynb", PRESET_CELLS)
    open_notebook(page, f"{base}/lab/tree/presets_lab.ipynb?token={token}&reset")
    run_all(page)
    cells = page.locator(".jp-Notebook .jp-Cell")
    panel = page.locator(".eliza-panel").first
    expect(panel).to_be_visible(timeout=90_000)
    expect(output(cells, 1)).to_contain_text("PRESET None")

    presets = panel.locator(".eliza-preset button")
    presets.filter(has_text=re.compile(r"^creative$")).click()
    expect_preset_shown(page, panel, "creative", {"temperature": "0.80", "frequency-penalty": "0.70",
                                                  "presence-penalty": "0.70"})
    page.wait_for_timeout(1500)  # room for whatever the browser sends back to arrive and be handled
    presets.filter(has_text=re.compile(r"^precise$")).click()
    precise = {"temperature": "0.20", "frequency-penalty": "0.00", "presence-penalty": "0.00"}
    expect_preset_shown(page, panel, "precise", precise)
    page.wait_for_timeout(1500)
    expect_preset_shown(page, panel, "precise", precise)  # still: nothing came back as a user change

    # the kernel's side: no session value was written, the next call uses precise's values
    rerun(page, cells, 1)
    out = output(cells, 1)
    expect(out).to_contain_text("PRESET precise")
    expect(out).to_contain_text("SETTING temperature None 0.2 preset precise")
    expect(out).to_contain_text("SETTING frequency_penalty None 0.0 preset precise")
    expect(out).to_contain_text("SETTING presence_penalty None 0.0 preset precise")

    # a real move still writes the session
    handle = panel.locator(".eliza-frequency-penalty .noUi-handle")
    handle.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(panel.locator(".eliza-frequency-penalty .widget-readout")).to_have_text("0.05")
    expect(row(panel, "frequency-penalty").locator(".eliza-source")).to_have_text("session")
    rerun(page, cells, 1)
    expect(out).to_contain_text("SETTING frequency_penalty 0.05 0.05 session")

    # a "\n\n" stop is a visible chip, not an empty one
    rerun(page, cells, 2)
    expect(panel.locator(".eliza-stop")).to_contain_text("\\n\\n")
    expect(panel.locator(".eliza-stop")).to_contain_text("END")
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "panel_presets.png"), full_page=True)
    assert not page.errors, page.errors


def save_close_reopen(page, base: str, token: str, name: str, url: str) -> dict:
    """Save the notebook, shut its kernel down, open it again (a new kernel, nothing run);
    returns the saved notebook (contents API model)."""
    saved = save_with_widget_state(page, base, token, name)
    shut_down_kernels(base, token, name)
    page.on("dialog", lambda d: d.accept())  # "leave the page?" if the browser asks
    open_notebook(page, url)
    return saved


def expect_saved_view(page) -> None:
    panel = page.locator(".eliza-panel").first
    expect(panel).to_be_visible()  # drawn from the saved state
    expect(panel.locator(".eliza-panel-status")).to_contain_text("next call: llama_local:smollm2-135m-instruct")
    expect(panel.locator(".eliza-panel-offline")).to_be_visible()  # "saved view: run the cell ..."
    expect(page.locator(".eliza-bench-table")).to_be_visible()
    page.wait_for_timeout(3000)  # the widget manager has restored: an error would show by now
    expect(page.get_by_text("model not found")).to_have_count(0)
    expect(page.get_by_text("Error displaying widget")).to_have_count(0)
    assert not page.locator(".jp-Cell .jp-InputPrompt", has_text="[*]").count()  # nothing was run


def test_reopened_notebook_shows_saved_widgets_not_model_not_found(jupyter, page):
    base, token, nbdir, _ = jupyter
    name = "reopen_lab.ipynb"
    write_notebook(nbdir / name, REOPEN_CELLS)
    url = f"{base}/lab/tree/{name}?token={token}&reset"
    open_notebook(page, url)
    run_all(page)
    panel = page.locator(".eliza-panel").first
    expect(panel).to_be_visible(timeout=90_000)
    expect(panel.locator(".eliza-panel-status")).to_contain_text("next call: llama_local:smollm2-135m-instruct")
    expect(panel.locator(".eliza-panel-offline")).to_be_hidden()  # live: no note
    expect(page.locator(".eliza-bench-head b")).to_have_text("benchmark: 2 runs · 1 model")  # not "1 models"
    saved = save_close_reopen(page, base, token, name, url)
    again = page
    expect_saved_view(again)
    if SHOTS:
        again.screenshot(path=os.path.join(SHOTS, "reopened_lab.png"), full_page=True)

    # someone else's copy (untrusted: not signed here) shows the text fallback instead
    nb = saved["content"]
    nb["metadata"].pop("widgets", None)
    (nbdir / "reopen_untrusted.ipynb").write_text(json.dumps(nb))
    open_notebook(again, f"{base}/lab/tree/reopen_untrusted.ipynb?token={token}&reset")
    cells = again.locator(".jp-Notebook .jp-Cell")
    expect(output(cells, 0).first).to_contain_text("eliza_nb parameters: llama_local:smollm2-135m-instruct (small)")
    expect(output(cells, 1).first).to_contain_text("benchmark: 2 runs · 1 model")
    expect(again.get_by_text("model not found")).to_have_count(0)
    assert not page.errors, page.errors


def test_notebook7_reopened_notebook_shows_saved_widgets(jupyter, page):
    base, token, nbdir, _ = jupyter
    name = "reopen_nb7.ipynb"
    write_notebook(nbdir / name, REOPEN_CELLS)
    url = f"{base}/notebooks/{name}?token={token}"
    open_notebook(page, url)
    run_all(page)
    expect(page.locator(".eliza-panel").first).to_be_visible(timeout=90_000)
    expect(page.locator(".eliza-bench-table")).to_be_visible()
    save_close_reopen(page, base, token, name, url)
    expect_saved_view(page)
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "reopened_nb7.png"), full_page=True)
