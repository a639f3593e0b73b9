"""%eliza explain [--fix] through a real IPython shell: with no exception, after a real
ZeroDivisionError with the local model answering, and against a loopback server where what
was sent is asserted (the traceback in the prompt, keys masked, the last frames kept)."""

from __future__ import annotations

import json
import sys

import fault_server as fs
import pytest
from fx_helpers import CHAT, delta

from eliza_nb.notebook.commands.explain import EXPLAIN_INSTRUCTION, FIX_FORMAT, FIX_INSTRUCTION

#: a key that matches none of the credential patterns: only the runtime's own list can mask it
KEY = "zzh3Q7wX9kLmN4pR8tV2yB6cD1fG5hJ0"


@pytest.fixture
def fx_key() -> str:
    """The loopback provider ``fx`` (the ``fx`` fixture) is given KEY."""
    return KEY


def answer(text: str) -> fs.Behaviour:
    chunks = [text[i:i + 12] for i in range(0, len(text), 12)]
    events = [delta(c) for c in chunks]
    events.append(json.dumps({"model": "m-small", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 50, "completion_tokens": 20}}))
    return fs.sse(events)


def sent_prompt(server) -> str:
    (req,) = server.requests_to(CHAT)
    assert req.headers["Authorization"] == f"Bearer {KEY}"  # the key goes where it belongs, only there
    users = [m["content"] for m in req.body["messages"] if m["role"] == "user"]
    assert len(users) == 1
    return users[0]


def test_no_exception_yet(cell, prompts, monkeypatch):
    for name in ("last_type", "last_value", "last_traceback"):
        monkeypatch.delattr(sys, name, raising=False)
    result, cap = cell("%eliza explain")
    assert result.success
    assert cap.stdout == "no exception to explain yet\n" and not cap.outputs
    assert prompts == []


def test_explain_a_zero_division_with_the_local_model(cell, ip, prompts):
    failed, _ = cell("def h3_ratio(d):\n    return 10 / d\n\nh3_ratio(0)")
    assert isinstance(failed.error_in_exec, ZeroDivisionError)
    number = failed.execution_count
    result, cap = cell("%eliza explain -t 0 --max-tokens 16 -o h3_ex")
    assert result.success, result.error_in_exec
    (prompt,) = prompts
    assert prompt.startswith(EXPLAIN_INSTRUCTION)
    assert "The cell that failed:\n```python\ndef h3_ratio(d):\n    return 10 / d\n\nh3_ratio(0)\n```" in prompt
    assert f'File "Cell In[{number}]", line 4, in <module>' in prompt
    assert f'File "Cell In[{number}]", line 2, in h3_ratio' in prompt
    assert prompt.rstrip("`\n").endswith("ZeroDivisionError: division by zero")
    assert "interactiveshell.py" not in prompt and "\x1b[" not in prompt  # no IPython frames, no colours
    ex = ip.user_ns["h3_ex"]
    assert ex.provider == "llama_local" and ex.text and not ex.interrupted
    final = cap.outputs[-1]
    assert final.metadata["eliza_nb"]["format"] == "markdown" and final.data["text/markdown"].startswith(ex.text)


def test_a_key_in_the_message_and_locals_is_masked_on_the_wire(cell, ip, fx, server):
    server.script(CHAT, answer("The key was refused."))
    ip.user_ns["h3_key_holder"] = KEY
    failed, _ = cell("def h3_connect():\n    cred = h3_key_holder\n"
                     "    raise ValueError('login failed for ' + cred + ' at ' + repr([cred]))\n\nh3_connect()")
    assert isinstance(failed.error_in_exec, ValueError) and KEY in str(failed.error_in_exec)
    result, cap = cell("%eliza explain -p fx -o h3_masked")
    assert result.success, result.error_in_exec
    prompt = sent_prompt(server)
    body = json.dumps(server.requests_to(CHAT)[0].body)
    assert KEY not in body and KEY[:8] not in body  # not whole, not in part
    assert "ValueError: login failed for *** at ['***']" in prompt
    assert "    cred = h3_key_holder\n" in prompt  # the failing cell's source went too
    assert all(KEY not in o.data.get("text/plain", "") for o in cap.outputs)
    assert ip.user_ns["h3_masked"].text == "The key was refused."


def test_a_long_traceback_keeps_its_last_frames(cell, ip, fx, server):
    server.script(CHAT, answer("Deep."))
    defs = "".join(f"def h3_g{i}():\n    return h3_g{i + 1}()\n" for i in range(80))
    failed, _ = cell(defs + "def h3_g80():\n    raise KeyError('deep end')\n\nh3_g0()")
    assert isinstance(failed.error_in_exec, KeyError)
    result, cap = cell("%eliza explain -p fx --max-input-tokens 900")
    assert result.success, result.error_in_exec
    prompt = sent_prompt(server)
    trace = prompt.split("The traceback:\n```\n", 1)[1]
    assert trace.startswith("Traceback (most recent call last):\n  … ")
    dropped = int(trace.split("  … ", 1)[1].split(" ", 1)[0])
    assert 0 < dropped < 82
    assert "in h3_g80\n    raise KeyError('deep end')" in trace and trace.rstrip("`\n").endswith("KeyError: 'deep end'")
    assert "in h3_g79\n" in trace and "in <module>\n    h3_g0()" not in trace  # the last frames, not the first
    assert f"traceback trimmed to the budget: the last {82 - dropped} of 82 frames" in cap.stdout
    # (900 - 32 output - 32 margin - 100) tokens at 3 characters each, for the whole prompt
    assert len(prompt) <= (900 - 32 - 32 - 100) * 3


def test_fix_asks_for_code_and_shows_it_as_code(cell, ip, fx, server):
    fixed = "def h3_ratio(d):\n    return 10 / d if d else 0.0"
    server.script(CHAT, answer(f"Guard the zero:\n\n```python\n{fixed}\n```\n\nNow it returns 0.0."))
    failed, _ = cell("def h3_ratio(d):\n    return 10 / d\n\nh3_ratio(0)")
    assert isinstance(failed.error_in_exec, ZeroDivisionError)
    result, cap = cell("%eliza explain --fix -p fx -o h3_fix")
    assert result.success, result.error_in_exec
    prompt = sent_prompt(server)
    assert prompt.startswith(FIX_INSTRUCTION) and "ZeroDivisionError: division by zero" in prompt
    final = cap.outputs[-1]
    assert final.metadata["eliza_nb"]["format"] == FIX_FORMAT
    markdown = final.data["text/markdown"]
    if FIX_FORMAT == "code":  # the first fenced block as the code output, the prose after it
        assert markdown.startswith(f"```python\n{fixed}\n```") and final.data["text/plain"].startswith(fixed)
    else:  # the fenced block renders as a python code block on its own lines, the prose around it
        assert f"\n\n```python\n{fixed}\n```\n\n" in markdown and markdown.count("```") == 2
    assert ip.user_ns["h3_fix"].text.startswith("Guard the zero:")
