"""The generation cache: opt-in, keyed by the full request, used by the runtime pipeline.

A request's key is sha256 of the canonical JSON of (provider, model, every message, every
setting, seed included): :func:`generation_key` is public and deterministic, so a
record/replay archive can be keyed the same way. Answers are stored as JSON records in
the same two-tier cache as embeddings (never pickled). Only finished answers are stored:
the pipeline reaches :func:`store_generation` only after a call succeeded, and an
interrupted or cut stream never does, nor an answer a provider's filter blocked. An answer
that held a key (a server echoing the request's credentials) is returned with the key masked by :func:`hide_keys` and never stored.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from .. import redact
from ..types import BLOCKED_REASONS
from .tiers import KEY_VERSION, Cache, canonical_json, decode_record, encode_record

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..types import Result

#: the note on an answer whose text held a key; :func:`store_generation` never keeps one
KEY_NOTE = f"the answer held the value of a key variable: it is shown as {redact.ANSWER_MASK} and was not cached"


def generation_key(request: Any) -> str:
    """The hex cache key of a generation Request: provider, model, messages, every set setting, seed.

    Deterministic across processes and machines (canonical JSON, sha256), so a recorded
    notebook replays from the same keys.
    """
    from ..settings import SETTINGS

    t = request.target
    # Only the settings that are set, floats as floats: declaring a new setting, or writing
    # temperature=0 instead of 0.0, must not change the key of a request that did not use it.
    settings = {k: (list(v) if isinstance(v, tuple) else float(v) if SETTINGS[k].kind is float else v)
                for k, v in request.settings.as_dict().items()}
    ident = ["generate", KEY_VERSION, str(t.provider), str(t.model),
             [[m.role, m.content] for m in request.messages], settings]
    return hashlib.sha256(canonical_json(ident)).hexdigest()


def generation_tag(provider: str, model: str) -> str:
    return canonical_json(["generate", provider, model]).decode()


def cached_generation(cache: Cache, request: Any, clock: Callable[[], float] = time.monotonic) -> Any:
    """The Result stored for this exact request (``cached=True``), or None."""
    from ..types import Attempt, Result, Usage

    t0 = clock()
    key = generation_key(request)
    t = request.target
    found = cache.lookup([bytes.fromhex(key)], generation_tag(t.provider, t.model), _decode_generations)
    answer = next(iter(found.values()), None)
    if answer is None:
        return None
    return Result(
        text=answer["text"], provider=t.provider, model=str(answer.get("model") or t.model),
        model_class=t.model_class.value, usage=Usage(answer.get("prompt_tokens"), answer.get("completion_tokens")),
        latency_s=clock() - t0, finish_reason=answer.get("finish_reason"), cached=True,
        settings=request.settings.as_dict(), notes=["from the generation cache"],
        attempts=[Attempt(str(t), "cache")], cache_key=key,
    )


def hide_keys(rt: Runtime, result: Result, *, every_secret: bool = False) -> Result:
    """``result`` with every key sent masked in its text, and :data:`KEY_NOTE` added when
    one was. A server can only echo a key it was sent; ``every_secret`` (an answer about to
    be cached) masks every key the session can see too (core/catalog.py ``secret_values``),
    which reads every key variable: too slow for every call, right before a store."""
    from ..catalog import secret_values

    if isinstance(result.text, str):
        keys = secret_values(rt.catalog, rt.env) if every_secret else ()
        result.text, masked = redact.mask_answer(result.text, keys)
        if masked:
            result.notes.append(KEY_NOTE)
    return result


def store_generation(cache: Cache, request: Any, result: Any) -> None:
    """Keep a finished answer; never one marked interrupted, nor one that held a key, nor
    one a provider's filter blocked (types.BLOCKED_REASONS: the next call should ask again)."""
    if result.interrupted or result.finish_reason == "interrupted" or not isinstance(result.text, str):
        return
    if result.finish_reason in BLOCKED_REASONS:
        return
    if KEY_NOTE in result.notes or redact.mask_answer(result.text)[1]:  # masked, or holding a key sent unmasked
        return
    key = generation_key(request)
    t = request.target
    answer = {"text": result.text, "model": result.model, "finish_reason": result.finish_reason,
              "prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens}
    tag = generation_tag(t.provider, t.model)
    record = encode_record({"kind": "generate", "provider": t.provider, "model": t.model}, canonical_json(answer))
    cache.remember({bytes.fromhex(key): answer}, tag)
    cache.persist([(bytes.fromhex(key), record)], tag)
    result.cache_key = key


def _decode_generations(records: Mapping[bytes, bytes]) -> tuple[dict[bytes, Any], list[bytes]]:
    values, bad = {}, []
    for key, blob in records.items():
        try:
            header, payload = decode_record(blob)
            answer = json.loads(bytes(payload))
            if header.get("kind") != "generate" or not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
                raise ValueError("not a generation record")
            values[key] = answer
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: JSON nested too deep
            bad.append(key)
    return values, bad


class _Flights:
    """Requests being answered right now, by key: the first caller owns one, the others
    wait on its event (single-flight)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, tuple[threading.Event, int]] = {}

    def claim(self, key: str) -> tuple[bool, threading.Event | None]:
        """(owned, event to wait on). The owner's own thread never waits for itself (a
        half-read stream of the same request in that thread would block it)."""
        me = threading.get_ident()
        with self._lock:
            held = self._events.get(key)
            if held is None:
                self._events[key] = (threading.Event(), me)
                return True, None
            return False, (None if held[1] == me else held[0])

    def release(self, key: str) -> None:
        with self._lock:
            held = self._events.pop(key, None)
        if held is not None:
            held[0].set()


_flights_lock = threading.Lock()


def single_flight(cache: Cache, request: Any, calls: Generator[str, None, Any], wait_s: float) -> Generator[str, None, Any]:
    """Run the pipeline generator ``calls`` as the only call for ``request`` in flight.

    Identical cached calls made at the same time (threads, a benchmark, a double click)
    would each pay for the same answer: the first runs, the others wait for it (bounded
    by ``wait_s``) and then find it in the cache through their own pipeline. If the first
    failed, each waiter runs on its own (a failure is never cached).
    """
    flights = cache.__dict__.get("_generation_flights")
    if flights is None:
        with _flights_lock:
            flights = cache.__dict__.setdefault("_generation_flights", _Flights())
    key = generation_key(request)
    owned, owner = flights.claim(key)
    if not owned:
        if owner is not None:
            owner.wait(wait_s)
        return (yield from calls)
    try:
        return (yield from calls)
    finally:
        flights.release(key)
