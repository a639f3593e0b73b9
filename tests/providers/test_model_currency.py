"""Retired model ids are named, not mysterious; model families get their own wire fields.

The catalog's ``retired`` table turns a call to a retired id into one line (when, what to
use, how to set it) before anything is sent; a provider's own "decommissioned" or "model not
found" answer becomes the same kind of line. ``model_rules`` move max_output_tokens to
``max_completion_tokens`` and drop what a reasoning family rejects, with a note. All calls
go to a real loopback HTTP server that records what it received.
"""

from __future__ import annotations

import datetime as dt

import fault_server as fs
import pytest
from provider_helpers import SECRET, assert_no_secret, openai_entry

from eliza_nb.core.catalog import Catalog
from eliza_nb.core.errors import ConfigError, ModelRetired, NotFoundError
from eliza_nb.core.runtime import Runtime

OK_CHAT = {"id": "c1", "object": "chat.completion", "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

RETIRED = {
    "old-small": {"on": "2025-10-28", "use": "new-small", "source": "https://example.invalid/deprecations"},
    "soon-small": {"on": "2099-01-01", "use": "new-small"},
}


def make_runtime(home, server, **extra) -> Runtime:
    entry = openai_entry(server.url + "/v1", **extra)
    return Runtime(home, config={"providers": {"lab": entry}, "defaults": {"provider": "lab"}},
                   env={"FAULT_KEY": SECRET})


# -- the shipped catalog ---------------------------------------------------------------------------
def test_no_default_model_is_in_a_retired_table():
    catalog = Catalog.load({}, env={})
    checked = 0
    for entry in catalog:
        for cls, model in entry.models.items():
            checked += 1
            assert entry.retirement(model) is None, f"{entry.id} {cls.value} default {model} is in its retired table"
    assert checked > 30


def test_the_shipped_retired_tables_name_a_live_replacement():
    catalog = Catalog.load({}, env={})
    rows = [(e, r) for e in catalog for r in e.retired.values()]
    assert len(rows) >= 10  # the seed's retired ids, at least
    today = dt.date.today()
    for entry, gone in rows:
        assert gone.use, f"{entry.id}: {gone.model} names no replacement"
        successor = entry.retirement(gone.use)
        assert successor is None or not successor.is_past(today), f"{entry.id}: {gone.model} -> {gone.use}, itself retired"
        assert gone.source.startswith("https://"), f"{entry.id}: {gone.model} has no source"


# -- a retired id from a config or an old notebook -------------------------------------------------
def test_a_retired_id_is_one_line_before_anything_is_sent(home, fault_server):
    fault_server.script("/v1/chat/completions", fs.json_reply(OK_CHAT))
    rt = make_runtime(home, fault_server, retired=RETIRED)
    with pytest.raises(ModelRetired) as info:
        rt.generate("hi", model="old-small", failover=False)
    text = str(info.value)
    assert text.startswith("[lab] old-small was retired by lab on 2025-10-28; use new-small")
    assert "-m new-small" in text and "%eliza config set model new-small" in text and "SMALL_LAB_MODEL=new-small" in text
    assert "\n" not in text
    assert fault_server.requests == []  # nothing went out
    assert_no_secret(text, repr(info.value))
    assert rt.ledger.dataframe()["error"].iloc[-1].startswith("ModelRetired: ")


def test_a_retired_primary_fails_over_to_the_next_target(home, fault_server):
    fault_server.script("/v1/chat/completions", fs.json_reply(OK_CHAT))
    rt = make_runtime(home, fault_server, retired=RETIRED)
    result = rt.generate("hi", model="old-small", failover=["lab:new-small"])
    assert result.text == "Paris." and result.model == "m"
    assert [r.body["model"] for r in fault_server.requests] == ["new-small"]


def test_a_retiring_id_still_answers_with_a_note(home, fault_server):
    fault_server.script("/v1/chat/completions", fs.json_reply(OK_CHAT))
    rt = make_runtime(home, fault_server, retired=RETIRED)
    result = rt.generate("hi", model="soon-small", failover=False)
    assert result.text == "Paris."
    assert any("soon-small will be retired by lab on 2099-01-01; use new-small" in n for n in result.notes)
    rt.today = lambda: dt.date(2099, 1, 2)  # the day after: refused
    with pytest.raises(ModelRetired):
        rt.generate("hi again", model="soon-small", failover=False)


def test_a_bad_retired_table_is_a_config_error(home):
    for bad, said in (({"x": {"use": "y"}}, "needs"), ({"x": {"on": "28 Oct 2025"}}, "not a YYYY-MM-DD")):
        with pytest.raises(ConfigError, match=said):
            Catalog.load({"providers": {"lab": openai_entry("http://127.0.0.1:9/v1", retired=bad)}}, env={})


# -- the provider's own answer ---------------------------------------------------------------------
GROQ_DECOMMISSIONED = {"error": {
    "message": "The model `llama-3.1-70b-versatile` has been decommissioned and is no longer supported. "
               "Please refer to https://console.groq.com/docs/deprecations for a recommendation on which model to use instead.",
    "type": "invalid_request_error", "code": "model_decommissioned"}}
OPENAI_NOT_FOUND = {"error": {"message": "The model `gpt-9` does not exist or you do not have access to it.",
                              "type": "invalid_request_error", "param": None, "code": "model_not_found"}}


def test_a_decommissioned_answer_is_model_retired_with_the_listing_hint(home, fault_server):
    fault_server.script("/v1/chat/completions", fs.json_reply(GROQ_DECOMMISSIONED, status=400))
    rt = make_runtime(home, fault_server)
    with pytest.raises(ModelRetired) as info:
        rt.generate("hi", model="llama-3.1-70b-versatile", failover=False)
    text = str(info.value)
    assert "the model is retired (HTTP 400)" in text and "has been decommissioned" in text
    assert text.endswith("see %eliza models -p lab") and "\n" not in text
    assert len(fault_server.requests) == 1  # not retried


def test_an_unknown_model_is_not_found_with_the_listing_hint(home, fault_server):
    fault_server.script("/v1/chat/completions", fs.json_reply(OPENAI_NOT_FOUND, status=404))
    rt = make_runtime(home, fault_server)
    with pytest.raises(NotFoundError) as info:
        rt.generate("hi", model="gpt-9", failover=False)
    assert not isinstance(info.value, ModelRetired)
    assert "does not exist" in str(info.value) and str(info.value).endswith("see %eliza models -p lab")


# -- parameters per model family -------------------------------------------------------------------
RULES = [
    {"match": "^(o[1-9]|gpt-5)", "max_tokens_param": "max_completion_tokens",
     "drop_settings": ["temperature", "top_p", "presence_penalty", "frequency_penalty"],
     "why": "reasoning models take no sampling settings"},
    {"match": "^gpt-image", "image_response_format": False, "drop_image_options": ["style"]},
]


def test_a_reasoning_model_gets_max_completion_tokens_and_no_sampling_settings(home, fault_server):
    fault_server.script("/v1/chat/completions", fs.json_reply(OK_CHAT))
    rt = make_runtime(home, fault_server, model_rules=RULES)
    result = rt.generate("hi", model="o4-mini", temperature=0.7, presence_penalty=0.5, max_tokens=64, failover=False)
    body = fault_server.requests[-1].body
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    assert "temperature" not in body and "presence_penalty" not in body
    assert any("temperature=0.7 dropped: reasoning models take no sampling settings" in n for n in result.notes)
    assert any("presence_penalty=0.5 dropped" in n for n in result.notes)
    # another family on the same provider keeps the classic fields
    rt.generate("hi", model="gpt-4.1-mini", temperature=0.7, max_tokens=64, failover=False)
    body = fault_server.requests[-1].body
    assert body["max_tokens"] == 64 and body["temperature"] == 0.7 and "max_completion_tokens" not in body


def test_a_gpt_image_model_gets_no_response_format(home, fault_server):
    fault_server.script("/v1/images/generations", fs.json_reply({"created": 1, "data": [{"b64_json": PNG}]}))
    rt = make_runtime(home, fault_server, model_rules=RULES)
    img = rt.image("a red square", model="gpt-image-1", style="vivid", size="1024x1024")
    body = fault_server.requests[-1].body
    assert "response_format" not in body and "style" not in body and body["size"] == "1024x1024"
    assert img.data.startswith(b"\x89PNG") and any("style='vivid' dropped" in n for n in img.notes)
    rt.image("a red square", model="dall-e-2", style="vivid")
    assert fault_server.requests[-1].body["response_format"] == "b64_json"


def test_a_bad_model_rule_is_a_config_error():
    for rule, said in (({"max_tokens_param": "x"}, "needs match"), ({"match": "(", "why": "x"}, "not a regular expression"),
                       ({"match": "o", "drop_settings": ["temprature"]}, "names no setting"),
                       ({"match": "o", "max_token_param": "x"}, "unknown key")):
        with pytest.raises(ConfigError, match=said):
            Catalog.load({"providers": {"lab": openai_entry("http://127.0.0.1:9/v1", model_rules=[rule])}}, env={})


ANTHROPIC_OK = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{"type": "text", "text": "Paris."}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 2}}


