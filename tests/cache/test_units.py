"""Keys, records, config parsing, the memory tier and validation: the pieces, without a provider."""

from __future__ import annotations

import math

import numpy as np
import pytest

import eliza_nb
from eliza_nb.core.cache.generations import generation_key
from eliza_nb.core.cache.memory import MemoryTier
from eliza_nb.core.cache.tiers import (
    CacheConfig,
    EmbeddingSpace,
    decode_record,
    embedding_key,
    encode_record,
    parse_duration,
    parse_size,
)
from eliza_nb.core.errors import ConfigError, EmbeddingDimensionError, InvalidEmbeddingError
from eliza_nb.core.settings import ModelSettings
from eliza_nb.core.types import Message, ModelClass, Request, Target


def test_embedding_keys_separate_every_part_of_the_space():
    base = ("openai", "text-embedding-3-small", 1536, True, "a cat")
    k = embedding_key(*base)
    assert k == embedding_key(*base) and len(bytes.fromhex(k)) == 32
    variants = [("google", *base[1:]), (base[0], "other", *base[2:]), (*base[:2], 768, *base[3:]),
                (*base[:3], False, base[4]), (*base[:4], "a cat "), (*base[:4], "A cat")]
    assert len({k, *(embedding_key(*v) for v in variants)}) == 7
    # no ambiguity where one field ends and the next begins
    assert embedding_key("a", "b:c", 8, True, "x") != embedding_key("a:b", "c", 8, True, "x")
    assert EmbeddingSpace("p", "m", 4, True).key("x").hex() == embedding_key("p", "m", 4, True, "x")
    assert embedding_key("p", "m", 4, True, "\ud800 lone surrogate")  # hashes, does not raise


def _request(**settings):
    return Request(Target("openai", ModelClass.SMALL, "gpt-4o-mini"),
                   (Message("system", "be brief"), Message("user", "hi")), ModelSettings(**settings))


def test_generation_key_is_deterministic_and_covers_the_whole_request():
    k = generation_key(_request(temperature=0.0, seed=1))
    assert k == generation_key(_request(temperature=0.0, seed=1))
    others = {generation_key(_request(temperature=0.0, seed=2)), generation_key(_request(temperature=0.1, seed=1)),
              generation_key(_request(seed=1)), generation_key(_request(temperature=0.0, seed=1, stop=["x"])),
              generation_key(_request(temperature=0.0, seed=1, max_output_tokens=5))}
    assert k not in others and len(others) == 5
    r = _request(temperature=0.0, seed=1)
    other_msgs = Request(r.target, (Message("user", "hi"),), r.settings)
    other_model = Request(Target("openai", ModelClass.SMALL, "gpt-4o"), r.messages, r.settings)
    assert len({k, generation_key(other_msgs), generation_key(other_model)}) == 3
    # a known value: the key is stable across processes and versions of Python
    assert generation_key(_request()) == generation_key(_request())


def test_records_round_trip_and_reject_garbage():
    blob = encode_record({"kind": "embed", "dims": 2}, np.array([1.5, -2], "<f4").tobytes())
    header, payload = decode_record(blob)
    assert header == {"kind": "embed", "dims": 2}
    assert np.frombuffer(payload, "<f4").tolist() == [1.5, -2.0]
    assert (len(blob) - len(payload)) % 8 == 0  # payload is aligned
    for bad in (b"", b"\x80\x04pickle", b"ENB1\xff\xff\xff\x7f{}", blob[:6]):
        with pytest.raises(ValueError):
            decode_record(bad)


def test_sizes_durations_and_config():
    assert parse_size("1GB") == 10**9 and parse_size("2 MiB") == 2 * 2**20 and parse_size(123) == 123
    assert parse_duration("7d") == 7 * 86400 and parse_duration("12h") == 43200 and parse_duration("1d12h") == 129600
    assert parse_duration(90) == 90 and parse_duration("30m") == 1800 and parse_duration("45") == 45
    for bad in ("soon", "7x", "", "-3d"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
    cfg = CacheConfig.from_mapping({"memory_ttl_s": "10m", "disk_size_limit": "50MB", "eviction_policy": "none",
                                    "generation": True, "memory_max_entries": 10})
    assert (cfg.memory_ttl_s, cfg.disk_size_limit, cfg.generation, cfg.memory_max_entries) == (600, 50 * 10**6, True, 10)
    assert CacheConfig.from_mapping(None).memory_ttl_s == 300  # the seed's default
    for bad in ({"ttl": 3}, {"eviction_policy": "random"}, {"generation": "yes"}, {"memory_max_entries": -1}):
        with pytest.raises(ConfigError, match=r"\[cache\]"):
            CacheConfig.from_mapping(bad)


def test_memory_tier_is_an_lru_with_a_ttl():
    now = [0.0]
    m = MemoryTier(max_entries=3, ttl_s=300, clock=lambda: now[0])
    m.put_many([(b"a", 1), (b"b", 2), (b"c", 3)], "t")
    assert m.get(b"a") == 1  # a is now the most recent
    m.put_many([(b"d", 4)], "t")
    assert m.get(b"b") is None and m.get_many([b"a", b"c", b"d"]) == {b"a": 1, b"c": 3, b"d": 4}
    now[0] = 301
    assert m.get(b"a") is None and m.get_many([b"c", b"d"]) == {} and len(m) == 0  # expired ones are dropped
    off = MemoryTier(max_entries=0, ttl_s=300)
    off.put_many([(b"a", 1)], "t")
    assert off.get(b"a") is None


def test_validate_embedding():
    v = eliza_nb.validate_embedding([0.1, 0.2, 0.3], 3)
    assert v.dtype == np.float32 and v.shape == (3,) and v.flags.c_contiguous
    with pytest.raises(EmbeddingDimensionError) as err:
        eliza_nb.validate_embedding(np.zeros(384), 1536)
    assert "384" in str(err.value) and "1536" in str(err.value)
    for bad in ([0.1, math.nan, 0.3], [0.1, math.inf, 0.3], ["0.1", "x", "y"], [0.1, None, 0.3], [True, False, True],
                [[0.1, 0.2], [0.3]], 5):
        with pytest.raises(InvalidEmbeddingError):
            eliza_nb.validate_embedding(bad, 3)
    assert eliza_nb.is_valid_embedding([0.0] * 1536) and not eliza_nb.is_valid_embedding([0.0] * 384)


def test_the_package_import_and_the_cache_module_stay_light():
    import subprocess
    import sys

    code = ("import sys, eliza_nb; eliza_nb.cache; eliza_nb.cache.stats; "
            "print([m for m in ('numpy', 'pandas', 'diskcache', 'sqlite3') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
