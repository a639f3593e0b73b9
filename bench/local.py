"""eliza_nb's local path against raw llama-cpp-python: same GGUF files, same settings.

    .venv/bin/python bench/local.py [--runs 5] [--tokens 128] [--texts 200] [--first 5]

- generation tokens/s: ``eliza_nb`` (``Runtime.generate`` on ``llama_local``) against
  ``Llama.create_chat_completion`` on the embedded SmolLM2 GGUF, temperature 0, same
  thread count, context and batch sizes, same stop tokens, prompt re-evaluated each run
  on both sides (eliza_nb does so for determinism);
- embeddings/s: ``eliza_nb.embed`` (distinct texts, so the cache never answers) against
  ``Llama.embed(normalize=True)`` on the same converted MiniLM GGUF, as one batch and as
  one call per text;
- first call: a fresh process's import + model load + a short answer (or one embedding),
  eliza_nb against raw llama-cpp-python, alternating; and the one-time conversion of the
  MiniLM safetensors to GGUF that eliza_nb does on first use.

Each side runs in a process of its own (two llama.cpp models driven from two threads of one
process would compete with each other's idle OpenMP threads on 2 cores), and the sides take
turns, the order alternating, so drift on a noisy machine hits both. Writes
bench/results/local.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, check, table, write_result

sys.path.insert(0, str(ROOT))

PROMPT = "Write a long, detailed story about a robot who learns to paint."
SYSTEM = "You are a helpful assistant."
STOPS = ["<|eot_id|>", "<|eom_id|>"]
ONE = 50  # texts embedded one call each, per run and side


def raw_llama(rt, *, embedding: bool):
    """A ``Llama`` with exactly the settings eliza_nb's llama_local loads the same file with."""
    from llama_cpp import Llama

    from eliza_nb.adapters.local_models import MINILM, SMOLLM2, package_path, prepare_embedding_model

    cfg = rt.adapter("llama_local").config
    if embedding:
        return Llama(model_path=str(prepare_embedding_model(rt.home, MINILM)), embedding=True, n_ctx=cfg.embedding_n_ctx,
                     n_batch=cfg.embedding_n_ctx, n_ubatch=cfg.embedding_n_ctx, n_threads=cfg.n_threads,
                     n_threads_batch=cfg.n_threads, verbose=False)
    return Llama(model_path=str(package_path(SMOLLM2)), n_ctx=cfg.n_ctx, n_batch=cfg.n_batch, n_ubatch=cfg.n_batch,
                 n_threads=cfg.n_threads, n_threads_batch=cfg.n_threads, verbose=False)


def worker(side: str, home: str) -> None:
    """One side in its own process, answering JSON commands on stdin with seconds (and tokens).

    Each side gets a process of its own: two llama.cpp models driven from two threads of
    one process would share 2 cores with each other's idle OpenMP teams (DESIGN.md §4).
    """
    from eliza_nb.core.runtime import Runtime

    rt = Runtime(home, config={}, env={})
    gen_raw = emb_raw = None
    if side == "raw":
        gen_raw, emb_raw = raw_llama(rt, embedding=False), raw_llama(rt, embedding=True)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    clock = time.perf_counter

    def gen(tokens: int) -> tuple[int, float]:
        if gen_raw is not None:
            gen_raw.reset()  # eliza_nb re-evaluates the prompt every call (determinism); so does raw here
            t0 = clock()
            out = gen_raw.create_chat_completion(messages, stop=STOPS, temperature=0.0, max_tokens=tokens,
                                                 repeat_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0)
            return out["usage"]["completion_tokens"], clock() - t0
        t0 = clock()
        r = rt.generate(PROMPT, system=SYSTEM, temperature=0.0, max_tokens=tokens, repetition_penalty=0.0,
                        frequency_penalty=0.0, presence_penalty=0.0)
        return r.usage.completion_tokens, clock() - t0

    def embed(texts: list[str], one: bool) -> float:
        t0 = clock()
        if emb_raw is not None:
            if one:
                for t in texts:
                    emb_raw.embed(t, normalize=True)
            else:
                emb_raw.embed(texts, normalize=True)
        elif one:
            for t in texts:
                rt.embed(t)
        else:
            rt.embed(texts)
        return clock() - t0

    gen(8), embed(["warm-up"], True)  # both models loaded before the first timed command
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "gen":
            n, dt = gen(int(cmd["tokens"]))
            print(json.dumps({"n": n, "t": dt}), flush=True)
        elif cmd["op"] == "embed":
            print(json.dumps({"t": embed(cmd["texts"], bool(cmd["one"]))}), flush=True)
        else:
            break
    rt.close()


