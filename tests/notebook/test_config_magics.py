"""%eliza providers / config / usage / help, and %config Eliza.* — all reading and writing
the one runtime Session."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError

Q = "What is the capital of France?"


def settings_used(run, ip) -> dict:
    cell = run(f"%%eliza generate --no-stream --max-tokens 2 -o _used\n{Q}")
    assert cell.ok, cell.error
    return ip.user_ns["_used"].settings


# -- providers ----------------------------------------------------------------------------

def test_providers_table_with_key_status(run, ip):
    cell = run("%eliza providers -o provs")
    assert cell.ok
    out = cell.outputs[0]
    assert out.metadata["eliza_nb"]["command"] == "providers" and out.metadata["eliza_nb"]["session_provider"] == "llama_local"
    html = out.data["text/html"]
    assert "llama_local" in html and "not needed" in html and "✗ set OPENAI_API_KEY" in html
    assert "● = session provider (llama_local)" in out.data["text/plain"]
    df = ip.user_ns["provs"]
    assert isinstance(df, pd.DataFrame) and {"provider", "key_present"} <= set(df.columns) and len(df) >= 12


def test_providers_shows_a_present_key_by_name_only(ip, home):
    from IPython.utils.capture import capture_output

    import eliza_nb
    from eliza_nb.core.runtime import Runtime

    keyed = Runtime(home, env={"GROQ_API_KEY": "gsk-SECRET-VALUE"})
    old = eliza_nb.set_runtime(keyed)
    try:
        with capture_output() as cap:
            ip.run_cell("%eliza providers")
        html = cap.outputs[0].data["text/html"]
        assert "✓ GROQ_API_KEY" in html and "SECRET" not in html + cap.outputs[0].data["text/plain"]
    finally:
        eliza_nb.set_runtime(old)


# -- config -------------------------------------------------------------------------------

def test_config_show_tells_value_and_source(run, rt):
    rt.session.update(preset="precise", temperature=0.9)
    cell = run("%eliza config")
    assert cell.ok
    text = cell.outputs[0].data["text/plain"]
    assert text.startswith("next call: llama_local:smollm2-135m-instruct (small)")
    rows = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert "0.9" in rows["temperature"] and "session" in rows["temperature"]
    assert "preset precise" in rows["frequency_penalty"]
    assert "catalog llama_local" in rows["max_output_tokens"]
    assert cell.outputs[0].metadata["eliza_nb"]["session"]["temperature"] == 0.9
    assert run("%eliza config show").ok


@pytest.mark.parametrize("line, field, value", [
    ("set temperature 0.1", "temperature", 0.1),
    ("set temperature 0", "temperature", 0.0),
    ("set temperature=0.4", "temperature", 0.4),
    ("set max_tokens 64", "max_output_tokens", 64),
    ("set max-tokens 65", "max_output_tokens", 65),
    ("set frequency-penalty -0.5", "frequency_penalty", -0.5),
    ("set presence_penalty 0.25", "presence_penalty", 0.25),
    ("set repetition_penalty 0.1", "repetition_penalty", 0.1),
    ("set seed 42", "seed", 42),
    ("set stop END 'two words'", "stop", ("END", "two words")),
    ("""set stop '["\\n\\n", "###"]'""", "stop", ("\n\n", "###")),
    ("set preset precise", "preset", "precise"),
    ("set preset BALANCED", "preset", "balanced"),
    ("set model_class large", "model_class", "large"),
    ("set model my-model.gguf", "model", "my-model.gguf"),
    ("set provider openai", "provider", "openai"),
])
def test_config_set_parses_values_into_the_session(run, rt, line, field, value):
    cell = run(f"%eliza config {line}")
    assert cell.ok, cell.error
    state = rt.session.state
    got = getattr(state, field) if field in ("provider", "model_class", "model", "preset") else getattr(state.settings, field)
    assert got == value and type(got) is type(value)
    assert cell.outputs[0].metadata["eliza_nb"]["key"] == field


def test_config_set_reaches_the_next_generate(run, ip):
    assert run("%eliza config set temperature 0.15").ok
    assert run("%eliza config set max_tokens 2").ok
    used = settings_used(run, ip)
    assert used["temperature"] == 0.15 and used["max_output_tokens"] == 2
    # call arguments still win over the session
    run(f"%%eliza generate --no-stream -t 0.5 -o r\n{Q}")
    assert ip.user_ns["r"].settings["temperature"] == 0.5


def test_unset_and_none_clear_a_setting(run, rt):
    run("%eliza config set temperature 0.9")
    run("%eliza config unset temperature")
    assert rt.session.state.settings.temperature is None
    run("%eliza config set preset precise")
    run("%eliza config set preset none")
    assert rt.session.state.preset is None


def test_changing_provider_or_class_clears_an_explicit_model(run, rt):
    run("%eliza config set model custom.gguf")
    cell = run("%eliza config set model_class medium")
    assert rt.session.state.model is None and "model id cleared" in cell.outputs[0].data["text/plain"]


def test_reset_goes_back_to_defaults_and_reapplies_eliza_config(run, rt, ip):
    ip.run_line_magic("config", "Eliza.default_temperature = 0.33")
    run("%eliza config set temperature 0.9")
    run("%eliza config set preset creative")
    assert run("%eliza config reset").ok
    state = rt.session.state
    assert state.preset is None and state.settings.temperature == 0.33


@pytest.mark.parametrize("line, message", [
    ("%eliza config set bogus 1", "unknown config key 'bogus'; valid keys: provider, model_class"),
    ("%eliza config set temperature hot", "temperature: expected a number, got 'hot'"),
    ("%eliza config set temperature nan", "expected a finite number"),
    ("%eliza config set max_tokens 0", "expected a number above 0"),
    ("%eliza config set max_tokens 1.5", "expected a whole number"),
    ("%eliza config set temperature", "needs a value"),
    ("%eliza config set temperature 1 2", "takes one value"),
    ("%eliza config set", "needs a key"),
    ("%eliza config set provider nope", "unknown provider 'nope'"),
    ("%eliza config set preset wild", "unknown preset 'wild'"),
    ("%eliza config set model_class embedding", "small, medium or large"),
    ("%eliza config set provider none", "cannot be unset"),
    ("%eliza config set stop '[1, 2]'", "JSON list of strings"),
    ("%eliza config set stop '[oops'", "not a JSON list"),
    ("%eliza config frob", "invalid choice: 'frob'"),
    ("%eliza config reset temperature", "takes no key"),
    ("%eliza config unset temperature 3", "takes no value"),
    ("%%eliza config\nbody", "takes no cell body"),
])
def test_config_bad_input_is_one_line(run, rt, line, message):
    before = rt.session.state
    cell = run(line)
    assert isinstance(cell.error, UsageError), cell.error
    assert message in str(cell.error) and "\n" not in str(cell.error)
    assert rt.session.state == before and cell.outputs == []


# -- %config Eliza.* -------------------------------------------------------------------------

def test_config_magic_writes_the_session(run, rt, ip):
    ip.run_line_magic("config", 'Eliza.default_provider = "openai"')
    ip.run_line_magic("config", 'Eliza.default_model_class = "large"')
    ip.run_line_magic("config", 'Eliza.default_preset = "precise"')
    ip.run_line_magic("config", "Eliza.default_temperature = 0.05")
    ip.run_line_magic("config", "Eliza.default_max_tokens = 3")
    ip.run_line_magic("config", 'Eliza.default_stop = ["END"]')
    state = rt.session.state
    assert (state.provider, state.model_class, state.preset) == ("openai", "large", "precise")
    assert state.settings.temperature == 0.05 and state.settings.max_output_tokens == 3 and state.settings.stop == ("END",)
    ip.run_line_magic("config", 'Eliza.default_provider = "llama_local"')
    ip.run_line_magic("config", 'Eliza.default_model_class = "small"')
    assert settings_used(run, ip)["temperature"] == 0.05


def test_config_magic_reapplies_even_when_unchanged(run, rt, ip):
    ip.run_line_magic("config", "Eliza.default_temperature = 0.2")
    run("%eliza config set temperature 0.8")
    ip.run_line_magic("config", "Eliza.default_temperature = 0.2")  # same value, still applied
    assert rt.session.state.settings.temperature == 0.2


def test_config_magic_rejects_bad_values_without_touching_the_session(rt, ip, caplog):
    before = rt.session.state
    ip.run_line_magic("config", 'Eliza.default_provider = "nope"')
    ip.run_line_magic("config", 'Eliza.default_preset = "wild"')
    ip.run_line_magic("config", 'Eliza.default_model_class = "huge"')
    assert rt.session.state == before
    # IPython reports each as one logged line
    assert "unknown provider 'nope'" in caplog.text and "unknown preset 'wild'" in caplog.text


def test_config_lists_eliza(ip):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        ip.run_line_magic("config", "")
        ip.run_line_magic("config", "Eliza")
    assert "Eliza" in cap.stdout and "default_temperature" in cap.stdout and "default_provider" in cap.stdout


def test_eliza_values_from_an_ipython_config(rt):
    from traitlets.config import Config

    from eliza_nb.notebook.config import Eliza

    cfg = Config()
    cfg.Eliza.default_temperature = 0.61
    cfg.Eliza.default_preset = "balanced"
    conf = Eliza(config=cfg)  # what IPython does with ipython_config.py's c.Eliza.*
    conf.apply_to_session()
    assert rt.session.state.settings.temperature == 0.61 and rt.session.state.preset == "balanced"


def test_defaults_from_the_config_file(home):
    from eliza_nb.core.runtime import Runtime

    (home / "config.toml").write_text('[defaults]\npreset = "precise"\ntemperature = 0.0\n')
    rt = Runtime(home)
    assert rt.session.state.preset == "precise" and rt.session.state.settings.temperature == 0.0


# -- usage and help --------------------------------------------------------------------------

def test_usage_lists_this_sessions_calls(run, ip, rt):
    settings_used(run, ip)
    settings_used(run, ip)
    cell = run("%eliza usage -o u")
    assert cell.ok
    out = cell.outputs[0]
    assert out.metadata["eliza_nb"]["command"] == "usage" and "smollm2-135m-instruct" in out.data["text/html"]
    assert out.data["text/plain"].startswith("usage this session: ") and "calls" in out.data["text/plain"]
    assert isinstance(ip.user_ns["u"], pd.DataFrame) and len(ip.user_ns["u"]) == len(rt.ledger)
    cell = run("%eliza usage --last 1 -o last")
    assert len(ip.user_ns["last"]) == 1
    cell = run("%eliza usage --by model -o by")
    by = ip.user_ns["by"]
    assert "smollm2-135m-instruct" in set(by["model"]) and {"calls", "cost_usd", "mean_latency_s"} <= set(by.columns)
    assert isinstance(run("%eliza usage --by nothing").error, UsageError)


def test_help_lists_every_subcommand_and_each_has_help(run):
    cell = run("%eliza help")
    for name in ("generate", "embed", "providers", "config", "usage", "panel"):
        assert name in cell.stdout
    for name, flag in [("providers", "--output"), ("config", "reset"), ("usage", "--by"), ("panel", "--playground"),
                       ("generate", "--no-interpolate"), ("embed", "--output")]:
        cell = run(f"%eliza {name} --help")
        assert cell.ok and flag in cell.stdout and f"%eliza {name}" in cell.stdout
