"""Promise 3 of the hardening issue: keys never leak, whatever the server or the key looks like.

- a key read with whitespace around it (a trailing newline from a file) is stripped: it
  works, and is nowhere in the logs (DEBUG, httpx/httpcore included), the exception chain
  (``__context__`` too), the outputs or the files;
- a key with a space, a control or a non-ASCII character inside is a one-line ConfigError
  naming the variable, and no request leaves;
- a server echoing a long ``ya29.`` token near the 300-character cut of a message: no start
  of the token of 8 characters or more is left in the message (masking runs before the cut,
  and a key cut by the server or a read limit is masked by its start);
- a 200 answer holding a configured key comes back with the key as ``[redacted]`` and a
  note, and is not cached (the same call again reaches the server again).
"""

from __future__ import annotations

import json
import logging
import secrets
import traceback
from pathlib import Path
from typing import Any

import fault_server as fs
import pytest
from rel_helpers import one_line

from eliza_nb.adapters import failures
from eliza_nb.core import redact
from eliza_nb.core.cache.generations import KEY_NOTE
from eliza_nb.core.catalog import key_status
from eliza_nb.core.errors import ConfigError, ElizaError
from eliza_nb.core.runtime import Runtime

PATH = "/a/v1/chat/completions"
KEY = "hardening-" + secrets.token_hex(16)
TOKEN = "ya29." + secrets.token_urlsafe(150)  # a Vertex access token's shape: public tag, long random tail
RETRY = {"max_attempts": 1, "base_delay_s": 0.01, "max_delay_s": 0.02, "timeout_s": 5.0}


