"""The local chat model in a conversation and under concurrent callers (bench/local.py runs
this too; alone: ``.venv/bin/python bench/local_chat.py [--turns 10] [--reps 2]``).

- conversation curve: a conversation of ``turns`` turns (SmolLM2, temperature 0, at most
  ``--answer`` tokens an answer), each turn the whole history; per turn the prompt's tokens,
  the time to the first token and the decode rate. Four sides, each a fresh process:
  eliza_nb with the prefix cache (the default), eliza_nb with ``[local] prefix_cache =
  false``, raw llama-cpp-python calling ``reset()`` before each turn (the whole history
  evaluated) and raw llama-cpp-python as it comes (its own prefix matching, which keeps the
  KV of every token it evaluated, generated ones included, so its answers drift from a
  fresh evaluation's: the side that is not deterministic).
- concurrency curve: 1, 2 and 4 threads each making ``--calls`` streamed calls at once
  (distinct prompts, ``--tokens`` tokens each): the time to first token each caller sees
  (queueing on the one llama thread included) and the total tokens/s, eliza_nb against raw
  llama-cpp-python with the threads sharing one ``Llama`` behind a lock (it is not
  thread-safe).

Writes bench/results/local_conversation.md and bench/results/local_concurrency.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, table, write_result

sys.path.insert(0, str(ROOT))

SYSTEM = "You are a helpful assistant."
USERS = ["Tell me about the moon.", "Why does it shine at night?", "Tell me more about its surface.",
         "How far away is it?", "Who walked on it first?", "What did they bring back?", "How are tides made?",
         "What would happen without the moon?", "Summarise our conversation.", "Anything else I should know?"]
SIDES = {"ours": "eliza_nb, prefix cache (default)", "ours_fresh": "eliza_nb, prefix_cache = false",
         "raw_reset": "raw, reset() each turn", "raw_cache": "raw, its own prefix matching"}
STOPS = ["<|im_end|>"]


def _raw_llm():
    from llama_cpp import Llama

    from eliza_nb.adapters.llama_local import LocalConfig
    from eliza_nb.adapters.local_models import SMOLLM2, package_path

    cfg = LocalConfig()
    return Llama(model_path=str(package_path(SMOLLM2)), n_ctx=cfg.n_ctx, n_batch=cfg.n_batch, n_ubatch=cfg.n_batch,
                 n_threads=cfg.n_threads, n_threads_batch=cfg.n_threads, verbose=False)


def _runtime(home: str, side: str):
    from eliza_nb.core.runtime import Runtime

    return Runtime(home, config={"local": {"prefix_cache": side != "ours_fresh"}}, env={})


def conversation_side(side: str, home: str, turns: int, answer: int, think: float) -> list[dict]:
    """One side's conversation, in this process: per turn prompt tokens, ttft, decode tok/s;
    ``think`` seconds (untimed) between turns, as a reader takes before answering."""
    clock = time.perf_counter
    out = []
    if side.startswith("raw"):
        llm = _raw_llm()
        llm.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0.0)  # warm-up
        messages = [{"role": "system", "content": SYSTEM}]
        for text in USERS[:turns]:
            time.sleep(think)
            messages.append({"role": "user", "content": text})
            if side == "raw_reset":
                llm.reset()
            t0, first, parts, n = clock(), None, [], 0
            for chunk in llm.create_chat_completion(messages, temperature=0.0, max_tokens=answer, stream=True, stop=STOPS,
                                                    repeat_penalty=1.0, seed=7):
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    first = first or clock()
                    parts.append(piece)
                    n += 1
            end = clock()
            reply = "".join(parts)
            messages.append({"role": "assistant", "content": reply})
            out.append({"ttft": first - t0, "decode": (n - 1) / (end - first) if n > 1 else 0.0, "total": end - t0,
                        "text": reply})
        from llama_cpp import llama_chat_format as lcf

        # the prompt each turn sent, counted with the same template
        fmt = lcf.Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token="", bos_token="")
        for i, row in enumerate(out):
            msgs = messages[: 2 + 2 * i]
            row["prompt"] = len(llm.tokenize(fmt(messages=msgs).prompt.encode(), add_bos=False, special=True))
        return out
    rt = _runtime(home, side)
    rt.generate("Hi", temperature=0, max_tokens=4)  # warm-up: the model loaded
    conv = rt.conversation("bench", new=True)
    conv.system = SYSTEM
    for text in USERS[:turns]:
        time.sleep(think)
        t0, first, n = clock(), None, 0
        stream = conv.stream(text, temperature=0, max_tokens=answer, seed=7)
        for piece in stream:
            if piece:
                first = first or clock()
                n += 1
        end = clock()
        r = stream.result
        out.append({"ttft": first - t0, "decode": (n - 1) / (end - first) if n > 1 else 0.0, "total": end - t0,
                    "prompt": r.usage.prompt_tokens, "text": r.text})
    rt.close()
    return out


def concurrency_side(side: str, home: str, levels: list[int], calls: int, tokens: int) -> list[dict]:
    """1, 2, 4 ... threads making ``calls`` streamed calls each, at once: TTFT per call, total tok/s."""
    clock = time.perf_counter
    if side == "raw":
        llm, lock = _raw_llm(), threading.Lock()

        def call(prompt: str) -> tuple[float, int]:
            t0, first, n = clock(), None, 0
            with lock:  # a Llama is not thread-safe: raw callers must queue too
                for chunk in llm.create_chat_completion([{"role": "user", "content": prompt}], temperature=0.0,
                                                        max_tokens=tokens, stream=True, stop=STOPS, repeat_penalty=1.0):
                    if chunk["choices"][0]["delta"].get("content"):
                        first = first or clock()
                        n += 1
            return first - t0, n
    else:
        rt = _runtime(home, side)

        def call(prompt: str) -> tuple[float, int]:
            t0, first, n = clock(), None, 0
            stream = rt.stream(prompt, temperature=0, max_tokens=tokens)
            for piece in stream:
                if piece:
                    first = first or clock()
            n = stream.result.usage.completion_tokens
            return first - t0, n

    call("Say hi.")
    rows = []
    for level in levels:
        ttfts: list[float] = []
        counts: list[int] = []
        barrier = threading.Barrier(level)

        def caller(k: int, level: int = level, barrier: threading.Barrier = barrier, ttfts: list[float] = ttfts,
                   counts: list[int] = counts) -> None:
            barrier.wait()
            for i in range(calls):
                ttft, n = call(f"Write a short poem about the number {level * 1000 + k * 100 + i}.")
                ttfts.append(ttft)
                counts.append(n)

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(level)]
        t0 = clock()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = clock() - t0
        ttfts.sort()
        rows.append({"level": level, "ttft_p50": statistics.median(ttfts), "ttft_max": ttfts[-1],
                     "tok_s": sum(counts) / wall, "tokens": sum(counts), "wall": wall})
    return rows


def _in_process(kind: str, side: str, home: str, *params: object) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, side, home, json.dumps(params)],
                          capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_conversation(home: str, turns: int, answer: int, reps: int, think: float) -> str:
    """Each side ``reps`` times, the order alternating; medians per turn. Returns the markdown."""
    runs: dict[str, list[list[dict]]] = {}
    order = list(SIDES)
    for r in range(reps):
        for side in order if r % 2 == 0 else order[::-1]:
            runs.setdefault(side, []).append(_in_process("conv", side, home, turns, answer, think))
    med = {side: [{k: statistics.median(run[t][k] for run in rs) for k in ("ttft", "decode", "prompt")}
                  for t in range(turns)] for side, rs in runs.items()}
    same = all(run[t]["text"] == runs["ours_fresh"][0][t]["text"] for run in runs["ours"] for t in range(turns))
    raw_same = all(run[t]["text"] == runs["raw_reset"][0][t]["text"] for run in runs["raw_cache"] for t in range(turns))
    rows = []
    for t in range(turns):
        o, f, rr, rc = (med[s][t] for s in ("ours", "ours_fresh", "raw_reset", "raw_cache"))
        rows.append([t + 1, f"{o['prompt']:.0f}", f"{o['ttft'] * 1000:.0f}", f"{f['ttft'] * 1000:.0f}",
                     f"{rr['ttft'] * 1000:.0f}", f"{rc['prompt']:.0f}", f"{rc['ttft'] * 1000:.0f}",
                     f"{f['ttft'] / o['ttft']:.2f}x", f"{o['ttft'] / rr['ttft']:.2f}", f"{o['decode']:.1f}",
                     f"{f['decode']:.1f}", f"{rr['decode']:.1f}", f"{rc['decode']:.1f}"])
    body = table(["turn", "prompt tokens", "TTFT ms: eliza_nb (prefix cache)", "eliza_nb, prefix_cache = false",
                  "raw, reset() each turn", "raw own matching: prompt tokens", "raw own matching: TTFT ms",
                  "speed-up from reuse", "eliza_nb / raw reset", "decode tok/s: eliza_nb", "eliza_nb fresh",
                  "raw reset", "raw own matching"], rows)
    first, last = med["ours"][0]["ttft"], med["ours"][-1]["ttft"]
    body += (f"\n\nMedian of {reps} runs per side, each a fresh process, the order alternating; at most {answer} tokens "
             f"an answer, temperature 0, {think:g} s (untimed) between turns. Turn {turns} over turn 1, "
             "time to first token: eliza_nb with the prefix cache "
             f"{last / first:.2f}x, without it {med['ours_fresh'][-1]['ttft'] / med['ours_fresh'][0]['ttft']:.2f}x, raw "
             f"with reset() {med['raw_reset'][-1]['ttft'] / med['raw_reset'][0]['ttft']:.2f}x. Answers with and without "
             f"eliza_nb's prefix cache identical on every turn: {'yes' if same else '**no**'}. Raw llama-cpp-python's "
             f"own prefix matching against raw with reset(): {'identical' if raw_same else 'the answers differ'} "
             "(its histories, so its prompt sizes, follow its own answers).")
    return body


def bench_concurrency(home: str, levels: list[int], calls: int, tokens: int) -> str:
    res = {}
    for side in ("raw", "ours", "ours", "raw"):
        res.setdefault(side, []).append(_in_process("conc", side, home, levels, calls, tokens))
    med = {side: [{k: statistics.median(run[j][k] for run in runs) for k in ("ttft_p50", "ttft_max", "tok_s")}
                  for j in range(len(levels))] for side, runs in res.items()}
    rows = []
    for j, level in enumerate(levels):
        o, r = med["ours"][j], med["raw"][j]
        rows.append([level, level * calls, f"{r['ttft_p50'] * 1000:.0f} / {r['ttft_max'] * 1000:.0f}",
                     f"{o['ttft_p50'] * 1000:.0f} / {o['ttft_max'] * 1000:.0f}", f"{r['tok_s']:.1f}", f"{o['tok_s']:.1f}",
                     f"{o['tok_s'] / r['tok_s']:.2f}", f"{o['tok_s'] / med['ours'][0]['tok_s']:.2f}"])
    body = table(["callers", "calls", "raw TTFT ms p50 / max", "eliza_nb TTFT ms p50 / max", "raw total tok/s",
                  "eliza_nb total tok/s", "eliza_nb / raw", "eliza_nb vs 1 caller"], rows)
    body += (f"\n\nEach caller a thread making {calls} streamed calls one after another, all callers starting together "
             f"(distinct prompts, at most {tokens} tokens each); TTFT from the call to its first token, waiting for the "
             "one llama thread included. Raw: the threads share one `Llama` behind a lock. Each side a fresh process; "
             "median of 2 runs per side, alternating.")
    return body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--answer", type=int, default=96, help="max tokens an answer in the conversation")
    parser.add_argument("--reps", type=int, default=2, help="conversations per side")
    parser.add_argument("--think", type=float, default=1.0, help="seconds between turns (a reader; untimed)")
    parser.add_argument("--levels", default="1,2,4", help="concurrent callers")
    parser.add_argument("--calls", type=int, default=3, help="calls per caller")
    parser.add_argument("--tokens", type=int, default=64, help="max tokens a call in the concurrency curve")
    parser.add_argument("--skip", default="", help="'conversation' or 'concurrency'")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, side, home, params = args.worker
        fn = conversation_side if kind == "conv" else concurrency_side
        print(json.dumps(fn(side, home, *json.loads(params))))
        return
    with tempfile.TemporaryDirectory(prefix="eliza-bench-") as home:
        if args.skip != "conversation":
            write_result("local_conversation", "Local chat model: a conversation, turn by turn",
                         bench_conversation(home, args.turns, args.answer, args.reps, args.think),
                         f"bench/local_chat.py --turns {args.turns} --answer {args.answer} --reps {args.reps} "
                         f"--think {args.think:g}")
        if args.skip != "concurrency":
            levels = [int(x) for x in args.levels.split(",")]
            write_result("local_concurrency", "Local chat model: concurrent callers",
                         bench_concurrency(home, levels, args.calls, args.tokens),
                         f"bench/local_chat.py --levels {args.levels} --calls {args.calls} --tokens {args.tokens}")


if __name__ == "__main__":
    main()
