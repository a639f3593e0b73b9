"""Record / replay: a shared notebook runs again, with no key, and shows what its author saw.

While a :class:`Recorder` is on, every generation and every embedding of the session is
written to an archive beside the notebook (archive.py: JSON lines + raw float32).
While a :class:`Replayer` is on, matching requests are answered from it and marked
``replayed``; an unmatched one is refused with a one-line :class:`ReplayMismatch` naming
the field that differs from the nearest recorded request, or (``strict=False``) goes live.

The runtime hooks this in once, in :meth:`Runtime.run`: every call's job passes through
:meth:`Tape.wrap` before the generation cache, the embedding cache, the key check and any
provider call (so cache hits are recorded too: a fresh kernel on Binder has no cache). What is recorded is what the user asked for
(the planned request for the first target) and what answered (provider, model, attempts),
so an answer that came through failover replays as it happened. Keys and headers never
reach this module; values of key variables found in a line anyway are redacted.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import secret_values
from ..errors import ReplayMismatch
from ..generation import planned_request
from ..ladder import Climb
from ..types import Attempt, ModelClass, Result, Target, Usage
from .archive import (
    Archive,
    EmbRecord,
    GenRecord,
    archive_folder,
    archive_lines,
    embedding_ident,
    load,
    request_dict,
    request_key,
    save,
)
from .match import explain_embedding_miss, explain_generation_miss

_VOLATILE_NOTE = re.compile(r"^waited \d")  # rate-limit waits differ run to run: not part of the answer


def response_dict(result: Result) -> dict[str, Any]:
    """What answered, without anything that changes run to run (latency, waits, cache keys)."""
    return {
        "text": result.text, "provider": result.provider, "model": result.model, "model_class": result.model_class,
        "finish_reason": result.finish_reason,
        "usage": {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens},
        "settings": dict(result.settings), "selection": result.selection,
        "notes": [n for n in result.notes if not _VOLATILE_NOTE.match(n) and n != "from the generation cache"],
        "attempts": [{"target": a.target, "outcome": "ok" if a.outcome == "cache" else a.outcome} for a in result.attempts],
    }


def _shape(texts: Any, matrix: np.ndarray, as_array: bool | None) -> Any:
    """What EmbeddingService.embed returns for this input, from the (n, d) matrix."""
    if isinstance(texts, str):
        return matrix[0]
    series = getattr(sys.modules.get("pandas"), "Series", None)  # a Series exists only if pandas is loaded
    if series is not None and isinstance(texts, series) and not as_array:
        import pandas as pd

        return pd.Series(list(matrix), index=texts.index, name=texts.name, dtype=object)
    if as_array is False:
        return list(matrix)
    return matrix


def _items(texts: Any) -> list[str] | None:
    """The texts as a list, or None for input the embedding service should judge itself."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)) or not hasattr(texts, "__iter__"):
        return None
    items = list(texts)
    return items if items and all(isinstance(t, str) for t in items) else None


class Tape:
    """What the runtime's one hook calls: :meth:`wrap` hands each kind of call to its handler."""

    def wrap(self, rt: Any, job: Any, live: Climb) -> Climb:
        """The call ``live`` (a ladder generator, not started), recorded or replayed."""
        if job.kind in ("generate", "stream"):
            return self.generation(rt, job, live)
        if job.kind == "embed":
            live.close()  # never started: the handler calls the embedding service itself
            return _returning(self.embedding, rt, job.texts, job.provider, job.model, dict(job.options))
        return live  # images are neither recorded nor replayed

    def generation(self, rt: Any, job: Any, live: Climb) -> Climb:
        raise NotImplementedError

    def embedding(self, rt: Any, texts: Any, provider: str | None, model: str | None, options: dict[str, Any]) -> Any:
        raise NotImplementedError


def _returning(fn: Any, *args: Any) -> Climb:
    """``fn(*args)`` as a generator's return value (the runtime drains every call the same way)."""
    return fn(*args)
    yield  # a generator that yields nothing


