"""The official ``anthropic`` SDK as the oracle for eliza_nb's Messages API adapter.

The 2.x SDK has no ``temperature`` / ``top_p`` arguments any more (removed in 1.0; its
migration guide says to send them with ``extra_body``), so the SDK side of the same logical
call passes them that way. Penalties and seed have no Messages API field: eliza_nb drops
them with a note, so its body must still equal the SDK's.
"""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types import (
    ErrorResponse,
    Message,
    MessageDeltaUsage,
    ModelInfo,
    OverloadedError,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlock,
    TextDelta,
    Usage,
)
from anthropic.types.raw_message_delta_event import Delta
from fault_server import json_reply
from oracle_wire import KEY, assert_same_wire, named_sse

import eliza_nb

#: Every way eliza_nb's request may differ from the SDK's, and why. Nothing else may differ.
DELIBERATE = {
    "header.user-agent": "SDK telemetry: the SDK names itself (Anthropic/Python x.y), eliza_nb sends httpx's default",
    "header.x-stainless-*": "SDK telemetry: language, OS, arch, runtime, retry count and timeouts of the SDK",
    "header.accept": "eliza_nb sends httpx's */* (text/event-stream on a stream), the SDK application/json; "
                     "the API answers JSON, or SSE for stream=true, either way",
    "header.anthropic-version": "eliza_nb sends the catalog's api_version, by default the long-supported 2023-06-01 "
                                "(under which temperature/top_p are still taken); the 2.x SDK pins 2026-10-21",
    "header.authorization": "the key's header: eliza_nb sends the API key as x-api-key, the header documented for "
                            "anthropic-version 2023-06-01; the 2.x SDK sends it as Authorization: Bearer (same key)",
    "header.x-api-key": "the other half of the key's header difference (see header.authorization)",
    "query.limit": "eliza_nb asks for the largest page (limit=1000) so a listing is one request; the SDK sends no "
                   "limit unless given one (the API's default page is 20)",
    "body.stop_sequences": "whitespace-only stop sequences are dropped (with a note): the API rejects them",
    "body.temperature": "Claude Opus 4.7 and later (all 5.x) answer 400 'temperature is deprecated for this model': "
                        "catalog model_rules drop it with a note; the SDK (which has no temperature argument any more) "
                        "sends whatever extra_body holds",
    "body.top_p": "dropped with a note for Claude Opus 4.7 and later (as temperature), and on Claude 4.1-4.6 when "
                  "temperature is set too (those answer 400 to both: catalog model_rules one_of, the first set is kept)",
}

MODEL = "claude-haiku-4-5"  # takes temperature or top_p (not both): catalog model_rules one_of
CURRENT = "claude-haiku-5-5"  # the catalog's small model: takes neither
SYSTEM, USER = "You are terse.", "Name the capital of France."
URL = "/v1/messages"


@pytest.fixture
def sdk(server):
    client = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def rt(server, make_runtime):
    return make_runtime("anthropic", server.url + "/v1", "ANTHROPIC_API_KEY")


def message(text: str | None, stop: str = "end_turn") -> dict:
    content = [] if text is None else [TextBlock(type="text", text=text)]
    return Message(id="msg_oracle", type="message", role="assistant", model=MODEL, content=content, stop_reason=stop,
                   stop_sequence=None, usage=Usage(input_tokens=14, output_tokens=3)).model_dump(exclude_none=True)


