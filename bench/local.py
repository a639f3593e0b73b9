"""eliza_nb's local path against raw llama-cpp-python, same model, same settings, one process.

    .venv/bin/python bench/local.py [--runs 5] [--tokens 128]

Prints a markdown table of medians and ratios and writes it to bench/results/local.md.
Runs alternate (raw, eliza_nb, raw, ...) so drift on a noisy machine hits both sides.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "Write a long, detailed story about a robot who learns to paint."
SYSTEM = "You are a helpful assistant."


def bench_generation(rt, runs: int, tokens: int) -> dict[str, float]:
    from llama_cpp import Llama

    from eliza_nb.providers.local_models import SMOLLM2, package_path

    cfg = rt.provider("llama_local").config
    raw = Llama(model_path=str(package_path(SMOLLM2)), n_ctx=cfg.n_ctx, n_batch=cfg.n_batch, n_ubatch=cfg.n_batch,
                n_threads=cfg.n_threads, n_threads_batch=cfg.n_threads, verbose=False)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    settings = dict(temperature=0.0, max_tokens=tokens, repeat_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0)

    def run_raw() -> tuple[int, float]:
        raw.reset()  # eliza_nb re-evaluates the prompt every call (determinism); so does raw here
        t0 = time.perf_counter()
        out = raw.create_chat_completion(messages, stop=["<|eot_id|>", "<|eom_id|>"], **settings)
        return out["usage"]["completion_tokens"], time.perf_counter() - t0

    def run_ours() -> tuple[int, float]:
        t0 = time.perf_counter()
        r = rt.generate(PROMPT, system=SYSTEM, temperature=0.0, max_tokens=tokens, repetition_penalty=0.0,
                        frequency_penalty=0.0, presence_penalty=0.0)
        return r.usage.completion_tokens, time.perf_counter() - t0

    run_raw(), run_ours()  # warm-up: load both models
    raw_tps, our_tps = [], []
    for _ in range(runs):
        n, dt = run_raw()
        raw_tps.append(n / dt)
        n, dt = run_ours()
        our_tps.append(n / dt)
    raw.close()
    return {"raw": statistics.median(raw_tps), "ours": statistics.median(our_tps), "tokens": n}


def bench_embedding(rt, runs: int, n_texts: int) -> dict[str, float]:
    from llama_cpp import Llama

    from eliza_nb.providers.local_models import MINILM, prepare_embedding_model

    path = prepare_embedding_model(rt.home, MINILM)
    raw = Llama(model_path=str(path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
                n_threads_batch=2, verbose=False)
    raw_ms, our_ms, raw_one, our_one = [], [], [], []
    for r in range(runs + 1):
        # distinct texts every run, so no cache (now or later) can answer for the model
        texts = [f"Sentence {i} of run {r}: the quick brown fox jumps over the lazy dog." for i in range(n_texts)]
        t0 = time.perf_counter()
        raw.embed(texts, normalize=True)
        t1 = time.perf_counter()
        rt.embed([t + " " for t in texts])
        t2 = time.perf_counter()
        for t in texts[:20]:
            raw.embed(t + "  ", normalize=True)
        t3 = time.perf_counter()
        for t in texts[:20]:
            rt.embed(t + "   ")
        t4 = time.perf_counter()
        if r:  # first round is warm-up
            raw_ms.append((t1 - t0) / n_texts * 1000)
            our_ms.append((t2 - t1) / n_texts * 1000)
            raw_one.append((t3 - t2) / 20 * 1000)
            our_one.append((t4 - t3) / 20 * 1000)
    raw.close()
    med = statistics.median
    return {"batch_raw": med(raw_ms), "batch_ours": med(our_ms), "one_raw": med(raw_one), "one_ours": med(our_one)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--texts", type=int, default=200)
    args = parser.parse_args()

    from eliza_nb.core.runtime import Runtime

    home = Path(os.environ.get("ELIZA_NB_HOME") or tempfile.mkdtemp(prefix="eliza-bench-"))
    rt = Runtime(home, config={}, env={})
    gen = bench_generation(rt, args.runs, args.tokens)
    emb = bench_embedding(rt, args.runs, args.texts)
    rt.close()

    rows = [
        ("generation tokens/s (higher is better)", gen["raw"], gen["ours"], gen["ours"] / gen["raw"], ">= 0.95"),
        (f"embed ms/sentence, batch of {args.texts}", emb["batch_raw"], emb["batch_ours"], emb["batch_ours"] / emb["batch_raw"], "<= 1.10"),
        ("embed ms/sentence, one call each", emb["one_raw"], emb["one_ours"], emb["one_ours"] / emb["one_raw"], "<= 1.10"),
    ]
    lines = [
        f"Local path: eliza_nb vs raw llama-cpp-python (median of {args.runs} alternating runs, {gen['tokens']} tokens, "
        f"{os.cpu_count()} cores)",
        "",
        "| measure | raw llama-cpp-python | eliza_nb | ratio | target |",
        "|---|---:|---:|---:|---|",
        *[f"| {name} | {raw:.2f} | {ours:.2f} | {ratio:.3f} | {target} |" for name, raw, ours, ratio, target in rows],
    ]
    table = "\n".join(lines)
    print(table)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "local.md").write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
