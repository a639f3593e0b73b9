"""Presets, the merge rule (None = unset, 0 is a value) and the runtime's use of both."""

from __future__ import annotations

import pytest

from eliza_nb.core.errors import ConfigError
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.settings import BUILTIN_PRESETS, ModelSettings, Presets, merge_settings
from eliza_nb.core.types import ModelClass


def test_preset_values_from_the_seed():
    assert BUILTIN_PRESETS["creative"] == ModelSettings(temperature=0.8, frequency_penalty=0.7, presence_penalty=0.7)
    assert BUILTIN_PRESETS["balanced"] == ModelSettings(temperature=0.5, frequency_penalty=0.3, presence_penalty=0.3)
    assert BUILTIN_PRESETS["precise"] == ModelSettings(temperature=0.2, frequency_penalty=0.0, presence_penalty=0.0)


def test_zero_survives_every_layer():
    catalog = ModelSettings(temperature=0.6, max_output_tokens=8192, frequency_penalty=0.5)
    merged = merge_settings(catalog, BUILTIN_PRESETS["creative"], ModelSettings(temperature=0.0), {"max_output_tokens": None})
    assert merged.temperature == 0.0
    assert merged.frequency_penalty == 0.7  # preset over catalog
    assert merged.max_output_tokens == 8192  # None never overrides
    # 0 at the call layer over a non-zero session
    assert merge_settings(catalog, None, ModelSettings(temperature=0.9), {"temperature": 0}).temperature == 0
    # 0 in the catalog survives a preset that does not set it
    balanced = BUILTIN_PRESETS["balanced"].merged({"presence_penalty": None})
    assert merge_settings(ModelSettings(presence_penalty=0.0), balanced).presence_penalty == 0.3


def test_stop_becomes_a_tuple_and_merges():
    s = ModelSettings(stop="END")
    assert s.stop == ("END",)
    assert ModelSettings(stop=["a", "b"]).merged({"stop": ["c"]}).stop == ("c",)


def test_unknown_setting_and_preset_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown setting.*temprature.*valid: stop"):
        ModelSettings.from_mapping({"temprature": 0.1})
    with pytest.raises(ConfigError) as err:
        Presets().get("creatve")
    assert "unknown preset 'creatve'" in str(err.value) and "creative, balanced, precise" in str(err.value)


def test_user_presets_register_and_load_from_config():
    p = Presets({"terse": {"temperature": 0.0, "max_output_tokens": 64}})
    assert p.get("terse") == ModelSettings(temperature=0.0, max_output_tokens=64)
    p.register("wild", temperature=1.2)
    assert "wild" in p.names()
    with pytest.raises(ConfigError, match="preset bad"):
        p.register("bad", tempreature=1)


def test_runtime_merge_order_catalog_preset_session_call(tmp_path):
    rt = Runtime(tmp_path, config={}, env={})
    target = rt.resolve("openai")
    assert rt.effective_settings(target).temperature == 0.6  # catalog
    assert rt.effective_settings(target, "creative").temperature == 0.8  # preset
    rt.session.update(temperature=0.0)
    assert rt.effective_settings(target, "creative").temperature == 0.0  # session over preset
    assert rt.effective_settings(target, "creative", {"temperature": 0.4}).temperature == 0.4  # call
    rt.session.update(temperature=None)
    assert rt.effective_settings(target, "creative").temperature == 0.8


def test_config_file_defaults_and_presets(tmp_path):
    (tmp_path / "config.toml").write_text(
        '[defaults]\nprovider = "openai"\nmodel_class = "large"\npreset = "terse"\ntemperature = 0\n'
        '[presets.terse]\nmax_output_tokens = 32\n'
    )
    rt = Runtime(tmp_path, env={})
    t = rt.resolve()
    large = rt.catalog.get("openai").models[ModelClass.LARGE]  # the catalog's, whatever it is today
    assert large != rt.catalog.get("openai").models[ModelClass.SMALL]  # so "large" was really read
    assert (t.provider, t.model_class.value, t.model) == ("openai", "large", large)
    s = rt.effective_settings(t)
    assert s.temperature == 0 and s.max_output_tokens == 32