def events(pieces: list[str], stop: str = "end_turn", *, error: str | None = None, after: int | None = None) -> list:
    """A Messages stream as the SDK's own event models; ``error`` (a message) is an
    overloaded_error event sent after ``after`` text deltas (None: no error)."""
    start = RawMessageStartEvent(type="message_start", message=Message(
        id="msg_oracle", type="message", role="assistant", model=MODEL, content=[], stop_reason=None, stop_sequence=None,
        usage=Usage(input_tokens=14, output_tokens=1)))
    out: list = [("message_start", start),
                 ("content_block_start", RawContentBlockStartEvent(type="content_block_start", index=0,
                                                                   content_block=TextBlock(type="text", text="")))]
    for i, piece in enumerate(pieces):
        if error is not None and i == after:
            break
        out.append(("content_block_delta", RawContentBlockDeltaEvent(type="content_block_delta", index=0,
                                                                     delta=TextDelta(type="text_delta", text=piece))))
    if error is not None:
        out.append(("error", ErrorResponse(type="error", error=OverloadedError(type="overloaded_error", message=error),
                                           request_id=None)))
    else:
        out += [("content_block_stop", RawContentBlockStopEvent(type="content_block_stop", index=0)),
                ("message_delta", RawMessageDeltaEvent(type="message_delta", delta=Delta(stop_reason=stop, stop_sequence=None),
                                                       usage=MessageDeltaUsage(output_tokens=3))),
                ("message_stop", RawMessageStopEvent(type="message_stop"))]
    return [(name, e.model_dump_json(exclude_none=True)) for name, e in out]


def check_auth(sdk_req, our_req) -> None:
    """Same key on both sides, each in its own header (see DELIBERATE), and the JSON content type."""
    sdk_h = {k.lower(): v for k, v in sdk_req.headers.items()}
    our_h = {k.lower(): v for k, v in our_req.headers.items()}
    assert sdk_h["authorization"] == f"Bearer {KEY}" and our_h["x-api-key"] == KEY
    assert "authorization" not in our_h and "x-api-key" not in sdk_h
    assert sdk_h["content-type"] == our_h["content-type"] == "application/json"
    assert our_h["anthropic-version"] == "2023-06-01"


SAMPLING = {"temperature": 0.4}


def both(server, sdk, rt, *, stream: bool = False, stop=("END", "\n\nHuman:"), eliza_extra=None, model=MODEL,
         sampling=SAMPLING):
    sdk_args = {"model": model, "max_tokens": 64, "system": SYSTEM, "messages": [{"role": "user", "content": USER}],
                "stop_sequences": [s for s in stop if s.strip()], "extra_body": sampling}
    ours_args = {"system": SYSTEM, "provider": "anthropic", "model": model, "max_tokens": 64, "stop": list(stop),
                 **sampling, **(eliza_extra or {})}
    if stream:
        got = sdk.messages.create(**sdk_args, stream=True)
        sdk_text = "".join(e.delta.text for e in got if e.type == "content_block_delta")
        s = rt.stream(USER, **ours_args)
        list(s)
        ours = s.result
    else:
        sdk_text = "".join(b.text for b in sdk.messages.create(**sdk_args).content)
        ours = rt.generate(USER, **ours_args)
    sdk_req, our_req = server.requests_to(URL)
    return sdk_req, our_req, sdk_text, ours


# -- requests ----------------------------------------------------------------------------------
def test_message_request_matches_the_sdk(server, sdk, rt):
    server.script(URL, json_reply(message("Paris.")))
    extra = {"presence_penalty": 0.3, "frequency_penalty": -0.2, "seed": 7}  # no Messages API field: notes
    sdk_req, our_req, sdk_text, ours = both(server, sdk, rt, eliza_extra=extra)
    assert_same_wire(sdk_req, our_req, DELIBERATE)
    check_auth(sdk_req, our_req)
    assert our_req.method == "POST" and our_req.body["system"] == SYSTEM
    assert our_req.body["temperature"] == 0.4
    assert ours.text == sdk_text == "Paris." and ours.finish_reason == "stop"
    assert sorted(n.split("=")[0] for n in ours.notes) == ["frequency_penalty", "presence_penalty", "seed"]


def test_streamed_message_request_matches_the_sdk(server, sdk, rt):
    server.script(URL, named_sse(events(["Par", "is."])))
    sdk_req, our_req, sdk_text, ours = both(server, sdk, rt, stream=True)
    assert_same_wire(sdk_req, our_req, DELIBERATE)
    check_auth(sdk_req, our_req)
    assert our_req.body["stream"] is True
    assert ours.text == sdk_text == "Paris." and ours.finish_reason == "stop"
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (14, 3)


