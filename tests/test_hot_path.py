"""What the per-call fast paths keep (bench/overhead.py measures their speed; these check
that a kept value never outlives what it was derived from)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from eliza_nb.core.errors import ConfigError
from eliza_nb.core.generation import plan_call
from eliza_nb.core.runtime import Runtime
from eliza_nb.notebook.parser import SUBCOMMANDS, MagicParser, MagicUsageError, parse_line, register_subcommand


def entry(model: str) -> dict:
    return {"protocol": "openai", "endpoint": "http://127.0.0.1:9/v1", "models": {"small": model, "large": model + "-xl"},
            "settings": {"temperature": 0.4}}


@pytest.fixture
def rt(tmp_path):
    config = {"providers": {"one": entry("m1"), "two": entry("m2")}, "defaults": {"provider": "one"}}
    runtime = Runtime(tmp_path, config=config, env={})
    yield runtime
    runtime.close()


def first(rt) -> str:
    return str(plan_call(rt, "hi", {}).targets[0])


def test_a_kept_plan_follows_every_session_change(rt):
    assert first(rt) == "one:m1" and first(rt) == "one:m1"
    rt.session.update(provider="two")
    assert first(rt) == "two:m2"
    rt.session.update(model_class="large")
    assert first(rt) == "two:m2-xl"
    rt.session.update(model="custom-id")
    assert first(rt) == "two:custom-id"
    rt.session.reset()
    assert first(rt) == "one:m1"


def test_a_kept_plan_follows_config_edited_in_place(rt):
    assert [str(t) for t in plan_call(rt, "hi", {}).targets] == ["one:m1"]
    rt.config["failover"] = {"small": ["two"]}
    assert [str(t) for t in plan_call(rt, "hi", {}).targets] == ["one:m1", "two:m2"]
    rt.config["failover"]["small"].clear()
    assert [str(t) for t in plan_call(rt, "hi", {}).targets] == ["one:m1"]
    rt.config.setdefault("defaults", {})["truncation"] = "off"
    assert plan_call(rt, "hi", {}).truncation is None


def test_each_plan_has_its_own_messages_and_target_list(rt):
    a, b = plan_call(rt, "first", {}), plan_call(rt, "second", {})
    assert a.messages[0].content == "first" and b.messages[0].content == "second"
    a.targets.append("x")
    assert len(plan_call(rt, "third", {}).targets) == 1


def test_kept_settings_follow_session_presets_and_call_arguments(rt):
    target = plan_call(rt, "hi", {}).targets[0]
    assert rt.effective_settings(target).temperature == 0.4
    assert rt.effective_settings(target, call={"temperature": 0}).temperature == 0
    rt.session.update(temperature=0.9)
    assert rt.effective_settings(target).temperature == 0.9
    rt.session.update(temperature=None, preset="precise")
    assert rt.effective_settings(target).temperature == 0.2
    rt.presets.register("precise", temperature=0.05)  # a preset replaced under the same name
    assert rt.effective_settings(target).temperature == 0.05


def test_exact_and_loose_catalog_lookups_agree(rt):
    assert rt.catalog.get("one") is rt.catalog.get(" ONE ")
    with pytest.raises(ConfigError):
        rt.catalog.get("three")


@dataclass
class ProbeArgs:
    a: bool = False
    b: bool = False


def _parser(flag: str):
    def make() -> MagicParser:
        p = MagicParser("%eliza probe", "a subcommand for this test")
        p.add_argument(flag, action="store_true")
        return p
    return make


def test_a_re_registered_subcommand_gets_its_new_parser():
    try:
        register_subcommand("probe", _parser("--a"), ProbeArgs, "test", None)
        assert parse_line("probe --a")[1] == ProbeArgs(a=True)
        assert parse_line("probe --a")[1] == ProbeArgs(a=True)  # the kept parser, twice
        register_subcommand("probe", _parser("--b"), ProbeArgs, "test", None)
        assert parse_line("probe --b")[1] == ProbeArgs(b=True)
        with pytest.raises(MagicUsageError):
            parse_line("probe --a")
    finally:
        SUBCOMMANDS.pop("probe", None)


def test_a_kept_plan_follows_a_replaced_session(rt):
    from eliza_nb.core.session import Session, SessionState

    assert first(rt) == "one:m1"
    rt.session = Session(SessionState(provider="two"))
    assert first(rt) == "two:m2"