class Side:
    def __init__(self, side: str, home: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", side, home], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        if not self.proc.stdout.readline():
            raise SystemExit(f"the {side} worker did not start")

    def ask(self, **cmd: object) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.write('{"op": "quit"}\n')
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def bench_throughput(home: str, runs: int, tokens: int, n_texts: int) -> dict[str, float]:
    """Generation tokens/s and embeddings/s, raw and eliza_nb taking turns (order alternating)."""
    sides = {"raw": Side("raw", home), "ours": Side("ours", home)}
    rates: dict[str, list[float]] = {}
    counts = []
    try:
        for r in range(runs + 1):
            order = ("raw", "ours") if r % 2 == 0 else ("ours", "raw")
            # distinct texts every run and side, so no cache (now or later) can answer for the model
            texts = [f"Sentence {i} of run {r}: the quick brown fox jumps over the lazy dog." for i in range(n_texts)]
            for what in ("gen", "batch", "one"):
                for side in order:
                    if what == "gen":
                        res = sides[side].ask(op="gen", tokens=tokens)
                        rate, n = res["n"] / res["t"], res["n"]
                        counts.append(n)
                    else:
                        batch = [f"{t} ({side}, {what})" for t in (texts if what == "batch" else texts[:ONE])]
                        rate = len(batch) / sides[side].ask(op="embed", texts=batch, one=what == "one")["t"]
                    if r:  # round 0 is warm-up
                        rates.setdefault(f"{what}_{side}", []).append(rate)
    finally:
        for s in sides.values():
            s.close()
    out = {k: statistics.median(v) for k, v in rates.items()}
    for what in ("gen", "batch", "one"):
        out[f"{what}_ratio"] = statistics.median(o / r for o, r in zip(rates[f"{what}_ours"], rates[f"{what}_raw"], strict=True))
    out["tokens"] = int(statistics.median(counts))
    return out


FIRST_RAW = """
import json, sys, time
t0 = time.perf_counter()
from llama_cpp import Llama
path, emb = sys.argv[1], sys.argv[2] == "1"
llm = Llama(model_path=path, embedding=emb, n_ctx=512 if emb else 8192, n_batch=512, n_ubatch=512, n_threads=2,
            n_threads_batch=2, verbose=False)
t1 = time.perf_counter()
if emb:
    llm.embed("The first sentence of the day, " + sys.argv[3], normalize=True)
else:
    llm.create_chat_completion([{"role": "user", "content": "What is the capital of France?"}], temperature=0.0,
                               max_tokens=8, stop=%r)
print(json.dumps({"load": t1 - t0, "first": time.perf_counter() - t0}))
""" % (STOPS,)  # noqa: UP031 - %-formatting: the template's braces are literal Python
FIRST_OURS = """
import json, sys, time
t0 = time.perf_counter()
import eliza_nb
emb = sys.argv[2] == "1"
rt = eliza_nb.runtime()
if emb:
    rt.adapter("llama_local").model(rt.resolve_embedding().model, embedding=True).run(lambda llm: None)
else:
    rt.adapter("llama_local").model(rt.resolve().model, embedding=False).run(lambda llm: None)
t1 = time.perf_counter()
if emb:
    eliza_nb.embed("The first sentence of the day, " + sys.argv[3])  # a new text: no cache can answer
else:
    eliza_nb.generate("What is the capital of France?", temperature=0, max_tokens=8)
print(json.dumps({"load": t1 - t0, "first": time.perf_counter() - t0}))
"""


def bench_first_call(rt, reps: int) -> dict[str, float]:
    """Fresh processes: import + load + first answer, eliza_nb against raw, alternating."""
    from eliza_nb.adapters.local_models import MINILM, SMOLLM2, package_path, prepare_embedding_model

    paths = {"0": str(package_path(SMOLLM2)), "1": str(prepare_embedding_model(rt.home, MINILM))}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out: dict[str, list[float]] = {}
    for i in range(reps + 1):
        for emb in ("0", "1"):
            sides = [("raw", FIRST_RAW), ("ours", FIRST_OURS)]
            for side, code in sides if i % 2 == 0 else sides[::-1]:
                with tempfile.TemporaryDirectory() as cache_home:
                    # eliza_nb's converted MiniLM is copied from the prepared home (the conversion is timed apart)
                    child_env = {**env, "ELIZA_NB_HOME": str(rt.home)}
                    proc = subprocess.run([sys.executable, "-c", code, paths[emb], emb, f"{side} {i}"], capture_output=True, text=True,
                                          env=child_env, cwd=cache_home, timeout=300)
                if proc.returncode:
                    raise SystemExit(proc.stderr[-2000:])
                if i:
                    res = json.loads(proc.stdout.strip().splitlines()[-1])
                    kind = "emb" if emb == "1" else "gen"
                    out.setdefault(f"{kind}_{side}_load", []).append(res["load"])
                    out.setdefault(f"{kind}_{side}_first", []).append(res["first"])
    result = {k: statistics.median(v) for k, v in out.items()}
    with tempfile.TemporaryDirectory() as fresh:  # the one-time conversion, on a new home
        t0 = time.perf_counter()
        prepare_embedding_model(Path(fresh), MINILM)
        result["convert"] = time.perf_counter() - t0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--first", type=int, default=5, help="fresh processes per side for the first-call rows")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    from eliza_nb.core.runtime import Runtime

    with tempfile.TemporaryDirectory(prefix="eliza-bench-") as home:
        rt = Runtime(home, config={}, env={})
        from eliza_nb.adapters.local_models import MINILM, prepare_embedding_model

        prepare_embedding_model(rt.home, MINILM)  # converted once, before either side starts
        tp = bench_throughput(home, args.runs, args.tokens, args.texts)
        first = bench_first_call(rt, args.first)
        rt.close()

    rows = [
        ["generation tokens/s (higher is better)", f"{tp['gen_raw']:.1f}", f"{tp['gen_ours']:.1f}", f"{tp['gen_ratio']:.3f}",
         ">= 0.97", check(tp["gen_ratio"] >= 0.97)],
        [f"embeddings/s, one batch of {args.texts}", f"{tp['batch_raw']:.1f}", f"{tp['batch_ours']:.1f}",
         f"{tp['batch_ratio']:.3f}", ">= 0.95", check(tp["batch_ratio"] >= 0.95)],
        [f"embeddings/s, one call per text ({ONE} texts)", f"{tp['one_raw']:.1f}", f"{tp['one_ours']:.1f}",
         f"{tp['one_ratio']:.3f}", ">= 0.95", check(tp["one_ratio"] >= 0.95)],
    ]
    body = table(["throughput", "raw llama-cpp-python", "eliza_nb", "ratio (paired runs)", "target", "met"], rows)
    frows = []
    for kind, what in (("gen", "chat model (SmolLM2 135M): an 8-token answer"), ("emb", "embedding model (MiniLM): one sentence")):
        frows.append([what, f"{first[f'{kind}_raw_load'] * 1000:.0f} ms", f"{first[f'{kind}_ours_load'] * 1000:.0f} ms",
                      f"{first[f'{kind}_raw_first'] * 1000:.0f} ms", f"{first[f'{kind}_ours_first'] * 1000:.0f} ms",
                      f"{first[f'{kind}_ours_first'] / first[f'{kind}_raw_first']:.2f}x"])
    body += "\n\n**First call in a fresh process** (import + model load, then the first answer):\n\n"
    body += table(["model", "raw: import + load", "eliza_nb: import + load", "raw: to first answer",
                   "eliza_nb: to first answer", "ratio"], frows)
    body += (f"\n\nThroughput: median of {args.runs} alternating runs, each side in a process of its own "
             f"({tp['tokens']} generated tokens a run; "
             f"{args.texts} distinct sentences a batch). First call: median of {args.first} fresh processes per side; "
             "eliza_nb's side includes creating its runtime (catalog, config). The MiniLM conversion eliza_nb does once "
             f"per home (safetensors from the PyPI package to GGUF) took {first['convert'] * 1000:.0f} ms and is not in "
             "the first-call rows.")
    write_result("local", "Local model: eliza_nb against raw llama-cpp-python", body,
                 f"bench/local.py --runs {args.runs} --tokens {args.tokens} --texts {args.texts} --first {args.first}")


if __name__ == "__main__":
    main()
