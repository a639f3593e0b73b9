"""Hostile files and values, refused where they enter with one line, in bounded time and memory.

- replay archives: a 3 GB (sparse) requests.jsonl or vectors.f32 is refused from its size
  alone (stat), before a byte of it is read;
- the cache store: a row holding a huge value is deleted without its value entering Python;
- interpolation: a cell whose {x:>9999} fields would build 20 million characters stops at
  Eliza.max_cell_chars while it builds;
- NaN, infinity, negatives, text and bools wherever a number enters (call options, config
  tables, traitlets, %eliza config set): a one-line ConfigError (TraitError / UsageError on
  the notebook surfaces);
- a lone surrogate in a prompt or a text to embed, and a max_input_tokens too small for the
  system prompt: one line a user understands, before any provider call.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeprov
import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from rel_helpers import one_line
from traitlets import TraitError
from traitlets.config import Config

import eliza_nb
from eliza_nb.core.cache.disk import MAX_VALUE_BYTES, DiskTier
from eliza_nb.core.cache.tiers import EmbeddingSpace
from eliza_nb.core.errors import ConfigError, ContextTooLongError, ReplayArchiveError
from eliza_nb.core.ledger import SpendingCap
from eliza_nb.core.replay import archive as replay_archive
from eliza_nb.core.replay.archive import RECORDS, VECTORS, Archive, EmbRecord
from eliza_nb.core.runtime import Runtime
from eliza_nb.notebook.interpolate import InterpolationError, interpolate

GB3 = 3 * 2**30


def bounded(fn: Callable[[], Any], *, seconds: float = 1.0, peak_bytes: int = 8 * 2**20) -> BaseException:
    """Run ``fn``, which must raise; assert it did so within ``seconds`` and ``peak_bytes`` of
    Python memory (tracemalloc), and return the exception."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
    except BaseException as exc:  # the caller checks the type
        caught = exc
    else:
        raise AssertionError("expected an error")
    finally:
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < peak_bytes, f"peak {peak:,} bytes"
    return caught


@pytest.fixture
def rt(rhome):
    runtime = Runtime(rhome, config=fakeprov.fake_config(), env={})
    yield runtime
    runtime.close()


def make_config(**tables: Any) -> dict[str, Any]:
    config = fakeprov.fake_config()
    config.update(tables)
    return config


# -- replay archives ---------------------------------------------------------------------------
@pytest.fixture
def small_archive(tmp_path) -> Path:
    """A valid archive: one 8-dimensional embedding (32 bytes of vectors)."""
    folder = tmp_path / "a.replay"
    vector = np.arange(8, dtype=np.float32)
    replay_archive.save(Archive(folder, embeddings=[EmbRecord("fake", "fake-embed", True, "a cat", vector)]))
    assert len(replay_archive.load(folder).embeddings) == 1
    return folder


@pytest.mark.parametrize("name", [VECTORS, RECORDS])
def test_a_3_gb_sparse_archive_file_is_one_line_naming_it_without_being_read(small_archive, name):
    os.truncate(small_archive / name, GB3)  # sparse: takes no disk
    exc = bounded(lambda: replay_archive.load(small_archive))
    assert isinstance(exc, ReplayArchiveError)
    message = one_line(str(exc))
    assert f"a.replay/{name} is {GB3:,} bytes" in message


def test_a_vector_file_longer_than_its_records_is_refused_before_it_is_read(small_archive):
    os.truncate(small_archive / VECTORS, 100 * 2**20)  # under the cap, but 32 bytes are described
    exc = bounded(lambda: replay_archive.load(small_archive))
    assert isinstance(exc, ReplayArchiveError)
    assert f"vectors.f32 holds {100 * 2**20 - 32} bytes after the last vector" in one_line(str(exc))


def test_a_3_gb_archive_through_replay_on_leaves_replay_off(rt, small_archive):
    from eliza_nb.core.replay import tape

    os.truncate(small_archive / VECTORS, GB3)
    with pytest.raises(ReplayArchiveError, match="vectors.f32 is 3,221,225,472 bytes"):
        tape.start_replay(rt, small_archive)
    assert rt.tape is None