def test_bad_config_file_is_one_line(tmp_path):
    (tmp_path / "config.toml").write_text("[defaults\nprovider=1")
    with pytest.raises(ConfigError) as err:
        Runtime(tmp_path, env={})
    assert "config.toml is not valid TOML" in str(err.value) and "\n" not in str(err.value)


def test_resolve_forms(tmp_path):
    rt = Runtime(tmp_path, config={}, env={})
    openai = rt.catalog.get("openai").models
    assert str(rt.resolve("openai:large")) == f"openai:{openai[ModelClass.LARGE]}"
    assert str(rt.resolve("groq:my-org/custom-70b")) == "groq:my-org/custom-70b"  # any id, taken as it is
    assert rt.resolve(None, "embedding").model == "all-minilm-l6-v2"
    with pytest.raises(ConfigError, match="unknown model class 'huge'"):
        rt.resolve(None, "huge")
    rt.session.update(provider="anthropic", model="claude-haiku-4-5")
    assert rt.resolve().model == "claude-haiku-4-5"
    # the session's model id is for its own provider only
    assert rt.resolve("openai").model == openai[ModelClass.SMALL] != "claude-haiku-4-5"


def test_unknown_call_option_lists_valid_ones(tmp_path):
    rt = Runtime(tmp_path, config={}, env={})
    with pytest.raises(ConfigError) as err:
        rt.generate("hi", temprature=0)
    assert "unknown option(s) temprature" in str(err.value) and "temperature" in str(err.value)


def test_missing_key_is_one_line_naming_the_variable(tmp_path):
    rt = Runtime(tmp_path, config={}, env={})
    from eliza_nb.core.errors import MissingKeyError

    with pytest.raises(MissingKeyError) as err:
        rt.generate("hi", provider="groq")
    assert str(err.value) == "[groq] no API key: set GROQ_API_KEY"
    assert err.value._render_traceback_() == ["MissingKeyError: [groq] no API key: set GROQ_API_KEY"]
    assert rt.ledger.rows()[-1].error.startswith("MissingKeyError")


def test_session_observers_fire_on_change(tmp_path):
    rt = Runtime(tmp_path, config={}, env={})
    seen = []
    unsubscribe = rt.session.observe(lambda name, value: seen.append((name, value)))
    rt.session.update(temperature=0.0, provider="openai")
    rt.session.update(temperature=0.0)  # no change, no event
    unsubscribe()
    rt.session.update(temperature=1.0)
    assert ("temperature", 0.0) in seen and ("provider", "openai") in seen and len(seen) == 2


# -- the declaration: validation where values enter, aliases ---------------------------------

@pytest.mark.parametrize("name, value, says", [
    ("top_p", 1.5, "top_p: expected a number from 0 to 1, got 1.5"),
    ("top_p", float("nan"), "top_p: expected a number from 0 to 1, got nan"),
    ("top_p", -0.1, "top_p: expected a number from 0 to 1, got -0.1"),
    ("temperature", float("inf"), "temperature: expected a number from 0 to 2, got inf"),
    ("temperature", 2.5, "temperature: expected a number from 0 to 2, got 2.5"),
    ("temperature", "hot", "temperature: expected a number, got 'hot'"),
    ("frequency_penalty", -2.5, "frequency_penalty: expected a number from -2 to 2"),
    ("repetition_penalty", -0.1, "repetition_penalty: expected a number of 0 or more"),
    ("max_output_tokens", 0, "max_output_tokens: expected a number above 0, got 0"),
    ("max_output_tokens", 2.5, "max_output_tokens: expected a whole number, got 2.5"),
    ("max_input_tokens", -1, "max_input_tokens: expected a number above 0"),
    ("seed", "7", "seed: expected a whole number, got '7'"),
    ("seed", True, "seed: expected a whole number, got True"),
    ("stop", ["ok", 3], "stop: expected a string or a list of strings"),
])
def test_bad_values_are_one_line_config_errors(name, value, says):
    with pytest.raises(ConfigError) as err:
        ModelSettings(**{name: value})
    assert says in str(err.value) and "\n" not in str(err.value)


