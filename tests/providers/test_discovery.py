"""Model discovery (eliza_nb.models / %eliza models): each API's own listing, against a REAL
OpenAI-compatible server (llama_cpp.server) and scripted loopback servers for Anthropic,
Gemini, Vertex and OpenRouter shapes; the cache in the home, its TTL, the offline fallback,
the one-line errors, the magic in a real IPython shell and the panel's offered ids."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time
from urllib.parse import parse_qs, urlsplit

import fault_server as fs
import pytest
from provider_helpers import SECRET, SERVER_KEY, assert_no_secret

from eliza_nb.core.discovery import cache_path
from eliza_nb.core.errors import AuthError, BadResponseError, ConfigError, NotFoundError, TransientError
from eliza_nb.core.runtime import Runtime


def query(request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query)


def make_rt(home, providers: dict, env: dict | None = None, **config) -> Runtime:
    return Runtime(home, config={"providers": providers, **config}, env=env or {})


def openai_provider(url: str, **extra) -> dict:
    return {"protocol": "openai", "endpoint": url + "/v1", "key_env": ["FAULT_KEY"],
            "models": {"small": "m-small", "large": "m-large"}, **extra}


@pytest.fixture
def rts():
    made: list[Runtime] = []
    yield made
    for rt in made:
        rt.close()


@pytest.fixture
def fault_rt(home, fault_server, rts):
    """A runtime whose provider ``fx`` is an OpenAI-compatible entry on the fault server."""
    rt = make_rt(home, {"fx": openai_provider(fault_server.url)}, {"FAULT_KEY": SECRET})
    rts.append(rt)
    return rt


OPENAI_LIST = {"object": "list", "data": [
    {"id": "m-small", "object": "model", "created": 1715558400, "owned_by": "me"},
    {"id": "m-other", "object": "model", "created": 1700000000, "owned_by": "me"},
]}


# -- the real server ---------------------------------------------------------------------------
def test_listing_from_a_real_llama_cpp_server(home, llama_server, rts):
    entry = {"protocol": "openai", "endpoint": llama_server, "key_env": ["LLAMASRV_KEY"],
             "models": {"small": "smollm2", "medium": "smollm2", "large": "smollm2", "embedding": "minilm"}}
    rt = make_rt(home, {"llamasrv": entry}, {"LLAMASRV_KEY": SERVER_KEY})
    rts.append(rt)
    df = rt.models("llamasrv")
    assert list(df.columns) == ["provider", "model", "catalog_class", "context_window", "input_price", "output_price",
                                "created", "source"]
    assert set(df["model"]) == {"smollm2", "minilm"}
    by_model = df.set_index("model")
    assert by_model.loc["smollm2", "catalog_class"] == "small,medium,large"
    assert by_model.loc["minilm", "catalog_class"] == "embedding"
    assert set(df["source"]) == {"live"} and set(df["provider"]) == {"llamasrv"}
    assert math.isnan(by_model.loc["smollm2", "input_price"])  # the listing says no price: NaN, not 0
    assert df.attrs["notes"] == []
    stored = cache_path(home, "llamasrv").read_text()
    assert "smollm2" in stored and SERVER_KEY not in stored
    again = rt.models("llamasrv")  # within the TTL: from the cache
    assert set(again["model"]) == {"smollm2", "minilm"} and again["source"].str.startswith("cache (").all()


def test_wrong_key_on_the_real_server_is_one_line_without_the_key(home, llama_server, rts):
    entry = {"protocol": "openai", "endpoint": llama_server, "key_env": ["LLAMASRV_KEY"], "models": {"small": "smollm2"}}
    rt = make_rt(home, {"llamasrv": entry}, {"LLAMASRV_KEY": SECRET})
    rts.append(rt)
    with pytest.raises(AuthError) as info:
        rt.models("llamasrv")
    text = str(info.value)
    assert "\n" not in text and "HTTP 401" in text and "model listing" in text
    assert_no_secret(text, info.value)
    assert not cache_path(home, "llamasrv").exists()


# -- protocols on loopback ---------------------------------------------------------------------
def test_anthropic_pagination_follows_last_id(home, fault_server, rts):
    fault_server.script("/v1/models",
                        fs.json_reply({"data": [{"type": "model", "id": "claude-a", "display_name": "A",
                                                 "created_at": "2025-05-14T00:00:00Z"},
                                                {"type": "model", "id": "claude-b", "created_at": "2025-02-19T00:00:00Z"}],
                                       "has_more": True, "first_id": "claude-a", "last_id": "claude-b"}),
                        fs.json_reply({"data": [{"type": "model", "id": "claude-c", "created_at": "2024-10-22T00:00:00Z"}],
                                       "has_more": False, "first_id": "claude-c", "last_id": "claude-c"}))
    rt = make_rt(home, {"anthropic": {"endpoint": fault_server.url + "/v1", "models": {"small": "claude-c"}}},
                 {"ANTHROPIC_API_KEY": SECRET})
    rts.append(rt)
    df = rt.models("anthropic")
    assert df["model"].tolist() == ["claude-a", "claude-b", "claude-c"]
    assert df.set_index("model").loc["claude-c", "catalog_class"] == "small"
    assert str(df["created"].iloc[0].date()) == "2025-05-14"
    first, second = fault_server.requests_to("/v1/models")
    assert first.method == second.method == "GET"
    assert query(first) == {"limit": ["1000"]}
    assert query(second) == {"limit": ["1000"], "after_id": ["claude-b"]}
    assert first.headers["x-api-key"] == SECRET and first.headers["anthropic-version"]


def test_gemini_pagination_follows_next_page_token(home, fault_server, rts):
    fault_server.script("/v1beta/models",
                        fs.json_reply({"models": [{"name": "models/gemini-2.5-flash", "inputTokenLimit": 1048576,
                                                   "outputTokenLimit": 65536,
                                                   "supportedGenerationMethods": ["generateContent"]}],
                                       "nextPageToken": "page-2"}),
                        fs.json_reply({"models": [{"name": "models/gemini-embedding-001", "inputTokenLimit": 2048,
                                                   "supportedGenerationMethods": ["embedContent"]}]}))
    rt = make_rt(home, {"google": {"endpoint": fault_server.url,
                                   "models": {"small": "gemini-2.5-flash", "embedding": "gemini-embedding-001"}}},
                 {"GEMINI_API_KEY": SECRET})
    rts.append(rt)
    df = rt.models("google")
    assert df["model"].tolist() == ["gemini-2.5-flash", "gemini-embedding-001"]
    assert df["context_window"].tolist() == [1048576, 2048]
    assert df["catalog_class"].tolist() == ["small", "embedding"]
    first, second = fault_server.requests_to("/v1beta/models")
    assert query(first) == {"pageSize": ["1000"]} and query(second) == {"pageSize": ["1000"], "pageToken": ["page-2"]}
    assert first.headers["x-goog-api-key"] == SECRET and SECRET not in first.path  # the key never in the URL


def test_openrouter_prices_and_context_per_million(home, fault_server, rts):
    fault_server.script("/api/v1/models", fs.json_reply({"data": [
        {"id": "openai/gpt-4o-mini", "created": 1721260800, "context_length": 128000,
         "pricing": {"prompt": "0.00000015", "completion": "0.0000006"}},
        {"id": "openrouter/auto", "context_length": 2000000, "pricing": {"prompt": "-1", "completion": "-1"}},
    ]}))
    rt = make_rt(home, {"openrouter": {"endpoint": fault_server.url + "/api/v1"}}, {"OPENROUTER_API_KEY": SECRET})
    rts.append(rt)
    df = rt.models("openrouter").set_index("model")
    assert df.loc["openai/gpt-4o-mini", "input_price"] == pytest.approx(0.15)
    assert df.loc["openai/gpt-4o-mini", "output_price"] == pytest.approx(0.60)
    assert df.loc["openai/gpt-4o-mini", "context_window"] == 128000
    assert math.isnan(df.loc["openrouter/auto", "input_price"])  # "-1": varies by route, not a price
    assert fault_server.requests_to("/api/v1/models")[0].headers["Authorization"] == f"Bearer {SECRET}"


def test_groq_context_window_and_together_style_bare_list(home, fault_server, rts):
    fault_server.script("/groq/models", fs.json_reply({"object": "list", "data": [
        {"id": "llama-3.1-8b-instant", "created": 1693721698, "context_window": 131072}]}))
    fault_server.script("/together/models", fs.json_reply([
        {"id": "meta-llama/Llama-3.3-70B-Instruct-Turbo", "context_length": 131072,
         "pricing": {"input": 0.88, "output": 0.88}}]))
    rt = make_rt(home, {"g": {"protocol": "openai", "endpoint": fault_server.url + "/groq"},
                        "t": {"protocol": "openai", "endpoint": fault_server.url + "/together"}})
    rts.append(rt)
    assert rt.models("g")["context_window"].tolist() == [131072]
    t = rt.models("t")
    assert t["input_price"].tolist() == [0.88] and t["context_window"].tolist() == [131072]


def test_vertex_lists_model_garden_anthropic_models(home, fault_server, rts):
    fault_server.script("/v1beta1/publishers/anthropic/models", fs.json_reply({"publisherModels": [
        {"name": "publishers/anthropic/models/claude-sonnet-4-5", "versionId": "20250929"}]}))
    rt = make_rt(home, {"claude_vertex": {"endpoint": fault_server.url, "models": {"small": "claude-sonnet-4-5@20250929"}}},
                 {"VERTEX_ACCESS_TOKEN": SECRET, "GOOGLE_CLOUD_PROJECT": "proj", "VERTEX_REGION": "us-east5"})
    rts.append(rt)
    df = rt.models("claude_vertex")
    assert df["model"].tolist() == ["claude-sonnet-4-5@20250929"] and df["catalog_class"].tolist() == ["small"]
    (request,) = fault_server.requests_to("/v1beta1/publishers/anthropic/models")
    assert request.headers["Authorization"] == f"Bearer {SECRET}"


# -- cache and TTL -----------------------------------------------------------------------------
def test_ttl_cache_hit_makes_no_request_and_refresh_does(fault_rt, fault_server, home):
    fault_server.script("/v1/models", fs.json_reply(OPENAI_LIST))
    assert fault_rt.models("fx")["source"].tolist() == ["live", "live"]
    assert len(fault_server.requests_to("/v1/models")) == 1
    cached = fault_rt.models("fx")
    assert cached["model"].tolist() == ["m-small", "m-other"]
    assert cached["source"].tolist() == ["cache (under a minute old)"] * 2
    assert len(fault_server.requests_to("/v1/models")) == 1  # the server saw no second request
    assert fault_rt.models("fx", refresh=True)["source"].tolist() == ["live", "live"]
    assert len(fault_server.requests_to("/v1/models")) == 2
    # past the TTL: asked again
    path = cache_path(home, "fx")
    data = json.loads(path.read_text())
    data["fetched_at"] -= 25 * 3600
    path.write_text(json.dumps(data))
    assert fault_rt.models("fx")["source"].iloc[0] == "live"
    assert len(fault_server.requests_to("/v1/models")) == 3


def test_ttl_from_config_and_a_bad_value(home, fault_server, rts):
    fault_server.script("/v1/models", fs.json_reply(OPENAI_LIST))
    rt = make_rt(home, {"fx": openai_provider(fault_server.url)}, {"FAULT_KEY": SECRET}, models={"ttl_hours": 0})
    rts.append(rt)
    rt.models("fx")
    rt.models("fx")
    assert len(fault_server.requests_to("/v1/models")) == 2  # ttl 0: always asked
    bad = make_rt(home, {"fx": openai_provider(fault_server.url)}, {"FAULT_KEY": SECRET}, models={"ttl_hours": "1d"})
    rts.append(bad)
    with pytest.raises(ConfigError, match=r"\[models\] ttl_hours"):
        bad.models("fx")


def test_a_cache_from_another_endpoint_is_not_used(fault_rt, fault_server, home, rts):
    fault_server.script("/v1/models", fs.json_reply(OPENAI_LIST))
    fault_rt.models("fx")
    moved = make_rt(home, {"fx": openai_provider(fault_server.url + "/other")}, {"FAULT_KEY": SECRET})
    rts.append(moved)
    fault_server.script("/other/v1/models", fs.json_reply({"data": [{"id": "elsewhere"}]}))
    assert moved.models("fx")["model"].tolist() == ["elsewhere"]


def test_offline_falls_back_to_the_cache_with_its_age(fault_rt, fault_server, home, rts):
    fault_server.script("/v1/models", fs.json_reply(OPENAI_LIST),
                        fs.json_reply({"error": {"message": "upstream down"}}, status=503))
    fault_rt.models("fx")
    path = cache_path(home, "fx")
    data = json.loads(path.read_text())
    data["fetched_at"] = time.time() - 3 * 86400  # three days old: past the TTL, so live is tried
    path.write_text(json.dumps(data))
    with pytest.warns(RuntimeWarning, match="showing the list cached 3 d ago"):
        df = fault_rt.models("fx")
    assert df["model"].tolist() == ["m-small", "m-other"]
    assert df["source"].tolist() == ["cache (3 d old)"] * 2
    (note,) = [n for n in df.attrs["notes"] if "cached" in n]
    assert "HTTP 503" in note and "upstream down" in note and "\n" not in note
    # the server gone entirely (offline): the cache again, even with refresh=True
    fault_server.stop()
    offline = make_rt(home, {"fx": openai_provider(fault_server.url)}, {"FAULT_KEY": SECRET})  # no pooled connection
    rts.append(offline)
    with pytest.warns(RuntimeWarning, match="cannot connect"):
        df = offline.models("fx", refresh=True)
    assert df["model"].tolist() == ["m-small", "m-other"]


def test_401_without_a_cache_is_one_line_without_the_key(fault_rt, fault_server):
    fault_server.script("/v1/models", fs.json_reply({"error": {"message": f"Incorrect API key provided: {SECRET}",
                                                               "code": "invalid_api_key"}}, status=401))
    with pytest.raises(AuthError) as info:
        fault_rt.models("fx")
    text = str(info.value)
    assert text.startswith("[fx] model listing refused the credentials (HTTP 401)") and "\n" not in text
    assert_no_secret(text, repr(info.value))


def test_timeout_without_a_cache_is_one_line(home, fault_server, rts):
    fault_server.script("/v1/models", fs.slow(5, fs.json_reply(OPENAI_LIST)))
    rt = make_rt(home, {"fx": openai_provider(fault_server.url)}, {"FAULT_KEY": SECRET}, retry={"timeout_s": 0.5})
    rts.append(rt)
    started = time.monotonic()
    with pytest.raises(TransientError, match="model listing") as info:
        rt.models("fx")
    assert time.monotonic() - started < 3 and "\n" not in str(info.value)


def test_a_wrong_shape_is_one_bad_response_error(fault_rt, fault_server):
    fault_server.script("/v1/models", fs.json_reply({"data": {"id": "not-a-list"}}))
    with pytest.raises(BadResponseError, match=r"model listing: data: expected a list, got an object"):
        fault_rt.models("fx")


def test_endless_has_more_is_bounded(home, fault_server, rts):
    counter = itertools.count()

    def endless(h):  # a new cursor on every page, and always "more"
        n = next(counter)
        fs.json_reply({"data": [{"id": f"m{n}"}], "has_more": True, "last_id": f"m{n}"})(h)

    fault_server.script("/v1/models", endless)
    rt = make_rt(home, {"anthropic": {"endpoint": fault_server.url + "/v1"}}, {"ANTHROPIC_API_KEY": SECRET})
    rts.append(rt)
    with pytest.raises(BadResponseError, match="did not end after 50 pages"):
        rt.models("anthropic")
    assert len(fault_server.requests_to("/v1/models")) == 50


def test_a_repeated_cursor_stops_at_once(home, fault_server, rts):
    fault_server.script("/v1beta/models", fs.json_reply({"models": [{"name": "models/x"}], "nextPageToken": "same"}))
    rt = make_rt(home, {"google": {"endpoint": fault_server.url}}, {"GEMINI_API_KEY": SECRET})
    rts.append(rt)
    with pytest.raises(BadResponseError, match="repeats its page cursor"):
        rt.models("google")
    assert len(fault_server.requests_to("/v1beta/models")) == 2


def test_providers_without_a_listing_say_so(home, fault_server, rts):
    rt = make_rt(home, {"nolist": openai_provider(fault_server.url, list_models="the gateway documents none"),
                        "fx": openai_provider(fault_server.url)}, {"FAULT_KEY": SECRET})
    rts.append(rt)
    with pytest.raises(ConfigError) as info:
        rt.models("nolist")
    assert str(info.value) == ("[nolist] nolist has no model listing endpoint (the gateway documents none); "
                               "set the model id by hand")
    assert fault_server.requests == []  # not even tried
    # a 404 for the listing path itself says the same kind of thing
    with pytest.raises(NotFoundError, match="the endpoint has no model listing"):
        rt.models("fx")


# -- every provider at once --------------------------------------------------------------------
def test_all_providers_lists_the_usable_and_names_the_skipped(fault_rt, fault_server):
    fault_server.script("/v1/models", fs.json_reply(OPENAI_LIST))
    df = fault_rt.models()
    assert {"fx", "llama_local"} <= set(df["provider"])
    assert "anthropic" not in set(df["provider"])
    assert df.attrs["skipped"]["anthropic"] == "no key (ANTHROPIC_API_KEY)"
    skipped = next(n for n in df.attrs["notes"] if n.startswith("skipped: "))
    assert "openai: no key (OPENAI_API_KEY)" in skipped
    # ollama is keyless, so it is tried; nothing listens on its port here: a note, not an error
    assert any(n.startswith("[ollama]") and "no cached list" in n for n in df.attrs["notes"])
    local = df[df["provider"] == "llama_local"].set_index("model")
    assert local.loc["smollm2-135m-instruct", "catalog_class"] == "small,medium,large"
    assert local.loc["smollm2-135m-instruct", "context_window"] == 8192  # read from the GGUF header


def test_local_listing_reads_gguf_headers_without_loading(home, models_home, rts):
    from eliza_nb.adapters.local_models import SMOLLM2, package_path

    models = home / "models"
    models.mkdir(exist_ok=True)
    shutil.copy(models_home / "models" / "all-minilm-l6-v2.f32.gguf", models)
    (models / "my-model.gguf").write_bytes(package_path(SMOLLM2).read_bytes()[:1 << 20])  # the header is at the start
    (models / "broken.gguf").write_bytes(b"not a gguf")
    rt = make_rt(home, {})
    rts.append(rt)
    df = rt.models("llama_local").set_index("model")
    assert df.loc["all-minilm-l6-v2", "context_window"] == 512  # bert.context_length of the converted file
    assert df.loc[str(models / "my-model.gguf"), "context_window"] == 8192
    assert df["context_window"].isna()[str(models / "broken.gguf")]
    assert str(models / "all-minilm-l6-v2.f32.gguf") not in df.index  # the built-in's own file, listed by name
    assert (df["input_price"] == 0).all()
    assert rt._adapters["llama_local"]._models == {}  # nothing was loaded


# -- the notebook ------------------------------------------------------------------------------
@pytest.fixture
def shared(fault_rt):
    import eliza_nb

    old = eliza_nb.set_runtime(fault_rt)
    yield fault_rt
    eliza_nb.set_runtime(old)


def run_cell(ip, source: str):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        result = ip.run_cell(source)
    return result, cap


def test_models_magic_in_a_real_shell(ip, shared, fault_server):
    fault_server.script("/v1/models", fs.json_reply(OPENAI_LIST))
    result, cap = run_cell(ip, "%eliza models -p fx -o listed")
    assert result.success, result.error_in_exec
    (shown,) = [o.data for o in cap.outputs if "text/html" in o.data]
    assert "<b>★ m-small</b>" in shown["text/html"] and "m-other" in shown["text/html"]
    assert shown["text/html"].index("m-small") < shown["text/html"].index("m-other")  # catalog ids first
    assert "[fx] catalog ids its listing does not hold: m-large (large)" in cap.stdout
    assert ip.user_ns["listed"]["model"].tolist() == ["m-small", "m-other"]
    assert SECRET not in cap.stdout + str(shown)
    result, cap = run_cell(ip, "%eliza models -p fx --refresh")
    assert result.success and len(fault_server.requests_to("/v1/models")) == 2
    import eliza_nb  # the public function goes through the same shared runtime (and its cache)

    assert "models" in eliza_nb.__all__
    assert eliza_nb.models("fx")["source"].str.startswith("cache (").all()
    assert len(fault_server.requests_to("/v1/models")) == 2


def test_models_magic_errors_are_one_line(ip, shared, fault_server):
    fault_server.script("/v1/models", fs.json_reply({"error": {"message": "bad key"}}, status=401))
    result, cap = run_cell(ip, "%eliza models -p fx")
    assert isinstance(result.error_in_exec, AuthError)
    assert result.error_in_exec._render_traceback_() == [f"AuthError: {result.error_in_exec}"]
    result, _ = run_cell(ip, "%eliza models -p nosuch")
    assert isinstance(result.error_in_exec, ConfigError) and "unknown provider 'nosuch'" in str(result.error_in_exec)


def test_panel_offers_cached_ids_without_a_request(fault_rt, fault_server):
    from eliza_nb.notebook.widgets.panel import ParameterPanel

    fault_server.script("/v1/models", fs.json_reply(OPENAI_LIST))
    panel = ParameterPanel(fault_rt)
    try:
        assert tuple(panel.model.options) == ()  # llama_local: nothing cached yet
        panel.provider.value = "fx"
        assert tuple(panel.model.options) == ()  # fx: nothing cached, and nothing asked
        assert fault_server.requests == []
        fault_rt.models("fx")
        panel.provider.value = "llama_local"
        panel.provider.value = "fx"
        assert tuple(panel.model.options) == ("m-small", "m-other")
        assert len(fault_server.requests) == 1  # drawing the panel made no call
        panel.model.value = "m-other"
        assert fault_rt.session.state.model == "m-other"
    finally:
        panel.close()
