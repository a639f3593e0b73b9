"""eliza_nb behind a company gateway, before and after: the checks of issue 19 run against a
real LiteLLM proxy (tests/gateway/gateway.py) in front of a real llama_cpp.server, by this
tree and by another checkout of eliza_nb (``--before``, e.g. a ``git worktree`` of an older
commit), each in its own process.

    .venv/bin/python bench/gateway.py --before /tmp/eliza-before

Without ``--before`` only this tree runs. Writes bench/results/gateway.md. What a check shows
is an outcome, not a speed: the table is "what a user sees".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, table, write_result

LONG = " ".join(f"word{i} alpha beta" for i in range(1200)) + "\nWhat is the last word above?"
CHECKS = {
    "stream": "over-long prompt, streamed, cache on, fresh session (twice)",
    "plain": "over-long prompt, not streamed",
    "stream_after": "the same prompt streamed next, same session",
    "slots": "benchmark, concurrency 2, single-slot server: full answers of 12 (max_concurrency = 1 set or not)",
    "wait": "429 from an rpm-limited model group (llm_provider-retry-after: 60): first wait",
    "usage": "streamed usage vs the server's count for the same prompt",
    "batches": "300 texts with embedding_batch_size = 256: requests",
    "message": "the context-too-long message as shown",
}


def run_checks(gateway: str, log: str) -> dict[str, str]:
    """Every check against the gateway with whichever eliza_nb is importable; one line each."""
    import time

    from eliza_nb.core.runtime import Runtime

    home = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    out: dict[str, str] = {}

    def make(**extra: object) -> Runtime:
        entry = {"protocol": "openai", "endpoint": gateway, "key_env": ["GW_KEY"], "list_models": False,
                 "models": {"small": "smol", "medium": "smol", "large": "smol", "embedding": "minilm"}, **extra}
        return Runtime(home, config={"providers": {"gw": entry}}, env={"GW_KEY": "sk-gateway-master-7f3a"})

    def attempts(r: object) -> str:
        return " → ".join(a.outcome for a in getattr(r, "attempts", []))

    rt = make()
    seen = []
    for _ in range(2):
        s = rt.stream(LONG, provider="gw", max_tokens=8, cache=True)
        "".join(s)
        seen.append(s.result)
    first, second = seen
    out["stream"] = (f"'{first.text[:20]}' finish {first.finish_reason}; second call "
                     f"{'a cache hit of it' if second.cached else 'asked the gateway again'}")
    try:
        r: object = rt.generate(LONG, provider="gw", max_tokens=8, temperature=0)
        out["plain"] = f"answered ({attempts(r)})"
    except Exception as exc:  # the old tree's failure is the finding
        r = exc
        out["plain"] = f"{type(exc).__name__} ({attempts(exc)})"
    s = rt.stream(LONG, provider="gw", max_tokens=8, temperature=0)
    "".join(s)
    out["stream_after"] = f"{'answered' if s.result.text.strip() else 'empty'} ({attempts(s.result)})"
    msg = next((a.detail for a in getattr(r, "attempts", []) if a.outcome == "ContextTooLongError"), "")
    out["message"] = f"{len(msg)} chars: …{msg[msg.find('(HTTP 400)'):][:90]}…" if msg else "(none)"

    import inspect

    try:
        from eliza_nb.core.tuning.run import benchmark
    except ImportError:  # a tree from before core/tuning
        from eliza_nb.core.bench import benchmark  # type: ignore[no-redef]

    cases = [{"id": f"c{i}", "input": f"Write a long story about a {a}.", "expected": "the"}
             for i, a in enumerate(["cat", "dog", "fox", "owl", "bee", "elk"])]
    optional = {k: False for k in ("progress", "save") if k in inspect.signature(benchmark).parameters}
    full = []
    for cap in (None, 1):
        capped = make(**({"max_concurrency": cap} if cap else {}))
        df = benchmark(capped, cases, models=["gw:smol"], repeats=2, concurrency=2, max_tokens=24, temperature=0.7,
                       **optional)
        full.append(int((df["completion_tokens"] >= 16).sum()))
        capped.close()
    out["slots"] = f"without the cap {full[0]} of 12; with it {full[1]} of 12"
    waits: list[float] = []
    now = [1000.0]

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    limited = Runtime(home, config={"providers": {"gw": {
        "protocol": "openai", "endpoint": gateway, "key_env": ["GW_KEY"], "list_models": False,
        "models": {"small": "smol-limited"}}}, "retry": {"max_total_s": 100, "max_attempts": 3}},
        env={"GW_KEY": "sk-gateway-master-7f3a"}, sleep=sleep, clock=lambda: now[0])
    try:
        for _ in range(4):
            limited.generate("hi", provider="gw", max_tokens=2)
        out["wait"] = "no 429 seen"
    except Exception as exc:
        out["wait"] = (f"{waits[0]:.1f} s, then {type(exc).__name__} after {len(waits) + 1} requests" if waits
                       else f"no wait: {type(exc).__name__} at once")

    plain = rt.generate("Say hello", provider="gw", max_tokens=8, temperature=0)
    s = rt.stream("Say hello", provider="gw", max_tokens=8, temperature=0)
    "".join(s)
    u = s.result.usage
    out["usage"] = (f"stream {u.prompt_tokens} → {u.completion_tokens} (source: {getattr(u, 'source', 'not said')}), "
                    f"plain {plain.usage.prompt_tokens} → {plain.usage.completion_tokens}; footer '{s.result.footer_parts()[1][0]}'")

    emb = make(embedding_batch_size=256)
    texts = [f"text {i} about {['cats', 'dogs', 'owls'][i % 3]} {time.time()}" for i in range(300)]
    def embedding_requests() -> int:  # the proxy's access log: one line per request it answered
        return Path(log).read_text(errors="replace").count("POST /v1/embeddings")

    before = embedding_requests()
    emb.embed(texts, provider="gw")
    time.sleep(0.5)  # the log line is written after the answer
    out["batches"] = f"{embedding_requests() - before} request(s)"
    for r_ in (rt, limited, emb):
        r_.close()
    return out


def tree_run(python: str, tree: Path, gateway: str, log: str) -> dict[str, str]:
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
            "import gateway as g; print('@@' + json.dumps(g.run_checks(sys.argv[3], sys.argv[4])))")
    done = subprocess.run([python, "-c", code, str(tree), str(ROOT / "bench"), gateway, log], capture_output=True,
                          text=True, timeout=1200, cwd=tempfile.gettempdir())
    line = next((x for x in done.stdout.splitlines() if x.startswith("@@")), None)
    if line is None:
        raise RuntimeError(f"checks failed in {tree}: {done.stderr[-2000:]}")
    return json.loads(line[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout of eliza_nb to compare with")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "tests" / "gateway"))
    from gateway import chat_model, embedding_model, run_gateway
    from loopback_llama import run_llama_server

    from eliza_nb.adapters.local_models import MINILM, prepare_embedding_model

    work = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    prepare_embedding_model(work / "models_home", MINILM)
    with run_llama_server(work / "models_home", work / "up", None) as up, \
            run_gateway([chat_model("smol", up), embedding_model("minilm", up), chat_model("smol-limited", up, rpm=2)],
                        work / "gw", router={"routing_strategy": "usage-based-routing-v2"}) as gw:
        trees = ([("before", args.before)] if args.before else []) + [("after", ROOT)]
        found = {name: tree_run(sys.executable, tree, gw, str(work / "gw" / "litellm.log")) for name, tree in trees}
    headers = ["check", *found]
    rows = [[CHECKS[k], *(found[n][k] for n in found)] for k in CHECKS]
    how = "python bench/gateway.py" + (f" --before {args.before}" if args.before else "")
    write_result("gateway", "Behind a LiteLLM proxy in front of llama_cpp.server: before and after",
                 table(headers, rows, "l" * len(headers)), how)


if __name__ == "__main__":
    main()
