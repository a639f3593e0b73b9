"""Every answer shape the real APIs give, through the whole runtime against the loopback
fault server: OpenAI refusals and content filters, Gemini safety blocks and bare-JSON
stream errors, Anthropic's rarer stop reasons, Claude-on-Vertex hosts per region, the
anthropic-version header from the catalog; strict mode, the generation cache and the footer."""

from __future__ import annotations

import json

import fault_server as fs
import httpx
import pytest
from provider_helpers import SECRET, assert_no_secret, openai_entry

import eliza_nb
from eliza_nb.core.errors import ContentBlocked, InvalidRequestError, StreamInterrupted, TransientError
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.types import BLOCKED_REASONS

CHAT = "/oa/v1/chat/completions"
GEM = "/gem/v1beta/models/gem-small:generateContent"
GEM_STREAM = "/gem/v1beta/models/gem-small:streamGenerateContent"
ANT = "/ant/v1/messages"
VERTEX_TOKEN = "ya29.a0-Vertex-Token-Never-Show-1234567890"


def make_rt(home, server, *, retry=None, chain=None, cache=False, extra=None, env=None) -> Runtime:
    """A runtime whose providers all live on the loopback server: "oa" (OpenAI protocol),
    "gem" (Gemini), "ant" (Anthropic)."""
    models = {"small": "gem-small", "medium": "gem-small", "large": "gem-small"}
    providers = {
        "oa": openai_entry(server.url + "/oa/v1"),
        "gem": {"protocol": "google", "endpoint": server.url + "/gem", "key_env": ["GEM_KEY"], "models": models},
        "ant": {"protocol": "anthropic", "endpoint": server.url + "/ant/v1", "key_env": ["ANT_KEY"],
                "models": {"small": "claude-t", "medium": "claude-t", "large": "claude-t"}, **(extra or {})},
    }
    config = {"providers": providers, "cache": {"generation": cache},
              "retry": {"max_attempts": 1, "max_total_s": 30.0, "timeout_s": 5.0, **(retry or {})}}
    if chain:
        config["failover"] = {"small": chain}
    keys = {"FAULT_KEY": SECRET, "GEM_KEY": SECRET, "ANT_KEY": SECRET}
    return Runtime(home, config=config, env=keys if env is None else env)


def chat(message: dict, finish: str | None) -> dict:
    return {"model": "m-small", "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                             "finish_reason": finish}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4}}


def delta(finish: str | None = None, **fields) -> str:
    return json.dumps({"model": "m-small", "choices": [{"index": 0, "delta": fields, "finish_reason": finish}]})


def gemini(text: str | None, finish: str, ratings: list | None = None) -> dict:
    candidate: dict = {"finishReason": finish, "index": 0}
    if text is not None:
        candidate["content"] = {"parts": [{"text": text}], "role": "model"}
    if ratings is not None:
        candidate["safetyRatings"] = ratings
    return {"candidates": [candidate], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 0},
            "modelVersion": "gem-small"}


HARASSMENT = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True},
              {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}]
SAFETY_NOTE = "the answer was blocked (SAFETY: HARM_CATEGORY_HARASSMENT); nothing was generated"


def badge(result, tone: str) -> list[str]:
    return [text for text, t in result.footer_parts() if t == tone]


# -- OpenAI: refusal and content filter -----------------------------------------------------------
def test_openai_refusal_is_the_text_and_the_footer_says_so(home, fault_server):
    refusal = "I'm sorry, I cannot help with that."
    fault_server.script(CHAT, fs.json_reply(chat({"content": None, "refusal": refusal}, "stop")))
    rt = make_rt(home, fault_server)
    r = rt.generate("how do I pick a lock?", provider="oa", cache=True)
    assert r.text == refusal and r.finish_reason == "refusal" and not r.blocked
    assert r.notes == ["the model refused (message.refusal): the refusal is the answer's text"]
    assert badge(r, "warn") == [r.notes[0]] and r.notes[0] in r.footer()
    assert r.footer().count("the model refused") == 1  # a badge, not repeated among the notes
    # A refusal is an answer: strict mode keeps it, and the cache may keep it too.
    again = rt.generate("how do I pick a lock?", provider="oa", cache=True, strict=True)
    assert again.cached and again.text == refusal and again.finish_reason == "refusal"
    assert len(fault_server.requests_to(CHAT)) == 1


def test_openai_streamed_refusal_pieces(home, fault_server):
    fault_server.script(CHAT, fs.sse([delta(role="assistant", content=None, refusal=""), delta(refusal="I can't"),
                                      delta(refusal=" help with that."), delta("stop")]))
    s = make_rt(home, fault_server).stream("hi", provider="oa")
    assert list(s) == ["I can't", " help with that."]
    assert s.result.text == "I can't help with that." and s.result.finish_reason == "refusal"
    assert "the model refused" in s.result.footer()