def test_the_valid_ranges_of_existing_uses_still_pass():
    s = ModelSettings(temperature=2, top_p=0, frequency_penalty=-2, presence_penalty=2, repetition_penalty=5.0,
                      seed=-1, max_output_tokens=1, max_input_tokens=1, stop=[])
    assert (s.temperature, s.seed, s.stop) == (2, -1, ())
    assert type(ModelSettings(temperature=0).temperature) is int  # kept as given: the wire body sends what was asked
    import numpy as np

    assert type(ModelSettings(seed=np.int64(3)).seed) is int and type(ModelSettings(top_p=np.float32(0.5)).top_p) is float


def test_every_entry_point_checks_values(tmp_path):
    rt = Runtime(tmp_path, config={}, env={})
    with pytest.raises(ConfigError, match="top_p: expected a number from 0 to 1, got 1.5"):
        rt.generate("hi", top_p=1.5)
    before = rt.session.state
    with pytest.raises(ConfigError, match="top_p"):
        rt.session.update(provider="openai", top_p=float("nan"))
    assert rt.session.state == before  # nothing changed, not even the provider
    with pytest.raises(ConfigError, match="preset wild: top_p"):
        Presets().register("wild", top_p=-0.1)
    (tmp_path / "config.toml").write_text("[defaults]\ntop_p = 1.5\n")
    with pytest.raises(ConfigError, match=r"\[defaults\] in config.toml: top_p: expected a number from 0 to 1"):
        Runtime(tmp_path, env={})
    (tmp_path / "config.toml").write_text("[presets.x]\nmax_tokens = 0\n")
    with pytest.raises(ConfigError, match="preset x: max_output_tokens: expected a number above 0"):
        Runtime(tmp_path, env={})


def test_top_p_from_python_merges_like_every_setting(tmp_path):
    rt = Runtime(tmp_path, config={}, env={})
    target = rt.resolve("openai")
    assert rt.effective_settings(target).top_p is None
    rt.session.update(top_p=0.9)
    assert rt.effective_settings(target).top_p == 0.9
    assert rt.effective_settings(target, None, {"top_p": 0.5}).top_p == 0.5
    (tmp_path / "config.toml").write_text("[defaults]\ntop_p = 0.7\n[presets.nucleus]\ntop_p = 0.3\n")
    rt2 = Runtime(tmp_path, env={})
    assert rt2.effective_settings(rt2.resolve()).top_p == 0.7
    assert rt2.presets.get("nucleus").top_p == 0.3


def test_pop_settings_takes_names_and_aliases_and_leaves_the_rest():
    from eliza_nb.core.settings import ALIASES, SETTINGS, pop_settings

    assert ALIASES == {"max_tokens": "max_output_tokens"}
    assert ModelSettings.names() == tuple(SETTINGS) and SETTINGS["top_p"].wire["google"] == "topP"
    options = {"max_tokens": 5, "top_p": 0.9, "cache": False, "provider": "openai"}
    assert pop_settings(options) == {"max_output_tokens": 5, "top_p": 0.9}
    assert options == {"cache": False, "provider": "openai"}
    with pytest.raises(ConfigError, match="max_output_tokens given twice"):
        pop_settings({"max_tokens": 5, "max_output_tokens": 6})
    assert ModelSettings.from_mapping({"max_tokens": 7}).max_output_tokens == 7
    assert ModelSettings(stop=("a",), top_p=0.5).as_dict() == {"stop": ["a"], "top_p": 0.5}
