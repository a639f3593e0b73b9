"""Every surface derives its settings from the one declaration (core/settings.py): the
generate flags, %eliza config keys, Eliza.default_* traits, the panel and the replay archive.
top_p, added to the declaration only, works on each of them."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from eliza_nb.core.settings import ALIASES, SETTINGS, WIRE_PROTOCOLS, ModelSettings

Q = "What is the capital of France?"


def front_end_sets(widget, **state):
    """What the browser sends when the user moves a control (ipywidgets' comm message path)."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


def test_every_surface_names_exactly_the_declared_settings(rt):
    from eliza_nb.core.replay.archive import settings_dict
    from eliza_nb.notebook.commands.config import ALIASES as CONFIG_ALIASES
    from eliza_nb.notebook.commands.config import SESSION_KEYS, VALID_KEYS
    from eliza_nb.notebook.config import SESSION_TRAITS, SETTING_TRAITS, Eliza
    from eliza_nb.notebook.parser import _SettingFlag, generate_parser
    from eliza_nb.notebook.widgets.panel import ParameterPanel

    names = set(SETTINGS)
    flags = {a.dest for a in generate_parser()._actions if isinstance(a, _SettingFlag)}
    assert flags == names
    from eliza_nb.notebook.commands.bench import bench_parser

    assert {a.dest for a in bench_parser()._actions if isinstance(a, _SettingFlag)} == names
    config_keys = {CONFIG_ALIASES.get(k, k) for k in VALID_KEYS} - set(SESSION_KEYS)
    assert config_keys == names
    assert set(SETTING_TRAITS.values()) == names and set(SETTING_TRAITS) <= set(SESSION_TRAITS)
    assert set(SETTING_TRAITS) <= set(Eliza.class_trait_names(config=True))
    panel = ParameterPanel(rt)
    try:
        assert set(panel.controls) == names == set(panel.sources) == set(panel.unset_buttons)
    finally:
        panel.close()
    assert set(settings_dict(ModelSettings())) == names
    for spec in SETTINGS.values():
        assert set(spec.wire) <= set(WIRE_PROTOCOLS), spec.name
        assert spec.help and (spec.kind is str or spec.describe())


def test_user_facing_spellings_stay(rt):
    from eliza_nb.notebook.config import SETTING_TRAITS
    from eliza_nb.notebook.parser import generate_parser

    options = {s for a in generate_parser()._actions for s in a.option_strings}
    assert {"-t", "--temperature", "--max-tokens", "--top-p", "--stop", "--frequency-penalty", "--presence-penalty",
            "--repetition-penalty", "--seed"} <= options
    assert SETTING_TRAITS["default_max_tokens"] == "max_output_tokens" and SETTING_TRAITS["default_top_p"] == "top_p"
    assert ALIASES == {"max_tokens": "max_output_tokens"}


def test_generate_flags_parse_into_settings():
    from eliza_nb.notebook.parser import MagicUsageError, parse_line

    _, args = parse_line("generate --top-p 0.9 -t 0 --max-tokens 40 --stop A B --seed 3 -o r")
    assert args.settings == {"top_p": 0.9, "temperature": 0.0, "max_output_tokens": 40, "stop": ["A", "B"], "seed": 3}
    assert args.call_options() == {"top_p": 0.9, "temperature": 0.0, "max_output_tokens": 40, "stop": ["A", "B"],
                                   "seed": 3}
    _, args = parse_line("generate")
    assert args.settings == {} and args.call_options() == {}
    for line, says in [("generate --top-p 1.5", "argument --top-p: expected a number from 0 to 1, got 1.5"),
                       ("generate --top-p nan", "argument --top-p: expected a finite number, got 'nan'"),
                       ("generate --top-p -0.1", "argument --top-p: expected a number from 0 to 1, got -0.1")]:
        with pytest.raises(MagicUsageError) as err:
            parse_line(line)
        assert says in str(err.value) and "\n" not in str(err.value)


def test_top_p_flag_reaches_the_call(run, ip):
    cell = run(f"%%eliza generate --no-stream --max-tokens 2 --top-p 0.9 -o r\n{Q}")
    assert cell.ok, cell.error
    assert ip.user_ns["r"].settings["top_p"] == 0.9
    bad = run(f"%%eliza generate --top-p 1.5\n{Q}")
    assert isinstance(bad.error, UsageError) and "expected a number from 0 to 1" in str(bad.error)


def test_config_set_show_and_unset_top_p(run, rt):
    cell = run("%eliza config set top_p 0.9")
    assert cell.ok, cell.error
    assert rt.session.state.settings.top_p == 0.9
    show = run("%eliza config show")
    assert show.outputs[0].metadata["eliza_nb"]["session"]["top_p"] == 0.9
    assert run("%eliza config unset top-p").ok and rt.session.state.settings.top_p is None
    before = rt.session.state
    for value in ("1.5", "nan", "-0.1"):
        bad = run(f"%eliza config set top_p {value}")
        assert isinstance(bad.error, UsageError) and "top_p: expected a" in str(bad.error)
        assert "\n" not in str(bad.error)
    assert rt.session.state == before


def test_config_magic_default_top_p(rt, ip, caplog):
    ip.run_line_magic("config", "Eliza.default_top_p = 0.5")
    assert rt.session.state.settings.top_p == 0.5
    ip.run_line_magic("config", "Eliza.default_top_p = 1.5")
    assert rt.session.state.settings.top_p == 0.5  # refused, the session keeps its value
    assert "top_p: expected a number from 0 to 1, got 1.5" in caplog.text


def test_panel_has_a_top_p_slider(rt, run):
    from eliza_nb.notebook.widgets.panel import ParameterPanel

    panel = ParameterPanel(rt)
    try:
        slider = panel.sliders["top_p"]
        assert (slider.min, slider.max) == (0.0, 1.0) and panel.unset_buttons["top_p"].disabled
        front_end_sets(slider, value=0.35)
        assert rt.session.state.settings.top_p == 0.35 and "session" in panel.sources["top_p"].value
        assert run("%eliza config set top_p 0.6").ok
        assert slider.value == 0.6
        panel.unset_buttons["top_p"].click()
        assert rt.session.state.settings.top_p is None
        # a number box where 0 is a valid value (seed) writes 0; where it is not (max tokens), 0 unsets
        panel.controls["seed"].value = 5
        panel.controls["seed"].value = 0
        assert rt.session.state.settings.seed == 0
        panel.max_tokens.value = 0
        assert rt.session.state.settings.max_output_tokens is None
    finally:
        panel.close()