def test_top_p_alone_matches_the_sdk(server, sdk, rt):
    """Only top_p asked for: the SDK sends top_p. (Fails while the catalog's default
    temperature, merged in below the call, takes the one_of slot and the caller's top_p is
    dropped: reported to the lead as a bug, not listed as deliberate.)"""
    server.script(URL, json_reply(message("Paris.")))
    sdk_req, our_req, _, ours = both(server, sdk, rt, sampling={"top_p": 0.85})
    assert_same_wire(sdk_req, our_req, DELIBERATE)
    assert our_req.body["top_p"] == 0.85 and "temperature" not in our_req.body


def test_claude_4_takes_temperature_or_top_p_not_both(server, sdk, rt):
    server.script(URL, json_reply(message("Paris.")))
    sdk_req, our_req, _, ours = both(server, sdk, rt, sampling={"temperature": 0.4, "top_p": 0.85})
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.top_p"])
    assert diff["body.top_p"] == (0.85, "<absent>") and our_req.body["temperature"] == 0.4
    assert any(n.startswith("top_p=0.85 dropped") for n in ours.notes), ours.notes


def test_current_claude_gets_no_sampling_settings(server, sdk, rt):
    """The catalog's current model: the SDK sends what extra_body holds, eliza_nb drops both
    (the API would answer 400), each with a note."""
    server.script(URL, json_reply(message("Paris.")))
    sdk_req, our_req, _, ours = both(server, sdk, rt, model=CURRENT, sampling={"temperature": 0.4, "top_p": 0.85})
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.temperature", "body.top_p"])
    assert diff["body.temperature"] == (0.4, "<absent>") and diff["body.top_p"] == (0.85, "<absent>")
    assert sorted(n.split("=")[0] for n in ours.notes if "dropped" in n) == ["temperature", "top_p"], ours.notes


def test_whitespace_stop_sequence_is_dropped_with_a_note(server, sdk, rt):
    server.script(URL, json_reply(message("Paris.")))
    sdk.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, messages=[{"role": "user", "content": USER}],
                        stop_sequences=["END", "  "], extra_body=SAMPLING)
    ours = rt.generate(USER, system=SYSTEM, provider="anthropic", model=MODEL, max_tokens=64, stop=["END", "  "], **SAMPLING)
    sdk_req, our_req = server.requests_to(URL)
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["body.stop_sequences"])
    assert diff["body.stop_sequences"] == (["END", "  "], ["END"])
    assert any("whitespace-only stop" in n for n in ours.notes)


# -- answers in the SDK's own shapes -------------------------------------------------------------
def test_refusal_stop_reason(server, sdk, rt):
    server.script(URL, json_reply(message("I can't help", stop="refusal")))
    got = sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": USER}])
    assert got.stop_reason == "refusal"
    r = rt.generate(USER, provider="anthropic", model=MODEL, max_tokens=64)
    assert r.finish_reason == "refusal" and r.text == got.content[0].text == "I can't help"
    assert any("refusal" in n for n in r.notes), r.notes