def test_a_family_taking_temperature_or_top_p_gets_only_the_first(home, fault_server):
    """Anthropic's newer models refuse temperature and top_p together: the catalog says so as data."""
    fault_server.script("/v1/messages", fs.json_reply(ANTHROPIC_OK))
    entry = {"protocol": "anthropic", "endpoint": fault_server.url + "/v1", "key_env": ["FAULT_KEY"],
             "models": {"small": "claude-x"},
             "model_rules": [{"match": "^claude-x", "one_of": ["temperature", "top_p"]}]}
    rt = Runtime(home, config={"providers": {"claude": entry}, "defaults": {"provider": "claude"}},
                 env={"FAULT_KEY": SECRET})
    result = rt.generate("hi", temperature=0.5, top_p=0.9, failover=False)
    body = fault_server.requests[-1].body
    assert body["temperature"] == 0.5 and "top_p" not in body
    assert any("top_p=0.9 dropped: claude-x takes temperature or top_p, not both" in n for n in result.notes)
    rt.generate("hi", model="claude-y", temperature=0.5, top_p=0.9, failover=False)  # another family: both sent
    assert fault_server.requests[-1].body["top_p"] == 0.9


def test_a_retired_answer_sent_as_a_500_is_not_retried(home, fault_server):
    said = {"code": "Some requested entity was not found",
            "error": "`grok-2-image-1212` has been fully deprecated and is no longer available. Please use `grok-imagine-image` instead."}
    fault_server.script("/v1/images/generations", fs.json_reply(said, status=500))
    rt = make_runtime(home, fault_server)
    with pytest.raises(ModelRetired, match="the model is retired \\(HTTP 500\\)"):
        rt.image("a cat", model="grok-2-image-1212")
    assert len(fault_server.requests) == 1


