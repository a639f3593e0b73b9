"""Keys never leak. Every provider gets a distinctive fake key; then the quickstart notebook,
the magics, successful and failing calls (401/403/400/500 with the server echoing the
request headers back, plain-text errors, timeouts, resets, errors in the middle of a
stream) and the replay recorder run; every output, repr, exception text (with its chained
context), log record (DEBUG, httpx/httpcore included), warning, notebook file, cache
file, ledger and replay archive is then searched for the keys."""

from __future__ import annotations

import hashlib
import json
import logging
import traceback
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import fault_server as fs
import nbformat
import pytest
from IPython.utils.capture import capture_output
from nbclient import NotebookClient
from rel_helpers import closed_port

from eliza_nb.core.catalog import Catalog
from eliza_nb.core.errors import ElizaError
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.types import ModelClass

ROOT = Path(__file__).resolve().parents[2]
KEY_VARS = sorted({var for entry in Catalog.load({}, {}) for var in entry.key_env})
FAKE = {var: f"zzsecret{i:02d}{hashlib.sha1(var.encode()).hexdigest()[:18]}" for i, var in enumerate(KEY_VARS)}
REMOTE = [e.id for e in Catalog.load({}, {}) if e.needs_key]
MODE = {"now": "ok"}


def echo_of(h) -> str:
    """The request's credentials, as a careless server would put them in an error."""
    return (f"denied for Authorization={h.headers.get('Authorization')} x-api-key={h.headers.get('x-api-key')} "
            f"x-goog-api-key={h.headers.get('x-goog-api-key')} path={h.path}")


