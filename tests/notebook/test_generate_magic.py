"""%%eliza generate in process: every option, interpolation, streaming display updates,
the stop button, and provenance metadata (never a key)."""

from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

Q = "What is the capital of France?"


@pytest.fixture
def spy(rt, monkeypatch):
    """Record what the magic hands the runtime (prompt and options), then call through."""
    calls: list[tuple[str, str, dict]] = []
    real_generate, real_stream = rt.generate, rt.stream

    def generate(prompt, **options):
        calls.append(("generate", prompt, options))
        return real_generate(prompt, **options)

    def stream(prompt, **options):
        calls.append(("stream", prompt, options))
        return real_stream(prompt, **options)

    monkeypatch.setattr(rt, "generate", generate)
    monkeypatch.setattr(rt, "stream", stream)
    return calls


def meta(cell):
    return cell.outputs[-1].metadata["eliza_nb"]


def test_stream_updates_one_display_then_final_render(run, ip):
    ip.run_line_magic("config", "Eliza.stream_interval = 0")  # every chunk becomes an update
    cell = run(f"%%eliza generate -t 0 --max-tokens 20 -o ans\n{Q}")
    assert cell.ok, cell.error
    first, updates = cell.outputs[0], cell.outputs[1:]
    assert first.data == {"text/plain": "…"} and not first.update
    assert len(updates) >= 3 and all(o.update for o in updates)
    partial = [o for o in updates[:-1] if o.data["text/plain"].endswith("▌")]
    assert partial, "tokens are shown as they arrive"
    assert all(len(a.data["text/plain"]) <= len(b.data["text/plain"]) for a, b in zip(partial, partial[1:], strict=False))
    final = updates[-1]
    ans = ip.user_ns["ans"]
    assert "▌" not in final.data["text/markdown"] and final.data["text/markdown"].startswith(ans.text)
    assert "eliza-footer" in final.data["text/markdown"] and "tok/s" in final.data["text/plain"]
    m = final.metadata["eliza_nb"]
    assert m["provider"] == "llama_local" and m["model"] == "smollm2-135m-instruct" and m["format"] == "markdown"
    assert m["settings"]["temperature"] == 0 and m["completion_tokens"] == ans.usage.completion_tokens
    assert m["latency_s"] > 0 and m["cached"] is False and "cache_key" in m


def test_no_stream_is_one_output(run):
    cell = run(f"%%eliza generate --no-stream -t 0 --max-tokens 12\n{Q}")
    assert cell.ok and len(cell.outputs) == 1 and not cell.outputs[0].update
    assert "Paris" in cell.outputs[0].data["text/markdown"]


@pytest.mark.parametrize("flags, check", [
    ("-p llama_local", lambda m, s: m["provider"] == "llama_local"),
    ("-p llama_local:medium", lambda m, s: m["model_class"] == "medium"),
    ("-c large", lambda m, s: m["model_class"] == "large"),
    ("-m smollm2-135m-instruct", lambda m, s: m["model"] == "smollm2-135m-instruct"),
    ("--preset precise", lambda m, s: s["temperature"] == 0.2 and s["frequency_penalty"] == 0.0),
    ("--preset creative -t 0", lambda m, s: s["temperature"] == 0 and s["presence_penalty"] == 0.7),
    ("-t 0.35", lambda m, s: s["temperature"] == 0.35),
    ("--max-tokens 3", lambda m, s: s["max_output_tokens"] == 3 and m["completion_tokens"] <= 3),
    ("--frequency-penalty 0.5", lambda m, s: s["frequency_penalty"] == 0.5),
    ("--presence-penalty 0.4", lambda m, s: s["presence_penalty"] == 0.4),
    ("--repetition-penalty 0.1", lambda m, s: s["repetition_penalty"] == 0.1),
    ("--seed 7", lambda m, s: s["seed"] == 7),
    ("--stop xyz 'two words'", lambda m, s: s["stop"] == ["xyz", "two words"]),
    ("--no-cache", lambda m, s: m["cached"] is False),
])
def test_each_option_reaches_the_result(run, flags, check):
    cell = run(f"%%eliza generate --no-stream --max-tokens 8 {flags}\n{Q}")
    assert cell.ok, cell.error
    m = meta(cell)
    assert check(m, m["settings"]), m


