"""A roofline for the local models: how fast this machine could run them, and how close we get.

    flock /tmp/i14/bench.lock .venv/bin/python bench/roofline.py [--runs 3] [--texts 200]

- **memory bandwidth**: a STREAM-like triad ``a = b + s*c`` on 3 x 256 MiB float64 arrays
  (32 MiB of L3 here), done in L2-sized chunks so the ``s*c`` temporary never leaves the
  cache: the memory traffic is exactly read b, read c, write a. Also a copy and a read-only
  pass (``bitwise_or.reduce``), each with 1 and 2 threads (numpy releases the GIL), best of
  a few runs;
- **FLOP/s**: a float32 numpy matmul shaped like MiniLM's feed-forward layer
  (512 x 384 @ 384 x 1536), in a child process with OpenBLAS limited to 1 and to 2 threads;
- **bytes per generated token** of SmolLM2-135M, from the embedded GGUF's tensor table
  (``gguf.GGUFReader``): at batch 1 every weight is read once per token (the tied
  ``token_embd`` is also the output projection, so all of it is read), plus the KV cache
  up to the current position. Ceiling tokens/s = bandwidth / bytes per token;
- **FLOPs per embedded token** of MiniLM, from the converted GGUF: 2 x the matmul weights
  plus 4 x L x d per layer for attention over a sentence of L tokens. Ceiling = FLOP/s /
  FLOPs per token;
- raw llama-cpp-python and eliza_nb measured the way ``bench/local.py`` does (its worker
  processes, taking turns), reported as a fraction of each ceiling.

Writes bench/results/roofline.md.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, table, write_result

sys.path.insert(0, str(ROOT))

MIB = 2**20
CHUNK = 32768  # float64 elements: 256 KiB per operand, well inside the 1-2 MiB L2
GEMM = (512, 384, 1536)  # MiniLM's up-projection over a full 512-token micro-batch


# ---------------------------------------------------------------- memory bandwidth

def _timed_threads(work: Callable[[int, int], None], n: int, threads: int, reps: int) -> float:
    """Best wall time of ``work(lo, hi)`` over [0, n) split between ``threads`` started together."""
    best = float("inf")
    for _ in range(reps):
        bar = threading.Barrier(threads + 1)

        def run(lo: int, hi: int, bar: threading.Barrier = bar) -> None:
            bar.wait()
            work(lo, hi)
            bar.wait()

        ts = [threading.Thread(target=run, args=(k * n // threads, (k + 1) * n // threads)) for k in range(threads)]
        for t in ts:
            t.start()
        bar.wait()
        t0 = time.perf_counter()
        bar.wait()
        best = min(best, time.perf_counter() - t0)
        for t in ts:
            t.join()
    return best


def bandwidth(array_mib: int, reps: int) -> dict[str, float]:
    """GB/s (1e9 bytes) of triad, copy and read, with 1 and 2 threads; bytes as STREAM counts them."""
    n = array_mib * MIB // 8
    a, b, c = np.zeros(n), np.full(n, 1.0), np.full(n, 2.0)  # written once: every page is faulted in
    bits = b.view(np.uint64)
    s = 3.0
    local = threading.local()

    def triad(lo: int, hi: int) -> None:
        tmp = getattr(local, "tmp", None)
        if tmp is None:
            tmp = local.tmp = np.empty(CHUNK)
        for i in range(lo, hi, CHUNK):
            j = min(i + CHUNK, hi)
            np.multiply(c[i:j], s, out=tmp[: j - i])  # stays in L2
            np.add(b[i:j], tmp[: j - i], out=a[i:j])

    def copy(lo: int, hi: int) -> None:
        for i in range(lo, hi, 4 * CHUNK):
            np.copyto(a[i:min(i + 4 * CHUNK, hi)], b[i:min(i + 4 * CHUNK, hi)])

    def read(lo: int, hi: int) -> None:
        for i in range(lo, hi, 4 * CHUNK):
            np.bitwise_or.reduce(bits[i:min(i + 4 * CHUNK, hi)])  # integer: no FP latency chain

    out: dict[str, float] = {}
    for name, fn, streams in (("triad", triad, 3), ("copy", copy, 2), ("read", read, 1)):
        for threads in (1, 2):
            out[f"{name}_{threads}"] = streams * n * 8 / _timed_threads(fn, n, threads, reps) / 1e9
    if not np.allclose(a[:: n // 7], b[:: n // 7]):  # copy ran last: a must equal b
        raise SystemExit("bandwidth kernels produced wrong results")
    return out


# ---------------------------------------------------------------- FLOP/s

def gemm_child(seconds: float) -> None:
    """In a child whose OpenBLAS thread count is fixed by its environment: best GFLOP/s."""
    m, k, n = GEMM
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    np.matmul(x, w, out=out)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        np.matmul(x, w, out=out)
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"gflops": 2 * m * k * n / best / 1e9}))


def flops(threads: int, seconds: float) -> float:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, __file__, "--gemm", str(seconds)], capture_output=True, text=True, env=env,
                          timeout=120)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["gflops"])


# ---------------------------------------------------------------- the models

def _field(reader, key: str) -> int:
    f = reader.fields[key]
    return int(f.parts[f.data[0]][0])


def smollm2_bytes(path: Path) -> dict[str, float]:
    """Weight bytes read per decoded token, the KV cache bytes per context position, FLOPs per token."""
    import gguf

    r = gguf.GGUFReader(str(path))
    names = {t.name for t in r.tensors}
    weights = sum(int(t.n_bytes) for t in r.tensors)
    if "output.weight" not in names:  # tied: token_embd is the output projection, read whole every token
        matmul = sum(int(t.n_elements) for t in r.tensors if len(t.shape) == 2)
    else:  # the input embedding is a one-row lookup; the output matrix is read whole
        matmul = sum(int(t.n_elements) for t in r.tensors if len(t.shape) == 2 and t.name != "token_embd.weight")
        weights -= next(int(t.n_bytes) for t in r.tensors if t.name == "token_embd.weight")
    arch = "llama"
    n_layer, d = _field(r, f"{arch}.block_count"), _field(r, f"{arch}.embedding_length")
    n_head, n_kv = _field(r, f"{arch}.attention.head_count"), _field(r, f"{arch}.attention.head_count_kv")
    head_dim = d // n_head
    kv_per_pos = 2 * n_layer * n_kv * head_dim * 2  # K and V, f16 (llama.cpp's default cache type)
    types: dict[str, int] = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + int(t.n_bytes)
    return {"weights": weights, "file": path.stat().st_size, "kv_per_pos": kv_per_pos, "matmul": matmul,
            "n_layer": n_layer, "d": d, "n_kv": n_kv, "head_dim": head_dim, "types": types,
            "tied": "output.weight" not in names}


def minilm_flops(path: Path) -> dict[str, float]:
    """Matmul weights (2-D tensors in the blocks; embeddings are lookups), layers and width."""
    import gguf

    r = gguf.GGUFReader(str(path))
    matmul = sum(int(t.n_elements) for t in r.tensors if len(t.shape) == 2 and t.name.startswith("blk."))
    return {"matmul": matmul, "n_layer": _field(r, "bert.block_count"), "d": _field(r, "bert.embedding_length"),
            "params": sum(int(t.n_elements) for t in r.tensors)}


def prompt_tokens(path: Path) -> int:
    """Tokens of bench/local.py's chat prompt after SmolLM2's template (ChatML)."""
    from llama_cpp import Llama
    from local import PROMPT, SYSTEM

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    text = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    return len(vocab.tokenize(text.encode(), add_bos=False, special=True))


def decode_child(tokens: int) -> None:
    """llama.cpp's decode alone: ``Llama.eval`` of one token at a time, no sampling, same settings as raw."""
    from local import raw_llama

    from eliza_nb.core.runtime import Runtime

    with tempfile.TemporaryDirectory() as home:
        rt = Runtime(home, config={}, env={})
        llm = raw_llama(rt, embedding=False)
        prompt = llm.tokenize(b"Write a long, detailed story about a robot who learns to paint.", add_bos=True)
        best = float("inf")
        for _ in range(3):
            llm.reset()
            llm.eval(prompt)
            t0 = time.perf_counter()
            for i in range(tokens):
                llm.eval([prompt[1 + i % (len(prompt) - 1)]])  # token ids do not change the cost
            best = min(best, time.perf_counter() - t0)
        rt.close()
    print(json.dumps({"rate": tokens / best}))


