"""``-f code`` / ``-f json`` on realistic answers, through the real IPython shell and a loopback
OpenAI-compatible server (tests/providers/fault_server.py): prose around a ```python block,
bare JSON, JSON in a ```json block with prose, broken JSON, an answer cut inside a fence.
The Result's text never changes; only the rendering does, and no footer lands in a code block."""

from __future__ import annotations

import json

import fault_server as fs
import pytest
from fx_helpers import CHAT, delta

from eliza_nb.core.types import code_blocks

PROSE_AND_CODE = ("Here is a function that reverses a string:\n\n```python\ndef reverse(s: str) -> str:\n"
                  "    return s[::-1]\n```\n\nIt uses slicing with a step of -1. Call it as `reverse('abc')`.")
BARE_JSON = '{"name": "Ada Lovelace", "born": 1815, "fields": ["mathematics", "computing"]}'
FENCED_JSON = ("Sure! Here is the data you asked for:\n\n```json\n{\n  \"city\": \"Paris\",\n  \"population\": 2102650,\n"
               "  \"landmarks\": [\"Eiffel Tower\", \"Louvre\"]\n}\n```\n\nLet me know if you need more.")
BROKEN_JSON = "```json\n{\"city\": \"Paris\", \"population\": 2102650,, \"country\": \"France\"}\n```"
CUT_JSON = "Here you go:\n\n```json\n{\n  \"items\": [\n    {\"id\": 1, \"name\": \"alpha\"},\n    {\"id\": 2, \"na"
CUT_CODE = "Sure:\n\n```python\nfor i in range(10):\n    print(i"


