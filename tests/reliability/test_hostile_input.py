"""Hostile input to the notebook surface: fuzzed magic lines and prompt templates, huge
cells, and prompts written to look like code. Every line either works or is refused with
ONE line; nothing in a prompt or a magic line is ever evaluated."""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path

import fakeprov
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from eliza_nb.notebook import magics
from eliza_nb.notebook.interpolate import InterpolationError, interpolate
from eliza_nb.notebook.parser import (
    SUBCOMMANDS,
    HelpRequested,
    MagicUsageError,
    parse_line,
)

FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])


def single_line(message: str) -> None:
    assert message and len(message.splitlines()) == 1 and "Traceback" not in message, repr(message[:300])


# -- the magic parser ------------------------------------------------------------------------
def _options() -> list[str]:
    magics._load_commands()  # the subcommands register when their modules load
    found = set()
    for sub in SUBCOMMANDS.values():
        found.update(sub.make_parser()._option_string_actions)
    return sorted(found)


OPTIONS = _options()
NAMES = [*sorted(SUBCOMMANDS), "", "Generate", "gen", "-x", "--", "help", "--help", "-h"]
VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1e309", "nan", "inf", "-inf", "1" * 5000, "0x10", "1_000", "", "''", '""', "'a b'",
                     '"unclosed', "'unclosed", "\\", "{x}", "{__import__('os')}", '{"a": 1}', "[1, 2]", "a=b", "=",
                     "--", "-", "—", "é", "\u2028", "\x00", "\t", "$HOME", "$(rm -rf /)", "`id`", "small", "large",
                     "openai", "llama_local:small", "x" * 300]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30),
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
TOKENS = st.one_of(st.sampled_from(OPTIONS), VALUES)
LINES = st.builds(lambda name, rest: " ".join([name, *rest]), st.sampled_from(NAMES), st.lists(TOKENS, max_size=8))


def parse_or_usage_error(line: str) -> None:
    try:
        name, args = parse_line(line)
    except HelpRequested as h:
        assert h.text.strip()
        return
    except MagicUsageError as exc:
        single_line(str(exc))
        return
    assert name in SUBCOMMANDS and dataclasses.is_dataclass(args)


@settings(FUZZ, max_examples=3000)
@given(LINES)
def test_fuzzed_magic_lines_parse_or_raise_one_line(line):
    parse_or_usage_error(line)


@settings(FUZZ, max_examples=1500)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=200))
def test_random_text_lines_parse_or_raise_one_line(line):
    parse_or_usage_error(line)


# -- the whole magic (IPython's dispatch, line expansion, size limit), handlers stubbed ---------
@pytest.fixture
def stubbed(ip, monkeypatch):
    """%eliza with every handler replaced by a recorder: the fuzz must not change the session."""
    seen: list[tuple[str, object, object]] = []
    for name, sub in list(SUBCOMMANDS.items()):
        monkeypatch.setitem(SUBCOMMANDS, name, dataclasses.replace(
            sub, handler=lambda shell, args, cell, _n=name: seen.append((_n, args, cell))))
    return magics._loaded[id(ip)], seen


def test_fuzzed_lines_through_the_magic_are_one_line_usage_errors(stubbed, ip, tmp_path):
    m, seen = stubbed
    marker = tmp_path / "ran"
    ip.user_ns.update(x="X", boom=lambda: marker.write_text("ran"))

    @settings(FUZZ, max_examples=1000)
    @given(LINES, st.one_of(st.none(), st.text(max_size=50)))
    def run(line, cell):
        try:
            m.eliza(line, cell)
        except UsageError as exc:
            single_line(str(exc))

    run()
    assert seen, "some fuzzed lines are valid and reach their handler"
    assert not marker.exists()


# -- interpolation ---------------------------------------------------------------------------
class Loud:
    """Records any attempt to call it; its attributes are plain data."""

    calls = 0
    name = "loud"

    def __call__(self, *a, **k):
        Loud.calls += 1
        return "CALLED"


FIELD_PARTS = st.one_of(
    st.sampled_from(["x", "n", "items", "d", "loud", "os", "__import__", "__class__", "_private", "boom", "0", "",
                     "x.upper", "x.__class__", "loud.name", "loud.__call__", "items[0]", "items[-1]", "items[99]",
                     "d[key]", "d['key']", "d[__class__]", "os.system", "os.system('id')", "boom()", "x!r", "x!s",
                     "x!a", "x!z", "x:>{n}", "x:{x}", "n:.2f", "n:,", "n:>99999999", "n:{n}{n}", "x:%",
                     "__import__('os').system('id')", "open('M','w')", "x.__init__.__globals__", "lambda: 1",
                     "x[0][0]", "x.0", "{x}", "}", "{", "!", ":", "[", "]", "'", "\\"]),
    st.text(alphabet=string.ascii_letters + string.digits + "_.[]!:{}()'\" -<>=^+,%#", max_size=15),
)
TEMPLATES = st.lists(st.one_of(FIELD_PARTS.map(lambda f: "{" + f + "}"), st.sampled_from(["{", "}", "{{", "}}"]),
                              st.text(max_size=12)), max_size=8).map("".join)


@pytest.fixture
def namespace(tmp_path):
    import os as real_os

    marker = tmp_path / "ran"
    Loud.calls = 0
    ns = {"x": "text", "n": 3.14159, "items": ["a", "b"], "d": {"key": "value"}, "loud": Loud(),
          "os": real_os, "boom": lambda: marker.write_text("ran")}
    return ns, marker


