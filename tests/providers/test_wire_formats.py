"""Anthropic, Claude-on-Vertex and Gemini wire formats against httpx.MockTransport fixtures
written from the public API documentation. The request we SEND (URL, headers, body) is
asserted, not only the parsing of the answer."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from provider_helpers import SECRET, FakeLlamaCache, assert_no_secret

from eliza_nb.core.errors import AuthError, MissingKeyError, NotFoundError, RateLimitedError, StreamInterrupted
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.types import ModelClass

VERTEX_TOKEN = "ya29.a0-Vertex-Token-Never-Show-1234567890"


class Recorder:
    """A MockTransport handler that records requests and answers from a list (last repeats)."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def body(self, i: int = -1) -> dict:
        return json.loads(self.requests[i].content)


def sse(*events: tuple[str | None, dict], crlf: bool = False) -> httpx.Response:
    nl = "\r\n" if crlf else "\n"
    text = "".join((f"event: {name}{nl}" if name else "") + f"data: {json.dumps(data)}{nl}{nl}" for name, data in events)
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


def runtime(home, handler, env, config=None, fake_time=None) -> Runtime:
    kw = {"sleep": fake_time.sleep, "clock": fake_time.clock} if fake_time else {}
    return Runtime(home, config=config or {}, env=env, transport=httpx.MockTransport(handler), **kw)


# Model ids that no catalog model_rules drop list matches and no retired table names. The tests
# of a protocol's request shape pin these (through the providers table, one id per class) so
# they check the protocol's own field names and caps, not a model family's exceptions (those are
# tested in test_model_currency.py), and do not move when the catalog's defaults do.
PLAIN = {
    "openai": {"small": "gpt-plain-small", "medium": "gpt-plain-medium", "large": "gpt-plain-large"},
    "anthropic": {"small": "claude-plain-small", "medium": "claude-plain-medium", "large": "claude-plain-large"},
    "claude_vertex": {"small": "claude-plain-small@20250101", "medium": "claude-plain-medium@20250101",
                      "large": "claude-plain-large@20250101"},
    "google": {"small": "gemini-plain-small", "medium": "gemini-plain-medium", "large": "gemini-plain-large"},
}


def plain(**extra) -> dict:
    """A runtime config pinning the PLAIN model ids, merged with per-provider ``extra`` tables."""
    return {"providers": {pid: {"models": dict(models), **extra.get(pid, {})} for pid, models in PLAIN.items()}}


def test_the_pinned_plain_models_have_no_family_rules():
    from eliza_nb.core.catalog import Catalog

    catalog = Catalog.load({}, env={})
    for pid, models in PLAIN.items():
        entry = catalog.get(pid)
        for model in models.values():
            rules = entry.rules_for(model)
            assert entry.retirement(model) is None, (pid, model)
            assert not rules.drop_settings and not rules.one_of, (pid, model)
            # openai's catch-all rule only renames max_tokens; no other rule may apply
            assert rules.max_tokens_param == ("max_completion_tokens" if pid == "openai" else None), (pid, model)


# -- Anthropic Messages API ----------------------------------------------------------------------
MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
    "model": "claude-3-5-haiku-20241022",
    "content": [{"type": "text", "text": "Paris is the capital."}],
    "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 21, "output_tokens": 6},
}
STREAM = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-3-5-haiku-20241022",
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 15}}),
    ("message_stop", {"type": "message_stop"}),
]


