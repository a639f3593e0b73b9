"""eliza_nb.similar: cosine top-k over texts (through the cache) or vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import eliza_nb
from eliza_nb.core.embeddings.similarity import similar
from eliza_nb.core.errors import EmbeddingDimensionError


def brute(q, m, k):
    q = q / np.linalg.norm(q)
    s = (m / np.linalg.norm(m, axis=1, keepdims=True)) @ q
    order = np.argsort(-s, kind="stable")[:k]
    return order, s[order]


def test_texts_are_embedded_through_the_cache_and_ranked_best_first(rt):
    texts = [f"doc {i}" for i in range(40)]
    df = similar(rt, "doc 7", texts, k=5)
    assert list(df.columns) == ["text", "score"] and len(df) == 5
    assert df.text.iloc[0] == "doc 7" and df.score.iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert df.index[0] == 7 and df.score.is_monotonic_decreasing
    m = rt.embed(texts)
    order, scores = brute(rt.embed("doc 7"), m, 5)
    assert list(df.index) == list(order) and np.allclose(df.score, scores, atol=1e-5)
    before = len(rt.adapter("fake").embedded)
    similar(rt, "doc 7", texts, k=3)
    assert len(rt.adapter("fake").embedded) == before  # all from the cache


def test_vectors_any_length_and_index_labels(rt):
    rng = np.random.default_rng(0)
    m = rng.standard_normal((500, 8)).astype(np.float32) * rng.uniform(0.1, 10, (500, 1)).astype(np.float32)
    q = rng.standard_normal(8)
    df = similar(rt, q, m, k=10)
    order, scores = brute(q, m, 10)
    assert list(df.index) == list(order) and np.allclose(df.score, scores, atol=1e-5)
    assert df.text.isna().all()
    s = pd.Series(list(m[:20]), index=[f"r{i}" for i in range(20)])
    assert list(similar(rt, q, s, k=3).index) == [f"r{i}" for i in brute(q, m[:20], 3)[0]]
    assert len(similar(rt, q, m[:4], k=10)) == 4  # k above n: all of them


def test_a_dataframe_from_embed_and_the_public_function(shared_fake):
    texts = ["a cat", "a dog", "stocks fell"]
    frame = pd.DataFrame({"text": texts, "vector": list(eliza_nb.embed(texts)), "dims": [8, 8, 8]})
    df = eliza_nb.similar("a dog", frame, k=2)
    assert df.text.iloc[0] == "a dog" and list(df.index)[0] == 1
    series = pd.Series(texts)
    assert eliza_nb.similar("stocks fell", series, k=1).text.tolist() == ["stocks fell"]


def test_bad_inputs(rt):
    with pytest.raises(ValueError, match="k must"):
        similar(rt, "x", ["a"], k=0)
    with pytest.raises(EmbeddingDimensionError, match="8 dimensions but the candidates have 3"):
        similar(rt, "x", np.ones((4, 3)), k=2)
    with pytest.raises(ValueError, match="mix"):
        similar(rt, "x", ["a", np.ones(8)], k=1)
    with pytest.raises(ValueError, match="column"):
        similar(rt, "x", pd.DataFrame({"other": [1]}), k=1)


@pytest.fixture
def shared_fake(rt):
    old = eliza_nb.set_runtime(rt)
    yield rt
    eliza_nb.set_runtime(old)


def test_nan_and_zero_rows_rank_last(rt):
    m = np.eye(4, 8, dtype=np.float32)
    m[1] = np.nan
    m[2] = 0.0
    df = similar(rt, np.eye(1, 8, 0)[0], m, k=4)
    assert list(df.index[:2]) == [0, 3] and sorted(df.index[2:]) == [1, 2]
    assert np.isneginf(df.score.iloc[2:]).all()