def test_openai_empty_content_filter_is_a_visible_note_never_cached(home, fault_server):
    fault_server.script(CHAT, fs.json_reply(chat({"content": None}, "content_filter")))
    rt = make_rt(home, fault_server, cache=True)
    first = rt.generate("hi", provider="oa")
    assert first.text == "" and first.finish_reason == "content_filter" and first.blocked
    note = "the answer was blocked (content_filter); nothing was generated"
    assert first.notes == [note] and badge(first, "bad") == [note] and note in first.footer()
    second = rt.generate("hi", provider="oa")
    assert not second.cached and len(fault_server.requests_to(CHAT)) == 2  # never served from the cache


def test_openai_content_filter_strict_raises_one_line(home, fault_server):
    fault_server.script(CHAT, fs.json_reply(chat({"content": ""}, "content_filter")))
    rt = make_rt(home, fault_server)
    with pytest.raises(ContentBlocked) as info:
        rt.generate("hi", provider="oa", strict=True)
    assert str(info.value) == "[oa] the answer was blocked (content_filter); nothing was generated"
    assert "\n" not in str(info.value) and info.value.failover and not info.value.retryable
    assert_no_secret(info.value)


def test_openai_streamed_content_filter(home, fault_server):
    fault_server.script(CHAT, fs.sse([delta(content="Some"), delta(content=" text"), delta("content_filter")]),
                        fs.sse([delta(role="assistant"), delta("content_filter")]))
    rt = make_rt(home, fault_server)
    s = rt.stream("hi", provider="oa", strict=True)
    assert s.text() == "Some text"  # shown already: a filter cutting it is a note, not an error
    assert s.result.finish_reason == "content_filter"
    assert s.result.notes == ["the answer was blocked (content_filter) part-way; the text ends there"]
    with pytest.raises(ContentBlocked, match=r"^\[oa\] the answer was blocked \(content_filter\); nothing was generated$"):
        rt.stream("hi", provider="oa", strict=True).text()


def test_a_stray_json_line_in_an_openai_stream_is_still_ignored(home, fault_server):
    # bare JSON is read only where the protocol sends it (Gemini); elsewhere nothing changed
    fault_server.script(CHAT, fs.raw_stream([f"data: {delta(content='ok')}\n\n", '{"note": "stray"}\n\n',
                                             f"data: {delta('stop')}\n\n", "data: [DONE]\n\n"]))
    assert make_rt(home, fault_server).stream("hi", provider="oa").text() == "ok"


# -- Gemini: safety, recitation, blocked prompts ------------------------------------------------------
def test_gemini_safety_finish_note_footer_and_strict(home, fault_server):
    fault_server.script(GEM, fs.json_reply(gemini(None, "SAFETY", HARASSMENT)))
    rt = make_rt(home, fault_server)
    r = rt.generate("hi", provider="gem")
    assert r.text == "" and r.finish_reason == "content_filter" and r.finish_reason in BLOCKED_REASONS
    assert r.notes == [SAFETY_NOTE] and badge(r, "bad") == [SAFETY_NOTE]
    assert r.footer().startswith("gem:gem-small · 5 → 0 tok") and SAFETY_NOTE in r.footer()
    with pytest.raises(ContentBlocked) as info:
        eliza_nb.set_runtime(rt)
        try:
            eliza_nb.generate("hi", provider="gem", strict=True)  # the public function takes it too
        finally:
            eliza_nb.set_runtime(None)
    assert str(info.value) == f"[gem] {SAFETY_NOTE}"


def test_gemini_blocked_prompt_names_reason_and_categories(home, fault_server):
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "safetyRatings": [
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
        "usageMetadata": {"promptTokenCount": 7}}
    fault_server.script(GEM, fs.json_reply(blocked))
    fault_server.script(GEM_STREAM, fs.sse([json.dumps(blocked)], done=False))
    rt = make_rt(home, fault_server)
    note = "the prompt was blocked (PROHIBITED_CONTENT: HARM_CATEGORY_DANGEROUS_CONTENT); nothing was generated"
    r = rt.generate("hi", provider="gem")
    assert (r.text, r.finish_reason, r.notes) == ("", "blocked", [note]) and badge(r, "bad") == [note]
    s = rt.stream("hi", provider="gem")
    assert list(s) == [] and s.result.finish_reason == "blocked" and s.result.notes == [note]
    with pytest.raises(ContentBlocked, match=r"^\[gem\] the prompt was blocked \(PROHIBITED_CONTENT"):
        rt.stream("hi", provider="gem", strict=True).text()


