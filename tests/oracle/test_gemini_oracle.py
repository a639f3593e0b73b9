"""The official ``google-genai`` SDK as the oracle for eliza_nb's Gemini adapter.

The SDK is pointed at the recorder with ``HttpOptions(base_url=..., api_version="v1beta")``;
eliza_nb's catalog entry takes the base without ``/v1beta``. Answers are built with the
SDK's own pydantic types (dumped by alias, i.e. in the REST API's camelCase).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fault_server import json_reply, sse
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from oracle_wire import KEY, assert_same_wire, raw_stream

import eliza_nb

#: Every way eliza_nb's request may differ from the SDK's, and why. Nothing else may differ.
DELIBERATE = {
    "header.user-agent": "SDK telemetry: the SDK names itself (google-genai-sdk/x.y gl-python/...), eliza_nb sends httpx's default",
    "header.x-goog-api-client": "SDK telemetry: the SDK's and Python's versions",
    "header.accept": "on a stream eliza_nb says it reads an event stream (text/event-stream); the SDK sends */*",
    "header.content-type": "a GET (the model listing) has no body, so eliza_nb names no content type; the SDK sends "
                           "application/json on every request (POSTs are checked to be application/json on both sides)",
    "body.systemInstruction.role": "the SDK tags the system instruction with role user; the API takes its parts only, "
                                   "so eliza_nb sends parts alone (as the REST documentation's examples do)",
    "body.requests[*].content.role": "the SDK tags each text to embed with role user; an embedding's content is its parts, "
                                     "eliza_nb sends parts alone (as the REST documentation's examples do)",
    "path": "one text goes to embedContent, the API's one-text method; the SDK sends every embedding call to "
            "batchEmbedContents (a list of one)",
    "body.requests": "the SDK's batch wrapper around one text (see path); eliza_nb's embedContent body is that one "
                     "request's fields, asserted equal",
    "body.model": "embedContent's body names the model, as the SDK's requests[0] does (see path)",
    "body.content": "embedContent's body holds the text's content, as the SDK's requests[0] does (see path)",
    "body.generationConfig.presencePenalty": "Gemini 2.5 and later answer 400 'Penalty is not enabled': catalog "
                                             "model_rules drop it with a note; the SDK sends what it is given",
    "body.generationConfig.frequencyPenalty": "as presencePenalty (catalog model_rules, dropped with a note)",
    "query.pageSize": "eliza_nb asks for the largest page (1000) so a listing is one request; the SDK sends no page "
                      "size unless given one (the API's default is 50)",
}

MODEL = "gemini-3.5-flash-lite"  # the catalog's small model
EMBED = "gemini-embedding-001"
SYSTEM, USER = "You are terse.", "Name the capital of France."
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"


@pytest.fixture
def sdk(server):
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))
    yield client
    client.close()


@pytest.fixture
def rt(server, make_runtime):
    return make_runtime("google", server.url, "GEMINI_API_KEY")


def dump(model) -> dict:
    """An SDK model as the REST API sends it (camelCase aliases, unset fields left out)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def response(text: str | None, finish: str | None = "STOP", ratings=None, feedback=None) -> dict:
    candidates = None if text is None else [types.Candidate(
        content=types.Content(role="model", parts=[types.Part(text=text)] if text else []), finish_reason=finish, index=0,
        safety_ratings=ratings)]
    return dump(types.GenerateContentResponse(
        candidates=candidates, prompt_feedback=feedback, model_version=MODEL,
        usage_metadata=types.GenerateContentResponseUsageMetadata(prompt_token_count=14, candidates_token_count=3,
                                                                  total_token_count=17)))


# No penalties here: no current Gemini model takes them (test_penalties_are_dropped_for_current_models).
SETTINGS = {"temperature": 0.4, "top_p": 0.85, "max_tokens": 64, "stop": ["\n\n", "END"], "seed": 7}
CONFIG = types.GenerateContentConfig(system_instruction=SYSTEM, temperature=0.4, top_p=0.85, max_output_tokens=64,
                                     stop_sequences=["\n\n", "END"], seed=7)


def check_auth(sdk_req, our_req) -> None:
    for req in (sdk_req, our_req):
        headers = {k.lower(): v for k, v in req.headers.items()}
        assert headers["x-goog-api-key"] == KEY and "authorization" not in headers and KEY not in req.path
        if req.method == "POST":
            assert headers["content-type"] == "application/json"


# -- requests ----------------------------------------------------------------------------------
def test_generate_request_matches_the_sdk(server, sdk, rt):
    server.script(GENERATE, json_reply(response("Paris.")))
    got = sdk.models.generate_content(model=MODEL, contents=USER, config=CONFIG)
    ours = rt.generate(USER, system=SYSTEM, provider="google", model=MODEL, **SETTINGS)
    sdk_req, our_req = server.requests_to(GENERATE)
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.systemInstruction.role"])
    check_auth(sdk_req, our_req)
    assert diff["body.systemInstruction.role"] == ("user", "<absent>")
    assert our_req.body["contents"] == [{"role": "user", "parts": [{"text": USER}]}]
    assert ours.text == got.text == "Paris." and ours.finish_reason == "stop"
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (14, 3)