def test_fuzzed_templates_interpolate_or_raise_one_line_and_run_nothing(namespace):
    ns, marker = namespace

    @settings(FUZZ, max_examples=3000)
    @given(TEMPLATES)
    def run(template):
        try:
            out = interpolate(template, ns)
        except InterpolationError as exc:
            single_line(str(exc))
            return
        assert isinstance(out, str) and len(out) <= len(template) * 10 + 200  # no blow-up
        assert "CALLED" not in out

    run()
    assert not marker.exists() and Loud.calls == 0


ATTACKS = [
    "{__import__('os').system('touch RAN')}",
    "{__import__}",
    "{boom()}",
    "{os.system('touch RAN')}",
    "{x.__class__.__mro__[1].__subclasses__()}",
    "{x.__init__.__globals__}",
    "{d[__class__]}",
    "{loud.__call__}",
    "{items.__len__}",
    "{x!r:{boom()}}",
    "{x:{__import__('os').getcwd()}}",
    "{x:>99999999999}",
    "{n:.{n}f}",
    "{[c for c in ().__class__.__base__.__subclasses__()]}",
    "{eval('1+1')}",
    "{exec}",
    "{0}",
    "{}",
    "{x}{",
]


@pytest.mark.parametrize("template", ATTACKS)
def test_code_shaped_fields_are_never_evaluated(template, namespace):
    ns, marker = namespace
    try:
        out = interpolate(template, ns)
    except InterpolationError as exc:
        single_line(str(exc))
    else:  # what does interpolate is plain lookup, never a call
        assert "CALLED" not in out and "RAN" not in out and "<function" not in out, out
    assert not marker.exists() and Loud.calls == 0 and not Path("RAN").exists()


def test_prompts_through_the_magic_are_sent_literally_or_refused(ip, rhome, monkeypatch, tmp_path):
    """Cell bodies and magic lines: {name} is looked up, anything code-shaped is refused
    (body) or kept literally (line, as IPython does when it cannot expand); nothing runs."""
    import eliza_nb
    from eliza_nb.core.runtime import Runtime

    rt = Runtime(rhome, config=fakeprov.fake_config(), env={})
    old = eliza_nb.set_runtime(rt)
    marker = tmp_path / "ran"
    ip.user_ns.update(topic="cats", boom=lambda: marker.write_text("ran"), _m=str(marker))
    try:
        def cell(source: str):
            with capture_output() as cap:
                result = ip.run_cell(source)
            return result, cap

        ok, cap = cell("%%eliza generate --no-stream -o _r\nTell me about {topic}, {{literally}}")
        assert ok.success and ip.user_ns["_r"].text.startswith("echo: Tell me about cats, {literally}")
        for body in ["{__import__('os').system('touch ' + _m)}", "{boom()}", "{open(_m, 'w')}", "{x:>{__import__('os')}}"]:
            bad, cap = cell(f"%%eliza generate --no-stream\n{body}")
            assert not bad.success and isinstance(bad.error_in_exec, UsageError)
            single_line(cap.stderr)
        # the magic LINE: IPython would eval {expr} here; eliza_nb looks names up instead
        ok, cap = cell("%eliza embed -o _v {open(_m, 'w').write('x')}")
        assert ok.success and rt.adapter("fake").embedded[-1] == "{open(_m, w).write(x)}"  # shell-split, not run
        ok, cap = cell("%eliza embed -o _v about {topic}")
        assert ok.success and rt.adapter("fake").embedded[-1] == "about cats"
        ok, cap = cell("%%eliza generate --no-stream --system 'be {__import__(\"os\").getcwd()}' -o _r\nhi")
        assert ok.success and "__import__" not in ip.user_ns["_r"].text
        assert not marker.exists()
    finally:
        eliza_nb.set_runtime(old)
        rt.close()


# -- huge cells ------------------------------------------------------------------------------
def test_a_10_mb_cell_is_refused_with_one_line_and_the_limit_is_configurable(ip, rhome):
    import eliza_nb
    from eliza_nb.core.runtime import Runtime
    from eliza_nb.notebook.config import eliza_config

    rt = Runtime(rhome, config=fakeprov.fake_config(), env={})
    old = eliza_nb.set_runtime(rt)
    conf = eliza_config()
    saved = conf.max_cell_chars
    ip.user_ns["huge"] = "word " * 2_000_000  # 10 MB
    try:
        for magic in ("generate --no-stream", "embed"):
            with capture_output() as cap:
                result = ip.run_cell(f"%%eliza {magic}\n" + ip.user_ns["huge"])
            assert not result.success and isinstance(result.error_in_exec, UsageError)
            single_line(cap.stderr)
            assert "10,000,00" in cap.stderr and "Eliza.max_cell_chars" in cap.stderr
        assert rt.adapter("fake").generate_calls == 0 and rt.adapter("fake").embedded == []
        assert len(rt.ledger) == 0  # refused before the runtime saw anything
        with capture_output():
            ip.run_line_magic("config", "Eliza.max_cell_chars = 50")
            small = ip.run_cell("%%eliza generate --no-stream\n" + "x" * 51)
            assert not small.success
            ip.run_line_magic("config", "Eliza.max_cell_chars = 0")  # no limit
            fine = ip.run_cell("%%eliza generate --no-stream -o _r\n" + "x" * 51)
        assert fine.success and ip.user_ns["_r"].text.startswith("echo: xxx")
    finally:
        conf.max_cell_chars = saved
        eliza_nb.set_runtime(old)
        rt.close()
        ip.user_ns.pop("huge", None)
