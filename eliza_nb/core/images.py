"""The IMAGE class: an ImageJob for the ladder (core/ladder.py); :meth:`Runtime.image` calls here.

Failover follows ``[failover] image = [...]`` like text; an option the provider's API does
not take is dropped by its adapter with a note.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .ladder import Climb, Job, climb
from .settings import check_timeout
from .types import Attempt, ImageResult, ModelClass, Target

if TYPE_CHECKING:
    from .catalog import ProviderEntry
    from .runtime import Runtime

#: what ``image(...)`` accepts besides prompt/provider/model; adapters map or drop each
IMAGE_OPTIONS = frozenset({"size", "width", "height", "steps", "seed", "negative_prompt", "quality", "style", "guidance"})
CALL_OPTIONS = frozenset({"timeout_s", "failover"})


class ImageJob(Job):
    """One image from the first target in the chain that answers."""

    kind = "image"

    def __init__(self, rt: Runtime, prompt: str, provider: str | None, model: str | None,
                 options: Mapping[str, Any]) -> None:
        opts = dict(options)
        unknown = sorted(set(opts) - IMAGE_OPTIONS - CALL_OPTIONS)
        if unknown:
            valid = ", ".join(sorted(IMAGE_OPTIONS | CALL_OPTIONS))
            raise ConfigError(f"unknown image option(s) {', '.join(unknown)}; valid: {valid}")
        if not str(prompt).strip():
            raise ConfigError("image needs a prompt")
        self.prompt = str(prompt)
        self.timeout_s = check_timeout(opts.pop("timeout_s", None), rt.retry.timeout_s)
        self.targets = rt.targets(rt.resolve(provider, ModelClass.IMAGE, model), opts.pop("failover", None))
        self.options = opts

    def run(self, rt: Runtime) -> Climb:
        return climb(rt, self, self.targets)

    def fit(self, rt: Runtime, adapter: Any, target: Target, timeout_s: float) -> tuple[float, list[str], int]:
        if getattr(adapter, "image", None) is None:
            entry = rt.catalog.get(target.provider)
            raise ConfigError(f"the {entry.protocol} adapter cannot make images", provider=entry.id)
        return timeout_s, [], 0

    def call(self, rt: Runtime, adapter: Any, target: Target, payload: float, t0: float) -> Climb:
        result: ImageResult = adapter.image(self.prompt, target.model, self.options, payload)
        result.provider, result.model, result.prompt = target.provider, target.model, self.prompt
        result.latency_s = rt.clock() - t0
        return result
        yield  # a generator that yields nothing: images do not stream

    def finish(self, rt: Runtime, target: Target, answer: ImageResult, attempts: list[Attempt],
               notes: list[str]) -> ImageResult:
        answer.attempts = list(attempts)
        answer.notes[:0] = notes
        return answer

    def cost(self, entry: ProviderEntry, target: Target, answer: ImageResult) -> float:
        prices = entry.extra.get("image_prices")
        price = prices.get(target.model) if isinstance(prices, dict) else None
        return float(price) if price is not None else math.nan
