"""One chat client per process, driven by bench/overhead.py over stdin/stdout (JSON lines).

    python bench/clients.py CLIENT BASE_URL

CLIENT is one of CLIENTS below. Each runs in the venv that has its library (eliza_nb's
own venv, or a ``.venv-bench-*`` one), so this file imports only what its client needs.
Commands, one JSON object a line; each answer is one JSON line:

    {"op": "run", "mode": "gen"|"stream", "n": 25}  -> {"t": [s, ...], "ttfc": [s, ...]}
    {"op": "conc", "threads": 4, "calls": 64, "path": "/d50"} -> {"wall": s, "t": [s, ...]}
    {"op": "quit"}

Timings are taken here, around each call only (``perf_counter``); whatever a cell
prints or displays goes to a null sink, the same for every client, so the protocol's
own pipe is never in a timed region.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-not-a-real-key-0000000000"
PROMPT = "Say hello."
MESSAGES = [{"role": "user", "content": PROMPT}]
ANSWER = "Hello! How can I help?"
MODEL = "bench-model"
clock = time.perf_counter


class _Null:
    """stdout for the timed regions: accepts everything, keeps nothing."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


Call = Callable[[], Any]


# -- the clients: each returns (gen, stream or None, make_for_path) ---------------------------------
# gen() -> text; stream(on_first) -> text, calling on_first() when the first text arrives;
# make_for_path(path) -> a gen() against base + path (the concurrency curves' delayed server).
def raw_httpx(base: str):
    import httpx

    client = httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0))
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": MODEL, "messages": MESSAGES, "temperature": 0.0, "max_tokens": 16}

    def make(path: str = "") -> Call:
        url = f"{base}{path}/v1/chat/completions"

        def gen() -> str:
            r = client.post(url, json=body, headers=headers)
            r.raise_for_status()
            return r.json()["choices"][0]["message"]["content"]
        return gen

    url = f"{base}/v1/chat/completions"

    def stream(on_first: Call) -> str:
        parts: list[str] = []
        with client.stream("POST", url, json={**body, "stream": True, "stream_options": {"include_usage": True}},
                           headers=headers) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    for choice in json.loads(line[6:])["choices"]:
                        text = choice["delta"].get("content")
                        if text:
                            if not parts:
                                on_first()
                            parts.append(text)
        return "".join(parts)

    return make(), stream, make


def openai_sdk(base: str):
    from openai import OpenAI

    client = OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
    clients = {"": client}

    def make(path: str = "") -> Call:
        c = clients.get(path) or clients.setdefault(path, OpenAI(base_url=f"{base}{path}/v1", api_key=KEY, max_retries=0))

        def gen() -> str:
            r = c.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.0, max_tokens=16)
            return r.choices[0].message.content
        return gen

    def stream(on_first: Call) -> str:
        parts: list[str] = []
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.0, max_tokens=16,
                                                    stream=True, stream_options={"include_usage": True}):
            for choice in chunk.choices:
                if choice.delta.content:
                    if not parts:
                        on_first()
                    parts.append(choice.delta.content)
        return "".join(parts)

    return make(), stream, make


def litellm_sdk(base: str):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price table
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True

    def make(path: str = "") -> Call:
        api_base = f"{base}{path}/v1"

        def gen() -> str:
            r = litellm.completion(model=f"openai/{MODEL}", api_base=api_base, api_key=KEY, messages=MESSAGES,
                                   temperature=0.0, max_tokens=16)
            return r.choices[0].message.content
        return gen

    def stream(on_first: Call) -> str:
        parts: list[str] = []
        for chunk in litellm.completion(model=f"openai/{MODEL}", api_base=f"{base}/v1", api_key=KEY, messages=MESSAGES,
                                        temperature=0.0, max_tokens=16, stream=True,
                                        stream_options={"include_usage": True}):
            for choice in chunk.choices:
                if choice.delta.content:
                    if not parts:
                        on_first()
                    parts.append(choice.delta.content)
        return "".join(parts)

    return make(), stream, make


def _eliza_runtime(base: str):
    sys.path.insert(0, str(ROOT))
    import eliza_nb
    from eliza_nb.core.runtime import Runtime

    # The shipped catalog's openai entry (its settings, budget and prices) pointed at the loopback
    # server: what a user's call goes through, with temperature 0 and 16 tokens like the other clients.
    providers = {"openai": {"endpoint": f"{base}/v1"}}
    for delay in (50,):  # the concurrency curves' delayed endpoint, as a second provider
        providers[f"openai_d{delay}"] = {"protocol": "openai", "endpoint": f"{base}/d{delay}/v1",
                                         "key_env": ["OPENAI_API_KEY"], "models": {"small": MODEL}}
    os.environ["OPENAI_API_KEY"] = KEY
    config = {"providers": providers, "defaults": {"provider": "openai", "temperature": 0.0, "max_output_tokens": 16}}
    rt = Runtime(tempfile.mkdtemp(prefix="eliza-bench-"), config=config)
    eliza_nb.set_runtime(rt)
    return eliza_nb