def decode_alone(tokens: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run([sys.executable, __file__, "--decode", str(tokens)], capture_output=True, text=True, env=env,
                          timeout=300)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["rate"])


def measure_sides(home: str, runs: int, tokens: int, texts: list[str], one: int) -> dict[str, float]:
    """Decode tokens/s and embedding texts/s, raw and eliza_nb in bench/local.py's worker processes.

    Decode rate = (n_long - n_short) / (t_long - t_short) of a ``tokens`` and an 8-token run
    of the same deterministic answer: the prompt's evaluation and per-call costs cancel.
    """
    from local import Side

    sides = {"raw": Side("raw", home), "ours": Side("ours", home)}
    rates: dict[str, list[float]] = {}
    try:
        for r in range(runs + 1):
            order = ("raw", "ours") if r % 2 == 0 else ("ours", "raw")
            for side in order:
                long, short = sides[side].ask(op="gen", tokens=tokens), sides[side].ask(op="gen", tokens=8)
                batch = [f"{t} (run {r}, {side})" for t in texts]
                t_batch = sides[side].ask(op="embed", texts=batch, one=False)["t"]
                t_one = sides[side].ask(op="embed", texts=[f"{t} (one)" for t in batch[:one]], one=True)["t"]
                if r:  # round 0 warms up
                    rates.setdefault(f"decode_{side}", []).append((long["n"] - short["n"]) / (long["t"] - short["t"]))
                    rates.setdefault(f"e2e_{side}", []).append(long["n"] / long["t"])
                    rates.setdefault(f"n_{side}", []).append(long["n"])
                    rates.setdefault(f"batch_{side}", []).append(len(batch) / t_batch)
                    rates.setdefault(f"one_{side}", []).append(one / t_one)
    finally:
        for s in sides.values():
            s.close()
    return {k: statistics.median(v) for k, v in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--one", type=int, default=50, help="texts embedded one call each, per run and side")
    parser.add_argument("--array-mib", type=int, default=256)
    parser.add_argument("--gemm", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--decode", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gemm is not None:
        gemm_child(args.gemm)
        return
    if args.decode is not None:
        decode_child(args.decode)
        return

    from llama_cpp import Llama

    from eliza_nb.adapters.local_models import MINILM, SMOLLM2, package_path, prepare_embedding_model

    t_start = time.perf_counter()
    bw = bandwidth(args.array_mib, reps=4)
    gf = {n: flops(n, 1.0) for n in (1, 2)}

    gen = smollm2_bytes(package_path(SMOLLM2))
    n_prompt = prompt_tokens(package_path(SMOLLM2))
    with tempfile.TemporaryDirectory(prefix="eliza-roofline-") as home:
        emb_path = prepare_embedding_model(Path(home), MINILM)
        emb = minilm_flops(emb_path)
        texts = [f"Sentence {i}: the quick brown fox jumps over the lazy dog." for i in range(args.texts)]
        vocab = Llama(model_path=str(emb_path), vocab_only=True, verbose=False)
        # the exact texts the workers embed carry a " (run r, side)" suffix: count those
        lens = [len(vocab.tokenize(f"{t} (run 1, raw)".encode(), add_bos=True)) for t in texts]
        one_lens = [len(vocab.tokenize(f"{t} (run 1, raw) (one)".encode(), add_bos=True)) for t in texts[:args.one]]
        del vocab
        sides = measure_sides(home, args.runs, args.tokens, texts, args.one)
    alone = decode_alone(args.tokens)

    # generation: bytes per token at the average context of the measured decode window (tokens 8..N)
    bw_read, bw_triad = bw["read_2"], bw["triad_2"]
    ctx = n_prompt + (8 + args.tokens) / 2
    per_token = gen["weights"] + gen["kv_per_pos"] * ctx
    ceil_read, ceil_triad = bw_read * 1e9 / per_token, bw_triad * 1e9 / per_token
    gen_flops = 2 * gen["matmul"] + gen["n_layer"] * 4 * ctx * gen["d"]
    ceil_gen_compute = gf[2] * 1e9 / gen_flops

    # embeddings: FLOPs per token at the measured sentence length
    L = statistics.mean(lens)
    L_one = statistics.mean(one_lens)
    per_emb = 2 * emb["matmul"] + emb["n_layer"] * 4 * L * emb["d"]
    per_emb_one = 2 * emb["matmul"] + emb["n_layer"] * 4 * L_one * emb["d"]
    ceil_emb = gf[2] * 1e9 / per_emb
    ceil_emb_one = gf[2] * 1e9 / per_emb_one
    tok = {"batch": L, "one": L_one}
    ceil = {"batch": ceil_emb, "one": ceil_emb_one}

    def frac(x: float, c: float) -> str:
        return f"{x / c:.2f}"

    mrows = [
        [f"triad `a = b + s*c`, 3 x {args.array_mib} MiB float64", f"{bw['triad_1']:.1f} GB/s", f"{bw['triad_2']:.1f} GB/s",
         f"{bw['triad_2'] * 4 / 3:.1f} GB/s"],
        ["copy `a = b`", f"{bw['copy_1']:.1f} GB/s", f"{bw['copy_2']:.1f} GB/s", f"{bw['copy_2'] * 3 / 2:.1f} GB/s"],
        ["read only (`bitwise_or.reduce`)", f"{bw['read_1']:.1f} GB/s", f"{bw['read_2']:.1f} GB/s", "(no writes)"],
        [f"float32 matmul {GEMM[0]}x{GEMM[1]} @ {GEMM[1]}x{GEMM[2]} (OpenBLAS)", f"{gf[1]:.1f} GFLOP/s",
         f"{gf[2]:.1f} GFLOP/s", ""],
    ]
    body = "**This machine** (best of 4 runs; GB/s = 1e9 bytes/s):\n\n"
    body += table(["kernel", "1 thread", "2 threads (llama.cpp's count)", "2 threads, counting the write-allocate read"],
                  mrows)
    grows = [
        ["ceiling from read bandwidth", f"{ceil_read:.0f}", "1.00", "", ""],
        ["ceiling from triad bandwidth (STREAM count)", f"{ceil_triad:.0f}", f"{ceil_triad / ceil_read:.2f}", "", ""],
        ["ceiling from compute (matmul FLOP/s)", f"{ceil_gen_compute:.0f}", f"{ceil_gen_compute / ceil_read:.2f}", "", ""],
        ["llama.cpp's decode alone (`Llama.eval`, one token a call, no sampling)", f"{alone:.1f}",
         frac(alone, ceil_read), frac(alone, ceil_triad), ""],
        ["raw llama-cpp-python, decode", f"{sides['decode_raw']:.1f}", frac(sides["decode_raw"], ceil_read),
         frac(sides["decode_raw"], ceil_triad), ""],
        ["**eliza_nb**, decode", f"{sides['decode_ours']:.1f}", frac(sides["decode_ours"], ceil_read),
         frac(sides["decode_ours"], ceil_triad), f"{sides['decode_ours'] / sides['decode_raw']:.2f}x"],
        [f"raw, whole call ({sides['n_raw']:.0f} tokens, prompt included)", f"{sides['e2e_raw']:.1f}",
         frac(sides["e2e_raw"], ceil_read), frac(sides["e2e_raw"], ceil_triad), ""],
        [f"**eliza_nb**, whole call ({sides['n_ours']:.0f} tokens)", f"{sides['e2e_ours']:.1f}",
         frac(sides["e2e_ours"], ceil_read), frac(sides["e2e_ours"], ceil_triad),
         f"{sides['e2e_ours'] / sides['e2e_raw']:.2f}x"],
    ]
    body += "\n\n**Generation, SmolLM2-135M Q4_1, batch 1** (tokens/s):\n\n"
    body += table(["", "tokens/s", "fraction of the read-bandwidth ceiling", "of the triad ceiling", "eliza_nb / raw"],
                  grows)
    erows = []
    for what, label in (("batch", f"one `embed(list)` of {args.texts}"), ("one", f"one call per text ({args.one} texts)")):
        erows.append([f"ceiling, {label} ({tok[what]:.1f} tokens/text)", f"{ceil[what]:,.0f}", "1.00", ""])
        for side, name in (("raw", "raw llama-cpp-python"), ("ours", "**eliza_nb**")):
            rate = sides[f"{what}_{side}"] * tok[what]
            erows.append([f"{name}, {label}", f"{rate:,.0f}", frac(rate, ceil[what]),
                          "" if side == "raw" else f"{sides[f'{what}_ours'] / sides[f'{what}_raw']:.2f}x"])
    body += "\n\n**Embeddings, MiniLM-L6 f32** (tokens/s; texts/s = tokens/s / tokens per text):\n\n"
    body += table(["", "tokens/s", "fraction of the compute ceiling", "eliza_nb / raw"], erows)
    tt = gen["types"]
    body += (
        f"\n\nBytes per generated token: {gen['weights'] / 1e6:.1f} MB of weights, the sum of the GGUF's tensor sizes read "
        f"with `gguf.GGUFReader` (Q4_1 {tt.get('Q4_1', 0) / 1e6:.1f} MB, Q8_0 {tt.get('Q8_0', 0) / 1e6:.1f} MB, "
        f"F32 {tt.get('F32', 0) / 1e6:.2f} MB; the file is {gen['file'] / 1e6:.1f} MB with its header and vocabulary)"
        f"{'; the embedding matrix is tied, so it is also the output projection and is read whole every token' if gen['tied'] else ''}"
        f", plus the f16 KV cache: 2 x {gen['n_layer']} layers x {gen['n_kv']} KV heads x {gen['head_dim']} x 2 bytes = "
        f"{gen['kv_per_pos'] / 1024:.1f} KiB per position, x {ctx:.0f} positions on average over the measured tokens "
        f"({n_prompt}-token prompt) = {gen['kv_per_pos'] * ctx / 1e6:.1f} MB: {per_token / 1e6:.1f} MB a token. "
        f"The weights are 3x the 32 MiB L3, so every token streams them from memory. "
        f"Compute per token: 2 x {gen['matmul'] / 1e6:.1f} M matmul weights + attention 4 x ctx x d x layers = "
        f"{gen_flops / 1e6:.0f} MFLOP, i.e. {gen_flops / per_token:.1f} FLOP per byte against a machine balance of "
        f"{gf[2] / bw_read:.1f} FLOP per byte (matmul FLOP/s over read bandwidth). "
        f"Decode rate = (tokens of a {args.tokens}-token run - tokens of an 8-token run) / (difference of their times), "
        "which cancels the prompt's evaluation and each call's fixed costs; \"whole call\" is bench/local.py's measure; "
        f"\"decode alone\" is the best of 3 runs of {args.tokens} one-token `Llama.eval` calls after the prompt "
        "(llama.cpp's forward pass and logits, without llama-cpp-python's sampling). "
        f"Embeddings: FLOPs per token = 2 x {emb['matmul'] / 1e6:.2f} M matmul weights (the 2-D block tensors; "
        f"of {emb['params'] / 1e6:.1f} M parameters, the rest are embedding lookups, biases and norms) + "
        f"{emb['n_layer']} layers x 4 x L x {emb['d']} (QK^T and the weighted sum of V over a sentence of L tokens, "
        "[CLS] and [SEP] included) "
        f"= {per_emb / 1e6:.1f} MFLOP at L = {L:.1f}; the ceiling uses the 2-thread matmul rate. "
        f"Side rates: median of {args.runs} rounds in bench/local.py's worker processes (one process per side, "
        f"taking turns, same settings); measured in {time.perf_counter() - t_start:.0f} s."
    )
    write_result("roofline", "Roofline: the local models against this machine's limits", body,
                 f"bench/roofline.py --runs {args.runs} --tokens {args.tokens} --texts {args.texts} --one {args.one}")


if __name__ == "__main__":
    main()
