"""ParameterPanel's Python side: panel <-> runtime session <-> magics, no browser."""

from __future__ import annotations

import pytest

Q = "What is the capital of France?"


def front_end_sets(widget, **state):
    """What the browser sends when the user moves a control (ipywidgets' comm message path)."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


@pytest.fixture
def panel(rt):
    from eliza_nb.notebook.widgets.panel import ParameterPanel

    p = ParameterPanel(rt)
    yield p
    p.close()


def used(run, ip) -> dict:
    cell = run(f"%%eliza generate --no-stream --max-tokens 2 -o _r\n{Q}")
    assert cell.ok, cell.error
    return ip.user_ns["_r"].settings


def test_panel_shows_the_effective_values_and_their_source(panel, rt):
    assert panel.provider.value == "llama_local" and panel.model_class.value == "small"
    assert panel.sliders["temperature"].value == 0.3 and "catalog llama_local" in panel.sources["temperature"].value
    # max tokens: what the next call uses (the class's default), not the catalog's ceiling
    effective = rt.effective_settings(rt.resolve()).max_output_tokens
    assert panel.max_tokens.value == effective and f"max {effective} tok" in panel.status.value
    assert panel.stop.value == ["<|eot_id|>", "<|eom_id|>"]
    assert panel.unset_buttons["temperature"].disabled
    assert panel.model.placeholder == "smollm2-135m-instruct"
    assert "next call: <b>llama_local:smollm2-135m-instruct</b>" in panel.status.value


def test_slider_from_the_front_end_reaches_the_next_generate(panel, rt, run, ip):
    front_end_sets(panel.sliders["temperature"], value=0.45)
    assert rt.session.state.settings.temperature == 0.45
    assert "session" in panel.sources["temperature"].value and not panel.unset_buttons["temperature"].disabled
    assert used(run, ip)["temperature"] == 0.45


def test_every_control_writes_the_session(panel, rt):
    panel.sliders["frequency_penalty"].value = 0.3
    panel.sliders["presence_penalty"].value = -0.2
    panel.sliders["repetition_penalty"].value = 0.15
    panel.max_tokens.value = 77
    panel.stop.value = ["END", "###"]
    panel.preset.value = "balanced"
    panel.model_class.value = "medium"
    panel.model.value = "  custom.gguf "
    s = rt.session.state
    assert (s.settings.frequency_penalty, s.settings.presence_penalty, s.settings.repetition_penalty) == (0.3, -0.2, 0.15)
    assert s.settings.max_output_tokens == 77 and s.settings.stop == ("END", "###")
    assert (s.preset, s.model_class, s.model) == ("balanced", "medium", "custom.gguf")
    panel.provider.value = "openai"
    assert rt.session.state.provider == "openai" and rt.session.state.model is None  # a model id belongs to its provider
    panel.max_tokens.value = 0
    assert rt.session.state.settings.max_output_tokens is None  # 0 = not set
    panel.preset.value = ""
    assert rt.session.state.preset is None


def test_slider_noise_is_rounded(panel, rt):
    panel.sliders["temperature"].value = 0.1 + 0.7  # 0.7999999999999999
    assert rt.session.state.settings.temperature == 0.8


def test_config_set_moves_the_slider(panel, run, ip):
    assert run("%eliza config set temperature 0.1").ok
    assert panel.sliders["temperature"].value == 0.1 and "session" in panel.sources["temperature"].value
    assert run("%eliza config set stop a b").ok and panel.stop.value == ["a", "b"]
    assert run("%eliza config set preset creative").ok and panel.preset.value == "creative"
    assert panel.sliders["frequency_penalty"].value == 0.7 and "preset creative" in panel.sources["frequency_penalty"].value
    ip.run_line_magic("config", "Eliza.default_temperature = 0.2")
    assert panel.sliders["temperature"].value == 0.2
    assert run("%eliza config set provider openai").ok and panel.provider.value == "openai"
    assert run("%eliza config reset").ok


def test_preset_toggle_moves_unset_sliders_only(panel, rt):
    panel.sliders["temperature"].value = 0.9  # a session value wins over the preset
    panel.preset.value = "precise"
    assert panel.sliders["temperature"].value == 0.9 and panel.sliders["frequency_penalty"].value == 0.0
    panel.unset_buttons["temperature"].click()
    assert rt.session.state.settings.temperature is None
    assert panel.sliders["temperature"].value == 0.2 and "preset precise" in panel.sources["temperature"].value


def test_no_feedback_loop(panel, rt):
    fired = []
    unsubscribe = rt.session.observe(lambda name, value: fired.append((name, value)))
    rt.session.update(temperature=0.7)  # the panel re-renders but must not write back
    front_end_sets(panel.sliders["temperature"], value=0.8)
    unsubscribe()
    assert fired == [("temperature", 0.7), ("temperature", 0.8)]


def test_two_panels_stay_in_step(panel, rt):
    from eliza_nb.notebook.widgets.panel import ParameterPanel

    other = ParameterPanel(rt)
    try:
        front_end_sets(panel.sliders["presence_penalty"], value=1.25)
        assert other.sliders["presence_penalty"].value == 1.25
    finally:
        other.close()


def test_close_stops_following_the_session(rt):
    from eliza_nb.notebook.widgets.panel import ParameterPanel

    p = ParameterPanel(rt)
    p.close()
    rt.session.update(temperature=1.5)  # would fail on closed widgets if still subscribed
    assert p._unsubscribe is None


def test_provider_labels_show_key_status_not_keys(home):
    from eliza_nb.core.runtime import Runtime
    from eliza_nb.notebook.widgets.panel import ParameterPanel

    rt = Runtime(home, env={"OPENAI_API_KEY": "sk-hidden-1"})
    p = ParameterPanel(rt)
    labels = {v: k for k, v in p.provider.options}
    assert labels["openai"] == "openai — key ✓ OPENAI_API_KEY"
    assert labels["anthropic"] == "anthropic — no key (ANTHROPIC_API_KEY)"
    assert labels["llama_local"] == "llama_local — no key needed"
    assert "sk-hidden-1" not in repr(p.get_state())
    p.close()


def test_bad_state_is_shown_not_raised(panel, rt):
    rt.session.update(provider="heurist", model_class="small")
    rt.session.update(preset="precise")
    panel.model_class.value = "medium"
    assert panel.status.value  # renders something, never raises into the comm handler


def test_fallback_text_where_widgets_cannot_render(panel):
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("eliza_nb parameters: llama_local:smollm2-135m-instruct (small), preset none")
    assert "temperature=0.3" in bundle["text/plain"] and bundle["text/html"].startswith("<pre>")


def test_panel_magic(run, ip):
    from eliza_nb.notebook.widgets.panel import ParameterPanel
    from eliza_nb.notebook.widgets.playground import Playground

    cell = run("%eliza panel -o p")
    assert cell.ok and isinstance(ip.user_ns["p"], ParameterPanel)
    out = cell.outputs[0]
    assert "application/vnd.jupyter.widget-view+json" in out.data and out.metadata["eliza_nb"]["widget"] == "ParameterPanel"
    cell = run("%eliza panel --playground -o both")
    # each widget, then its "re-run the cell to reconnect" note (shown only when a reopened notebook has no widget state)
    assert len(cell.outputs) == 4 and isinstance(ip.user_ns["both"]["playground"], Playground)
    assert ["eliza-reconnect" in o.data.get("text/html", "") for o in cell.outputs] == [False, True, False, True]
    front_end_sets(ip.user_ns["both"]["panel"].sliders["temperature"], value=0.05)
    assert used(run, ip)["temperature"] == 0.05
    ip.user_ns["texts"] = ["a cat", "a dog", "stocks fell"]
    cell = run("%eliza panel --explorer texts -o ex")
    assert cell.ok and len(ip.user_ns["ex"]) == 3 and len(cell.outputs) == 2  # the widget + its reconnect note


@pytest.mark.parametrize("line, message", [
    ("%eliza panel --explorer nowhere", "no variable 'nowhere'"),
    ("%eliza panel --bench nowhere", "no variable 'nowhere'"),
    ("%eliza panel --no-params", "shows nothing on its own"),
    ("%eliza panel --explorer 1x", "not a valid variable name"),
    ("%eliza panel --bogus", "unrecognized arguments: --bogus"),
    ("%%eliza panel\nbody", "takes no cell body"),
])
def test_panel_magic_bad_input(run, line, message):
    from IPython.core.error import UsageError

    cell = run(line)
    assert isinstance(cell.error, UsageError) and message in str(cell.error) and "\n" not in str(cell.error)
    assert cell.outputs == []


def click_preset(panel, name: str) -> None:
    """A click on a preset button: the browser sends the ToggleButtons' index."""
    front_end_sets(panel.preset, index=[value for _, value in panel.preset.options].index(name))