def test_streamed_generate_request_matches_the_sdk(server, sdk, rt):
    chunks = [json.dumps(response("Par", finish=None)), json.dumps(response("is."))]
    server.script(STREAM, sse(chunks, done=False))
    sdk_text = "".join(c.text or "" for c in sdk.models.generate_content_stream(model=MODEL, contents=USER, config=CONFIG))
    s = rt.stream(USER, system=SYSTEM, provider="google", model=MODEL, **SETTINGS)
    assert "".join(s) == sdk_text == "Paris."
    sdk_req, our_req = server.requests_to(STREAM)
    assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.systemInstruction.role"])
    check_auth(sdk_req, our_req)
    assert our_req.path == STREAM + "?alt=sse"
    assert s.result.finish_reason == "stop"


def test_penalties_are_dropped_for_current_models(server, sdk, rt):
    server.script(GENERATE, json_reply(response("Paris.")))
    config = CONFIG.model_copy(update={"presence_penalty": 0.3, "frequency_penalty": -0.2})
    sdk.models.generate_content(model=MODEL, contents=USER, config=config)
    ours = rt.generate(USER, system=SYSTEM, provider="google", model=MODEL, presence_penalty=0.3, frequency_penalty=-0.2,
                       **SETTINGS)
    penalties = ["body.generationConfig.presencePenalty", "body.generationConfig.frequencyPenalty"]
    diff = assert_same_wire(*server.requests_to(GENERATE), DELIBERATE, expect=["body.systemInstruction.role", *penalties])
    assert [diff[k] for k in penalties] == [(0.3, "<absent>"), (-0.2, "<absent>")]
    assert sorted(n.split("=")[0] for n in ours.notes if "dropped" in n) == ["frequency_penalty", "presence_penalty"]


def test_no_system_prompt_is_the_same_body(server, sdk, rt):
    server.script(GENERATE, json_reply(response("Paris.")))
    sdk.models.generate_content(model=MODEL, contents=USER, config=types.GenerateContentConfig(temperature=0.0, max_output_tokens=8))
    rt.generate(USER, provider="google", model=MODEL, temperature=0.0, max_tokens=8)
    assert_same_wire(*server.requests_to(GENERATE), DELIBERATE)


def unit_vectors(n: int, dims: int) -> list[list[float]]:
    rng = np.random.default_rng(14)
    m = rng.standard_normal((n, dims))
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).tolist()


def test_embedding_one_text(server, sdk, rt):
    [vector] = unit_vectors(1, rt.catalog.get("google").embedding_dims)
    server.script(f"/v1beta/models/{EMBED}:batchEmbedContents",
                  json_reply(dump(types.EmbedContentResponse(embeddings=[types.ContentEmbedding(values=vector)]))))
    server.script(f"/v1beta/models/{EMBED}:embedContent", json_reply({"embedding": {"values": vector}}))
    got = sdk.models.embed_content(model=EMBED, contents="hello")
    ours = rt.embed("hello", provider="google", model=EMBED, normalize=False)
    sdk_req, our_req = server.requests
    assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["path", "body.requests", "body.model", "body.content"])
    check_auth(sdk_req, our_req)
    assert our_req.path == f"/v1beta/models/{EMBED}:embedContent"
    one = dict(sdk_req.body["requests"][0])
    one["content"] = {k: v for k, v in one["content"].items() if k != "role"}  # the role: see DELIBERATE
    assert our_req.body == one
    assert np.allclose(ours, got.embeddings[0].values)


def test_embedding_many_texts_matches_the_sdk(server, sdk, rt):
    vectors = unit_vectors(3, rt.catalog.get("google").embedding_dims)
    answer = dump(types.EmbedContentResponse(embeddings=[types.ContentEmbedding(values=v) for v in vectors]))
    server.script(f"/v1beta/models/{EMBED}:batchEmbedContents", json_reply(answer))
    texts = ["alpha", "beta", "gamma"]
    got = sdk.models.embed_content(model=EMBED, contents=texts)
    ours = rt.embed(texts, provider="google", model=EMBED, normalize=False)
    sdk_req, our_req = server.requests
    assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.requests[*].content.role"])
    assert np.allclose(np.asarray(ours), [e.values for e in got.embeddings])


# -- answers in the SDK's own shapes -------------------------------------------------------------
DANGEROUS = [types.SafetyRating(category="HARM_CATEGORY_DANGEROUS_CONTENT", probability="HIGH", blocked=True),
             types.SafetyRating(category="HARM_CATEGORY_HARASSMENT", probability="NEGLIGIBLE")]


