"""The chat playground in a real browser: JupyterLab on loopback, Debian chromium driven by
Playwright, the local model answering.

A chat started in a cell shows in the panel; typing a prompt and pressing Run streams the
answer into the transcript with its footer; a second prompt adds a second turn; Stop
during a long answer keeps the partial text marked interrupted; a cell then reads the
kernel's Conversation (the same object) and counts its messages; Clear empties the
transcript and the conversation.
"""

from __future__ import annotations

import os
import re

import pytest
from lab import open_notebook, output, rerun, write_notebook
from playwright.sync_api import expect

pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]
expect.set_options(timeout=60_000)  # a busy 2-core machine: kernel-bound expectations need time

SHOTS = os.environ.get("UI_SCREENSHOTS")
NOTEBOOK = "chat_ui.ipynb"
CELLS = [
    "%load_ext eliza_nb\nimport eliza_nb\nchat = eliza_nb.runtime().conversation('ui', new=True)\n"
    "chat.say('Hello!', max_tokens=6, temperature=0)\nprint('STARTED', len(chat.messages))",               # 0
    "pg = eliza_nb.playground(name='ui', max_tokens=24, temperature=0)\npg",                             # 1
    "pg.options.update(max_tokens=400, temperature=0.8)\nprint('LONG', pg.options['max_tokens'])",       # 2
    "print('MESSAGES', len(chat.messages), pg.conversation is chat, chat.turns[-1].interrupted, "
    "len(chat.turns[-1].content) > 0)",                                                                    # 3
    "print('AFTER CLEAR', len(chat.messages))",                                                            # 4
]
LAST_ANSWER = ".eliza-turn-assistant >> nth=-1"


def ask(pg, text: str) -> None:
    pg.locator(".eliza-playground-prompt textarea").fill(text)
    pg.locator("button.eliza-run").click()


def test_chat_playground_type_run_stop_clear(jupyter, page):
    base, token, nbdir, _ = jupyter
    write_notebook(nbdir / NOTEBOOK, CELLS)
    open_notebook(page, f"{base}/lab/tree/{NOTEBOOK}?token={token}&reset")
    cells = page.locator(".jp-Notebook .jp-Cell")

    # -- a chat started in a cell shows in the panel --------------------------------------
    rerun(page, cells, 0)
    expect(output(cells, 0)).to_contain_text("STARTED 2", timeout=120_000)
    rerun(page, cells, 1)
    pg = page.locator(".eliza-playground")
    expect(pg).to_be_visible()
    transcript = pg.locator(".eliza-playground-transcript")
    expect(transcript.locator(".eliza-turn-user")).to_have_count(1)
    expect(transcript.locator(".eliza-turn-user")).to_contain_text("Hello!")
    expect(transcript.locator(".eliza-turn-assistant")).to_have_count(1)

    # -- type, Run: the answer streams into the transcript, then its footer ---------------
    transcript.evaluate("""node => { window.__live = [];
        new MutationObserver(() => { const a = node.querySelectorAll('.eliza-turn-assistant .eliza-turn-text');
            if (a.length) window.__live.push(a[a.length - 1].innerText); })
          .observe(node, {subtree: true, childList: true, characterData: true}); }""")
    ask(pg, "What is the capital of France?")
    expect(pg.locator(".eliza-playground-prompt textarea")).to_have_value("")  # the prompt moved up
    expect(transcript.locator(".eliza-turn-assistant")).to_have_count(2)
    last = transcript.locator(LAST_ANSWER)
    expect(last.locator(".eliza-footer")).to_contain_text("llama_local:smollm2-135m-instruct")
    expect(last.locator(".eliza-footer")).to_contain_text(re.compile(r"\d+ → \d+ tok"))
    expect(last.locator(".eliza-footer")).to_contain_text(re.compile(r"\d+ ms"))
    expect(pg.locator("button.eliza-run")).to_be_enabled()
    first_answer = last.locator(".eliza-turn-text").inner_text()
    assert first_answer.strip() and "▌" not in first_answer
    live = page.evaluate("window.__live")
    assert any(t.endswith("▌") and len(t) > 1 for t in live), f"no partial answer was shown: {live}"
    expect(transcript.locator(".eliza-turn-user").nth(1)).to_have_text("What is the capital of France?")

    # -- a second prompt: a second turn under the first -----------------------------------
    ask(pg, "And what about Germany?")
    expect(transcript.locator(".eliza-turn-assistant")).to_have_count(3)
    expect(transcript.locator(LAST_ANSWER).locator(".eliza-footer")).to_contain_text("tok")
    expect(transcript.locator(".eliza-turn-user").nth(2)).to_have_text("And what about Germany?")
    expect(transcript.locator(".eliza-turn-assistant").nth(1).locator(".eliza-turn-text")).to_have_text(first_answer)
    expect(pg.locator("button.eliza-run")).to_be_enabled()

    # -- Stop during a long answer: the partial text stays, marked interrupted ------------
    rerun(page, cells, 2)
    expect(output(cells, 2)).to_contain_text("LONG 400")
    ask(pg, "Write a long story about a cat who travels the world, with many details.")
    expect(transcript.locator(".eliza-turn-assistant")).to_have_count(4)
    page.wait_for_function("""() => { const a = document.querySelectorAll('.eliza-playground-transcript .eliza-turn-text');
        return a.length && a[a.length - 1].innerText.length > 40; }""")
    pg.locator("button.eliza-stop-button").click()
    stopped = transcript.locator(".eliza-turn-interrupted")
    expect(stopped).to_have_count(1)
    expect(stopped.locator(".eliza-footer")).to_contain_text("interrupted by the user")
    expect(pg.locator(".eliza-playground-usage")).to_contain_text("interrupted")
    expect(pg.locator("button.eliza-run")).to_be_enabled()
    expect(pg.locator("button.eliza-stop-button")).to_be_disabled()
    partial = stopped.locator(".eliza-turn-text").inner_text()
    assert len(partial) > 40 and "▌" not in partial, partial
    expect(stopped.locator(".eliza-turn-text")).to_have_text(partial)  # it stays as it was

    # -- the kernel's Conversation is the panel's: 4 exchanges, the last interrupted ------
    rerun(page, cells, 3)
    expect(output(cells, 3)).to_contain_text("MESSAGES 8 True True True")
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "chat_playground.png"), full_page=True)

    # -- Clear empties the transcript and the conversation --------------------------------
    pg.locator("button.eliza-clear").click()
    expect(transcript.locator(".eliza-turn")).to_have_count(0)
    expect(transcript.locator(".eliza-playground-empty")).to_be_visible()
    rerun(page, cells, 4)
    expect(output(cells, 4)).to_contain_text("AFTER CLEAR 0")
    assert not page.errors, page.errors
