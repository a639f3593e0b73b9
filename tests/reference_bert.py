"""A plain-numpy BERT forward pass with mean pooling: the reference our GGUF must match.

Written from the BERT paper / sentence-transformers' definition, independent of llama.cpp,
so a mistake in our converter (tensor names, vocab, special tokens) shows up as a
different vector. Tokenisation uses HF ``tokenizers`` on the package's tokenizer.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eliza_nb.adapters.bert_gguf import read_safetensors


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    from math import sqrt

    erf = np.vectorize(__import__("math").erf)
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)))


class ReferenceBert:
    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.t = {k: np.asarray(v, dtype=np.float64) for k, v in read_safetensors(model_dir / "model.safetensors").items()}
        self.cfg = json.loads((model_dir / "config.json").read_text())
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.no_padding()  # the shipped tokenizer.json pads to 128

    def token_ids(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def embed(self, text: str) -> np.ndarray:
        t, cfg = self.t, self.cfg
        eps = cfg["layer_norm_eps"]
        ids = self.token_ids(text)
        n = len(ids)
        x = (t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:n]
             + t["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
        heads = cfg["num_attention_heads"]
        d = cfg["hidden_size"] // heads
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            lin = lambda name, v, p=p: v @ t[p + name + ".weight"].T + t[p + name + ".bias"]
            q = lin("attention.self.query", x).reshape(n, heads, d).transpose(1, 0, 2)
            k = lin("attention.self.key", x).reshape(n, heads, d).transpose(1, 0, 2)
            v = lin("attention.self.value", x).reshape(n, heads, d).transpose(1, 0, 2)
            att = q @ k.transpose(0, 2, 1) / np.sqrt(d)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(n, heads * d)
            x = _layer_norm(x + lin("attention.output.dense", ctx), t[p + "attention.output.LayerNorm.weight"],
                            t[p + "attention.output.LayerNorm.bias"], eps)
            h = _gelu(lin("intermediate.dense", x))
            x = _layer_norm(x + lin("output.dense", h), t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], eps)
        v = x.mean(0)
        return (v / np.linalg.norm(v)).astype(np.float32)