# -- the cache store -----------------------------------------------------------------------------
def test_a_huge_value_in_the_store_is_deleted_without_entering_python(rhome):
    runtime = Runtime(rhome, config=fakeprov.fake_config(), env={})
    runtime.embed(["seed"])
    runtime.close()
    db = rhome / "cache" / "store" / "cache.db"
    space = EmbeddingSpace("fake", "fake-embed", 8, True)
    con = sqlite3.connect(str(db))
    with con:
        for text, value in (("huge blob", "zeroblob(?)"), ("huge text", "CAST(zeroblob(?) AS TEXT)")):
            con.execute("INSERT OR REPLACE INTO entries (key, tag, value, stored_at, accessed_at, hits)"
                        f" VALUES (?, 'x', {value}, 0, 0, 0)", (space.key(text), 20 * 2**20))
    con.close()

    runtime = Runtime(rhome, config=fakeprov.fake_config(), env={})
    disk = runtime.cache.disk
    tracemalloc.start()
    try:
        found = disk.get_many([space.key("huge blob"), space.key("huge text")])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == {} and peak < 2 * 2**20, f"peak {peak:,} bytes"
    assert disk.rejected == 2
    (left,) = sqlite3.connect(str(db)).execute("SELECT count(*) FROM entries WHERE length(value) > ?",
                                                (MAX_VALUE_BYTES,)).fetchone()
    assert left == 0  # deleted, so the next read does not meet them again
    vector = runtime.embed("huge blob")  # asked again from the provider, as for any miss
    assert np.allclose(vector, fakeprov.vector_for("fake-embed", "huge blob", 8), atol=1e-6)
    runtime.close()


def test_a_value_over_the_cap_is_not_written(tmp_path):
    disk = DiskTier(tmp_path / "store", size_limit=2**30, policy="least-recently-stored", timeout_s=5, warn=print)
    assert disk.put_many([(b"k" * 32, b"\0" * (MAX_VALUE_BYTES + 1)), (b"j" * 32, b"ok")], "t") == 1
    assert disk.get_many([b"k" * 32, b"j" * 32]) == {b"j" * 32: b"ok"}
    disk.close()


# -- interpolation -------------------------------------------------------------------------------
def test_2000_wide_fields_stop_at_the_cell_limit_quickly_and_in_bounded_memory(ip, rhome):
    rt = Runtime(rhome, config=fakeprov.fake_config(), env={})
    old = eliza_nb.set_runtime(rt)
    cell = "{x:>9999}" * 2000  # 18 KB that would expand to 20 million characters
    ip.user_ns["x"] = "a"
    try:
        interpolate("{x}", {"x": "warm"})  # imports and the Eliza config object, outside the measurement
        exc = bounded(lambda: interpolate(cell, {"x": "a"}, max_chars=1_000_000), peak_bytes=6 * 2**20)
        assert isinstance(exc, InterpolationError)
        assert "1,000,000 characters (Eliza.max_cell_chars)" in one_line(str(exc))
        with capture_output() as cap:
            result = ip.run_cell("%%eliza generate --no-stream\n" + cell)
        assert not result.success and isinstance(result.error_in_exec, UsageError)
        assert "Eliza.max_cell_chars" in one_line(cap.stderr)
        assert rt.adapter("fake").generate_calls == 0
    finally:
        eliza_nb.set_runtime(old)
        rt.close()
        ip.user_ns.pop("x", None)


def test_the_expansion_cap_counts_literal_text_and_fields_and_0_means_no_limit():
    assert interpolate("ab{x:>3}{{", {"x": 1}, max_chars=6) == "ab  1{"
    with pytest.raises(InterpolationError, match="passes 5 characters"):
        interpolate("ab{x:>3}{{", {"x": 1}, max_chars=5)
    assert len(interpolate("{x:>9999}" * 200, {"x": 1}, max_chars=0)) == 9999 * 200


# -- values, where they enter ---------------------------------------------------------------------
BAD_NUMBERS = [math.nan, math.inf, -1, "abc", True]


