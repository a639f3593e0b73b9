"""A scripted in-process provider for pipeline tests (registered as protocol "scripted")."""

from __future__ import annotations

import threading
import time

import pytest

from eliza_nb.adapters.base import StreamChunk
from eliza_nb.core import registry
from eliza_nb.core.errors import ContextTooLongError, TransientError
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.types import Completion, Usage


class ScriptedProvider:
    """Answers "echo: <last user message>"; can refuse prompts over ``max_chars`` the way a
    real API says "context length exceeded", fail on a marker, and sleep to simulate latency."""

    def __init__(self, pid: str) -> None:
        self.id = pid
        self.calls: list = []
        self.max_chars: int | None = None
        self.vague = False  # say "too long" without numbers
        self.delay_s = 0.0
        self.lock = threading.Lock()

    def _answer(self, request) -> Completion:
        with self.lock:
            self.calls.append(request)
        chars = sum(len(m.content) for m in request.messages)
        if self.max_chars is not None and chars > self.max_chars:
            if self.vague:
                raise ContextTooLongError("input too long", provider=self.id)
            raise ContextTooLongError(f"This model's maximum context length is {self.max_chars // 4} tokens. "
                                      f"However, your messages resulted in {chars // 4} tokens.", provider=self.id)
        last = request.messages[-1].content
        if "FAIL" in last:
            raise TransientError("scripted failure", provider=self.id)
        if self.delay_s:
            time.sleep(self.delay_s)
        text = f"echo: {last[:40]}"
        return Completion(text=text, usage=Usage(chars // 4, len(text.split())), finish_reason="stop", model=request.target.model)

    def generate(self, request) -> Completion:
        return self._answer(request)

    def stream(self, request):
        completion = self._answer(request)
        for word in completion.text.split(" "):
            yield StreamChunk(text=word + " ")
        completion.text = " ".join(completion.text.split(" ")) + " "
        yield StreamChunk(completion=completion)

    def embed(self, texts, model, timeout_s=0):
        raise NotImplementedError

    def close(self) -> None:
        pass


_instances: dict[str, ScriptedProvider] = {}


def _factory(entry, context):
    return _instances.setdefault(entry.id, ScriptedProvider(entry.id))


registry.register_protocol("scripted", _factory)


@pytest.fixture
def scripted(tmp_path, models_home):
    """A runtime with two scripted providers ("paid" with prices, "cheap" without) + llama_local."""
    import shutil

    _instances.clear()
    shutil.copytree(models_home / "models", tmp_path / "models")
    config = {"providers": {
        "paid": {"protocol": "scripted", "endpoint": "scripted://paid", "models": {"small": "paid-1", "large": "paid-xl"},
                 "settings": {"max_input_tokens": 4096, "max_output_tokens": 256, "temperature": 0.5},
                 "prices": {"paid-1": {"input": 1000.0, "output": 2000.0}}},
        "cheap": {"protocol": "scripted", "endpoint": "scripted://cheap", "models": {"small": "cheap-1"},
                  "settings": {"max_input_tokens": 4096, "max_output_tokens": 256}},
    }}
    rt = Runtime(tmp_path, config=config, env={}, sleep=lambda s: None)
    rt.scripted = lambda pid: _factory(rt.catalog.get(pid), None)  # type: ignore[attr-defined]
    yield rt
    rt.close()