def test_stop_sequence_cuts_the_answer(run, ip):
    cell = run(f"%%eliza generate --no-stream -t 0 --max-tokens 20 --stop Paris -o r\n{Q}")
    assert cell.ok
    assert "Paris" not in ip.user_ns["r"].text and ip.user_ns["r"].text.strip()


def test_system_prompt_reaches_the_runtime(run, spy, ip):
    cell = run(f'%%eliza generate --no-stream -t 0 --max-tokens 5 --system "Answer in one word." -o r\n{Q}')
    assert cell.ok and spy[-1][2]["system"] == "Answer in one word."
    with_system = ip.user_ns["r"].usage.prompt_tokens
    run(f"%%eliza generate --no-stream -t 0 --max-tokens 5 -o r\n{Q}")
    assert ip.user_ns["r"].usage.prompt_tokens != with_system


@pytest.mark.parametrize("fmt, key", [("markdown", "text/markdown"), ("text", "text/html"), ("code", "text/markdown"),
                                      ("json", "text/markdown")])
def test_formats(run, fmt, key):
    cell = run(f'%%eliza generate --no-stream -t 0 --max-tokens 20 -f {fmt} --no-interpolate\nReply with JSON: {{"a": 1}}')
    assert cell.ok
    out = cell.outputs[0]
    assert key in out.data and out.metadata["eliza_nb"]["format"] == fmt
    if fmt == "text":
        assert out.data["text/html"].startswith("<pre")
    if fmt == "code":
        assert out.data["text/markdown"].startswith("```")
    if fmt == "json":
        # the value pretty-printed in a ```json block, or one line on why there is none
        assert out.data["text/markdown"].startswith("```json\n") or "JSON" in out.data["text/plain"]


def test_json_format_validates_and_pretty_prints():
    from eliza_nb.core.types import Result
    from eliza_nb.notebook.display import render_bundle

    good = render_bundle(Result(text='```json\n{"a": [1, 2]}\n```', provider="p", model="m", model_class="small"), "json")
    assert json.loads(good["text/plain"].split("\n—")[0]) == {"a": [1, 2]}
    assert good["text/markdown"].startswith('```json\n{\n  "a": [\n    1,')
    bad = render_bundle(Result(text="{not json", provider="p", model="m", model_class="small"), "json")
    assert "the JSON is not valid at character 1" in bad["text/plain"] and "```json" not in bad["text/markdown"]


def test_default_format_from_config(run, ip):
    ip.run_line_magic("config", 'Eliza.default_format = "text"')
    cell = run(f"%%eliza generate --no-stream -t 0 --max-tokens 5\n{Q}")
    assert "text/html" in cell.outputs[0].data and "text/markdown" not in cell.outputs[0].data
    ip.run_line_magic("config", "Eliza.show_footer = False")
    cell = run(f"%%eliza generate --no-stream -t 0 --max-tokens 5 -f markdown\n{Q}")
    assert "eliza-footer" not in cell.outputs[0].data["text/markdown"] and "—" not in cell.outputs[0].data["text/plain"]


def test_output_variable_holds_the_result(run, ip):
    cell = run(f"%%eliza generate --no-stream -t 0 --max-tokens 12 -o my_answer\n{Q}")
    assert cell.ok
    r = ip.user_ns["my_answer"]
    assert r.provider == "llama_local" and "Paris" in r.text and r.usage.completion_tokens > 0


# -- interpolation -----------------------------------------------------------------------

def test_interpolation_names_attrs_items_and_escapes(run, spy, ip):
    class Doc:
        title = "Le Monde"

    ip.user_ns.update(country="France", doc=Doc(), items={"k": "apple"}, nums=[3, 4])
    cell = run("%%eliza generate --no-stream --max-tokens 2\n{country} {doc.title} {items[k]} {nums[1]} {{literal}} {{x}}")
    assert cell.ok, cell.error
    assert spy[-1][1] == "France Le Monde apple 4 {literal} {x}"