def test_anthropic_request_shape_and_answer(home):
    rec = Recorder(httpx.Response(200, json=MESSAGE))
    rt = runtime(home, rec, {"ANTHROPIC_API_KEY": SECRET}, plain())
    r = rt.generate([{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Let me think."},
                     {"role": "user", "content": "Well?"}],
                    provider="anthropic", system="Be brief.", temperature=1.4, stop=["\n\nHuman:", "  "],
                    presence_penalty=0.7, frequency_penalty=0.0, seed=3, max_tokens=300)
    req = rec.requests[0]
    assert str(req.url) == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == SECRET and req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json" and "authorization" not in req.headers
    assert rec.body() == {
        "model": "claude-plain-small", "max_tokens": 300, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Let me think."},
                     {"role": "user", "content": "Well?"}],
        "temperature": 1.0, "stop_sequences": ["\n\nHuman:"],
    }
    assert r.text == "Paris is the capital." and r.finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (21, 6)
    assert r.notes == [
        "temperature 1.4 clamped to 1.0: Anthropic's range is 0-1",
        "whitespace-only stop sequences dropped: Anthropic rejects them",
        "presence_penalty=0.7 dropped: the Messages API has no such parameter",
        "seed=3 dropped: the Messages API has no such parameter",
    ]


def test_anthropic_always_sends_max_tokens_capped_per_model(home):
    rec = Recorder(httpx.Response(200, json=MESSAGE))
    rt = runtime(home, rec, {"ANTHROPIC_API_KEY": SECRET}, plain(anthropic={"output_caps": {"claude-plain-large": 4096}}))
    default = rt.catalog.get("anthropic").settings.max_output_tokens
    assert default > 4096
    r = rt.generate("hi", provider="anthropic:large")  # nothing asked: the catalog's max_output_tokens, capped
    assert rec.body()["max_tokens"] == 4096 and rec.body()["model"] == "claude-plain-large"
    assert f"max_output_tokens {default} capped at 4096: claude-plain-large's output limit" in r.notes
    assert "system" not in rec.body()
    r = rt.generate("hi", provider="anthropic:medium")  # no cap for this model: the catalog's value as it is
    assert rec.body()["max_tokens"] == default and not any("capped" in n for n in r.notes)


def test_anthropic_streaming_events(home):
    rec = Recorder(sse(*STREAM))
    rt = runtime(home, rec, {"ANTHROPIC_API_KEY": SECRET})
    s = rt.stream("hi", provider="anthropic")
    assert list(s) == ["Hello", "!"]
    assert rec.body()["stream"] is True
    assert s.result.text == "Hello!" and s.result.finish_reason == "stop"
    assert (s.result.usage.prompt_tokens, s.result.usage.completion_tokens) == (25, 15)