def ok_chat(text: str) -> dict:
    return {"model": "m-small", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def make_rt(home: Path, url: str, env: dict[str, str], **cache: Any) -> Runtime:
    providers = {"fault": {"protocol": "openai", "endpoint": url + "/a/v1", "key_env": ["FAULT_KEY"],
                           "models": {"small": "m-small"}}}
    return Runtime(home, config={"providers": providers, "retry": RETRY, "cache": {"generation": True, **cache}},
                   env=env)


def texts_of(exc: BaseException) -> list[str]:
    """Everything an exception can show: its text, traceback, and every link of its chain
    (``__cause__`` and the hidden ``__context__``, which ``%debug`` shows), with their args."""
    out, seen, link = ["".join(traceback.format_exception(exc))], set(), exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        out += [str(link), repr(link), repr(link.args), repr(vars(link))]
        out += [repr(a) for a in getattr(link, "attempts", []) or []]
        link = link.__cause__ or link.__context__
    return out


def assert_nowhere(key: str, texts: list[str]) -> None:
    tail = key[-12:]  # the distinctive end: a prefix alone could be a public tag
    leaks = [t[:200] for t in texts if key in t or tail in t]
    assert not leaks, leaks


@pytest.fixture
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "h11", "eliza_nb"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


# -- keys validated when read -------------------------------------------------------------

@pytest.mark.parametrize("where", ["environment", ".env"])
@pytest.mark.parametrize("space", ["\n", "\r\n", "  \t", " \n"])
def test_a_key_with_whitespace_around_it_works_and_never_appears(rhome, fault_server, debug_logs, tmp_path, where, space):
    def echo(h):  # the server echoes the credentials in its error and its headers
        said = h.headers.get("Authorization")
        fs.json_reply({"error": {"message": f"denied for {said}"}}, 401, {"WWW-Authenticate": f"Bearer realm={said}"})(h)

    fault_server.script(PATH, fs.json_reply(ok_chat("fine")), echo)
    env = {"FAULT_KEY": KEY + space}
    if where == ".env":
        (tmp_path / ".env").write_text(f'FAULT_KEY="{KEY}{json.dumps(space)[1:-1]}"\n')  # escapes: a quoted value keeps them
        env = {}
    rt = make_rt(rhome, fault_server.url, env)
    try:
        result = rt.generate("hello", provider="fault")
        with pytest.raises(ElizaError) as info:
            rt.generate("hello again", provider="fault")
    finally:
        rt.close()
    assert result.text == "fine"
    assert [r.headers["Authorization"] for r in fault_server.requests] == [f"Bearer {KEY}"] * 2  # stripped, sent
    assert "refused the credentials (HTTP 401)" in one_line(str(info.value))
    texts = [*texts_of(info.value), repr(result), debug_logs.text,
             *(repr((r.name, r.getMessage(), r.args)) for r in debug_logs.records),
             rt.ledger.dataframe().to_csv(), *(p.read_bytes().decode("latin-1") for p in rhome.rglob("*") if p.is_file())]
    assert any("httpcore" in r.name for r in debug_logs.records)  # the HTTP stack did log at DEBUG
    assert_nowhere(KEY, texts)


@pytest.mark.parametrize("where", ["environment", ".env"])
@pytest.mark.parametrize("inside, kind", [(" ", "a space"), ("\n", "a space"), ("\x01", "a control character"),
                                          ("\x7f", "a control character"), ("é", "a non-ASCII character"),
                                          ("\u200b", "a non-ASCII character")])
def test_a_key_with_a_bad_character_inside_is_one_line_naming_the_variable(rhome, fault_server, tmp_path, where,
                                                                          inside, kind):
    fault_server.script(PATH, fs.json_reply(ok_chat("must not be asked")))
    key = KEY[:16] + inside + KEY[16:]
    env = {"FAULT_KEY": key}
    if where == ".env":
        (tmp_path / ".env").write_text(f'FAULT_KEY="{key}"\n', encoding="utf-8")  # the character itself, quoted
        env = {}
    rt = make_rt(rhome, fault_server.url, env)
    try:
        for call in (lambda: rt.generate("hello", provider="fault"), lambda: rt.stream("hello", provider="fault").text()):
            with pytest.raises(ConfigError) as info:
                call()
            assert one_line(str(info.value)) == f"[fault] FAULT_KEY has {kind} inside the key; set it to the key alone"
            assert info.value.__cause__ is None
            assert_nowhere(KEY[16:], texts_of(info.value))
            assert_nowhere(KEY[:16], texts_of(info.value))
        status = key_status(rt.catalog.get("fault"), rt.env)
        assert (status.label, status.ready, status.present) == ("✗ fix FAULT_KEY", False, "invalid")
        assert rt.providers_table().set_index("provider").loc["fault", "key_present"] == "invalid"
    finally:
        rt.close()
    assert fault_server.requests == []  # nothing was sent


def test_a_blank_key_is_no_key(rhome, fault_server):
    fault_server.script(PATH, fs.json_reply(ok_chat("must not be asked")))
    rt = make_rt(rhome, fault_server.url, {"FAULT_KEY": " \n"})
    try:
        with pytest.raises(ElizaError, match="no API key: set FAULT_KEY"):
            rt.generate("hello", provider="fault")
    finally:
        rt.close()
    assert fault_server.requests == []


# -- masking before the cut, and a cut key's start ------------------------------------------

def vertex_rt(home: Path, url: str) -> Runtime:
    providers = {"claude_vertex": {"endpoint": url + "/vertex", "region": "us-east5", "project": "p"}}
    return Runtime(home, config={"providers": providers, "retry": RETRY}, env={"VERTEX_ACCESS_TOKEN": TOKEN})


def near_the_cut(at: int, token: str = TOKEN) -> str:
    return "x" * at + " credentials " + token + " were refused"


ECHOES = {
    # (name, behaviour): the token starts a little before the 300th character of the message
    "plain-text body": lambda at: fs.raw(near_the_cut(at), 500, content_type="text/plain"),
    "JSON message": lambda at: fs.json_reply({"error": {"message": near_the_cut(at)}}, 500),
    "JSON object message": lambda at: fs.json_reply({"error": {"message": {"detail": near_the_cut(at)}}}, 500),
    "JSON detail list": lambda at: fs.json_reply({"detail": [{"msg": near_the_cut(at)}]}, 500),
    "token cut by the server": lambda at: fs.json_reply({"error": {"message": near_the_cut(at, TOKEN[:60] + "…")}}, 500),
    "token cut by the server, quoted": lambda at: fs.json_reply(
        {"error": {"message": f"{'x' * at} credentials '{TOKEN[:40]}...'"}}, 500),
}


@pytest.mark.parametrize("echo", list(ECHOES))
@pytest.mark.parametrize("at", [200, 250, 270, 279, 285, 290])
def test_a_token_echoed_near_the_cut_leaves_no_start_of_it(rhome, fault_server, debug_logs, echo, at):
    fault_server.script("*", ECHOES[echo](at))
    rt = vertex_rt(rhome, fault_server.url)
    try:
        with pytest.raises(ElizaError) as info:
            rt.generate("hello", provider="claude_vertex", failover=False)
    finally:
        rt.close()
    assert fault_server.requests and fault_server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    message = one_line(str(info.value))
    assert "xxxxx" in message  # the provider's message is shown, cut
    for text in (message, *texts_of(info.value), debug_logs.text):
        assert TOKEN[:8] not in text, text[-120:]  # no start of the token of 8 characters or more


def test_mask_masks_before_the_cut_and_a_cut_start_of_8_characters_or_more():
    key = "ya29." + "a0AfB_byC" * 20
    for at in range(260, 300):
        out = redact.mask("m" * at + key + " tail" * 20, (key,), limit=300)
        assert len(out) <= 300 and "a0AfB" not in out and out.endswith("…"), (at, out)
    # a key cut short before the text reached us: 8 characters or more of its start are
    # masked, wherever they are; fewer (the public tag and a character or two) stay
    assert redact.mask("said " + key[:8], (key,)) == "said ***"
    assert redact.mask("said " + key[:7], (key,)) == "said " + key[:7]
    assert redact.mask(f'said "{key[:30]}…" twice: {key[:9]}x', (key,)) == 'said "***…" twice: ***x'
    assert redact.mask(f"said {key[:30]}", (key,), limit=20) == "said ***"  # masked before the cut
    assert redact.mask(key[:5] + "other text", (key,)) == key[:5] + "other text"
    dotted = "sk-abcd12345678.XYZsecretpart0123"  # the sk- pattern would stop at the dot and leave the tail
    assert redact.mask(f"got {dotted[:25]} x", (dotted,)) == "got *** x"
    # failures.scrub is mask on one line
    assert failures.scrub(f"line one\n{key}\nline two", key) == "line one *** line two"


def test_a_key_cut_short_by_the_server_is_masked_wherever_the_limit_falls():
    key = "zq-" + secrets.token_hex(20)
    for at in range(0, 320, 7):
        out = failures.scrub("w" * at + key[:30] + "... more words", key)
        assert key[:8] not in out and len(out) <= failures.MAX_MESSAGE, (at, out)


# -- answers holding a key --------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_holding_a_key_is_returned_masked_and_not_cached(rhome, fault_server, stream, monkeypatch):
    other = "sk-other-" + secrets.token_hex(12)  # a key of another provider, seen in the environment
    monkeypatch.setenv("SOME_OTHER_API_KEY", other)
    said = f"Your key is {KEY} and the other one is {other}."

    def echo(h):
        if isinstance(h.body, dict) and h.body.get("stream"):
            parts = [said[:20], said[20:]]
            fs.sse([json.dumps({"model": "m-small", "choices": [{"index": 0, "delta": {"content": p},
                                                                 "finish_reason": "stop" if i else None}]})
                    for i, p in enumerate(parts)])(h)
        else:
            fs.json_reply(ok_chat(said))(h)

    fault_server.script(PATH, echo)
    rt = make_rt(rhome, fault_server.url, {"FAULT_KEY": KEY})
    try:
        results = []
        for _ in range(2):
            if stream:
                s = rt.stream("echo my key", provider="fault")
                s.text()
                results.append(s.result)
            else:
                results.append(rt.generate("echo my key", provider="fault"))
        stats = rt.cache.stats().to_string()
    finally:
        rt.close()
    for result in results:
        assert result.text == "Your key is [redacted] and the other one is [redacted]."
        assert KEY_NOTE in result.notes and not result.cached
    assert len(fault_server.requests) == 2  # the first answer was not cached: the second call asked again
    files = [p.read_bytes().decode("latin-1") for p in rhome.rglob("*") if p.is_file()]
    for key in (KEY, other):
        assert_nowhere(key, [stats, *files, *(repr(r) for r in results)])


def test_an_answer_without_a_key_is_still_cached(rhome, fault_server):
    fault_server.script(PATH, fs.json_reply(ok_chat(f"a word that starts like the key: {KEY[:12]}")))
    rt = make_rt(rhome, fault_server.url, {"FAULT_KEY": KEY})
    try:
        first = rt.generate("hi", provider="fault")
        second = rt.generate("hi", provider="fault")
    finally:
        rt.close()
    assert KEY_NOTE not in first.notes and second.cached and second.text == first.text
    assert len(fault_server.requests) == 1


def test_streamed_chunks_never_show_an_echoed_key_even_split_across_chunks(rhome, fault_server):
    said = f"Your key is {KEY}, see?"
    cut = said.index(KEY) + 5  # the key split across two chunks, and again one character at a time
    parts = [said[:cut], said[cut:], *"abc"]

    def echo(h):
        fs.sse([json.dumps({"model": "m-small", "choices": [{"index": 0, "delta": {"content": p},
                                                             "finish_reason": "stop" if i == len(parts) - 1 else None}]})
                for i, p in enumerate(parts)])(h)

    fault_server.script(PATH, echo)
    rt = make_rt(rhome, fault_server.url, {"FAULT_KEY": KEY}, generation=False)
    try:
        stream = rt.stream("echo", provider="fault")
        chunks = list(stream)
    finally:
        rt.close()
    shown = "".join(chunks)
    assert shown == "Your key is [redacted], see?abc" and stream.result is not None
    assert stream.result.text == shown
    assert not any(KEY[:8] in c for c in chunks)  # not even the key's start, shown for a moment