def eliza_api(base: str):
    eliza_nb = _eliza_runtime(base)

    def make(path: str = "") -> Call:
        provider = "openai_" + path.strip("/")
        return (lambda: eliza_nb.generate(PROMPT).text) if not path else (lambda: eliza_nb.generate(PROMPT, provider=provider).text)

    def stream(on_first: Call) -> str:
        parts: list[str] = []
        for text in eliza_nb.stream(PROMPT):
            if not parts:
                on_first()
            parts.append(text)
        return "".join(parts)

    return make(), stream, make


def _shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.history_manager.enabled = False
    return shell


def _cell(shell: Any, source: str) -> Call:
    def run() -> Any:
        r = shell.run_cell(source, store_history=False)
        if not r.success:
            raise RuntimeError(f"cell failed: {r.error_before_exec or r.error_in_exec!r}")
        return r.result
    return run


def eliza_magic(base: str):
    eliza_nb = _eliza_runtime(base)
    shell = _shell()
    shell.run_line_magic("load_ext", "eliza_nb")
    shell.user_ns["eliza_nb"] = eliza_nb
    gen_cell = _cell(shell, f"%%eliza generate --no-stream -o r\n{PROMPT}")
    stream_cell = _cell(shell, f"%%eliza generate -o r\n{PROMPT}")

    def gen() -> str:
        gen_cell()
        return shell.user_ns["r"].text

    def stream(on_first: Call) -> str:
        stream_cell()
        return shell.user_ns["r"].text

    return gen, stream, None


def empty_cell(base: str):
    shell = _shell()
    run = _cell(shell, "")
    return (lambda: (run(), ANSWER)[1]), None, None


def httpx_cell(base: str):
    """Raw httpx called from a cell: the floor under any magic that makes an HTTP call."""
    gen, stream, _ = raw_httpx(base)
    shell = _shell()
    shell.user_ns.update(_gen=gen)
    run = _cell(shell, "r = _gen()")
    return (lambda: (run(), shell.user_ns["r"])[1]), None, None


def jupyter_ai(base: str):
    os.environ["OPENAI_API_KEY"] = KEY
    shell = _shell()
    shell.run_line_magic("load_ext", "jupyter_ai_magics")
    params = json.dumps({"openai_api_base": f"{base}/v1", "temperature": 0.0, "max_tokens": 16}, separators=(",", ":"))
    # %%ai splits its line on single spaces, so the JSON holds none
    run = _cell(shell, f"%%ai openai-chat-custom:{MODEL} -f text -m {params}\n{PROMPT}")

    def gen() -> str:
        out = run()
        data = getattr(out, "data", out)
        text = data.get("text/plain", "") if isinstance(data, dict) else str(data)
        return ANSWER if ANSWER in text else text
    return gen, None, None


CLIENTS: dict[str, Callable[[str], Any]] = {
    "httpx": raw_httpx, "openai": openai_sdk, "litellm": litellm_sdk, "jupyter_ai": jupyter_ai,
    "eliza_api": eliza_api, "eliza_magic": eliza_magic, "empty_cell": empty_cell, "httpx_cell": httpx_cell,
}


def _run(gen: Call, stream: Any, mode: str, n: int) -> dict[str, list[float]]:
    times, ttfc = [], []
    for _ in range(n):
        first = [0.0]
        if mode == "stream":
            t0 = clock()
            stream(lambda first=first: first.__setitem__(0, clock()))
            t1 = clock()
            if first[0]:
                ttfc.append(first[0] - t0)
        else:
            t0 = clock()
            gen()
            t1 = clock()
        times.append(t1 - t0)
    return {"t": times, "ttfc": ttfc}


def _conc(make: Callable[[str], Call], threads: int, calls: int, path: str) -> dict[str, Any]:
    gen = make(path)
    gen()  # the delayed endpoint's first connection is not part of the curve
    lat: list[float] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        t0 = clock()
        out = gen()
        dt = clock() - t0
        if out != ANSWER:
            raise RuntimeError(f"unexpected answer {out!r}")
        with lock:
            lat.append(dt)

    with ThreadPoolExecutor(threads) as pool:
        t0 = clock()
        list(pool.map(one, range(calls)))
        wall = clock() - t0
    return {"wall": wall, "t": lat}


def main() -> None:
    name, base = sys.argv[1], sys.argv[2]
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = _Null()  # cells print and display; none of it reaches the protocol pipe
    gen, stream, make = CLIENTS[name](base)
    for _ in range(3):  # warm-up, and a check that every client reads the same answer
        out = gen()
        if out != ANSWER:
            raise SystemExit(f"{name}: unexpected answer {out!r}")
        if stream is not None and (out := stream(lambda: None)) != ANSWER:
            raise SystemExit(f"{name}: unexpected streamed answer {out!r}")
    proto.write(json.dumps({"ready": True, "stream": stream is not None, "conc": make is not None}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        if cmd["op"] == "run":
            answer = _run(gen, stream, cmd["mode"], int(cmd["n"]))
        else:
            answer = _conc(make, int(cmd["threads"]), int(cmd["calls"]), cmd.get("path", ""))
        proto.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
