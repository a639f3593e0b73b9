"""A counting fake provider for the cache tests: deterministic vectors, every call counted.

Registered as protocol ``fake_embed`` on import. Catalog knobs (provider table extras):
``fake_dims`` (the size it really returns; default the entry's embedding_dims),
``fake_delay`` (seconds per embed call). A text containing ``NaN!`` gets a NaN vector; ``FAIL!`` fails the batch.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from eliza_nb.core.registry import register_protocol
from eliza_nb.core.types import Completion, Usage


def vector_for(model: str, text: str, dims: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{model}\n{text}".encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeProvider:
    def __init__(self, entry: Any, ctx: Any) -> None:
        self.id = entry.id
        self.dims = int(entry.extra.get("fake_dims") or entry.embedding_dims or 8)
        self.delay = float(entry.extra.get("fake_delay") or 0)
        self.lock = threading.Lock()
        self.embed_calls = 0
        self.embedded: list[str] = []
        self.batches: list[int] = []
        self.generate_calls = 0

    def embed(self, texts, model, timeout_s):
        with self.lock:
            self.embed_calls += 1
            self.embedded.extend(texts)
            self.batches.append(len(texts))
        if self.delay:
            time.sleep(self.delay)
        if any("FAIL!" in t for t in texts):
            from eliza_nb.core.errors import BadResponseError

            raise BadResponseError("the fake provider refused this batch", provider=self.id)
        out = np.stack([vector_for(model, t, self.dims) for t in texts])
        for i, t in enumerate(texts):
            if "NaN!" in t:
                out[i, 0] = np.nan
        return out

    def _answer(self, request) -> str:
        s = request.settings
        return f"echo: {request.messages[-1].content} (t={s.temperature}, seed={s.seed})"

    def generate(self, request) -> Completion:
        with self.lock:
            self.generate_calls += 1
        return Completion(text=self._answer(request), usage=Usage(3, 5), finish_reason="stop", model=request.target.model)

    def stream(self, request) -> Iterator[Any]:
        from eliza_nb.adapters.base import StreamChunk

        with self.lock:
            self.generate_calls += 1
        text = self._answer(request)
        for word in text.split(" "):
            yield StreamChunk(text=word + " ")
        yield StreamChunk(completion=Completion(text=text, usage=Usage(3, 5), finish_reason="stop", model=request.target.model))

    def close(self) -> None:
        pass


register_protocol("fake_embed", FakeProvider)


def fake_table(dims: int = 8, returned: int | None = None, delay: float = 0.0, batch: int | None = None,
               model: str = "fake-embed") -> dict[str, Any]:
    table: dict[str, Any] = {
        "protocol": "fake_embed", "models": {"small": "fake-chat", "embedding": model},
        "embedding_dims": dims, "fake_dims": returned or dims, "fake_delay": delay,
    }
    if batch:
        table["embedding_batch_size"] = batch
    return table


def fake_config(cache: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """A config with providers ``fake`` (8-d) and ``fake2`` (16-d, another model), fake as default."""
    return {
        "providers": {"fake": fake_table(**kw), "fake2": fake_table(dims=16, model="other-embed")},
        "defaults": {"provider": "fake", "embedding_provider": "fake"},
        "cache": dict(cache or {}),
    }


CONFIG_TOML = """
[defaults]
provider = "fake"
embedding_provider = "fake"

[providers.fake]
protocol = "fake_embed"
models = { small = "fake-chat", embedding = "fake-embed" }
embedding_dims = 8
"""
