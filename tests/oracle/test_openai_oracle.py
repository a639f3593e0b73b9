"""The official ``openai`` SDK as the oracle for eliza_nb's OpenAI protocol.

Both call the same loopback recorder with the same logical request; what went over the
wire is compared field by field (oracle_wire.assert_same_wire). Answers are built with the
SDK's own pydantic models, parsed by the SDK and by eliza_nb, and the two readings compared.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import openai
import pytest
from fault_server import json_reply, raw, sse
from openai.types import CreateEmbeddingResponse, Embedding, Image, ImagesResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.completion_usage import CompletionUsage
from openai.types.create_embedding_response import Usage as EmbeddingUsage
from oracle_wire import KEY, assert_same_wire

import eliza_nb

#: Every way eliza_nb's request may differ from the SDK's, and why. Nothing else may differ.
DELIBERATE = {
    "header.user-agent": "SDK telemetry: the SDK names itself (OpenAI/Python x.y), eliza_nb sends httpx's default",
    "header.x-stainless-*": "SDK telemetry: language, OS, arch, runtime, retry count and timeouts of the SDK",
    "header.accept": "eliza_nb sends httpx's */* (text/event-stream on a stream), the SDK application/json; "
                     "the API answers JSON, or SSE for stream=true, either way",
    "body.stream_options": "eliza_nb asks for usage on streams (stream_options.include_usage) so the ledger has "
                           "token counts; the SDK sends stream_options only when asked",
    "body.presence_penalty": "left out when neutral (0, the API's default), and for reasoning models (catalog model_rules: "
                             "they reject penalties), the latter with a note; the SDK sends what it is given",
    "body.frequency_penalty": "left out when neutral (0, the API's default), and for reasoning models (catalog model_rules: "
                              "they reject penalties), the latter with a note; the SDK sends what it is given",
    "body.temperature": "reasoning models (o-series, gpt-5+ except *-chat-latest) reject it: catalog model_rules drop it "
                        "with a note; the SDK has no model knowledge and sends it",
    "body.top_p": "reasoning models reject it: dropped with a note (catalog model_rules), as temperature",
    "body.stop": "reasoning models do not take stop sequences: dropped with a note (catalog model_rules), as temperature",
    "body.encoding_format": "the SDK asks for base64 and decodes it itself; eliza_nb takes the API's default, JSON floats",
    "body.input": "one text goes out as a one-item list: one code path for one and many texts, the answer's shape is the same",
}

# A current model that takes every sampling setting (the *-chat-latest models do not reason).
MODEL = "gpt-5.3-chat-latest"
REASONING = "gpt-6-luna"  # the catalog's small model: a reasoning family
SYSTEM, USER = "You are terse.", "Name the capital of France."
CHAT_URL = "/v1/chat/completions"


@pytest.fixture
def sdk(server):
    client = openai.OpenAI(api_key=KEY, base_url=server.url + "/v1", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def rt(server, make_runtime):
    return make_runtime("openai", server.url + "/v1", "OPENAI_API_KEY")


def completion(message: ChatCompletionMessage, finish: str = "stop") -> str:
    return ChatCompletion(
        id="chatcmpl-oracle", object="chat.completion", created=1_700_000_000, model=MODEL,
        choices=[Choice(index=0, message=message, finish_reason=finish, logprobs=None)],
        usage=CompletionUsage(prompt_tokens=14, completion_tokens=3, total_tokens=17),
    ).model_dump_json()


def chunk(delta: ChoiceDelta | None, finish: str | None = None, usage: CompletionUsage | None = None) -> str:
    choices = [] if delta is None else [ChunkChoice(index=0, delta=delta, finish_reason=finish)]
    return ChatCompletionChunk(id="chatcmpl-oracle", object="chat.completion.chunk", created=1_700_000_000, model=MODEL,
                               choices=choices, usage=usage).model_dump_json(exclude_unset=True)


ANSWER = completion(ChatCompletionMessage(role="assistant", content="Paris."))
STREAM = [chunk(ChoiceDelta(role="assistant", content="")), chunk(ChoiceDelta(content="Par")),
          chunk(ChoiceDelta(content="is.")), chunk(ChoiceDelta(), "stop"),
          chunk(None, usage=CompletionUsage(prompt_tokens=14, completion_tokens=3, total_tokens=17))]

# max tokens: the SDK's current field is max_completion_tokens ("max_tokens is now deprecated in
# favor of max_completion_tokens, and is not compatible with o-series models"); eliza_nb's
# max_tokens setting goes out under it for every OpenAI chat model (catalog model_rules).
SDK_MAX = {"max_completion_tokens": 64}
SETTINGS = {"temperature": 0.4, "stop": ["\n\n", "END"], "presence_penalty": 0.3,
            "frequency_penalty": -0.2, "top_p": 0.85, "seed": 7}


def both_chat(server, sdk, rt, *, stream: bool = False, model: str = MODEL, **settings):
    """The same chat call from the SDK and from eliza_nb: (sdk's request, ours, sdk's answer, ours)."""
    ours_settings = {**settings, "max_tokens": 64}
    settings = {**settings, **SDK_MAX}
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    if stream:
        got = sdk.chat.completions.create(model=model, messages=messages, stream=True, **settings)
        sdk_text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
        s = rt.stream(USER, system=SYSTEM, provider="openai", model=model, **ours_settings)
        list(s)
        ours = s.result
    else:
        sdk_text = sdk.chat.completions.create(model=model, messages=messages, **settings).choices[0].message.content
        ours = rt.generate(USER, system=SYSTEM, provider="openai", model=model, **ours_settings)
    sent = server.requests_to(CHAT_URL)
    assert len(sent) == 2, [r.path for r in server.requests]
    return sent[0], sent[1], sdk_text, ours


def check_auth(sdk_req, our_req) -> None:
    """The auth header is the same header with the same value on both sides (and really there)."""
    for req in (sdk_req, our_req):
        headers = {k.lower(): v for k, v in req.headers.items()}
        assert headers["authorization"] == f"Bearer {KEY}"
        assert headers["content-type"] == "application/json"


# -- requests ----------------------------------------------------------------------------------
def test_chat_request_matches_the_sdk(server, sdk, rt):
    server.script(CHAT_URL, json_reply(json.loads(ANSWER)))
    sdk_req, our_req, sdk_text, ours = both_chat(server, sdk, rt, **SETTINGS)
    assert_same_wire(sdk_req, our_req, DELIBERATE)
    check_auth(sdk_req, our_req)
    assert our_req.method == "POST" and our_req.path == CHAT_URL
    assert our_req.body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    assert ours.text == sdk_text == "Paris." and ours.finish_reason == "stop"
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (14, 3)


def test_streamed_chat_request_matches_the_sdk(server, sdk, rt):
    server.script(CHAT_URL, sse(STREAM))
    sdk_req, our_req, sdk_text, ours = both_chat(server, sdk, rt, stream=True, **SETTINGS)
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.stream_options"])
    check_auth(sdk_req, our_req)
    assert diff["body.stream_options.include_usage"] == ("<absent>", True)
    assert sdk_req.body["stream"] is True and our_req.body["stream"] is True
    assert ours.text == sdk_text == "Paris." and ours.finish_reason == "stop"
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (14, 3)


def test_stream_options_asked_for_is_the_same_body(server, sdk, rt):
    """Given the same stream_options, the SDK's body is eliza_nb's: nothing else differs."""
    server.script(CHAT_URL, sse(STREAM))
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    list(sdk.chat.completions.create(model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True},
                                     **SETTINGS, **SDK_MAX))
    list(rt.stream(USER, system=SYSTEM, provider="openai", model=MODEL, max_tokens=64, **SETTINGS))
    sdk_req, our_req = server.requests_to(CHAT_URL)
    assert_same_wire(sdk_req, our_req, DELIBERATE)


def test_neutral_penalties_are_left_out(server, sdk, rt):
    server.script(CHAT_URL, json_reply(json.loads(ANSWER)))
    settings = {**SETTINGS, "presence_penalty": 0.0, "frequency_penalty": 0.0}
    sdk_req, our_req, _, ours = both_chat(server, sdk, rt, **settings)
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.presence_penalty", "body.frequency_penalty"])
    assert diff["body.presence_penalty"] == (0.0, "<absent>") and diff["body.frequency_penalty"] == (0.0, "<absent>")
    assert not any("penalty" in n for n in ours.notes)  # nothing was lost, so nothing to say


def test_reasoning_model_gets_only_what_it_takes(server, sdk, rt):
    """The same call to a reasoning model: the SDK sends every setting it is given (the API
    would answer 400); eliza_nb drops the ones the family rejects, each with a note."""
    server.script(CHAT_URL, json_reply(json.loads(ANSWER)))
    sdk_req, our_req, _, ours = both_chat(server, sdk, rt, model=REASONING, **SETTINGS)
    dropped = ["body.temperature", "body.top_p", "body.presence_penalty", "body.frequency_penalty", "body.stop"]
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=dropped)
    assert all(diff[k][1] == "<absent>" for k in dropped)
    assert our_req.body["max_completion_tokens"] == 64 and our_req.body["seed"] == 7
    assert sorted(n.split("=")[0] for n in ours.notes if "dropped" in n) == sorted(
        ["temperature", "top_p", "presence_penalty", "frequency_penalty", "stop"]), ours.notes


def unit_vectors(n: int, dims: int) -> list[list[float]]:
    """n distinct unit vectors of ``dims`` (the catalog's size for the provider's embeddings)."""
    rng = np.random.default_rng(14)
    m = rng.standard_normal((n, dims))
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).tolist()


def embedding_answer(vectors: list[list[float]]) -> dict:
    return CreateEmbeddingResponse(
        object="list", model="text-embedding-3-small",
        data=[Embedding(object="embedding", index=i, embedding=v) for i, v in enumerate(vectors)],
        usage=EmbeddingUsage(prompt_tokens=3, total_tokens=3)).model_dump()


def test_embedding_one_text_matches_the_sdk(server, sdk, rt):
    server.script("/v1/embeddings", json_reply(embedding_answer(unit_vectors(1, rt.catalog.get("openai").embedding_dims))))
    got = sdk.embeddings.create(model="text-embedding-3-small", input="hello")
    vec = rt.embed("hello", provider="openai", model="text-embedding-3-small", normalize=False)
    sdk_req, our_req = server.requests_to("/v1/embeddings")
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.input", "body.encoding_format"])
    check_auth(sdk_req, our_req)
    assert diff["body.input"] == ("hello", ["hello"]) and diff["body.encoding_format"] == ("base64", "<absent>")
    assert np.allclose(vec, got.data[0].embedding) and vec.dtype == np.float32


def test_embedding_many_texts_matches_the_sdk(server, sdk, rt):
    vectors = unit_vectors(3, rt.catalog.get("openai").embedding_dims)
    server.script("/v1/embeddings", json_reply(embedding_answer(vectors)))
    texts = ["alpha", "beta", "gamma"]
    got = sdk.embeddings.create(model="text-embedding-3-small", input=texts)
    ours = rt.embed(texts, provider="openai", model="text-embedding-3-small", normalize=False)
    sdk_req, our_req = server.requests_to("/v1/embeddings")
    assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.encoding_format"])
    assert np.allclose(np.asarray(ours), [d.embedding for d in got.data])


PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def test_image_request_matches_the_sdk(server, sdk, rt):
    answer = ImagesResponse(created=1_700_000_000, data=[Image(b64_json=base64.b64encode(PNG).decode())]).model_dump()
    server.script("/v1/images/generations", json_reply(answer))
    got = sdk.images.generate(model="gpt-image-2", prompt="a red square", n=1, size="1024x1024", quality="high")
    image = rt.image("a red square", provider="openai", model="gpt-image-2", size="1024x1024", quality="high")
    sdk_req, our_req = server.requests_to("/v1/images/generations")
    check_auth(sdk_req, our_req)
    assert image.data == base64.b64decode(got.data[0].b64_json) == PNG and image.mime == "image/png"
    assert_same_wire(sdk_req, our_req, DELIBERATE)


# -- answers in the SDK's own shapes -------------------------------------------------------------
REFUSAL = "I can't help with that request."


def test_refusal_is_the_answer_text(server, sdk, rt):
    server.script(CHAT_URL, json_reply(json.loads(completion(
        ChatCompletionMessage(role="assistant", content=None, refusal=REFUSAL)))))
    message = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": USER}]).choices[0].message
    assert message.content is None and message.refusal == REFUSAL  # the SDK reads the shape so
    r = rt.generate(USER, provider="openai", model=MODEL)
    assert r.text == REFUSAL and r.finish_reason == "refusal"


def test_streamed_refusal_is_the_answer_text(server, sdk, rt):
    events = [chunk(ChoiceDelta(role="assistant", content=None, refusal="")), chunk(ChoiceDelta(refusal="I can't help ")),
              chunk(ChoiceDelta(refusal="with that request.")), chunk(ChoiceDelta(), "stop")]
    server.script(CHAT_URL, sse(events))
    got = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": USER}], stream=True)
    assert "".join(c.choices[0].delta.refusal or "" for c in got if c.choices) == REFUSAL
    s = rt.stream(USER, provider="openai", model=MODEL)
    list(s)
    assert s.result.text == REFUSAL and s.result.finish_reason == "refusal"


def test_content_filter_with_empty_text_is_a_note_and_strict_raises(server, sdk, rt):
    server.script(CHAT_URL, json_reply(json.loads(completion(
        ChatCompletionMessage(role="assistant", content=""), finish="content_filter"))))
    choice = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": USER}]).choices[0]
    assert choice.finish_reason == "content_filter" and choice.message.content == ""
    r = rt.generate(USER, provider="openai", model=MODEL)
    assert r.text == "" and r.finish_reason == "content_filter"
    assert any(re.search(r"content[ _]filter", n) for n in r.notes), r.notes
    with pytest.raises(eliza_nb.ContentBlocked) as info:
        rt.generate(USER, provider="openai", model=MODEL, strict=True)
    assert "\n" not in str(info.value) and str(info.value).startswith("[openai]")


# -- model listing -------------------------------------------------------------------------------
def test_model_listing_matches_the_sdk(server, sdk, rt):
    models = [Model(id=i, object="model", created=1_700_000_000, owned_by="openai").model_dump()
              for i in ("gpt-4o-mini", "text-embedding-3-small", "gpt-image-2")]
    server.script("/v1/models", json_reply({"object": "list", "data": models}))
    sdk_ids = [m.id for m in sdk.models.list()]
    table = rt.models("openai", refresh=True)
    sdk_req, our_req = server.requests_to("/v1/models")
    assert_same_wire(sdk_req, our_req, DELIBERATE)
    assert our_req.method == "GET" and our_req.body is None
    assert {k.lower(): v for k, v in our_req.headers.items()}["authorization"] == f"Bearer {KEY}"
    assert sorted(table["model"]) == sorted(sdk_ids)


def test_sdk_and_eliza_read_a_gateway_error_alike(server, sdk, rt):
    """An error answer in the API's documented shape: both name the provider's message."""
    body = {"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error",
                      "param": None, "code": "model_not_found"}}
    server.script(CHAT_URL, raw(json.dumps(body), status=404))
    with pytest.raises(openai.NotFoundError) as sdk_err:
        sdk.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": USER}])
    with pytest.raises(eliza_nb.ElizaError) as ours:
        rt.generate(USER, provider="openai", model="gpt-9")
    assert "does not exist" in str(sdk_err.value) and "The model `gpt-9` does not exist" in str(ours.value)
    assert "\n" not in str(ours.value) and KEY not in str(ours.value)
