"""The seed's model-selection guide."""

from __future__ import annotations

import pytest

import eliza_nb
from eliza_nb.core.errors import ConfigError
from eliza_nb.core.selection import select_model_class
from eliza_nb.core.types import ModelClass


@pytest.mark.parametrize("kw, expected", [
    ({"speed": "fast"}, ModelClass.SMALL),
    ({"speed": "fast", "complexity": "high"}, ModelClass.SMALL),  # the seed checks speed first
    ({"complexity": "high"}, ModelClass.LARGE),
    ({"complexity": "medium"}, ModelClass.MEDIUM),
    ({}, ModelClass.MEDIUM),
    ({"budget": "low"}, ModelClass.SMALL),
    ({"complexity": "high", "budget": "low"}, ModelClass.LARGE),
])
def test_rules(kw, expected):
    assert select_model_class(**kw) == expected


def test_inferred_from_the_prompt_with_a_reason():
    cls, why = select_model_class(prompt="What is the capital of France?", explain=True)
    assert cls == ModelClass.SMALL and "short, simple prompt" in why
    cls, why = select_model_class(prompt="Analyze the trade-offs and design a plan, step by step, for migrating a database.", explain=True)
    assert cls == ModelClass.LARGE and "complexity=high" in why
    cls, _ = select_model_class(prompt=" ".join(["word"] * 200), explain=True)
    assert cls == ModelClass.MEDIUM


def test_bad_values_are_one_line():
    with pytest.raises(ConfigError, match="speed must be one of: fast, normal"):
        select_model_class(speed="warp")


def test_public_api():
    assert eliza_nb.select_model_class(speed="fast") == ModelClass.SMALL


def test_auto_in_the_pipeline_and_the_magic(local_runtime, ip):
    from IPython.utils.capture import capture_output

    import eliza_nb

    r = local_runtime.generate("What is the capital of France?", model_class="auto", temperature=0, max_tokens=12)
    assert r.model_class == "small" and r.selection.startswith("small: speed=fast")
    assert "auto → small: speed=fast" in r.footer() and r.metadata()["selection"] == r.selection
    old = eliza_nb.set_runtime(local_runtime)
    try:
        with capture_output() as cap:
            res = ip.run_cell("%%eliza generate --auto --no-stream -t 0 --max-tokens 8 -o auto_r\n"
                              "Analyze and compare, step by step, two designs.")
    finally:
        eliza_nb.set_runtime(old)
    assert res.success, res.error_in_exec
    assert ip.user_ns["auto_r"].model_class == "large"
    assert cap.outputs[-1].metadata["eliza_nb"]["selection"].startswith("large: complexity=high")
    assert "auto → large" in cap.outputs[-1].data["text/plain"], "the footer shows the choice"
