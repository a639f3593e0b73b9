"""The OpenAI-compatible adapter against a REAL OpenAI-compatible server on loopback
(llama_cpp.server), registered as a user-defined catalog entry: no code, only data."""

from __future__ import annotations

import numpy as np
import pytest
from provider_helpers import SERVER_KEY, assert_no_secret

from eliza_nb.core.errors import AuthError
from eliza_nb.core.runtime import Runtime

# llama.cpp's server defaults differ from Llama() (repeat_penalty 1.1): set everything.
EXACT = {"temperature": 0.0, "max_tokens": 24, "repetition_penalty": 0.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}
QUESTION = "What is the capital of France?"
SYSTEM = "You are a helpful assistant."


@pytest.fixture
def server_rt(home, llama_server):
    entry = {
        "protocol": "openai", "endpoint": llama_server, "key_env": ["LLAMASRV_KEY"],
        "models": {"small": "smollm2", "medium": "smollm2", "large": "smollm2", "embedding": "minilm"},
        "embedding_dims": 384,
        # llama.cpp's server takes a multiplicative repeat_penalty (1 = off)
        "repetition_penalty_param": "repeat_penalty",
    }
    rt = Runtime(home, config={"providers": {"llamasrv": entry}}, env={"LLAMASRV_KEY": SERVER_KEY})
    yield rt
    rt.close()


def test_chat_over_real_http(server_rt, local_runtime):
    r = server_rt.generate(QUESTION, provider="llamasrv", system=SYSTEM, **EXACT)
    assert "Paris" in r.text
    assert (r.provider, r.model_class) == ("llamasrv", "small")
    assert r.usage.prompt_tokens and r.usage.completion_tokens
    assert [a.outcome for a in r.attempts] == ["ok"]
    assert r.notes == []  # every setting had a place to go
    local = local_runtime.generate(QUESTION, provider="llama_local", system=SYSTEM, **EXACT)
    # Same GGUF, same template, same explicit settings: the same answer in process and over HTTP.
    assert local.text == r.text
    assert_no_secret(r, r.metadata(), server_rt.ledger.dataframe().to_string())


def test_max_tokens_and_finish_reason(server_rt):
    r = server_rt.generate("Count from one to one hundred in words.", provider="llamasrv", system=SYSTEM,
                           **{**EXACT, "max_tokens": 5})
    assert r.usage.completion_tokens <= 5
    assert r.finish_reason == "length"


def test_streaming_reuses_one_connection(server_rt):
    texts = []
    for _ in range(3):
        s = server_rt.stream(QUESTION, provider="llamasrv", system=SYSTEM, **EXACT)
        chunks = list(s)
        assert len(chunks) > 1
        assert "".join(chunks) == s.result.text
        texts.append(s.result.text)
    assert "Paris" in texts[0]
    assert len(set(texts)) == 1  # temperature 0: the same answer each time
    pool = server_rt.http_client()._transport._pool
    assert len(pool.connections) == 1, "each stream should reuse the pooled connection"
    assert len(server_rt.ledger.rows()) == 3


def test_embeddings_match_the_local_model(server_rt, local_runtime):
    texts = ["a cat sat on the mat", "stocks fell sharply today"]
    remote = server_rt.embed(texts, provider="llamasrv")
    assert remote.shape == (2, 384) and remote.dtype == np.float32
    local = local_runtime.embed(texts, provider="llama_local")
    remote_n = remote / np.linalg.norm(remote, axis=1, keepdims=True)
    cos = (remote_n * local).sum(axis=1)
    assert np.all(cos > 0.999), cos


def test_wrong_key_is_one_line_auth_error(home, llama_server):
    entry = {"protocol": "openai", "endpoint": llama_server, "key_env": ["LLAMASRV_KEY"], "models": {"small": "smollm2"}}
    wrong = "sk-wrong-key-0123456789abcdef"
    rt = Runtime(home, config={"providers": {"llamasrv": entry}}, env={"LLAMASRV_KEY": wrong})
    with pytest.raises(AuthError) as info:
        rt.generate(QUESTION, provider="llamasrv", failover=False, max_tokens=4)
    msg = str(info.value)
    assert msg.startswith("[llamasrv]") and "401" in msg and "\n" not in msg
    assert wrong not in msg and wrong not in repr(info.value)
    assert len(info.value.attempts) == 1  # 401 is never retried
    rt.close()
