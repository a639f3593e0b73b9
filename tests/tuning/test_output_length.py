"""How long an answer may be when the call does not say: the class default, under the catalog's
ceiling, shown by effective_settings (the panel and %eliza config read it)."""

from __future__ import annotations

import pytest

from eliza_nb.core.errors import ConfigError
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.settings import CLASS_OUTPUT_TOKENS, output_default


def effective(rt: Runtime, spec: str, **call) -> int | None:
    return rt.effective_settings(rt.resolve(spec), call=call or None).max_output_tokens


def test_a_call_that_sets_no_max_tokens_gets_its_class_default_under_the_ceiling(tmp_path):
    rt = Runtime(tmp_path, config={}, env={})
    assert CLASS_OUTPUT_TOKENS == {"small": 512, "medium": 1024, "large": 2048}
    assert [effective(rt, f"llama_local:{c}") for c in ("small", "medium", "large")] == [512, 1024, 2048]
    assert rt.catalog.get("llama_local").settings.max_output_tokens == 8192  # the ceiling is still there
    assert effective(rt, "openrouter:large") == 2048 and effective(rt, "redpill:small") == 512
    # Reasoning models spend hidden tokens from the same budget: their providers declare the ceiling.
    assert effective(rt, "openai:small") == 16384 and effective(rt, "anthropic:small") == 16384
    assert effective(rt, "grok:small") == 512 and effective(rt, "grok:large") == 16384  # grok's small does not reason
    # Every later layer still wins: preset, session, call.
    rt.presets.register("short", max_tokens=40)
    assert rt.effective_settings(rt.resolve("llama_local:large"), preset="short").max_output_tokens == 40
    rt.session.update(max_tokens=64)
    assert effective(rt, "llama_local:small") == 64 and effective(rt, "llama_local:small", max_tokens=9) == 9
    rt.session.update(max_tokens=None)
    assert effective(rt, "llama_local:small") == 512
    rt.close()


def test_a_lower_ceiling_and_a_provider_default_from_config(tmp_path):
    config = {"providers": {"llama_local": {"settings": {"max_output_tokens": 300}},
                            "ollama": {"default_max_tokens": {"small": 100}}}}
    rt = Runtime(tmp_path, config=config, env={})
    assert effective(rt, "llama_local:small") == 300 and effective(rt, "llama_local:large") == 300  # never above it
    assert effective(rt, "ollama:small") == 100 and effective(rt, "ollama:medium") == 8192  # the catalog's medium stays
    rt.close()


@pytest.mark.parametrize("bad", ["abc", 0, -5, True, 1.5])
def test_a_bad_default_max_tokens_is_one_line(tmp_path, bad):
    rt = Runtime(tmp_path, config={"providers": {"llama_local": {"default_max_tokens": bad}}}, env={})
    with pytest.raises(ConfigError) as info:
        rt.effective_settings(rt.resolve("llama_local:small"))
    message = str(info.value)
    assert message.startswith("provider llama_local: default_max_tokens must be a number above 0") and "\n" not in message
    assert repr(bad) in message
    rt.close()


def test_output_default_reads_a_number_or_a_table():
    assert output_default("small", 8192) == 512 and output_default("large", 1000) == 1000
    assert output_default("medium", 16384, 16384) == 16384 and output_default("medium", 8192, 16384) == 8192
    assert output_default("large", 8192, {"small": 100}) == 2048 and output_default("small", None) == 512
    assert output_default("embedding", 8192) == 8192  # no class default: the ceiling


def test_the_local_model_answers_without_a_cap_note_and_config_shows_the_default(local_runtime):
    r = local_runtime.generate("What is the capital of France?", temperature=0)
    assert r.settings["max_output_tokens"] == 512 and r.usage.completion_tokens <= 512
    assert not any("capped" in n for n in r.notes), r.notes  # was on every answer: "max output capped at 4,096 ..."
    assert "Paris" in r.text
    # Asking for more than half the loaded window still says why it got less.
    r = local_runtime.generate("What is the capital of France?", temperature=0, max_tokens=6000)
    assert "max output capped at 4,096 tokens: the window is 8,192" in r.notes
    from eliza_nb.notebook.commands.config import config_rows

    row = next(r for r in config_rows(local_runtime) if r["key"] == "max_output_tokens")
    assert row["effective"] == 512 and row["session"] is None
