"""The provider catalog: complete for the seed, overridable by config and env."""

from __future__ import annotations

import pytest

from eliza_nb.core.catalog import Catalog, find_key
from eliza_nb.core.errors import ConfigError
from eliza_nb.core.types import ModelClass, ProviderName

SEED = ["openai", "anthropic", "claude_vertex", "grok", "groq", "llama_cloud", "llama_local",
        "google", "redpill", "openrouter", "heurist"]


def test_provider_name_enum_is_the_seed_plus_ollama():
    assert [p.value for p in ProviderName] == [*SEED, "ollama"]


@pytest.mark.parametrize("pid", SEED)
def test_every_seed_provider_is_complete(pid):
    cat = Catalog.load({}, env={})
    entry = cat.get(pid)
    if pid == "llama_local":
        assert entry.endpoint == "" and entry.key_env == ()
    else:
        assert entry.endpoint.startswith("https://")
        assert entry.key_env, "a remote provider names its key variable"
    s = entry.settings
    assert s.max_input_tokens and s.max_output_tokens and s.temperature is not None
    for cls in (ModelClass.SMALL, ModelClass.MEDIUM, ModelClass.LARGE):
        assert entry.model_for(cls)


def test_seed_values():
    # Values the seed fixed and no model refresh moves: endpoints, keys, temperatures, the
    # embedding model, the local stops and Heurist's image job. Default ids and token windows
    # follow each owner's current models (issue 14), so they are checked by property below and
    # in tests/providers/test_model_currency.py, not by value.
    cat = Catalog.load({}, env={})
    o = cat.get("openai")
    assert o.endpoint == "https://api.openai.com/v1"
    assert o.settings.temperature == 0.6
    assert 0 < o.settings.max_output_tokens < o.settings.max_input_tokens
    assert o.models[ModelClass.EMBEDDING] == "text-embedding-3-small" and o.embedding_dims == 1536
    assert o.models[ModelClass.SMALL] and o.models[ModelClass.IMAGE]
    a = cat.get("anthropic")
    assert (a.settings.max_input_tokens, a.settings.temperature) == (200000, 0.3)
    assert a.models[ModelClass.SMALL] != a.models[ModelClass.MEDIUM] != a.models[ModelClass.LARGE]
    local = cat.get("llama_local")
    assert local.settings.stop == ("<|eot_id|>", "<|eom_id|>")
    assert (local.settings.max_input_tokens, local.settings.max_output_tokens, local.settings.temperature) == (32768, 8192, 0.3)
    h = cat.get("heurist")
    assert h.endpoint == "https://llm-gateway.heurist.xyz" and h.settings.temperature == 0.7
    assert h.models[ModelClass.IMAGE] == "FLUX.1-dev" and h.extra["image_settings"]["steps"] == 20
    assert cat.get("grok").key_env == ("GROK_API_KEY", "XAI_API_KEY")
    assert "GEMINI_API_KEY" in cat.get("google").key_env


def test_seed_ids_that_were_shut_down_are_kept_as_retired_rows():
    # The seed's own ids stay in the catalog as history: a notebook that still names one gets
    # the one-line "retired, use X" answer, and X is what the catalog serves for that class now.
    import datetime as dt

    cat = Catalog.load({}, env={})
    today = dt.date.today()
    for pid, gone, cls in [("openai", "dall-e-3", ModelClass.IMAGE),
                           ("anthropic", "claude-3-5-sonnet-20241022", ModelClass.MEDIUM),
                           ("google", "text-embedding-004", ModelClass.EMBEDDING),
                           ("groq", "llama-3.1-8b-instant", ModelClass.SMALL)]:
        entry = cat.get(pid)
        row = entry.retirement(gone)
        assert row is not None and row.is_past(today), f"{pid}: {gone} should be a past retirement"
        assert entry.models[cls] != gone
        assert entry.retirement(entry.models[cls]) is None


def test_heurist_has_no_embedding_model_and_says_who_has():
    cat = Catalog.load({}, env={})
    with pytest.raises(ConfigError) as err:
        cat.get("heurist").model_for(ModelClass.EMBEDDING, cat)
    msg = str(err.value)
    assert "heurist has no embedding model" in msg and "openai" in msg and "llama_local" in msg
    assert "\n" not in msg