def _source(panel, name) -> str:
    import re

    return re.sub(r"<[^>]+>", "", panel.sources[name].value)


def test_preset_round_trip_ignores_the_browsers_echo(panel, rt):
    """The browser answers the kernel moving a slider with the value snapped to the slider's
    step (0.7000000000000001): that is no user change and must not become a session value."""
    assert all(s.continuous_update is False for s in panel.sliders.values())  # sent on release only
    click_preset(panel, "creative")
    assert panel.sliders["frequency_penalty"].value == 0.7
    front_end_sets(panel.sliders["frequency_penalty"], value=0.7000000000000001)  # the echo, right away
    front_end_sets(panel.sliders["presence_penalty"], value=0.7)
    assert rt.session.state.settings.frequency_penalty is None and _source(panel, "frequency_penalty") == "preset creative"
    click_preset(panel, "precise")
    front_end_sets(panel.sliders["temperature"], value=0.8000000000000002)  # a late echo of creative's display
    s = rt.session.state
    assert s.preset == "precise" and s.settings == type(s.settings)()  # nothing written
    for name, value in [("temperature", 0.2), ("frequency_penalty", 0.0), ("presence_penalty", 0.0)]:
        assert panel.sliders[name].value == value and _source(panel, name) == "preset precise", name
    assert rt.effective_settings(rt.resolve()).frequency_penalty == 0.0