class Recorder(Tape):
    """Writes every generation and embedding of the session to an archive (after each call)."""

    mode = "record"

    def __init__(self, runtime: Any, path: str | Path, note: str | None = None) -> None:
        self.rt = runtime
        self.path = archive_folder(path)
        self.note = note
        self._lock = threading.Lock()
        self._gens: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self._embs: dict[tuple[str, str, bool, str], np.ndarray] = {}
        self._vectors = b""
        self._vectors_dirty = True
        self._redacted = False
        self.save()  # an empty archive at once: a path that cannot be written fails here, not later

    # -- hooks --------------------------------------------------------------------------
    def generation(self, rt: Any, job: Any, live: Climb) -> Climb:
        request = request_dict(planned_request(rt, job.plan))  # before the call: what the user asked for
        result = yield from live
        if not result.interrupted and not result.replayed:
            with self._lock:
                key = request_key(request)
                _, responses = self._gens.setdefault(key, (request, []))
                responses.append(response_dict(result))
                self._save_locked()
        return result

    def embedding(self, rt: Any, texts: Any, provider: str | None, model: str | None, options: dict[str, Any]) -> Any:
        items = _items(texts)
        if items is None:  # empty or odd input: the service answers (or refuses) it, nothing to record
            return rt.embeddings.embed(texts, provider, model, **options)
        as_array = options.pop("as_array", None)
        matrix = rt.embeddings.embed(items, provider, model, as_array=True, **options)
        target = rt.resolve_embedding(provider, model)
        normalized = bool(options.get("normalize", True))
        with self._lock:
            added = False
            for text, row in zip(items, matrix, strict=True):
                ident = embedding_ident(target.provider, target.model, normalized, text)
                if ident not in self._embs:
                    self._embs[ident] = np.array(row, dtype=np.float32)
                    added = True
            if added:
                self._vectors_dirty = True
                self._save_locked()
        return _shape(texts, matrix, as_array)

    # -- the archive --------------------------------------------------------------------
    def archive(self) -> Archive:
        gens = []
        for request, responses in self._gens.values():
            # One line when every occurrence got the same answer (the usual case at temperature 0);
            # otherwise one per occurrence, replayed in the same order.
            if all(r == responses[0] for r in responses):
                gens.append(GenRecord(request, responses[0], 0))
            else:
                gens += [GenRecord(request, r, i) for i, r in enumerate(responses)]
        embs = [EmbRecord(p, m, norm, text, vec) for (p, m, norm, text), vec in self._embs.items()]
        return Archive(self.path, self.note, gens, embs)

    def save(self) -> None:
        """Write the whole archive now (it is also written after every recorded call)."""
        with self._lock:
            self._save_locked()

    def _save_locked(self) -> None:
        archive = self.archive()
        lines, vectors = archive_lines(archive)
        secrets = self._secrets()
        clean = []
        for line in lines:
            for value in secrets:
                if value in line:
                    line = line.replace(value, "[redacted]")
                    self._warn_redacted()
            clean.append(line)
        save(archive, clean, vectors)

    def _secrets(self) -> set[str]:
        """Values of every key variable the session can see (catalog keys, *_API_KEY-like env vars)."""
        return secret_values(self.rt.catalog, self.rt.env)

    def _warn_redacted(self) -> None:
        if not self._redacted:
            self._redacted = True
            self.rt.warn(f"a request recorded to {self.path.name} held the value of a key variable: "
                         "it was written as [redacted] (that request will not replay)")

    def summary(self) -> str:
        with self._lock:
            n_gen, n_emb = sum(len(r) for _, r in self._gens.values()), len(self._embs)
        return f"recording to {self.path} ({n_gen} generations, {n_emb} embeddings so far)"

    __repr__ = summary