def test_unknown_provider_lists_the_choices():
    with pytest.raises(ConfigError) as err:
        Catalog.load({}, env={}).get("opanai")
    assert "unknown provider 'opanai'" in str(err.value) and "openai" in str(err.value)


def test_env_overrides_one_model_per_class():
    shipped = Catalog.load({}, env={}).get("openai").models
    cat = Catalog.load({}, env={"SMALL_OPENAI_MODEL": "my-finetune-small", "EMBEDDING_LLAMA_LOCAL_MODEL": "/m/e.gguf"})
    assert shipped[ModelClass.SMALL] != "my-finetune-small"
    assert cat.get("openai").models[ModelClass.SMALL] == "my-finetune-small"
    # only the named class moves: the other classes keep the shipped defaults
    assert cat.get("openai").models[ModelClass.MEDIUM] == shipped[ModelClass.MEDIUM]
    assert cat.get("openai").models[ModelClass.EMBEDDING] == shipped[ModelClass.EMBEDDING]
    assert cat.get("llama_local").models[ModelClass.EMBEDDING] == "/m/e.gguf"


def test_user_config_overrides_and_adds_a_provider_without_code():
    user = {"providers": {
        "openai": {"settings": {"temperature": 0.0}},
        "mylab": {"protocol": "openai", "endpoint": "http://10.0.0.5:8000/v1", "key_env": "MYLAB_KEY",
                  "models": {"small": "qwen2.5-7b"}},
    }}
    shipped = Catalog.load({}, env={}).get("openai")
    assert shipped.settings.temperature != 0.0
    cat = Catalog.load(user, env={})
    assert cat.get("openai").settings.temperature == 0.0
    # the rest of the table kept
    assert cat.get("openai").settings.max_input_tokens == shipped.settings.max_input_tokens
    assert cat.get("openai").models == shipped.models and cat.get("openai").prices == shipped.prices
    lab = cat.get("mylab")
    assert lab.models[ModelClass.SMALL] == "qwen2.5-7b" and lab.key_env == ("MYLAB_KEY",)


def test_bad_user_entries_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown protocol"):
        Catalog.load({"providers": {"x": {"protocol": "soap", "endpoint": "http://x"}}}, env={})
    with pytest.raises(ConfigError, match="needs an endpoint"):
        Catalog.load({"providers": {"x": {"protocol": "openai"}}}, env={})
    with pytest.raises(ConfigError, match="unknown setting"):
        Catalog.load({"providers": {"openai": {"settings": {"temprature": 1}}}}, env={})
    with pytest.raises(ConfigError, match="unknown model class"):
        Catalog.load({"providers": {"openai": {"models": {"huge": "x"}}}}, env={})


def test_keys_come_from_env_aliases_then_dotenv(tmp_path):
    cat = Catalog.load({}, env={})
    grok = cat.get("grok")
    assert find_key(grok, env={"XAI_API_KEY": "k-alias"}, dotenv_dir=tmp_path) == ("k-alias", "XAI_API_KEY")
    assert find_key(grok, env={}, dotenv_dir=tmp_path) == (None, None)
    (tmp_path / ".env").write_text("# keys\nexport GROK_API_KEY='k-dotenv'\n")
    assert find_key(grok, env={}, dotenv_dir=tmp_path) == ("k-dotenv", "GROK_API_KEY")
    assert find_key(grok, env={"GROK_API_KEY": "k-env"}, dotenv_dir=tmp_path)[0] == "k-env"


def test_prices_unknown_is_nan_not_zero():
    import math

    user = {"providers": {"openai": {"prices": {"my-model": {"input": 0.15, "output": 0.60}}}}}
    cat = Catalog.load(user, env={})
    o = cat.get("openai")
    assert o.price("my-model") == (0.15, 0.60)
    # a real zero stays zero (embeddings bill no output tokens); no row is NaN, never 0
    assert o.price("text-embedding-3-small")[1] == 0.0
    assert all(math.isnan(x) for x in o.price("no-such-model"))
    assert all(math.isnan(x) for x in cat.get("openrouter").price("nousresearch/hermes-3-llama-3.1-405b"))
    # the shipped default of the cheapest class is priced, so cost cells show a number
    small = o.price(o.models[ModelClass.SMALL])
    assert all(math.isfinite(x) and x > 0 for x in small)
