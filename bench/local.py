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


def raw_llama(rt, *, embedding: bool, flash_attn: bool = False):
    """A ``Llama`` with the settings eliza_nb's llama_local loads the same file with, except that
    the embedding model keeps llama-cpp-python's default ``flash_attn=False`` (what a user's
    ``Llama.embed`` runs with) unless asked."""
    from llama_cpp import Llama

    from eliza_nb.adapters.local_models import MINILM, SMOLLM2, package_path, prepare_embedding_model

    cfg = rt.adapter("llama_local").config
    if embedding:
        return Llama(model_path=str(prepare_embedding_model(rt.home, MINILM)), embedding=True, n_ctx=cfg.embedding_n_ctx,
                     n_batch=cfg.embedding_n_ctx, n_ubatch=cfg.embedding_n_ctx, n_threads=cfg.n_threads,
                     n_threads_batch=cfg.n_threads, verbose=False, flash_attn=flash_attn)
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

    emb_fa: list = []  # raw Llama.embed with flash attention (the batch-composition curve), made on first use

    def embed(texts: list[str], one: bool, fa: bool = False) -> float:
        if fa and not emb_fa:
            emb_fa.append(raw_llama(rt, embedding=True, flash_attn=True))
        llm = emb_fa[0] if fa else emb_raw
        t0 = clock()
        if llm is not None:
            if one:
                for t in texts:
                    llm.embed(t, normalize=True)
            else:
                llm.embed(texts, normalize=True)
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
            print(json.dumps({"t": embed(cmd["texts"], bool(cmd["one"]), bool(cmd.get("fa")))}), flush=True)
        elif cmd["op"] == "count" and emb_raw is not None:  # mean MiniLM tokens per text (CLS and SEP included)
            print(json.dumps({"mean": statistics.mean(len(emb_raw.tokenize(t.encode())) for t in cmd["texts"])}), flush=True)
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


CURVE_WORDS = ("river stone garden window painter music morning winter table letter mountain bridge candle "
               "forest harbor lantern meadow orchard pencil quiet rabbit silver thunder valley yellow")
CURVE_BATCHES = (1, 10, 200, 2000, 10000)
ONE_CURVE = 20  # texts embedded one call each per cell and side (the rate per text does not depend on the batch)


def curve_texts(n: int, tokens: int, seed: int) -> list[str]:
    """``n`` distinct sentences of about ``tokens`` MiniLM tokens (common words, CLS and SEP, and a
    number unique to ``seed`` and the text, so eliza_nb's cache never answers)."""
    vocab = CURVE_WORDS.split()
    return [" ".join([*(vocab[(i * 7 + j * (1 + i % 5)) % len(vocab)] for j in range(max(tokens - 5, 1))),
                      str(seed * 100_000 + i)]) for i in range(n)]


def bench_batch_curve(sides: dict, lengths: list[int], max_tokens: int, runs: int) -> list[dict]:
    """Texts/s for one ``embed(list)`` call across batch sizes and sentence lengths: raw
    ``Llama.embed(list)`` (llama-cpp-python's defaults), raw with ``flash_attn=True``, eliza_nb,
    and one call per text (raw and eliza_nb). Cells above ``max_tokens`` tokens are left out (a
    10,000 x 250-token batch takes half an hour raw); cells of up to 200 texts take the median
    of ``runs`` alternating runs, larger ones one run."""
    cells = []
    for side in sides:  # warm-up: every context and decode shape once, the disk cache opened
        for words in (8, 60):
            sides[side].ask(op="embed", texts=curve_texts(30, words, seed=3 + words), one=False, fa=side == "raw")
            sides[side].ask(op="embed", texts=curve_texts(3, words, seed=4 + words), one=True)
    for words in lengths:
        for n in CURVE_BATCHES:
            if n * words > max_tokens:
                continue
            reps = runs if n <= 200 else 1
            rates: dict[str, list[float]] = {}
            for r in range(reps):
                kinds = [("raw", "batch", False), ("raw", "batch_fa", True), ("ours", "batch", False)]
                for k, (side, what, fa) in enumerate(kinds if r % 2 == 0 else kinds[::-1]):
                    texts = curve_texts(n, words, seed=(n + words) * 100 + r * 10 + k)
                    rates.setdefault(f"{what}_{side}", []).append(n / sides[side].ask(op="embed", texts=texts, one=False, fa=fa)["t"])
                for k, side in enumerate(("raw", "ours") if r % 2 == 0 else ("ours", "raw")):
                    texts = curve_texts(min(n, ONE_CURVE), words, seed=(n + words) * 100 + r * 10 + 5 + k)
                    rates.setdefault(f"one_{side}", []).append(len(texts) / sides[side].ask(op="embed", texts=texts, one=True)["t"])
            cell = {k: statistics.median(v) for k, v in rates.items()}
            cell.update(n=n, tokens=sides["raw"].ask(op="count", texts=curve_texts(min(n, 50), words, seed=1))["mean"])
            cells.append(cell)
            print(json.dumps(cell), file=sys.stderr, flush=True)
    return cells