def test_gemini_recitation_mid_stream_keeps_the_text_and_is_not_cached(home, fault_server):
    events = [json.dumps({"candidates": [{"content": {"parts": [{"text": "Once upon"}], "role": "model"}, "index": 0}]}),
              json.dumps(gemini(" a time", "RECITATION"))]
    fault_server.script(GEM_STREAM, fs.sse(events, done=False))
    rt = make_rt(home, fault_server, cache=True)
    s = rt.stream("tell me the story", provider="gem", strict=True)
    assert list(s) == ["Once upon", " a time"]
    assert s.result.finish_reason == "content_filter"
    assert s.result.notes == ["the answer was blocked (RECITATION) part-way; the text ends there"]
    again = rt.stream("tell me the story", provider="gem")
    assert again.text() == "Once upon a time" and not again.result.cached
    assert len(fault_server.requests_to(GEM_STREAM)) == 2


def test_strict_block_is_never_cached_and_asks_again(home, fault_server):
    fault_server.script(GEM, fs.json_reply(gemini(None, "SAFETY", HARASSMENT)))
    rt = make_rt(home, fault_server, cache=True)
    for _ in range(2):
        with pytest.raises(ContentBlocked):
            rt.generate("hi", provider="gem", strict=True)
    plain = rt.generate("hi", provider="gem")  # not strict: the blocked answer, still not from the cache
    assert not plain.cached and plain.blocked
    assert len(fault_server.requests_to(GEM)) == 3
    assert int(rt.cache.stats()["entries"].sum()) == 0  # nothing stored, in memory or on disk


def test_strict_block_fails_over_to_the_next_provider(home, fault_server):
    fault_server.script(GEM, fs.json_reply(gemini(None, "RECITATION")))
    fault_server.script(CHAT, fs.json_reply(chat({"content": "an answer"}, "stop")))
    rt = make_rt(home, fault_server, chain=["oa"])
    r = rt.generate("hi", provider="gem", strict=True)
    assert r.text == "an answer" and [a.outcome for a in r.attempts] == ["ContentBlocked", "ok"]
    assert "tried gem:gem-small → oa:m-small" in r.footer()
    without = rt.generate("hi", provider="gem")  # not strict: the blocked answer is the answer
    assert without.finish_reason == "content_filter" and len(fault_server.requests_to(CHAT)) == 1


# -- Gemini: errors sent mid-stream as bare JSON --------------------------------------------------------
TEXT_EVENT = "data: " + json.dumps({"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"},
                                                    "index": 0}]}) + "\n\n"
ERROR = {"error": {"code": 500, "message": "An internal error has occurred. Please retry.", "status": "INTERNAL"}}


def test_gemini_bare_json_error_line_after_text_surfaces_googles_message(home, fault_server):
    fault_server.script(GEM_STREAM, fs.raw_stream([TEXT_EVENT, json.dumps(ERROR) + "\n"]))
    with pytest.raises(StreamInterrupted) as info:
        make_rt(home, fault_server).stream("hi", provider="gem").text()
    assert info.value.partial == "Hel"
    assert "HTTP 500" in str(info.value) and "An internal error has occurred. Please retry." in str(info.value)


def test_gemini_pretty_printed_bare_json_error_before_text(home, fault_server):
    pretty = json.dumps(ERROR, indent=2) + "\n"  # several lines, split across chunks
    fault_server.script(GEM_STREAM, fs.raw_stream([pretty[:20], pretty[20:41], pretty[41:]]))
    with pytest.raises(TransientError) as info:
        make_rt(home, fault_server).stream("hi", provider="gem").text()
    assert str(info.value) == ("[gem] streamGenerateContent with gem-small failed (HTTP 500): "
                               "An internal error has occurred. Please retry.")
    assert_no_secret(info.value)


