"""The footer's notes and the -f code / cut-fence renders in a real browser (JupyterLab on
loopback, Debian chromium via Playwright): JupyterLab's sanitizer keeps the <details> toggle,
a click opens the notes, no icon glyph is used, and no footer renders inside a code block."""

from __future__ import annotations

import pytest
from lab import open_notebook, rerun, write_notebook
from playwright.sync_api import expect

pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]
expect.set_options(timeout=60_000)

NOTEBOOK = "footer_formats_ui.ipynb"
CELL = """from eliza_nb.core.types import Result, Usage
from eliza_nb.notebook.display import show_result
notes = ["seed dropped: the API has no seed", "waited 1.0 s for the rate limit"]
show_result(Result(text="Here is one:\\n\\n```python\\nprint('hi')\\n```\\n\\nThat prints hi.", provider="p", model="m",
                   model_class="small", usage=Usage(3, 5), latency_s=0.2, notes=notes), "code")
show_result(Result(text='Data:\\n\\n```json\\n{"a": [1,', provider="p", model="m", model_class="small",
                   usage=Usage(3, 5), finish_reason="length", notes=notes[:1]), "markdown")
print("SHOWN")"""


def test_notes_toggle_and_code_renders(jupyter, page):
    base, token, nbdir, _ = jupyter
    write_notebook(nbdir / NOTEBOOK, [CELL])
    open_notebook(page, f"{base}/lab/tree/{NOTEBOOK}?token={token}&reset")
    cells = page.locator(".jp-Notebook .jp-Cell")
    cell = cells.first
    rerun(page, cells, 0)
    out = cell.locator(".jp-OutputArea")
    expect(out).to_contain_text("SHOWN", timeout=120_000)

    footers = out.locator("details.eliza-footer")
    expect(footers).to_have_count(2)  # the sanitizer kept <details> and its class
    expect(footers.first.locator("summary")).to_contain_text("notes (2)")
    assert "ⓘ" not in out.inner_text()
    notes = footers.first.locator(".eliza-notes")
    expect(notes).to_be_hidden()
    footers.first.locator("summary").click()  # a click, not only a hover
    expect(notes).to_be_visible()
    expect(notes).to_contain_text("seed dropped: the API has no seed")

    # -f code: the block as code, the prose folded; the cut fence closed before the footer
    expect(out.locator("pre").first).to_contain_text("print('hi')")
    prose = out.locator("details:not(.eliza-footer)")
    expect(prose.locator("summary")).to_contain_text("the rest of the answer")
    expect(prose.get_by_text("That prints hi.")).to_be_hidden()
    expect(out.locator("pre").nth(1)).to_contain_text('"a": [1,')
    expect(out.locator("pre .eliza-footer, pre details, code .eliza-footer")).to_have_count(0)
    assert "eliza-footer" not in out.locator("pre").nth(1).inner_html()
    assert not page.errors, page.errors