def curve_table(cells: list[dict]) -> str:
    rows = []
    for c in cells:
        worst_one = max(c["one_raw"], c["one_ours"])
        rows.append([f"{c['n']:,} x {c['tokens']:.0f}", f"{c['batch_raw']:.1f}", f"{c['batch_fa_raw']:.1f}",
                     f"{c['one_raw']:.1f}", f"{c['one_ours']:.1f}", f"{c['batch_ours']:.1f}",
                     f"{c['batch_ours'] / c['batch_raw']:.2f}x", f"{c['batch_ours'] / worst_one:.2f}x",
                     check(c["batch_ours"] >= 1.5 * c["batch_raw"]) if c["n"] > 1 else "",
                     check(c["batch_ours"] >= 0.95 * worst_one)])
    return table(["texts x tokens each", "raw Llama.embed(list)", "raw, flash_attn", "raw, one call per text",
                  "eliza_nb, one call per text", "eliza_nb embed(list)", "vs raw list", "vs best one-per-call",
                  ">= 1.5x raw", ">= one-per-call (5% noise)"], rows)


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
    parser.add_argument("--curve-lengths", default="8,60,250",
                        help="tokens per sentence for the batch-composition curve ('' skips it)")
    parser.add_argument("--curve-tokens", type=int, default=120_000, help="largest cell (texts x tokens) of the curve")
    parser.add_argument("--curve-runs", type=int, default=3, help="alternating runs per curve cell of <= 200 texts")
    parser.add_argument("--curve-only", action="store_true", help="run only the batch-composition curve")
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
        lengths = [int(x) for x in args.curve_lengths.split(",") if x]
        if lengths:
            sides = {"raw": Side("raw", home), "ours": Side("ours", home)}
            try:
                cells = bench_batch_curve(sides, lengths, args.curve_tokens, args.curve_runs)
            finally:
                for side in sides.values():
                    side.close()
            write_result("local_batch", "Local embeddings: one embed(list) call, by batch size and sentence length",
                         curve_table(cells) + "\n\nTexts/s. Raw is `Llama.embed(list, normalize=True)` with eliza_nb's context "
                         "sizes and llama-cpp-python's default `flash_attn=False`; \"raw, flash_attn\" the same with "
                         "`flash_attn=True`. Each side in a process of its own; distinct texts every run, so no cache answers. "
                         f"Median of {args.curve_runs} alternating runs for up to 200 texts, one run above.",
                         f"bench/local.py --curve-only --curve-lengths {args.curve_lengths} --curve-tokens {args.curve_tokens} "
                         f"--curve-runs {args.curve_runs}")
        if args.curve_only:
            rt.close()
            return
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
    # the conversation curve (turn 1...10) and the concurrency curve (1, 2, 4 callers): bench/local_chat.py
    import local_chat

    local_chat.main([])


if __name__ == "__main__":
    main()
