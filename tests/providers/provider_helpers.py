"""Constants and helpers shared by the provider tests (imported by name: a module called
``conftest`` is ambiguous when several test folders are collected together)."""

from __future__ import annotations

import socket

#: the key the tests hand to providers; no exception, repr, log or ledger row may show it
SECRET = "sk-test-Zq8v1T0pS3cr3tK3yNeverShow42"
SERVER_KEY = "llama-local-server-key-9f8e7d6c5b4a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeTime:
    """An injected clock/sleep: sleeping advances the clock instantly and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def openai_entry(endpoint: str, *, key_env: str = "FAULT_KEY", **extra) -> dict:
    """A user-defined OpenAI-compatible catalog entry: base URL + key variable, no code."""
    return {"protocol": "openai", "endpoint": endpoint, "key_env": [key_env] if key_env else [],
            "models": {"small": "m-small", "medium": "m-medium", "large": "m-large", "embedding": "m-embed",
                       "image": "m-image"},
            "settings": {"temperature": 0.0, "max_output_tokens": 32}, **extra}


def assert_no_secret(*things) -> None:
    """The secret appears in none of these (strings, exceptions, reprs, DataFrames)."""
    for thing in things:
        for text in (str(thing), repr(thing)):
            assert SECRET not in text and SERVER_KEY not in text, f"key leaked into: {text[:200]}"


class FakeLlamaCache:
    """What LoadedModel.evaluate_prompt drives on a llama_cpp.Llama (its window, the tokens in
    its KV cache, ``eval``), for stand-ins that only need to answer ``create_completion``."""

    n_batch = 512

    def __init__(self) -> None:
        import numpy as np

        self.input_ids = np.zeros(0, dtype=np.intc)
        self.n_tokens = 0
        self.evaluated: list[list[int]] = []

    def n_ctx(self) -> int:
        return 4096

    def eval(self, tokens: list[int]) -> None:
        import numpy as np

        self.evaluated.append(list(tokens))
        self.input_ids = np.concatenate([self.input_ids[: self.n_tokens], np.asarray(tokens, dtype=np.intc)])
        self.n_tokens = len(self.input_ids)