def test_safety_finish_reason_with_ratings(server, sdk, rt):
    server.script(GENERATE, json_reply(response("", finish="SAFETY", ratings=DANGEROUS)))
    got = sdk.models.generate_content(model=MODEL, contents=USER)
    assert got.candidates[0].finish_reason == types.FinishReason.SAFETY and got.text is None
    r = rt.generate(USER, provider="google", model=MODEL)
    assert r.text == "" and r.finish_reason == "content_filter"
    assert any("SAFETY" in n and "HARM_CATEGORY_DANGEROUS_CONTENT" in n for n in r.notes), r.notes
    assert not any("HARASSMENT" in n for n in r.notes)  # rated NEGLIGIBLE: not why it was blocked
    with pytest.raises(eliza_nb.ContentBlocked) as info:
        rt.generate(USER, provider="google", model=MODEL, strict=True)
    assert "\n" not in str(info.value) and "SAFETY" in str(info.value)


def test_blocked_prompt(server, sdk, rt):
    feedback = types.GenerateContentResponsePromptFeedback(block_reason=types.BlockedReason.PROHIBITED_CONTENT)
    server.script(GENERATE, json_reply(response(None, feedback=feedback)))
    got = sdk.models.generate_content(model=MODEL, contents=USER)
    assert got.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT and not got.candidates
    r = rt.generate(USER, provider="google", model=MODEL)
    assert r.text == "" and r.finish_reason == "blocked"
    assert any("PROHIBITED_CONTENT" in n for n in r.notes), r.notes
    with pytest.raises(eliza_nb.ContentBlocked) as info:
        rt.generate(USER, provider="google", model=MODEL, strict=True)
    assert "PROHIBITED_CONTENT" in str(info.value) and KEY not in str(info.value)


ERROR = {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}


def test_mid_stream_error_as_bare_json_lines(server, sdk, rt):
    """After a first chunk the API sends its error as a pretty-printed JSON object, not as
    a ``data:`` event: both must surface the provider's own message."""
    first = f"data: {json.dumps(response('Par', finish=None))}\r\n\r\n"
    server.script(STREAM, raw_stream([first, json.dumps(ERROR, indent=2) + "\n"]))
    with pytest.raises(genai_errors.ServerError) as sdk_err:
        list(sdk.models.generate_content_stream(model=MODEL, contents=USER))
    assert sdk_err.value.code == 503 and "overloaded" in str(sdk_err.value)
    with pytest.raises(eliza_nb.StreamInterrupted) as ours:
        rt.stream(USER, provider="google", model=MODEL).text()
    assert ours.value.partial == "Par" and "The model is overloaded" in str(ours.value)
    assert "\n" not in str(ours.value) and KEY not in str(ours.value)


def test_stream_that_is_only_an_error(server, sdk, rt):
    server.script(STREAM, raw_stream([json.dumps(ERROR, indent=2) + "\n"]))
    with pytest.raises(genai_errors.ServerError):
        list(sdk.models.generate_content_stream(model=MODEL, contents=USER))
    with pytest.raises(eliza_nb.ElizaError) as ours:
        rt.stream(USER, provider="google", model=MODEL).text()
    assert "The model is overloaded" in str(ours.value) and ours.value.retryable


# -- model listing -------------------------------------------------------------------------------
def listed(*names: str) -> list[dict]:
    return [dump(types.Model(name=f"models/{n}", display_name=n, input_token_limit=1_048_576, output_token_limit=65_536,
                             supported_actions=["generateContent"])) for n in names]


def test_model_listing_matches_the_sdk(server, sdk, rt):
    server.script("/v1beta/models", json_reply({"models": listed(MODEL, EMBED)}))
    sdk_ids = [m.name.removeprefix("models/") for m in sdk.models.list()]
    table = rt.models("google", refresh=True)
    sdk_req, our_req = server.requests_to("/v1beta/models")
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["query.pageSize"])
    assert diff["query.pageSize"] == ("<absent>", ["1000"])
    check_auth(sdk_req, our_req)
    assert sorted(table["model"]) == sorted(sdk_ids) == sorted([MODEL, EMBED])


def test_model_listing_pages_like_the_sdk(server, sdk, rt):
    """Two pages: the follow-up request (pageToken) is the SDK's too."""
    first = json_reply({"models": listed(MODEL), "nextPageToken": "tok-2"})
    second = json_reply({"models": listed(EMBED)})
    server.script("/v1beta/models", first, second, first, second)
    sdk_ids = [m.name.removeprefix("models/") for m in sdk.models.list(config={"page_size": 1000})]
    table = rt.models("google", refresh=True)
    sent = server.requests_to("/v1beta/models")
    assert len(sent) == 4
    for sdk_req, our_req in ((sent[0], sent[2]), (sent[1], sent[3])):
        assert_same_wire(sdk_req, our_req, DELIBERATE)
    assert "pageToken=tok-2" in sent[3].path
    assert sorted(table["model"]) == sorted(sdk_ids) == sorted([MODEL, EMBED])