def test_the_catalog_default_of_a_dropped_setting_goes_without_a_note(home, fault_server):
    fault_server.script("/v1/chat/completions", fs.json_reply(OK_CHAT))
    rt = make_runtime(home, fault_server, model_rules=RULES)  # the entry's default temperature is 0.0
    result = rt.generate("hi", model="o4-mini", failover=False)
    assert "temperature" not in fault_server.requests[-1].body
    assert not any("temperature" in n for n in result.notes)


def test_what_the_user_set_beats_the_catalog_default_in_a_one_of_group(home, fault_server):
    fault_server.script("/v1/messages", fs.json_reply(ANTHROPIC_OK))
    entry = {"protocol": "anthropic", "endpoint": fault_server.url + "/v1", "key_env": ["FAULT_KEY"],
             "models": {"small": "claude-x"}, "settings": {"temperature": 0.3},
             "model_rules": [{"match": "^claude-x", "one_of": ["temperature", "top_p"]}]}
    rt = Runtime(home, config={"providers": {"claude": entry}, "defaults": {"provider": "claude"}},
                 env={"FAULT_KEY": SECRET})
    result = rt.generate("hi", top_p=0.85, failover=False)
    body = fault_server.requests[-1].body
    assert body["top_p"] == 0.85 and "temperature" not in body
    assert not any("temperature" in n for n in result.notes)  # the catalog's default goes quietly


def test_a_vertex_endpoint_of_the_users_own_is_kept_in_the_global_region(home, fault_server):
    """The region hosts replace the catalog's {region} template only: a proxy stays a proxy."""
    fault_server.script("/v1/projects/p/locations/global/publishers/anthropic/models/claude-x:rawPredict",
                        fs.json_reply(ANTHROPIC_OK))
    rt = Runtime(home, config={"providers": {"claude_vertex": {"endpoint": fault_server.url, "project": "p",
                                                               "models": {"small": "claude-x"}}}},
                 env={"VERTEX_ACCESS_TOKEN": SECRET})
    assert rt.generate("hi", provider="claude_vertex", failover=False).text == "Paris."
    assert fault_server.requests[-1].path.endswith("/locations/global/publishers/anthropic/models/claude-x:rawPredict")


GEMINI_OK = {"candidates": [{"content": {"parts": [{"text": "Paris."}], "role": "model"}, "finishReason": "STOP"}],
             "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}}


@pytest.mark.parametrize("protocol", ["anthropic", "google"])
def test_a_history_starting_with_the_models_turn_is_sent_from_the_first_user_turn(home, fault_server, protocol):
    """A history trimmed to its recent turns may start with an assistant turn: Anthropic and Gemini refuse that."""
    if protocol == "anthropic":
        fault_server.script("/v1/messages", fs.json_reply(ANTHROPIC_OK))
        entry = {"protocol": "anthropic", "endpoint": fault_server.url + "/v1", "key_env": ["FAULT_KEY"],
                 "models": {"small": "claude-x"}}
    else:
        fault_server.script("/v1beta/models/gem-x:generateContent", fs.json_reply(GEMINI_OK))
        entry = {"protocol": "google", "endpoint": fault_server.url, "key_env": ["FAULT_KEY"], "models": {"small": "gem-x"}}
    rt = Runtime(home, config={"providers": {"p": entry}, "defaults": {"provider": "p"}}, env={"FAULT_KEY": SECRET})
    history = [{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "an old answer"},
               {"role": "user", "content": "And Italy?"}]
    result = rt.generate(history, failover=False)
    body = fault_server.requests[-1].body
    sent = body["messages"] if protocol == "anthropic" else body["contents"]
    assert len(sent) == 1 and sent[0]["role"] == "user"
    assert any("left out 1 assistant turn at the start of the history" in n for n in result.notes)