def answer(text: str, finish: str = "stop") -> fs.Behaviour:
    """The answer streamed in 7-character chunks, then the finish reason and the usage."""
    pieces = [text[i:i + 7] for i in range(0, len(text), 7)] or [""]
    events = [delta(p) for p in pieces[:-1]] + [delta(pieces[-1], finish)]
    events.append(json.dumps({"model": "m-small", "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 60}}))
    return fs.sse(events)


@pytest.fixture
def shown(fx, server, run, ip):
    """shown(text, line, finish="stop") -> (final output, Result): ``%%eliza generate <line>``
    run against an answer of ``text``."""

    def show(text: str, line: str, finish: str = "stop"):
        server.script(CHAT, answer(text, finish))
        cell = run(f"%%eliza generate {line} -o ans\nany prompt")
        assert cell.ok, cell.error
        result = ip.user_ns["ans"]
        assert result.text == text, "the Result's text is never changed by the rendering"
        return cell.outputs[-1], result

    return show


def footer_outside_code(markdown: str) -> None:
    """Every fence in the markdown is closed, and the footer is in none of them."""
    blocks = code_blocks(markdown)
    assert all(b.closed for b in blocks), markdown
    at = markdown.index("eliza-footer")
    assert not any(b.start <= at < b.end for b in blocks), markdown


# -- -f code ---------------------------------------------------------------------------------------

def test_code_shows_the_first_block_and_folds_the_prose(shown):
    out, result = shown(PROSE_AND_CODE, "-f code")
    md = out.data["text/markdown"]
    assert md.startswith("```python\ndef reverse(s: str) -> str:\n    return s[::-1]\n```")
    assert "<details><summary" in md and "the rest of the answer" in md
    assert "Here is a function" in md.split("<details>", 1)[1] and "Here is a function" not in md.split("<details>")[0]
    assert "reverses a string:\n\nIt uses slicing" in md  # the prose around the block, joined once
    footer_outside_code(md)
    plain = out.data["text/plain"]
    assert plain.startswith("def reverse(s: str) -> str:\n    return s[::-1]") and "slicing" in plain
    assert out.metadata["eliza_nb"]["format"] == "code"


def test_code_without_a_fence_shows_everything_with_a_note(shown):
    text = "x = [i * i for i in range(5)]\nprint(x)"
    out, _ = shown(text, "-f code")
    md = out.data["text/markdown"]
    assert md.startswith(f"```python\n{text}\n```") and "no code block in the answer: all of it is shown as code" in md
    assert "<details>" not in md and "no code block in the answer" in out.data["text/plain"]


def test_code_cut_by_max_tokens_is_closed_and_says_so(shown):
    out, result = shown(CUT_CODE, "-f code --max-tokens 12", finish="length")
    md = out.data["text/markdown"]
    assert result.finish_reason == "length"
    assert md.startswith("```python\nfor i in range(10):\n    print(i\n```")
    assert "the code block is cut: the answer hit --max-tokens" in md
    footer_outside_code(md)


def test_code_block_holding_a_fence_gets_a_longer_one(shown):
    text = "````markdown\nUse:\n```bash\nls\n```\n````"
    out, _ = shown(text, "-f code")
    md = out.data["text/markdown"]
    assert md.startswith("````markdown\nUse:\n```bash\nls\n```\n````")
    footer_outside_code(md)


# -- -f json ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    (BARE_JSON, json.loads(BARE_JSON)),
    (FENCED_JSON, {"city": "Paris", "population": 2102650, "landmarks": ["Eiffel Tower", "Louvre"]}),
    ("The list [see below] holds it: {\"ok\": true, \"n\": [1, 2]} as asked.", {"ok": True, "n": [1, 2]}),
])
def test_json_finds_the_first_value(shown, text, value):
    out, _ = shown(text, "-f json")
    md, plain = out.data["text/markdown"], out.data["text/plain"]
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    assert md.startswith(f"```json\n{pretty}\n```") and json.loads(plain.split("\n— ")[0]) == value
    assert "application/json" not in out.data  # JupyterLab's JSON viewer (rank 0) would hide the footer
    footer_outside_code(md)


@pytest.mark.parametrize("text, finish, message", [
    (BROKEN_JSON, "stop", "the JSON is not valid at character 48 (line 2): Expecting property name enclosed in double quotes"),
    (CUT_JSON, "length", f"the JSON is cut at character {len(CUT_JSON)}: the answer hit --max-tokens"),
    ("I cannot produce JSON for that, sorry.", "stop", "no JSON value in the answer"),
])
def test_json_says_in_one_line_why_not(shown, text, finish, message):
    out, _ = shown(text, "-f json", finish=finish)
    md, plain = out.data["text/markdown"], out.data["text/plain"]
    assert f"— {message}\n" in plain and message in md and "\n" not in message
    footer_outside_code(md)


def test_json_without_streaming_is_the_same(fx, server, run):
    server.script(CHAT, fs.json_reply({"model": "m-small", "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": FENCED_JSON}}]}))
    cell = run("%%eliza generate --no-stream -f json\nany prompt")
    assert cell.ok and len(cell.outputs) == 1
    assert cell.outputs[0].data["text/markdown"].startswith('```json\n{\n  "city": "Paris"')


# -- markdown: no footer inside an unclosed fence ------------------------------------------------------

@pytest.mark.parametrize("fmt", ["markdown", "json", "code"])
def test_a_cut_fence_is_closed_before_the_footer(shown, fmt):
    out, result = shown(CUT_JSON, f"-f {fmt}", finish="length")
    footer_outside_code(out.data["text/markdown"])
    if fmt == "markdown":
        assert out.data["text/markdown"].startswith(CUT_JSON + "\n```\n\n")
        assert result._repr_markdown_().startswith(CUT_JSON + "\n```\n\n<sub>")  # a Result shown as a value too


def test_first_json_stays_cheap_and_bounded():
    from eliza_nb.notebook.display import first_json

    assert first_json("[" * 100_000) == "the JSON nests too deeply to show"
    assert first_json("{a" * 50_000).startswith("the JSON is not valid at character 1")
    found = first_json('{"outer": {"inner": 1}, "bad": }')
    assert isinstance(found, str) and "not valid" in found  # never the inner fragment of a broken value