def test_gemini_bare_json_error_array_is_typed_by_its_code(home, fault_server):
    error = [{"error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}}]
    fault_server.script(GEM_STREAM, fs.raw_stream([json.dumps(error, indent=2) + "\n"]))
    with pytest.raises(InvalidRequestError, match=r"HTTP 400\): Request contains an invalid argument\.$"):
        make_rt(home, fault_server).stream("hi", provider="gem").text()


def test_gemini_stray_text_that_is_not_json_stays_ignored(home, fault_server):
    done = "data: " + json.dumps(gemini("lo", "STOP")) + "\n\n"
    fault_server.script(GEM_STREAM, fs.raw_stream([TEXT_EVENT, "{ not json at all\n", "\n", "[also not }\n\n", done]))
    s = make_rt(home, fault_server).stream("hi", provider="gem")
    assert s.text() == "Hello" and s.result.finish_reason == "stop" and s.result.notes == []


# -- Anthropic: version header, rarer stop reasons ------------------------------------------------------
def message(stop: str, text: str = "Sure.") -> dict:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-t",
            "content": [{"type": "text", "text": text}] if text else [], "stop_reason": stop,
            "usage": {"input_tokens": 8, "output_tokens": 2}}


def test_anthropic_version_header_comes_from_the_catalog_entry(home, fault_server):
    fault_server.script(ANT, fs.json_reply(message("end_turn")))
    make_rt(home, fault_server, extra={"api_version": "2099-01-01"}).generate("hi", provider="ant")
    make_rt(home, fault_server).generate("hi", provider="ant")
    sent = [r.headers.get("anthropic-version") for r in fault_server.requests_to(ANT)]
    assert sent == ["2099-01-01", "2023-06-01"]


@pytest.mark.parametrize(("stop", "finish", "note"), [
    ("refusal", "refusal", "the model refused (stop_reason refusal): Claude's safety classifiers stopped the answer"),
    ("pause_turn", "pause_turn", "Claude paused a long turn (stop_reason pause_turn): send its answer back as an "
                                 "assistant turn to continue"),
    ("model_context_window_exceeded", "length",
     "the answer stopped at the model's context window (stop_reason model_context_window_exceeded)"),
])
def test_anthropic_rare_stop_reasons(home, fault_server, stop, finish, note):
    fault_server.script(ANT, fs.json_reply(message(stop, "I can")))
    r = make_rt(home, fault_server).generate("hi", provider="ant", strict=True)
    assert (r.text, r.finish_reason, r.notes) == ("I can", finish, [note]) and note in r.footer()


def test_anthropic_streamed_refusal(home, fault_server):
    events = [
        ("message_start", {"type": "message_start", "message": {"model": "claude-t", "usage": {"input_tokens": 8}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "I"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "refusal"}, "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    fault_server.script(ANT, fs.raw_stream([f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events]))
    s = make_rt(home, fault_server).stream("hi", provider="ant")
    assert s.text() == "I" and s.result.finish_reason == "refusal"
    assert badge(s.result, "warn")[0].startswith("the model refused (stop_reason refusal)")


# -- Claude on Vertex: the host per region -----------------------------------------------------------------
class ToLoopback(httpx.BaseTransport):
    """Sends every request to the loopback server instead of its host, recording the URL it
    was built for: the real hosts are never contacted."""

    def __init__(self, server) -> None:
        self.port = int(server.url.rsplit(":", 1)[1])
        self.urls: list[str] = []
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize(("region", "host"), [
    ("us", "https://aiplatform.us.rep.googleapis.com"),
    ("eu", "https://aiplatform.eu.rep.googleapis.com"),
    ("global", "https://aiplatform.googleapis.com"),
    ("us-east5", "https://us-east5-aiplatform.googleapis.com"),
    ("europe-west1", "https://europe-west1-aiplatform.googleapis.com"),
])
def test_vertex_host_per_region(home, fault_server, region, host):
    fault_server.script("*", fs.json_reply(message("end_turn", "Paris.")))
    transport = ToLoopback(fault_server)
    env = {"VERTEX_ACCESS_TOKEN": VERTEX_TOKEN, "GOOGLE_CLOUD_PROJECT": "proj", "VERTEX_REGION": region}
    rt = Runtime(home, config={}, env=env, transport=transport)
    try:
        r = rt.generate("hi", provider="claude_vertex", model="claude-t@1", failover=False)
    finally:
        rt.close()
    path = f"/v1/projects/proj/locations/{region}/publishers/anthropic/models/claude-t@1:rawPredict"
    assert transport.urls == [host + path] and r.text == "Paris."
    got = fault_server.requests[-1]
    assert got.path == path and got.headers["Authorization"] == f"Bearer {VERTEX_TOKEN}"
    assert got.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in got.body


# -- the notebook: --strict ---------------------------------------------------------------------------
def test_strict_flag_in_a_real_ipython_shell(home, fault_server, ip):
    from IPython.utils.capture import capture_output

    fault_server.script(GEM_STREAM, fs.sse([json.dumps(gemini(None, "SAFETY", HARASSMENT))], done=False))
    rt = make_rt(home, fault_server)
    old = eliza_nb.set_runtime(rt)
    try:
        with capture_output() as cap:
            loose = ip.run_cell("%%eliza generate -p gem -o blocked_answer\nsay something rude")
        assert loose.success, loose.error_in_exec
        result = ip.user_ns["blocked_answer"]
        assert result.blocked and result.text == "" and SAFETY_NOTE in result.footer()
        final = cap.outputs[-1].data
        assert SAFETY_NOTE in final["text/plain"] and SAFETY_NOTE in final["text/markdown"]
        with capture_output():
            strict = ip.run_cell("%%eliza generate -p gem --strict\nsay something rude")
        err = strict.error_in_exec
        assert isinstance(err, ContentBlocked) and str(err) == f"[gem] {SAFETY_NOTE}"
        assert err._render_traceback_() == [f"ContentBlocked: [gem] {SAFETY_NOTE}"]
    finally:
        eliza_nb.set_runtime(old)
        rt.close()