def test_anthropic_overloaded_event_before_text_is_retried(home, fake_time):
    overloaded = sse(STREAM[0], ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    rec = Recorder(overloaded, sse(*STREAM))
    s = runtime(home, rec, {"ANTHROPIC_API_KEY": SECRET}, fake_time=fake_time).stream("hi", provider="anthropic")
    assert s.text() == "Hello!"
    assert [a.outcome for a in s.result.attempts] == ["TransientError", "ok"]
    assert "Overloaded" in s.result.attempts[0].detail and len(fake_time.sleeps) == 1


def test_anthropic_stream_cut_after_text_is_interrupted(home):
    rec = Recorder(sse(*STREAM[:4]))  # no message_stop
    with pytest.raises(StreamInterrupted) as info:
        runtime(home, rec, {"ANTHROPIC_API_KEY": SECRET}).stream("hi", provider="anthropic").text()
    assert info.value.partial == "Hello" and "message_stop" in str(info.value)


def test_anthropic_errors(home, fake_time):
    not_found = httpx.Response(404, json={"type": "error", "error": {"type": "not_found_error", "message": "model: claude-9"}})
    rec = Recorder(not_found)
    with pytest.raises(NotFoundError, match=r"^\[anthropic\] .*HTTP 404.*model: claude-9"):
        runtime(home, rec, {"ANTHROPIC_API_KEY": SECRET}).generate("hi", provider="anthropic:claude-9")
    rec = Recorder(httpx.Response(429, json={"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
                                  headers={"retry-after": "7"}), httpx.Response(200, json=MESSAGE))
    r = runtime(home, rec, {"ANTHROPIC_API_KEY": SECRET}, fake_time=fake_time).generate("hi", provider="anthropic")
    assert r.text == "Paris is the capital." and fake_time.sleeps == [7.0]


# -- Claude on Vertex AI ------------------------------------------------------------------------
def test_vertex_raw_predict_url_auth_and_body(home):
    rec = Recorder(httpx.Response(200, json=MESSAGE))
    rt = runtime(home, rec, {"VERTEX_ACCESS_TOKEN": VERTEX_TOKEN, "GOOGLE_CLOUD_PROJECT": "my-proj"}, plain())
    r = rt.generate("hi", provider="claude_vertex", system="Be brief.", max_tokens=50)
    req = rec.requests[0]
    assert str(req.url) == ("https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global/"
                            "publishers/anthropic/models/claude-plain-small@20250101:rawPredict")
    assert req.headers["authorization"] == f"Bearer {VERTEX_TOKEN}" and "x-api-key" not in req.headers
    body = rec.body()
    assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
    assert body["max_tokens"] == 50 and body["system"] == "Be brief." and body["messages"] == [{"role": "user", "content": "hi"}]
    assert r.text == "Paris is the capital." and r.provider == "claude_vertex"


def test_vertex_stream_raw_predict_with_region_from_env(home):
    rec = Recorder(sse(*STREAM, crlf=True))
    env = {"GOOGLE_ACCESS_TOKEN": VERTEX_TOKEN, "GOOGLE_CLOUD_PROJECT": "p1", "VERTEX_REGION": "europe-west1"}
    s = runtime(home, rec, env, plain()).stream("hi", provider="claude_vertex:medium")
    assert s.text() == "Hello!"
    assert str(rec.requests[0].url) == ("https://europe-west1-aiplatform.googleapis.com/v1/projects/p1/locations/"
                                        "europe-west1/publishers/anthropic/models/claude-plain-medium@20250101:streamRawPredict")
    assert rec.body()["stream"] is True and rec.body()["anthropic_version"] == "vertex-2023-10-16"


def test_vertex_global_region_and_project_from_config(home):
    rec = Recorder(httpx.Response(200, json=MESSAGE))
    config = {"providers": {"claude_vertex": {"region": "global", "project": "cfg-proj"}}}
    runtime(home, rec, {"VERTEX_ACCESS_TOKEN": VERTEX_TOKEN}, config).generate("hi", provider="claude_vertex")
    assert str(rec.requests[0].url).startswith(
        "https://aiplatform.googleapis.com/v1/projects/cfg-proj/locations/global/publishers/anthropic/models/")


def test_vertex_missing_project_or_token_is_one_line(home):
    rec = Recorder(httpx.Response(200, json=MESSAGE))
    with pytest.raises(MissingKeyError, match=r"^\[claude_vertex\] no Google Cloud project: set GOOGLE_CLOUD_PROJECT"):
        runtime(home, rec, {"VERTEX_ACCESS_TOKEN": VERTEX_TOKEN}).generate("hi", provider="claude_vertex")
    # Without google-auth installed: "no access token"; with it (google-genai, a test oracle, brings it)
    # its application-default lookup finds nothing here. Either way one line naming the variable.
    with pytest.raises(MissingKeyError, match=r"^\[claude_vertex\] (no access token|google-auth found no usable "
                                              r"credentials \(DefaultCredentialsError\)); set VERTEX_ACCESS_TOKEN"):
        runtime(home, rec, {"GOOGLE_CLOUD_PROJECT": "p"}).generate("hi", provider="claude_vertex")
    assert not rec.requests


# -- Gemini --------------------------------------------------------------------------------------
GEMINI = {
    "candidates": [{"content": {"parts": [{"text": "Paris."}], "role": "model"}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2, "totalTokenCount": 11},
    "modelVersion": "gemini-1.5-flash-002",
}


def test_gemini_generate_request_shape(home):
    rec = Recorder(httpx.Response(200, json=GEMINI))
    rt = runtime(home, rec, {"GEMINI_API_KEY": SECRET}, plain())  # the alias variable
    r = rt.generate([{"role": "user", "content": "Capital?"}, {"role": "assistant", "content": "Of?"},
                     {"role": "user", "content": "France"}], provider="google", system="Be brief.",
                    temperature=0.0, max_tokens=64, stop=["a", "b", "c", "d", "e", "f"], presence_penalty=0.5,
                    repetition_penalty=0.3, seed=11)
    req = rec.requests[0]
    assert str(req.url) == "https://generativelanguage.googleapis.com/v1beta/models/gemini-plain-small:generateContent"
    assert req.headers["x-goog-api-key"] == SECRET and SECRET not in str(req.url)
    assert rec.body() == {
        "contents": [{"role": "user", "parts": [{"text": "Capital?"}]}, {"role": "model", "parts": [{"text": "Of?"}]},
                     {"role": "user", "parts": [{"text": "France"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.0, "maxOutputTokens": 64, "presencePenalty": 0.5, "seed": 11,
                             "stopSequences": ["a", "b", "c", "d", "e"]},
    }
    assert r.text == "Paris." and r.finish_reason == "stop" and r.model == "gemini-1.5-flash-002"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (9, 2)
    assert r.notes == ["stop: google takes at most 5; sent the first 5 of 6",
                       "repetition_penalty=0.3 dropped: Gemini has no repetition penalty"]


def test_gemini_stream_sse(home):
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "The capital"}], "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 9}},
        {"candidates": [{"content": {"parts": [{"text": " is Paris."}], "role": "model"}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5, "totalTokenCount": 14}},
    ]
    rec = Recorder(sse(*[(None, c) for c in chunks], crlf=True))
    rt = runtime(home, rec, {"GOOGLE_GENERATIVE_AI_API_KEY": SECRET}, plain())
    s = rt.stream("Capital of France?", provider="google:large")
    assert list(s) == ["The capital", " is Paris."]
    assert str(rec.requests[0].url) == ("https://generativelanguage.googleapis.com/v1beta/models/"
                                        "gemini-plain-large:streamGenerateContent?alt=sse")
    assert (s.result.usage.prompt_tokens, s.result.usage.completion_tokens) == (9, 5)


def test_gemini_blocked_prompt_says_so(home):
    rec = Recorder(httpx.Response(200, json={"promptFeedback": {"blockReason": "SAFETY"},
                                             "usageMetadata": {"promptTokenCount": 4}}))
    r = runtime(home, rec, {"GEMINI_API_KEY": SECRET}).generate("x", provider="google")
    assert r.text == "" and r.finish_reason == "blocked"
    assert r.notes == ["the prompt was blocked (SAFETY); nothing was generated"]


def test_gemini_embeddings_single_and_batch(home):
    rec = Recorder(httpx.Response(200, json={"embedding": {"values": [0.1, 0.2, 0.3]}}))
    rt = runtime(home, rec, {"GEMINI_API_KEY": SECRET})
    adapter = rt.adapter("google")
    one = adapter.embed(["hello"], "gemini-embedding-001", 10)
    assert str(rec.requests[0].url).endswith("/v1beta/models/gemini-embedding-001:embedContent")
    assert rec.body() == {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}}
    assert one.shape == (1, 3) and one.dtype == np.float32
    rec.answers = [httpx.Response(200, json={"embeddings": [{"values": [1.0, 0.0]}, {"values": [0.0, 1.0]}]})]
    two = adapter.embed(["a", "b"], "gemini-embedding-001", 10)
    assert str(rec.requests[1].url).endswith(":batchEmbedContents")
    assert rec.body() == {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}},
                                       {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}}]}
    assert two.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_gemini_bad_key_and_quota_errors(home, fake_time):
    bad_key = httpx.Response(400, json={"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                                  "status": "INVALID_ARGUMENT"}})
    with pytest.raises(AuthError) as info:
        runtime(home, Recorder(bad_key), {"GEMINI_API_KEY": SECRET}).generate("x", provider="google")
    assert "API key not valid" in str(info.value) and str(info.value).startswith("[google]")
    assert_no_secret(info.value)
    exhausted = httpx.Response(429, json={"error": {
        "code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}]}})
    rec = Recorder(exhausted, httpx.Response(200, json=GEMINI))
    r = runtime(home, rec, {"GEMINI_API_KEY": SECRET}, fake_time=fake_time).generate("x", provider="google")
    assert r.text == "Paris." and fake_time.sleeps == [13.0]
    with pytest.raises(RateLimitedError):
        runtime(home, Recorder(exhausted), {"GEMINI_API_KEY": SECRET}, {"retry": {"max_attempts": 1}}).generate(
            "x", provider="google")


# -- top_p and the settings declaration on every protocol ----------------------------------------
OPENAI_CHAT = {"model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."},
                                                     "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 2}}


def test_top_p_goes_out_under_each_protocols_name(home):
    cases = [("openai", {"OPENAI_API_KEY": SECRET}, httpx.Response(200, json=OPENAI_CHAT), lambda b: b["top_p"]),
             ("anthropic", {"ANTHROPIC_API_KEY": SECRET}, httpx.Response(200, json=MESSAGE), lambda b: b["top_p"]),
             ("google", {"GEMINI_API_KEY": SECRET}, httpx.Response(200, json=GEMINI),
              lambda b: b["generationConfig"]["topP"])]
    for provider, env, answer, sent in cases:
        rec = Recorder(answer)
        r = runtime(home, rec, env, plain()).generate("hi", provider=provider, top_p=0.9)
        assert sent(rec.body()) == 0.9, provider
        assert r.settings["top_p"] == 0.9 and not any("top_p" in n for n in r.notes), provider
        # not set: not sent (each API keeps its own default)
        runtime(home, rec, env, plain()).generate("hi", provider=provider)
        assert "top_p" not in json.dumps(rec.body()) and "topP" not in json.dumps(rec.body()), provider


def test_a_catalog_drop_list_drops_top_p_with_a_note(home):
    rec = Recorder(httpx.Response(200, json=OPENAI_CHAT))
    config = plain(openai={"drop_settings": ["top_p"]})
    r = runtime(home, rec, {"OPENAI_API_KEY": SECRET}, config=config).generate("hi", provider="openai", top_p=0.5)
    assert rec.body()["model"] == "gpt-plain-small"  # a model no family rule drops top_p for
    assert "top_p" not in rec.body() and r.notes == ["top_p=0.5 dropped: openai does not take it"]


def test_every_setting_is_sent_or_dropped_with_a_note_on_every_protocol(home):
    """A setting added to the declaration reaches each API under its wire name, or each
    adapter says it dropped it: it can never vanish silently."""
    from eliza_nb.core.settings import SETTINGS

    values = {"stop": ["END"], "max_output_tokens": 33, "temperature": 0.7, "top_p": 0.8, "frequency_penalty": 0.4,
              "presence_penalty": 0.3, "repetition_penalty": 0.2, "seed": 5}
    assert set(values) == {n for n, s in SETTINGS.items() if s.sent}
    # (provider, protocol, ...): groq speaks the openai protocol with no model_rules at all, so the
    # protocol's own max_tokens name is covered too (openai's catch-all rule renames it).
    cases = [("openai", "openai", {"OPENAI_API_KEY": SECRET}, httpx.Response(200, json=OPENAI_CHAT), lambda b: b),
             ("groq", "openai", {"GROQ_API_KEY": SECRET}, httpx.Response(200, json=OPENAI_CHAT), lambda b: b),
             ("anthropic", "anthropic", {"ANTHROPIC_API_KEY": SECRET}, httpx.Response(200, json=MESSAGE), lambda b: b),
             ("google", "google", {"GEMINI_API_KEY": SECRET}, httpx.Response(200, json=GEMINI),
              lambda b: b["generationConfig"])]
    special = {"repetition_penalty": {"openai": None}}  # openai: only with repetition_penalty_param
    # Each protocol twice: with a PLAIN model (the protocol's own wire names) and with the
    # catalog's default model, whose family rules (model_rules) may rename or drop settings, but
    # never silently: a rule's drop goes without a note only for a catalog default value, and no
    # value here is one.
    for config in (plain(), None):
        for provider, protocol, env, answer, part in cases:
            rec = Recorder(answer)
            rt = runtime(home, rec, env, config)
            entry = rt.catalog.get(provider)
            assert all(values[n] != getattr(entry.settings, n) for n in values), provider
            model = entry.models[ModelClass.SMALL]
            rules = entry.rules_for(model)
            r = rt.generate("hi", provider=provider, **values)
            assert rec.body().get("model") == model or f"/models/{model}:" in str(rec.requests[-1].url), provider
            sent = part(rec.body())
            for name, spec in SETTINGS.items():
                if not spec.sent:
                    continue
                wire = spec.wire.get(protocol, special.get(name, {}).get(protocol))
                if name == "max_output_tokens" and rules.max_tokens_param:
                    wire = rules.max_tokens_param
                if wire is not None and name not in rules.drop_settings:
                    assert wire in sent, (provider, model, name)
                else:
                    assert wire not in sent, (provider, model, name)
                    assert any(n.startswith(f"{name}=") and "dropped" in n for n in r.notes), (provider, model, name, r.notes)


class _FakeLlama(FakeLlamaCache):
    """What LlamaLocalProvider drives: records create_completion's keyword arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    def tokenize(self, data: bytes, add_bos: bool = False, special: bool = False) -> list[int]:
        return list(data)

    def reset(self) -> None:
        pass

    def create_completion(self, **kwargs):
        self.calls.append(kwargs)
        yield {"choices": [{"text": "ok", "finish_reason": "stop"}]}


def test_llama_local_passes_settings_to_llama_cpp(tmp_path, monkeypatch):
    from pathlib import Path
    from types import SimpleNamespace

    from eliza_nb.adapters import llama_local
    from eliza_nb.core.settings import ModelSettings
    from eliza_nb.core.types import Message, ModelClass, Request, Target

    fake = _FakeLlama()
    template = SimpleNamespace(prompt="<p>", added_special=False, stop=["<eot>"], stopping_criteria=None)
    monkeypatch.setattr(llama_local.LoadedModel, "_load", lambda self: fake)
    monkeypatch.setattr(llama_local.LoadedModel, "formatter", lambda self, llm, generation_prompt=True: lambda messages: template)
    provider = llama_local.LlamaLocalProvider(tmp_path)
    provider._paths["m"] = Path("m.gguf")

    def call(**settings):
        request = Request(Target("llama_local", ModelClass.SMALL, "m"), (Message("user", "hi"),),
                          ModelSettings(**settings), timeout_s=30)
        completion = provider.generate(request)
        return fake.calls[-1], completion

    kwargs, completion = call(top_p=0.9, temperature=0.1, max_output_tokens=12, repetition_penalty=0.2,
                              frequency_penalty=0.3, seed=7, stop=["END"])
    assert completion.text == "ok" and completion.notes == []
    assert {k: kwargs[k] for k in ("top_p", "temperature", "max_tokens", "repeat_penalty", "frequency_penalty",
                                   "presence_penalty", "seed")} == {
        "top_p": 0.9, "temperature": 0.1, "max_tokens": 12, "repeat_penalty": 1.2, "frequency_penalty": 0.3,
        "presence_penalty": 0.0, "seed": 7}
    assert kwargs["stop"] == ["<eot>", "END"]
    kwargs, _ = call()  # nothing set: llama-cpp's own defaults, except no 16-token cap
    assert "top_p" not in kwargs and "seed" not in kwargs
    assert (kwargs["temperature"], kwargs["max_tokens"], kwargs["repeat_penalty"]) == (0.8, None, 1.0)
