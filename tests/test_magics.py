"""%eliza / %%eliza in process (IPython's test shell), on the real local models."""

from __future__ import annotations

import numpy as np
import pytest
from IPython.utils.capture import capture_output


@pytest.fixture(autouse=True)
def runtime_for_magics(local_runtime):
    """The magics use eliza_nb.runtime(): point it at the shared local runtime."""
    import eliza_nb

    old = eliza_nb.set_runtime(local_runtime)
    local_runtime.session.reset()
    yield local_runtime
    eliza_nb.set_runtime(old)


def run(ip, cell: str):
    with capture_output() as cap:
        result = ip.run_cell(cell)
    return result, cap


def test_generate_streams_then_renders_the_final_answer(ip):
    ip.user_ns["country"] = "France"
    result, cap = run(ip, "%%eliza generate --temperature 0 --max-tokens 30 -o ans\nWhat is the capital of {country}?")
    assert result.success, result.error_in_exec
    ans = ip.user_ns["ans"]
    assert "Paris" in ans.text and ans.settings["temperature"] == 0
    first, updates = cap.outputs[0], cap.outputs[1:]
    assert first.data == {"text/plain": "…"} and not first.update
    assert updates and all(o.update for o in updates), "the same display is updated, not appended"
    final = updates[-1]
    assert final.data["text/markdown"].startswith(ans.text)
    assert "llama_local:smollm2-135m-instruct" in final.data["text/plain"]
    meta = final.metadata["eliza_nb"]
    assert meta["provider"] == "llama_local" and meta["completion_tokens"] == ans.usage.completion_tokens
    assert meta["settings"]["temperature"] == 0 and meta["cached"] is False


def test_no_stream_and_formats(ip):
    result, cap = run(ip, '%%eliza generate --no-stream -t 0 --max-tokens 40 -f json --no-interpolate\nReply with only this JSON: {"a": 1}')
    assert result.success
    assert len(cap.outputs) == 1 and not cap.outputs[0].update
    bundle = cap.outputs[0].data
    # the first JSON value, pretty-printed in a json block (the footer below it); or one line saying why not
    assert bundle["text/markdown"].startswith("```json") or "JSON" in bundle["text/plain"]


def test_options_reach_the_runtime(ip, local_runtime):
    result, _ = run(ip, "%%eliza generate --no-stream --preset creative -t 0 --max-tokens 3 --stop xyz --seed 7 -o r\nSay hi")
    assert result.success
    settings = ip.user_ns["r"].settings
    assert settings["temperature"] == 0 and settings["frequency_penalty"] == 0.7
    assert settings["max_output_tokens"] == 3 and settings["stop"] == ["xyz"] and settings["seed"] == 7
    assert ip.user_ns["r"].usage.completion_tokens <= 3


def test_system_prompt_and_provider_model_class(ip):
    result, _ = run(ip, '%%eliza generate --no-stream -p llama_local -c small --system "You are a helpful assistant. Be brief." '
                        '-t 0 --max-tokens 20 -o r\nWhat is the capital of France?')
    assert result.success and "Paris" in ip.user_ns["r"].text
    with_system = ip.user_ns["r"].usage.prompt_tokens
    run(ip, "%%eliza generate --no-stream -t 0 --max-tokens 20 -o r\nWhat is the capital of France?")
    assert with_system == ip.user_ns["r"].usage.prompt_tokens + 3  # " Be brief." replaced the default system prompt


@pytest.mark.parametrize("line, message", [
    ("%eliza", "a subcommand is needed"),
    ("%eliza frobnicate", "unknown subcommand 'frobnicate'"),
    ("%%eliza generate --temperature hot\nhi", "expected a number, got 'hot'"),
    ("%%eliza generate --max-tokens -3\nhi", "expected a number above 0"),
    ("%%eliza generate --bogus\nhi", "unrecognized arguments: --bogus"),
    ("%%eliza generate -c huge\nhi", "invalid choice: 'huge'"),
    ('%%eliza generate --system "unbalanced\nhi', "check your quotes"),
    ("%%eliza generate\n   ", "needs the prompt in the cell body"),
    ("%%eliza generate -o 1bad\nhi", "not a valid variable name"),
    ("%%eliza generate\nWhat is {undefined_thing}?", "no variable 'undefined_thing'"),
    ("%%eliza generate\nA lone { brace", "literal brace"),
])
def test_bad_lines_are_one_line_usage_errors(ip, line, message):
    from IPython.core.error import UsageError

    result, cap = run(ip, line)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    text = str(result.error_in_exec)
    assert message in text and "\n" not in text
    assert cap.outputs == [], "nothing is displayed for a bad line"


def test_provider_errors_render_as_one_line(ip):
    from eliza_nb.core.errors import ConfigError

    result, _ = run(ip, "%%eliza generate -p nope\nhi")
    assert isinstance(result.error_in_exec, ConfigError)
    assert result.error_in_exec._render_traceback_() == [f"ConfigError: {result.error_in_exec}"]
    result, _ = run(ip, "%%eliza generate --preset wild\nhi")
    assert "unknown preset 'wild'" in str(result.error_in_exec)


def test_interpolation_escapes_and_no_interpolate(ip):
    ip.user_ns["item"] = {"name": "apple"}
    result, cap = run(ip, "%%eliza generate --no-stream -t 0 --max-tokens 5 -o r\nSay {{literal}} and {item[name]}")
    assert result.success
    result, _ = run(ip, "%%eliza generate --no-stream --no-interpolate -t 0 --max-tokens 5 -o r2\nKeep {this} as is")
    assert result.success


def test_embed_line_and_cell(ip):
    with capture_output():
        vec = ip.run_line_magic("eliza", "embed The cat sat on the mat")
    assert isinstance(vec, np.ndarray) and vec.shape == (384,)
    result, cap = run(ip, "%eliza embed -o v The cat sat on the mat")
    assert result.success and ip.user_ns["v"].shape == (384,)
    shown = cap.outputs[-1]
    assert "v: ndarray (384,) from llama_local:all-minilm-l6-v2" in shown.data["text/plain"]
    assert shown.metadata["eliza_nb"]["dims"] == 384 and shown.metadata["eliza_nb"]["cached"] == 1
    result, _ = run(ip, "%%eliza embed -o df\nfirst text\n\nsecond text\n")
    df = ip.user_ns["df"]
    assert list(df.columns) == ["text", "vector", "dims"] and list(df.text) == ["first text", "second text"]
    assert (df.dims == 384).all()
    result, _ = run(ip, "%eliza embed")
    assert "needs a text" in str(result.error_in_exec)


def test_help(ip):
    result, cap = run(ip, "%eliza help")
    assert "generate" in cap.stdout and "embed" in cap.stdout
    result, cap = run(ip, "%eliza generate --help")
    assert result.success and "--temperature" in cap.stdout and "--no-interpolate" in cap.stdout