def test_interpolation_is_done_once(run, spy, ip):
    ip.user_ns["tricky"] = "{country}"  # a value that looks like a field stays as it is
    run("%%eliza generate --no-stream --max-tokens 2\nsee {tricky}")
    assert spy[-1][1] == "see {country}"


def test_no_interpolate_keeps_braces(run, spy):
    cell = run("%%eliza generate --no-stream --no-interpolate --max-tokens 2\nKeep {this} and {{that}}")
    assert cell.ok and spy[-1][1] == "Keep {this} and {{that}}"


@pytest.mark.parametrize("body, message", [
    ("What is {undefined_thing}?", "no variable 'undefined_thing'"),
    ("{__import__('os')}", "not interpolated"),
    ("A lone { brace", "literal brace"),
    ("{doc._secret}", "private attribute"),
])
def test_interpolation_errors_are_one_line(run, spy, ip, body, message):
    ip.user_ns["doc"] = object()
    cell = run(f"%%eliza generate\n{body}")
    assert isinstance(cell.error, UsageError), cell.error
    assert message in str(cell.error) and "\n" not in str(cell.error)
    assert cell.outputs == [] and spy == [], "nothing reaches the runtime"


# -- the stop button -------------------------------------------------------------------

def test_keyboard_interrupt_keeps_partial_text_marked_interrupted(run, rt, monkeypatch, ip):
    real_stream = rt.stream

    class Interrupting:
        def __init__(self, inner):
            self.inner, self.target, self.result, self.n, self.closed = inner, inner.target, None, 0, False

        def __iter__(self):
            return self

        def __next__(self):
            if self.n == 3:
                raise KeyboardInterrupt
            self.n += 1
            return next(self.inner)

        def close(self):
            self.closed = True
            self.inner.close()

    made = []
    monkeypatch.setattr(rt, "stream", lambda prompt, **o: made.append(Interrupting(real_stream(prompt, **o))) or made[-1])
    cell = run(f"%%eliza generate -t 0 --max-tokens 30 -o cut\n{Q}")
    assert cell.ok, "the interrupt is handled: the kernel carries on"
    cut = ip.user_ns["cut"]
    assert cut.interrupted and cut.text and len(cut.text) < 60 and made[0].closed
    final = cell.outputs[-1]
    assert final.update and final.metadata["eliza_nb"]["interrupted"] is True
    assert "interrupted" in final.data["text/plain"] and final.data["text/markdown"].startswith(cut.text)


# -- keys never show -------------------------------------------------------------------

def test_no_key_in_any_output_or_metadata(ip, home):
    import httpx
    from IPython.utils.capture import capture_output

    import eliza_nb
    from eliza_nb.core.runtime import Runtime

    secret = "sk-test-DO-NOT-SHOW-123456"
    seen = []

    def refuse(request):  # loopback only: nothing leaves this process
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(401, json={"error": {"message": "invalid api key"}})

    keyed = Runtime(home, env={"OPENAI_API_KEY": secret, "GROQ_API_KEY": secret}, transport=httpx.MockTransport(refuse))
    old = eliza_nb.set_runtime(keyed)
    try:
        with capture_output() as cap:
            for line in ("%eliza providers", "%eliza config", "%eliza config set provider openai", "%eliza config",
                         "%eliza usage", "%eliza panel", "%eliza panel --playground"):
                ip.run_cell(line)
            ip.run_cell("%%eliza generate -p openai -t 0\nhi")  # refused by the mock transport
        dumped = json.dumps([[o.data, o.metadata] for o in cap.outputs], default=str) + cap.stdout + cap.stderr
        assert "OPENAI_API_KEY" in dumped and secret not in dumped
        panel = eliza_nb.panel()
        assert secret not in json.dumps(panel._repr_mimebundle_(), default=str)
        assert secret not in str(list(panel.provider.options))
    finally:
        eliza_nb.set_runtime(old)
        keyed.close()