def numeric_entry_points() -> dict[str, Callable[[Runtime, Path, Any], Any]]:
    """Every place a number enters, as fn(runtime, home, value)."""
    def table(name: str, key: str) -> Callable[[Runtime, Path, Any], Any]:
        return lambda rt, home, v: Runtime(home, config=make_config(**{name: {key: v}}), env={})

    def rate_limit(key: str) -> Callable[[Runtime, Path, Any], Any]:
        def enter(rt: Runtime, home: Path, v: Any) -> Any:
            config = make_config()
            config["providers"]["fake"]["rate_limit"] = {key: v}
            return Runtime(home, config=config, env={}).generate("hi")
        return enter

    def concurrency(rt: Runtime, home: Path, v: Any) -> Any:
        config = make_config()
        config["providers"]["fake"]["max_concurrency"] = v
        return Runtime(home, config=config, env={}).generate("hi")

    points: dict[str, Callable[[Runtime, Path, Any], Any]] = {
        "generate(timeout_s=)": lambda rt, home, v: rt.generate("hi", timeout_s=v),
        "stream(timeout_s=)": lambda rt, home, v: list(rt.stream("hi", timeout_s=v)),
        "image(timeout_s=)": lambda rt, home, v: rt.image("a cat", timeout_s=v),
        "generate(max_tokens=)": lambda rt, home, v: rt.generate("hi", max_tokens=v),
        "generate(temperature=)": lambda rt, home, v: rt.generate("hi", temperature=v),
        "set_budget()": lambda rt, home, v: eliza_nb.set_budget(v),
        "[defaults] max_tokens": lambda rt, home, v: Runtime(
            home, config=make_config(defaults={"provider": "fake", "max_tokens": v}), env={}),
        "[presets.x] temperature": lambda rt, home, v: Runtime(
            home, config=make_config(presets={"x": {"temperature": v}}), env={}),
        "[providers.fake.rate_limit] rpm": rate_limit("rpm"),
        "[providers.fake.rate_limit] tpm": rate_limit("tpm"),
        "[providers.fake.rate_limit] window_s": rate_limit("window_s"),
        "[providers.fake] max_concurrency": concurrency,
        "[budget] max_usd": table("budget", "max_usd"),
    }
    for key in ("disk_size_limit", "memory_ttl_s", "timeout_s", "memory_max_entries"):
        points[f"[cache] {key}"] = table("cache", key)
    for key in ("max_attempts", "base_delay_s", "max_delay_s", "max_total_s", "jitter", "timeout_s"):
        points[f"[retry] {key}"] = table("retry", key)
    return points


ENTRY_POINTS = numeric_entry_points()


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("where", sorted(ENTRY_POINTS))
def test_a_bad_number_is_a_one_line_config_error_where_it_enters(rt, rhome, where, value):
    old = eliza_nb.set_runtime(rt)
    try:
        with pytest.raises(ConfigError) as info:
            ENTRY_POINTS[where](rt, rhome, value)
    finally:
        eliza_nb.set_runtime(old)
    one_line(str(info.value))
    assert rt.adapter("fake").generate_calls == 0


@pytest.mark.parametrize("value", [0, -0.5])
def test_a_zero_or_negative_timeout_is_refused_not_replaced_by_the_default(rt, value):
    with pytest.raises(ConfigError, match=r"timeout_s \(seconds per attempt\) must be a number > 0"):
        rt.generate("hi", timeout_s=value)


@pytest.mark.parametrize("key", ["provider", "model_class", "model", "preset", "embedding_provider", "embedding_model"])
@pytest.mark.parametrize("value", [math.nan, -1, True, ["openai"]], ids=repr)
def test_defaults_names_must_be_text(rhome, key, value):
    defaults = {"provider": "fake", key: value}
    with pytest.raises(ConfigError, match=rf"^\[defaults\] {key} in config.toml must be text"):
        Runtime(rhome, config=make_config(defaults=defaults), env={})


@pytest.mark.parametrize("table", ["cache", "budget", "defaults"])
def test_a_config_table_that_is_not_a_table_is_one_line(rhome, table):
    with pytest.raises(ConfigError, match=rf"\[{table}\] in config.toml must be a table") as info:
        Runtime(rhome, config=make_config(**{table: 5}), env={})
    one_line(str(info.value))


def test_huge_integers_are_refused_not_overflowing(rt):
    for call in (lambda: rt.generate("hi", max_tokens=10**400), lambda: rt.generate("hi", temperature=10**400),
                 lambda: rt.generate("hi", timeout_s=10**400), lambda: SpendingCap().set(10**400)):
        with pytest.raises(ConfigError) as info:
            call()
        assert len(one_line(str(info.value))) < 300


