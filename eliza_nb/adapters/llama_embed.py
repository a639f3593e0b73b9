"""Sentence embeddings from a llama.cpp encoder (the MiniLM BERT GGUF), packed for speed.

Why not ``Llama.embed(list)``: it packs texts in input order into decodes of up to
``n_batch`` (512) tokens, and without flash attention llama.cpp attends over EVERY token of
a decode, the other sentences' tokens only masked out afterwards: the work per decode grows
with the square of the tokens packed into it, in a path (F32 KQ product, softmax over the
masked rows) about 10x slower per FLOP than the weight products. Measured on 2 cores:
8-token sentences ran at 4150 tokens/s in decodes of 64 tokens and at 1590 in decodes of
512 (a fit gives 2.3 ms + 0.23 ms/token + 0.74 us/token^2 per decode), so one batch of 200
was slower than 200 single calls (docs/performance.md §3).

What this module does instead (the batch composition):

- the main context runs with flash attention: ggml's CPU kernel skips the masked (-inf)
  pairs, so packing sentences together costs nothing extra: ~4200-4900 tokens/s from 64 to
  512 tokens a decode (8-token sentences packed 64 to a decode: 121 ms against 322 ms), and a
  long text gains too (one 256-token text: 63 ms against 109 ms). Vectors move by under 2e-7
  in cosine (llama.cpp casts K and V to F16 for it);
- texts are sorted by token count (longest first) and packed next-fit into decodes of up to
  ``n_batch`` tokens and ``n_seq_max`` sequences; rows come back in input order;
- a decode under ``SMALL`` (64) tokens (a single short text, a tiny batch) runs on a second,
  small context WITHOUT flash attention on the same model: below 64 query rows ggml's CPU
  flash-attention kernel takes a slower row-by-row path (a 47-token text: 15.6 ms against
  12.7 ms without it).

Truncation is what ``Llama.embed`` does today: a text's tokens beyond ``n_batch`` (the
512-token window) are cut. Everything here runs on the llama thread (llama_local.py).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np

#: decodes with fewer tokens than this run on the small context without flash attention
SMALL = 64


class PackedEncoder:
    """Embeds lists of texts with a ``Llama(embedding=True, flash_attn=True)`` (see the module doc)."""

    def __init__(self, llm: Any, *, n_threads: int, cap: int | None = None) -> None:
        import llama_cpp

        self._lc = llama_cpp
        self.llm = llm
        self.window = int(llm.n_batch)  # what Llama.embed truncates to
        self.cap = min(cap or self.window, self.window)  # tokens per decode on the main context
        self.n_seq_max = int(llm.context_params.n_seq_max)
        self.n_embd = int(llm.n_embd())
        self.n_threads = n_threads
        self._small: Any = None  # llama_context_p, created on first use
        # a model without pooling answers one vector per token: Llama.embed's own path keeps that shape
        self.pooled = llm.pooling_type() != llama_cpp.LLAMA_POOLING_TYPE_NONE
        self._batch = llama_cpp.llama_batch_init(self.window, 0, 1)

    def _small_ctx(self) -> Any:
        if self._small is None:
            lc = self._lc
            p = lc.llama_context_default_params()
            p.n_ctx = p.n_batch = p.n_ubatch = SMALL
            p.n_seq_max = min(SMALL, self.n_seq_max)
            p.n_threads = p.n_threads_batch = self.n_threads
            p.embeddings = True
            p.kv_unified = True
            p.pooling_type = self.llm.context_params.pooling_type
            p.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
            ctx = lc.llama_init_from_model(self.llm.model, p)
            if not ctx:
                raise RuntimeError("llama.cpp could not create the small embedding context")
            self._small = ctx
        return self._small

    def tokens(self, text: str) -> list[int]:
        """The text's tokens exactly as ``Llama.embed`` takes them (BOS/CLS added, cut at the window)."""
        return self.llm.tokenize(text.encode("utf-8"))[: self.window]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float32 vectors, one row per text, in input order."""
        if not self.pooled:
            return np.asarray(self.llm.embed(list(texts), normalize=True), dtype=np.float32)
        toks = [self.tokens(t) for t in texts]
        out = np.empty((len(toks), self.n_embd), dtype=np.float32)
        order = sorted(range(len(toks)), key=lambda i: -len(toks[i]))  # stable: equal lengths keep input order
        group: list[int] = []
        used = 0
        for i in order:
            n = len(toks[i])
            if group and (used + n > self.cap or len(group) >= self.n_seq_max):
                self._decode([toks[j] for j in group], group, out)
                group, used = [], 0
            group.append(i)
            used += n
        if group:
            self._decode([toks[j] for j in group], group, out)
        norms = np.linalg.norm(out.astype(np.float64), axis=1, keepdims=True)
        return (out / np.where(norms == 0.0, 1.0, norms)).astype(np.float32)

    def _decode(self, seqs: list[list[int]], rows: list[int], out: np.ndarray) -> None:
        lc = self._lc
        total = sum(map(len, seqs))
        ctx = self._small_ctx() if total < SMALL else self.llm.ctx
        mem = lc.llama_get_memory(ctx)
        if mem:  # a non-causal BERT keeps none; other embedding models start every decode empty
            lc.llama_memory_clear(mem, True)
        b = self._batch
        tok = np.ctypeslib.as_array(b.token, shape=(total,))
        pos = np.ctypeslib.as_array(b.pos, shape=(total,))
        nsq = np.ctypeslib.as_array(b.n_seq_id, shape=(total,))
        lgt = np.ctypeslib.as_array(ctypes.cast(b.logits, ctypes.POINTER(ctypes.c_int8)), shape=(total,))
        tok[:] = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=total)
        pos[:] = np.concatenate([np.arange(len(s), dtype=np.int32) for s in seqs])
        nsq[:] = 1
        lgt[:] = 1  # every token an output: embeddings are pooled over all of them
        k = 0
        for s, seq in enumerate(seqs):
            for _ in range(len(seq)):
                b.seq_id[k][0] = s
                k += 1
        b.n_tokens = total
        rc = lc.llama_decode(ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        for s, row in enumerate(rows):
            ptr = lc.llama_get_embeddings_seq(ctx, s)
            if not ptr:
                raise RuntimeError(f"llama.cpp returned no embedding for sequence {s}")
            out[row] = np.ctypeslib.as_array(ptr, shape=(self.n_embd,))

    def close(self) -> None:
        """Free the small context and the batch (the Llama is its owner's to close)."""
        if self._small is not None:
            self._lc.llama_free(self._small)
            self._small = None
        if self._batch is not None:
            self._lc.llama_batch_free(self._batch)
            self._batch = None