class Replayer(Tape):
    """Answers matching requests from an archive; refuses (strict) or passes on the rest."""

    mode = "replay"

    def __init__(self, path: str | Path, strict: bool = True) -> None:
        self.archive = load(path)
        self.path = self.archive.path
        self.strict = bool(strict)
        self._gens: dict[str, list[GenRecord]] = {}
        for g in sorted(self.archive.generations, key=lambda g: g.n):
            self._gens.setdefault(g.key, []).append(g)
        self._embs = {e.ident: e for e in self.archive.embeddings}
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.replayed = 0
        self.live = 0

    # -- generation ---------------------------------------------------------------------
    def generation(self, rt: Any, job: Any, live: Climb) -> Climb:
        t0 = time.perf_counter()
        request = request_dict(planned_request(rt, job.plan))
        key = request_key(request)
        with self._lock:
            answers = self._gens.get(key)
            if answers:
                record = answers[min(self._seen[key], len(answers) - 1)]
                self._seen[key] += 1
                self.replayed += 1
            else:
                record = None
        if record is None:
            if self.strict:
                live.close()
                raise ReplayMismatch(self.explain_miss(request))
            with self._lock:
                self.live += 1
            return (yield from live)
        live.close()
        result = self._result(record)
        if job.streaming:  # a replayed stream still streams: the text in word-sized chunks
            yield from re.findall(r"\s*\S+\s*|\s+", result.text)
        result.latency_s = time.perf_counter() - t0
        answered = Target(result.provider, ModelClass(result.model_class), result.model)
        rt.ledger.log(job.kind, answered, preset=job.preset, prompt_tokens=result.usage.prompt_tokens,
                      completion_tokens=result.usage.completion_tokens, latency_s=result.latency_s, cost_usd=0.0,
                      replayed=True)
        return result

    def _result(self, record: GenRecord) -> Result:
        r = record.response
        usage = r.get("usage") or {}
        notes = [*(r.get("notes") or []), f"replayed from {self.path.name}"]
        if self.archive.note:
            notes.append(self.archive.note)
        attempts = [Attempt(a["target"], a["outcome"]) for a in r.get("attempts") or []]
        return Result(text=r["text"], provider=r["provider"], model=r["model"], model_class=r["model_class"],
                      usage=Usage(usage.get("prompt_tokens"), usage.get("completion_tokens")),
                      finish_reason=r.get("finish_reason"), settings=dict(r.get("settings") or {}), notes=notes,
                      attempts=attempts, selection=r.get("selection"), replayed=True)

    def explain_miss(self, request: dict[str, Any]) -> str:
        """One line: no answer for this request; the nearest recorded one and the field that differs."""
        records = [g for answers in self._gens.values() for g in answers if g.n == 0]
        return explain_generation_miss(self.path.name, records, request)

    # -- embeddings ---------------------------------------------------------------------
    def embedding(self, rt: Any, texts: Any, provider: str | None, model: str | None, options: dict[str, Any]) -> Any:
        items = _items(texts)
        if items is None:
            return rt.embeddings.embed(texts, provider, model, **options)
        as_array = options.pop("as_array", None)
        options.pop("regenerate", None)  # an archive has one answer per text
        target = rt.resolve_embedding(provider, model)
        normalized = bool(options.get("normalize", True))
        t0 = time.perf_counter()
        found = {t: self._embs.get(embedding_ident(target.provider, target.model, normalized, t)) for t in items}
        missing = [t for t, rec in found.items() if rec is None]
        if missing and self.strict:
            raise ReplayMismatch(explain_embedding_miss(self.path.name, self.archive.embeddings, items, missing[0],
                                                           target, normalized))
        live: dict[str, np.ndarray] = {}
        if missing:  # fallthrough: only the unmatched texts go live
            with self._lock:
                self.live += 1
            live = dict(zip(missing, rt.embeddings.embed(missing, provider, model, as_array=True, **options), strict=True))
        rows = [rec.vector if (rec := found[t]) is not None else live[t] for t in items]
        matrix = np.stack(rows).astype(np.float32, copy=True)
        served = len(items) - len([t for t in items if found[t] is None])
        if served:
            with self._lock:
                self.replayed += 1
            rt.ledger.log("embed", target, latency_s=time.perf_counter() - t0, cost_usd=0.0, items=served,
                          replayed=True)
        return _shape(texts, matrix, as_array)

    def summary(self) -> str:
        mode = "strict" if self.strict else "unmatched requests go live"
        return (f"replaying {self.path} ({len(self.archive.generations)} generations, "
                f"{len(self.archive.embeddings)} embeddings; {mode}; {self.replayed} calls served so far)")

    __repr__ = summary


# -- switching it on and off ---------------------------------------------------------------
def start_recording(rt: Any, path: str | Path, note: str | None = None) -> Recorder:
    """Record every generation and embedding of ``rt`` to the archive at ``path`` (replacing it)."""
    recorder = Recorder(rt, path, note)
    rt.tape = recorder
    return recorder


def start_replay(rt: Any, path: str | Path, strict: bool = True) -> Replayer:
    """Answer ``rt``'s matching requests from the archive at ``path``."""
    replayer = Replayer(path, strict)  # a bad archive fails here, before anything is switched
    rt.tape = replayer
    return replayer


def stop(rt: Any) -> Recorder | Replayer | None:
    """Turn recording or replaying off; returns what was on (a recorder's archive is complete)."""
    current: Recorder | Replayer | None = rt.tape
    rt.tape = None
    if isinstance(current, Recorder):
        current.save()
    return current


def status(rt: Any) -> str:
    current = rt.tape
    return current.summary() if current is not None else "not recording or replaying"


__all__ = ["Recorder", "Replayer", "response_dict", "start_recording", "start_replay", "status", "stop"]