def test_streamed_refusal_stop_reason(server, sdk, rt):
    server.script(URL, named_sse(events(["I can't", " help"], stop="refusal")))
    got = list(sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": USER}], stream=True))
    assert [e.delta.stop_reason for e in got if e.type == "message_delta"] == ["refusal"]
    s = rt.stream(USER, provider="anthropic", model=MODEL, max_tokens=64)
    assert "".join(s) == "I can't help"
    assert s.result.finish_reason == "refusal" and any("refusal" in n for n in s.result.notes)


def test_overloaded_error_event_before_text(server, sdk, rt):
    server.script(URL, named_sse(events(["Paris."], error="Overloaded", after=0)))
    with pytest.raises(anthropic.APIStatusError) as sdk_err:
        list(sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": USER}], stream=True))
    assert "overloaded_error" in str(sdk_err.value.body) or "Overloaded" in str(sdk_err.value)
    with pytest.raises(eliza_nb.ElizaError) as ours:
        rt.stream(USER, provider="anthropic", model=MODEL, max_tokens=64).text()
    assert "Overloaded" in str(ours.value) and "\n" not in str(ours.value) and KEY not in str(ours.value)
    assert ours.value.retryable  # an overloaded API is worth another try (with more attempts)


def test_overloaded_error_event_after_text(server, sdk, rt):
    server.script(URL, named_sse(events(["Par", "is."], error="Overloaded", after=1)))
    with pytest.raises(anthropic.APIStatusError):
        list(sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": USER}], stream=True))
    with pytest.raises(eliza_nb.StreamInterrupted) as ours:
        rt.stream(USER, provider="anthropic", model=MODEL, max_tokens=64).text()
    assert ours.value.partial == "Par" and "Overloaded" in str(ours.value)


# -- model listing -------------------------------------------------------------------------------
def listed(*ids: str) -> list[dict]:
    return [ModelInfo(id=i, type="model", display_name=i, created_at="2026-01-01T00:00:00Z", lifecycle="active",
                      max_input_tokens=200_000).model_dump(mode="json", exclude_none=True) for i in ids]


def page(ids: list[str], more: bool) -> dict:
    return {"data": listed(*ids), "has_more": more, "first_id": ids[0], "last_id": ids[-1]}


def test_model_listing_matches_the_sdk(server, sdk, rt):
    server.script("/v1/models", json_reply(page([CURRENT, MODEL], more=False)))
    sdk_ids = [m.id for m in sdk.models.list()]
    table = rt.models("anthropic", refresh=True)
    sdk_req, our_req = server.requests_to("/v1/models")
    diff = assert_same_wire(sdk_req, our_req, DELIBERATE, expect=["query.limit"])
    assert diff["query.limit"] == ("<absent>", ["1000"])
    assert our_req.method == "GET" and our_req.body is None
    assert {k.lower(): v for k, v in our_req.headers.items()}["x-api-key"] == KEY
    assert sorted(table["model"]) == sorted(sdk_ids) == sorted([CURRENT, MODEL])


def test_model_listing_pages_like_the_sdk(server, sdk, rt):
    """Two pages: the follow-up request (after_id = the first page's last_id) is the SDK's too."""
    first, second = json_reply(page([CURRENT], more=True)), json_reply(page([MODEL], more=False))
    server.script("/v1/models", first, second, first, second)
    sdk_ids = [m.id for m in sdk.models.list(limit=1000)]
    table = rt.models("anthropic", refresh=True)
    sent = server.requests_to("/v1/models")
    assert len(sent) == 4
    for sdk_req, our_req in ((sent[0], sent[2]), (sent[1], sent[3])):
        assert_same_wire(sdk_req, our_req, DELIBERATE)
    assert f"after_id={CURRENT}" in sent[3].path
    assert sorted(table["model"]) == sorted(sdk_ids) == sorted([CURRENT, MODEL])


def test_count_tokens_request_matches_the_sdk(server, sdk, rt):
    """Anthropic's count-tokens endpoint: what the runtime asks before cutting an estimated prompt."""
    from eliza_nb.core.types import Message as Turn

    count_url = URL + "/count_tokens"
    server.script(count_url, json_reply({"input_tokens": 17}))
    told = sdk.messages.count_tokens(model=MODEL, system=SYSTEM, messages=[{"role": "user", "content": USER}])
    ours = rt.adapter("anthropic").count_prompt([Turn("system", SYSTEM), Turn("user", USER)], MODEL, 10.0)
    sdk_req, our_req = server.requests_to(count_url)
    assert_same_wire(sdk_req, our_req, DELIBERATE)
    check_auth(sdk_req, our_req)
    assert told.input_tokens == ours == 17
    assert "max_tokens" not in our_req.body
