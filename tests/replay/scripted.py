"""A scripted in-process provider for the record/replay tests; it counts its calls.

Protocol ``replay_script``: answers ``"<n>: <last message> (t=..)"`` where n counts calls
when the entry sets ``vary = true`` (else 0); model ``gone`` is a 404 (for failover);
vectors are a hash of (model, text). Provider ``paid`` needs PAID_API_KEY; ``free`` none.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from eliza_nb.core.errors import NotFoundError
from eliza_nb.core.registry import register_protocol
from eliza_nb.core.types import Completion, Usage

FAKE_KEY = "sk-replaytest-9Vq2LmZx7Rt4NeverInArchive"
CALLS: dict[str, int] = {}
_lock = threading.Lock()


def vector_for(model: str, text: str, dims: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{model}\n{text}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dims).astype(np.float32)


class ScriptedProvider:
    def __init__(self, entry: Any, ctx: Any) -> None:
        self.id = entry.id
        self.vary = bool(entry.extra.get("vary"))
        self.dims = int(entry.embedding_dims or 8)
        self.n = 0

    def _count(self, kind: str) -> int:
        with _lock:
            CALLS[f"{self.id}.{kind}"] = CALLS.get(f"{self.id}.{kind}", 0) + 1
            n, self.n = self.n, self.n + 1
        return n if self.vary else 0

    def _completion(self, request: Any, n: int) -> Completion:
        if request.target.model == "gone":
            raise NotFoundError(f"model {request.target.model} not found", provider=self.id)
        text = f"{n}: {request.messages[-1].content} (t={request.settings.temperature})"
        return Completion(text=text, usage=Usage(11, 7), finish_reason="stop", model=request.target.model)

    def generate(self, request: Any) -> Completion:
        return self._completion(request, self._count("generate"))

    def stream(self, request: Any) -> Iterator[Any]:
        from eliza_nb.adapters.base import StreamChunk

        completion = self._completion(request, self._count("stream"))
        for word in completion.text.split(" "):
            yield StreamChunk(text=word + " ")
        completion.text = "".join(w + " " for w in completion.text.split(" "))
        yield StreamChunk(completion=completion)

    def embed(self, texts: Any, model: str, timeout_s: float) -> np.ndarray:
        self._count("embed")
        return np.stack([vector_for(model, t, self.dims) for t in texts])

    def close(self) -> None:
        pass


register_protocol("replay_script", ScriptedProvider)


def config(vary: bool = False, failover: list[str] | None = None) -> dict[str, Any]:
    def entry(key_env: list[str]) -> dict[str, Any]:
        return {"protocol": "replay_script", "endpoint": "", "key_env": key_env, "vary": vary, "embedding_dims": 8,
                "models": {"small": "s-model", "medium": "gone", "large": "l-model", "embedding": "e-model"},
                "settings": {"temperature": 0.5, "max_output_tokens": 64},
                "prices": {"s-model": {"input": 1.0, "output": 2.0}}}

    cfg: dict[str, Any] = {"providers": {"paid": entry(["PAID_API_KEY"]), "free": entry([])},
                           "defaults": {"provider": "paid"}}
    if failover:
        cfg["failover"] = {"medium": failover}
    return cfg
