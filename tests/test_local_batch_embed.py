"""Packed batch embeddings on the local MiniLM (adapters/llama_embed.py): the vectors are the
one-at-a-time vectors of llama-cpp-python's own ``Llama.embed`` (cosine >= 0.99999), in input
order, for every batch composition. Speed is measured in bench/local.py, not here."""

from __future__ import annotations

import numpy as np
import pytest

from eliza_nb.adapters.llama_embed import SMALL
from eliza_nb.adapters.llama_local import LlamaLocalProvider, llama_thread
from eliza_nb.adapters.local_models import MINILM, prepare_embedding_model

WORDS = ["river", "stone", "garden", "window", "painter", "music", "morning",
         "winter", "table", "letter", "mountain", "bridge", "candle", "forest"]


def sentence(n_words: int, k: int) -> str:
    return " ".join(WORDS[(i * 5 + k) % len(WORDS)] for i in range(n_words))


#: mixed lengths: empty-ish, short, around the small-context threshold, long, and past the 512-token window
TEXTS = ["", " ", "a", "?", "\n\t", sentence(3, 1), sentence(8, 2), sentence(SMALL - 3, 3), sentence(SMALL, 4),
         sentence(120, 5), sentence(250, 6), sentence(700, 7), "The cat sat on the mat.", sentence(8, 2),
         "Héllo, wörld! 42 × 3", sentence(30, 8), sentence(509, 9), sentence(510, 10)]


@pytest.fixture(scope="module")
def reference(models_home):
    """Today's one-at-a-time vectors: raw ``Llama.embed(text)`` as llama-cpp-python makes them
    (default flash_attn=False), driven from the one llama thread like the adapter."""
    from llama_cpp import Llama

    path = str(prepare_embedding_model(models_home, MINILM))
    run = lambda fn: llama_thread().submit(fn).result()
    llm = run(lambda: Llama(model_path=path, embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
                            n_threads_batch=2, verbose=False))
    memo: dict[str, np.ndarray] = {}

    def one(text: str) -> np.ndarray:
        if text not in memo:
            memo[text] = np.asarray(run(lambda: llm.embed(text, normalize=True)), dtype=np.float64)
        return memo[text]

    one.tokens = lambda text: run(lambda: len(llm.tokenize(text.encode("utf-8"))))  # type: ignore[attr-defined]
    yield one
    run(llm.close)


@pytest.fixture(scope="module")
def provider(models_home):
    p = LlamaLocalProvider(models_home)
    yield p
    p.close()


def embed(provider: LlamaLocalProvider, texts: list[str]) -> np.ndarray:
    return provider.embed(texts, MINILM.name)


def assert_same(vectors: np.ndarray, texts: list[str], reference) -> None:
    assert vectors.shape == (len(texts), 384) and vectors.dtype == np.float32
    ref = np.stack([reference(t) for t in texts])
    cos = (vectors.astype(np.float64) * ref).sum(axis=1)
    assert cos.min() >= 0.99999, f"row {int(cos.argmin())}: cosine {cos.min():.9f}"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_mixed_batch_matches_one_at_a_time_in_input_order(provider, reference):
    assert reference.tokens(TEXTS[16]) < reference.tokens(TEXTS[17]) <= 512 < reference.tokens(TEXTS[11])
    assert_same(embed(provider, TEXTS), TEXTS, reference)
    shuffled = [TEXTS[i] for i in np.random.default_rng(7).permutation(len(TEXTS))]
    assert_same(embed(provider, shuffled), shuffled, reference)
    # rows follow the input, not the length-sorted decode order: each row is nearest its own text
    vecs = embed(provider, TEXTS)
    ref = np.stack([reference(t) for t in TEXTS])
    # ("", " " and "\n\t" are all just [CLS] [SEP]: one vector)
    distinct = [i for i in range(len(TEXTS)) if all(ref[i] @ ref[j] < 0.9999 for j in range(i))]
    assert len(distinct) >= len(TEXTS) - 4
    nearest = (vecs[distinct] @ ref[distinct].T).argmax(axis=1)
    assert list(nearest) == list(range(len(distinct)))


def test_a_text_past_the_window_is_truncated_as_llama_embed_does(provider, reference):
    long = sentence(700, 7)
    assert reference.tokens(long) > 600
    v = embed(provider, [long])[0]
    assert float(v @ reference(long)) >= 0.99999  # Llama.embed keeps the first 512 tokens; so do we
    # the words after the window do not matter; the ones inside it do
    assert float(v @ embed(provider, [long + " thunder" * 50])[0]) >= 0.99999
    assert float(v @ embed(provider, [sentence(300, 7)])[0]) < 0.9999


@pytest.mark.parametrize("n_words", [1, 6, SMALL - 4, SMALL + 4, 200])
def test_single_texts_on_either_context(provider, reference, n_words):
    text = sentence(n_words, n_words)
    assert_same(embed(provider, [text]), [text], reference)


def test_many_texts_across_many_decodes(provider, reference):
    texts = [sentence(1 + (i * 37) % 90, i) + f" {i}" for i in range(300)]  # ~15,000 tokens: dozens of decodes
    vecs = embed(provider, texts)
    assert_same(vecs, texts, reference)
    again = embed(provider, list(reversed(texts)))[::-1]
    assert np.array_equal(embed(provider, texts), vecs), "the same batch gives the same bits"
    assert float(((again * vecs).sum(axis=1)).min()) >= 0.99999


def test_the_runtime_path_keeps_order_and_vectors(local_runtime, reference):
    texts = [sentence(5 + i % 40, i) + f" runtime {i}" for i in range(150)]  # more than one service batch (64)
    vecs = local_runtime.embed(texts)
    assert_same(vecs, texts, reference)
    assert local_runtime.embed([]).shape == (0, 384)