SETTING_TRAITS = ["default_temperature", "default_max_tokens", "default_max_input_tokens", "default_top_p"]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("trait", [*SETTING_TRAITS, "stream_interval", "max_cell_chars"])
def test_eliza_traitlets_refuse_bad_numbers_in_one_line(rt, trait, value):
    from eliza_nb.notebook.config import eliza_config

    old = eliza_nb.set_runtime(rt)
    conf = eliza_config()
    before = (getattr(conf, trait), rt.session.state)
    try:
        for assign in (lambda: setattr(conf, trait, value), lambda: conf.update_config(Config({"Eliza": {trait: value}}))):
            with pytest.raises(TraitError) as info:
                assign()
            one_line(str(info.value))
            assert (getattr(conf, trait), rt.session.state) == before
    finally:
        eliza_nb.set_runtime(old)


def test_a_setting_trait_takes_a_number_and_none_and_parses_the_command_line(ip, rt):  # ip: %eliza loaded
    from eliza_nb.notebook.config import Eliza, eliza_config

    old = eliza_nb.set_runtime(rt)
    conf = eliza_config()
    try:
        conf.default_temperature = 0.3
        assert rt.session.state.settings.temperature == 0.3
        conf.default_temperature = None
        trait = Eliza.class_traits()["default_max_tokens"]
        assert trait.from_string("256") == 256
        with pytest.raises(TraitError, match="max_output_tokens: expected a whole number"):
            trait.from_string("nan")
    finally:
        eliza_nb.set_runtime(old)


@pytest.mark.parametrize("line", ["config set temperature nan", "config set max_tokens inf", "config set top_p -1",
                                  "config set max_input_tokens abc", "config set temperature True",
                                  "config set max_tokens " + "9" * 400])
def test_eliza_config_set_refuses_bad_numbers_in_one_line(ip, rt, line):
    old = eliza_nb.set_runtime(rt)
    before = rt.session.state
    try:
        with pytest.raises(UsageError) as info:
            ip.run_line_magic("eliza", line)
    finally:
        eliza_nb.set_runtime(old)
    one_line(str(info.value))
    assert rt.session.state == before


# -- lone surrogates -----------------------------------------------------------------------------
@pytest.mark.parametrize("call, where", [
    (lambda rt: rt.generate("ab\ud800c"), "the prompt holds a lone surrogate (U+D800) at position 2"),
    (lambda rt: list(rt.stream("\udfff")), "the prompt holds a lone surrogate (U+DFFF) at position 0"),
    (lambda rt: rt.generate("hi", system="be \udc80"), "the system prompt holds a lone surrogate (U+DC80) at position 3"),
    (lambda rt: rt.generate([{"role": "user", "content": "ok"}, {"role": "user", "content": "x\ud83d"}]),
     "message 1 (user) holds a lone surrogate (U+D83D) at position 1"),
    (lambda rt: rt.embed("x\ud800"), "the text holds a lone surrogate (U+D800) at position 1"),
    (lambda rt: rt.embed(["fine", "\ud800"]), "item 1 holds a lone surrogate (U+D800) at position 0"),
])
def test_a_lone_surrogate_is_one_line_before_any_provider_call(rt, call, where):
    with pytest.raises(ConfigError) as info:
        call(rt)
    assert where in one_line(str(info.value))
    fake = rt.adapter("fake")
    assert fake.generate_calls == 0 and fake.embedded == []
    assert rt.generate("fine é 😀").text.startswith("echo: fine é 😀")  # real non-ASCII text is untouched


# -- a max_input_tokens too small ----------------------------------------------------------------
def test_a_max_input_tokens_too_small_for_the_system_prompt_says_so_in_words(rt):
    system = "You are a helpful assistant who answers briefly and precisely."
    with pytest.raises(ContextTooLongError) as info:
        rt.generate("What is the capital of France?", system=system, max_input_tokens=20)
    message = one_line(str(info.value))
    assert "max_input_tokens=20 cannot hold the system prompt (" in message
    assert "raise max_input_tokens or shorten the system prompt" in message
    assert "budget" not in message and "-" not in message.split("tokens)")[0]
    with pytest.raises(ContextTooLongError, match=r"max_input_tokens=20 cannot hold the question .*; raise max_input_tokens$"):
        rt.generate("What is the capital of France?", max_input_tokens=20, truncation="off")
    assert rt.adapter("fake").generate_calls == 0