def test_a_user_change_after_an_echo_still_counts(panel, rt, monkeypatch):
    click_preset(panel, "creative")
    click_preset(panel, "precise")
    front_end_sets(panel.sliders["frequency_penalty"], value=0.25)  # a real move
    assert rt.session.state.settings.frequency_penalty == 0.25 and _source(panel, "frequency_penalty") == "session"
    front_end_sets(panel.sliders["frequency_penalty"], value=0.0)  # and straight back: also real
    assert rt.session.state.settings.frequency_penalty == 0.0
    import importlib

    panel_module = importlib.import_module("eliza_nb.notebook.widgets.panel")  # the package's .panel is a function

    monkeypatch.setattr(panel_module, "ECHO_WINDOW_S", 0.0)  # long after the preset's display:
    click_preset(panel, "creative")
    click_preset(panel, "balanced")
    front_end_sets(panel.sliders["presence_penalty"], value=0.7)  # the creative value, chosen by hand
    assert rt.session.state.settings.presence_penalty == 0.7


def test_max_tokens_zero_shows_the_effective_value_again(panel, rt):
    effective = rt.effective_settings(rt.resolve()).max_output_tokens
    front_end_sets(panel.max_tokens, value=0)  # 0 = not set, and it is not set: nothing to write
    assert rt.session.state.settings.max_output_tokens is None and panel.max_tokens.value == effective


def test_stop_chips_show_invisible_characters(panel, rt):
    rt.session.update(stop=["\n\n", "END", "a\\b"])
    assert panel.stop.value == ["\\n\\n", "END", "a\\b"]  # a chip a user can see, and type
    front_end_sets(panel.stop, value=["\\n\\n", "END", "a\\b", "\\t"])
    assert rt.session.state.settings.stop == ("\n\n", "END", "a\\b", "\t")


@pytest.mark.parametrize("stop", ["\n\n", "\\n", "\\", "x\\", "\x1b[0m", "tab\there", "\\\\n", "\\begin", "</s>", "。"])
def test_stop_labels_round_trip(stop):
    from eliza_nb.notebook.widgets.panel import stop_label, stop_value

    label = stop_label(stop)
    assert stop_value(label) == stop and label.isprintable()