def success(h) -> None:
    path, body = h.path.split("?")[0], h.body if isinstance(h.body, dict) else {}
    vec = [0.1, 0.2, 0.3, 0.4]
    if path.endswith("/embeddings"):
        return fs.json_reply({"data": [{"index": i, "embedding": vec} for i, _ in enumerate(body.get("input") or [])]})(h)
    if path.endswith(":embedContent"):
        return fs.json_reply({"embedding": {"values": vec}})(h)
    if path.endswith(":batchEmbedContents"):
        return fs.json_reply({"embeddings": [{"values": vec} for _ in body.get("requests") or []]})(h)
    if path.endswith(":generateContent"):
        return fs.json_reply({"candidates": [{"content": {"parts": [{"text": "fine"}]}, "finishReason": "STOP"}],
                              "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1}})(h)
    if path.endswith(("/messages", ":rawPredict")):
        return fs.json_reply({"type": "message", "model": "m", "content": [{"type": "text", "text": "fine"}],
                              "stop_reason": "end_turn", "usage": {"input_tokens": 2, "output_tokens": 1}})(h)
    if path.endswith("/images/generations"):
        return fs.json_reply({"data": [{"url": "http://127.0.0.1/image.png"}]})(h)
    if body.get("stream"):
        return fs.sse([json.dumps({"choices": [{"index": 0, "delta": {"content": "fine"}, "finish_reason": "stop"}]})])(h)
    return fs.json_reply({"model": "m", "choices": [{"index": 0, "message": {"content": "fine"}, "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 2, "completion_tokens": 1}})(h)


def behaviour(h) -> None:
    """What the server does now (MODE), for any path."""
    mode, said = MODE["now"], echo_of(h)
    if mode == "ok":
        return success(h)
    if mode in ("401", "403", "400", "429", "500"):
        return fs.json_reply({"error": {"message": said, "type": "error", "code": said}}, int(mode),
                             {"X-Echo": said, "WWW-Authenticate": f"Bearer error={said}"})(h)
    if mode == "text500":
        return fs.raw(f"<html>upstream {said}</html>", 500, content_type="text/html")(h)
    if mode == "slow":
        return fs.slow(5, fs.json_reply({}))(h)
    if mode == "reset":
        return fs.drop()(h)
    if mode == "midstream":  # one chunk, then an error event echoing the headers, in each protocol's shape
        events = [json.dumps({"choices": [{"index": 0, "delta": {"content": "part"}}]}),
                  json.dumps({"type": "error", "error": {"type": "api_error", "message": said}})]
        return fs.sse(events, done=False)(h)
    raise AssertionError(mode)


def make_config(url: str, retry: dict | None = None) -> dict:
    providers: dict[str, Any] = {}
    for pid in REMOTE:
        providers[pid] = {"endpoint": f"{url}/{pid}"}
    providers["heurist"]["image_endpoint"] = f"{url}/heurist-image"
    return {"providers": providers,
            "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.02, "timeout_s": 2.0, **(retry or {})},
            "cache": {"generation": True}}


class Corpus:
    """Everything a user, a log or a file could show, collected as text and bytes."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str]] = []

    def add(self, where: str, thing: Any) -> None:
        if isinstance(thing, bytes):
            self.parts.append((where, thing.decode("latin-1")))
        else:
            self.parts.append((where, str(thing)))
            self.parts.append((where + " (repr)", repr(thing)))

    def add_exception(self, where: str, exc: BaseException) -> None:
        self.add(where, exc)
        self.add(where + " traceback", "".join(traceback.format_exception(exc)))
        seen, link = set(), exc
        while link is not None and id(link) not in seen:  # the hidden context too: %debug can show it
            seen.add(id(link))
            self.add(where + " chain", link)
            for a in getattr(link, "attempts", []) or []:
                self.add(where + " attempt", a)
            link = link.__cause__ or link.__context__

    def add_files(self, where: str, root: Path) -> int:
        n = 0
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self.add(f"{where}: {path.relative_to(root)}", path.read_bytes())
            n += 1
        return n

    def leaks(self) -> list[str]:
        found = []
        for where, text in self.parts:
            for var, key in FAKE.items():
                if key in text or key[8:] in text:  # the whole key, or its distinctive tail
                    at = text.find(key[8:])
                    found.append(f"{var} in {where}: ...{text[max(0, at - 80):at + 40]!r}")
        return found


def failing_calls(rt: Runtime, pid: str, mode: str) -> list[tuple[str, Any]]:
    """(what, call) for every kind of request a provider takes."""
    calls = [("generate", partial(rt.generate, "hello", provider=pid, failover=False, cache=False)),
             ("stream", lambda: rt.stream("hello", provider=pid, failover=False, cache=False).text())]
    if pid in ("openai", "google"):
        calls.append(("embed", partial(rt.embed, ["fresh text " + mode], provider=pid)))
    if pid in ("openai", "heurist"):
        calls.append(("image", partial(rt.image, "a cat", provider=pid)))
    return calls


def capture_cell(ip, corpus: Corpus, source: str) -> Any:
    with capture_output() as cap:
        result = ip.run_cell(source)
    corpus.add(f"cell {source[:40]!r} stdout", cap.stdout + cap.stderr)
    for o in cap.outputs:
        corpus.add(f"cell {source[:40]!r} output", json.dumps(o.data, default=str) + json.dumps(o.metadata, default=str))
    if result.error_in_exec is not None:
        corpus.add_exception(f"cell {source[:40]!r}", result.error_in_exec)
    return result


@pytest.fixture
def keyed(home, monkeypatch, tmp_path):
    """Every provider's key variable set to its fake; half from the environment, half from ./.env."""
    monkeypatch.chdir(tmp_path)
    dotenv = []
    for i, (var, key) in enumerate(FAKE.items()):
        if i % 2:
            dotenv.append(f"{var}={key}")
        else:
            monkeypatch.setenv(var, key)
    (tmp_path / ".env").write_text("\n".join(dotenv) + "\n")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    return home


def test_no_key_in_any_output_log_file_or_archive(keyed, fault_server, ip, tmp_path, caplog):
    import eliza_nb

    fault_server.script("*", behaviour)
    corpus = Corpus()
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "eliza_nb", "asyncio", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    rt = Runtime(keyed, config=make_config(fault_server.url))
    slow_rt = Runtime(keyed, config=make_config(fault_server.url, {"max_attempts": 1, "timeout_s": 0.3}))
    old = eliza_nb.set_runtime(rt)
    errors = 0
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for cmd in ("%eliza providers", "%eliza config", "%eliza help"):
                capture_cell(ip, corpus, cmd)
            # successes, so the cache, the ledger and the archive hold something
            MODE["now"] = "ok"
            for pid in REMOTE:
                calls = [partial(rt.generate, "hello", provider=pid, failover=False)]
                if ModelClass.EMBEDDING in rt.catalog.get(pid).models:
                    calls.append(partial(rt.embed, ["hello", "world"], provider=pid))
                for call in calls:
                    try:
                        corpus.add(f"{pid} ok", call())
                    except ElizaError as exc:  # e.g. a protocol the success script does not answer
                        corpus.add_exception(f"{pid} ok", exc)
            capture_cell(ip, corpus, "%%eliza generate -p openai --no-stream -o _ok\nhello")
            capture_cell(ip, corpus, "%eliza embed -p openai -o _v hello")
            # failures of every kind, through every protocol
            for mode in ("401", "403", "400", "429", "500", "text500", "reset", "midstream"):
                MODE["now"] = mode
                for pid in REMOTE:
                    for what, call in failing_calls(rt, pid, mode):
                        try:
                            corpus.add(f"{pid} {mode} {what}", call())
                        except ElizaError as exc:
                            errors += 1
                            corpus.add_exception(f"{pid} {mode} {what}", exc)
                capture_cell(ip, corpus, f"%%eliza generate -p anthropic --no-cache\nhello {mode}")
                capture_cell(ip, corpus, f"%%eliza generate -p google --no-stream --no-cache\nhello {mode}")
                capture_cell(ip, corpus, f"%eliza embed -p openai fresh {mode}")
            MODE["now"] = "slow"
            for pid in ("openai", "anthropic", "google", "claude_vertex"):
                try:
                    slow_rt.generate("hello", provider=pid, failover=False)
                except ElizaError as exc:
                    errors += 1
                    corpus.add_exception(f"{pid} timeout", exc)
            MODE["now"] = "401"
            try:  # a failover chain across protocols: the attempts list names them all
                rt.generate("hello", provider="openai", failover=["anthropic:small", "google:small", "groq:small"])
            except ElizaError as exc:
                corpus.add_exception("chain", exc)
            for cmd in ("%eliza usage", "%eliza cache", "%eliza config"):
                capture_cell(ip, corpus, cmd)
        corpus.add("warnings", [str(w.message) for w in caught])
    finally:
        eliza_nb.set_runtime(old)
        MODE["now"] = "ok"
    assert errors > 100, "the failing calls ran and failed"
    assert fault_server.requests, "the providers were called"
    sent = fault_server.requests
    assert any(FAKE["OPENAI_API_KEY"] in (r.headers.get("Authorization") or "") for r in sent), "keys were really sent"
    corpus.add("log records", caplog.text)
    corpus.add("log records (raw)", [(r.name, r.getMessage(), r.args) for r in caplog.records])
    corpus.add("ledger", rt.ledger.dataframe().to_csv())
    corpus.add("usage", rt.ledger.totals("model").to_string())
    corpus.add("cache stats", rt.cache.stats().to_string())
    corpus.add("runtime", rt)
    corpus.add("providers table", rt.providers_table().to_string())
    corpus.add("runtime warnings", rt.warnings + slow_rt.warnings)
    corpus.add("config", rt.config)
    corpus.add("session", rt.session.state)
    corpus.add("adapters", [vars(a) for a in rt._adapters.values()])
    rt.close()
    slow_rt.close()
    assert corpus.add_files("home", keyed) > 0  # the cache database, its WAL, everything
    leaks = corpus.leaks()
    assert not leaks, "\n".join(leaks[:20])


def test_no_key_in_a_replay_archive(keyed, fault_server, ip, tmp_path):
    """The recorder (eliza_nb.core.replay.tape) over successes, failures and failover: the archive
    holds answers, never a key."""
    import eliza_nb

    fault_server.script("*", behaviour)
    rt = Runtime(keyed, config=make_config(fault_server.url))
    old = eliza_nb.set_runtime(rt)
    archive = tmp_path / "session.replay"
    corpus = Corpus()
    try:
        assert capture_cell(ip, corpus, f"%eliza record {archive}").success
        for mode in ("ok", "401", "500", "midstream", "ok"):
            MODE["now"] = mode
            for pid in REMOTE:
                try:
                    corpus.add(f"{pid} {mode}", rt.generate(f"hello {mode}", provider=pid, cache=False,
                                                            failover=["openai:small"] if mode == "401" else False))
                except ElizaError as exc:
                    corpus.add_exception(f"{pid} {mode}", exc)
            try:
                rt.embed([f"text {mode}"], provider="openai")
            except ElizaError as exc:
                corpus.add_exception(f"embed {mode}", exc)
        capture_cell(ip, corpus, "%%eliza generate -p groq --no-stream\nhello from the magic")
        assert capture_cell(ip, corpus, "%eliza record --stop").success
    finally:
        eliza_nb.set_runtime(old)
        MODE["now"] = "ok"
        rt.close()
    assert corpus.add_files("replay archive", archive) >= 1
    assert "hello ok" in (archive / "requests.jsonl").read_text()  # it did record the calls
    leaks = corpus.leaks()
    assert not leaks, "\n".join(leaks[:20])


def test_no_key_in_an_executed_notebook(keyed, tmp_path, monkeypatch):
    """The quickstart, run headlessly in a real kernel with every key set (the kernel inherits
    the environment): no key in any output, widget state or the saved file."""
    for var, key in FAKE.items():
        monkeypatch.setenv(var, key)
    # a remote call that fails: openai's endpoint is a closed loopback port (no network)
    (keyed / "config.toml").write_text(f'[providers.openai]\nendpoint = "http://127.0.0.1:{closed_port()}/v1"\n'
                                       '[retry]\nmax_attempts = 2\nbase_delay_s = 0.05\n')
    folder = tmp_path / "nb"
    folder.mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("eliza_nb.providers()"))
    nb.cells.append(nbformat.v4.new_code_cell("%eliza providers"))
    nb.cells.append(nbformat.v4.new_code_cell("%eliza config"))
    nb.cells.append(nbformat.v4.new_code_cell("eliza_nb.runtime()"))
    nb.cells.append(nbformat.v4.new_code_cell("%%eliza generate -p openai\nhi"))
    nb.cells.append(nbformat.v4.new_code_cell("eliza_nb.generate('hi', provider='openai')"))
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    out = folder / "executed.ipynb"
    nbformat.write(nb, out)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert len(outputs) > 10
    assert any("key_present" in json.dumps(o) or "yes" in json.dumps(o) for o in outputs)
    corpus = Corpus()
    assert "cannot connect" in json.dumps(nb.cells[-1].outputs)  # the failing call ran and said why
    corpus.add_files("notebook", folder)
    corpus.add("notebook json", nbformat.writes(nb))
    leaks = corpus.leaks()
    assert not leaks, "\n".join(leaks[:20])

