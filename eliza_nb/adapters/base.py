"""The Provider protocol: what every adapter offers the runtime.

Adapters are small: they turn a resolved :class:`Request` into the provider's wire
format, call it with the client the runtime gives them, and turn the answer (or the
failure) back into a :class:`Completion` (or a typed :mod:`errors` exception). They hold
no retry, cache or budget logic; that lives once, in the runtime.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..core.types import Completion, ImageResult, Request  # noqa: F401 - ImageResult re-exported


@dataclass
class StreamChunk:
    """One piece of a streamed answer; the last chunk carries the Completion."""

    text: str = ""
    completion: Completion | None = None


@runtime_checkable
class Provider(Protocol):
    """What the runtime calls. Unsupported operations raise ConfigError with a reason."""

    id: str

    def generate(self, request: Request) -> Completion:
        """One finished answer."""

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        """Text pieces as they arrive, then a final chunk whose ``completion`` is set."""

    def embed(self, texts: Sequence[str], model: str, timeout_s: float) -> np.ndarray:
        """An (n, d) float32 array, one row per text, in order."""

    def close(self) -> None:
        """Release clients, threads and loaded models."""

    # Optional, for providers with an IMAGE model:
    #   def image(self, prompt: str, model: str, options: dict, timeout_s: float) -> ImageResult
    # ``options`` holds size, width, height, steps, seed, negative_prompt, quality, style,
    # guidance; an option the API does not take is dropped with a note in ImageResult.notes.
