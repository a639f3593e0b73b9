"""Google's Gemini API: generateContent, streamGenerateContent (SSE), embedContent and
batchEmbedContents. The key goes in the ``x-goog-api-key`` header — never in the URL,
which httpx puts into its error messages.

Mapping: system messages -> ``systemInstruction``; assistant turns -> role ``model``;
stop (at most 5) and the other settings Gemini takes -> ``generationConfig`` under their
wire names in core/settings.py. repetition_penalty has no Gemini equivalent: dropped with a note.

Answer shapes: a prompt blocked (``promptFeedback.blockReason``) is finish_reason "blocked";
a finishReason in :data:`FILTERED` (SAFETY, RECITATION, ...) is "content_filter"; both with
a note naming the reason and the safetyRatings categories that blocked (the footer shows
it; the generation cache never keeps such an answer; ``strict=True`` raises ContentBlocked
when it is empty). Errors sent mid-stream as bare JSON, not ``data:`` lines (an object or a
list, pretty-printed or not), raise the typed error for their code with Google's message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..core.errors import BadResponseError, InvalidRequestError, TransientError
from ..core.types import Completion, Request, Usage
from . import failures, http
from .base import StreamChunk
from .mapping import cap_list, configured_drops, family_settings, user_first, wire_settings
from .shape import Shape

FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
#: finishReasons that mean a filter stopped the answer: finish_reason "content_filter", a note
#: naming the reason and the safetyRatings categories that blocked (OTHER included: Gemini
#: gives it for blocks it does not name)
FILTERED = frozenset({"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "OTHER", "IMAGE_SAFETY"})
MAX_STOP = 5
EMBED_BATCH = 100  # batchEmbedContents takes at most 100 requests


class GeminiProvider:
    """Gemini over the Generative Language REST API."""

    def __init__(self, entry: Any, context: Any) -> None:
        self.id = entry.id
        self.entry = entry
        self._ctx = context
        self._drops = configured_drops(entry.extra)
        self._base = f"{entry.endpoint.rstrip('/')}/{entry.extra.get('api_version', 'v1beta')}/models/"
        self._max_body = http.body_limit(context.options)

    def _url(self, model: str, method: str) -> str:
        return f"{self._base}{model.removeprefix('models/')}:{method}"

    def _headers(self) -> tuple[dict[str, str], str | None]:
        key = self._ctx.get_key(self.entry)
        return ({"x-goog-api-key": key} if key else {}), key

    def _body(self, request: Request) -> tuple[dict[str, Any], list[str]]:
        notes: list[str] = []
        s = family_settings(request.settings, self.entry.rules_for(request.target.model), self.id,
                            request.target.model, notes, self.entry.settings)
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        contents = [{"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
                    for m in user_first([m for m in request.messages if m.role != "system"], notes, self.id)]
        if not contents:
            raise InvalidRequestError("a prompt needs at least one user message besides the system prompt", provider=self.id)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        stops = cap_list(notes, "stop", s.stop, MAX_STOP, self.id) if s.stop else None
        # Neutral values are left out: a 0 penalty is the default, and some models reject any.
        config = wire_settings(s, "google", self.id, notes, own=("stop",), drops=self._drops,
                               why="Gemini has no {setting}")
        if stops:
            config["stopSequences"] = stops
        if config:
            body["generationConfig"] = config
        return body, notes

    @staticmethod
    def _parse(shape: Shape, obj: Any, at: str = "") -> tuple[str, str | None, str | None, list[str]]:
        """(text, finishReason, blockReason, the safety categories that blocked) of one
        GenerateContentResponse."""
        candidates = shape.items(obj, "candidates", dict, at=at)
        if not candidates:
            where = f"{at}.promptFeedback".lstrip(".")
            feedback = shape.get(obj, "promptFeedback", dict, at=at, default={})
            return "", None, shape.get(feedback, "blockReason", str, at=where), blocked_categories(shape, feedback, where)
        first = f"{at}.candidates[0]".lstrip(".")
        content = shape.get(candidates[0], "content", dict, at=first, default={})
        parts = shape.items(content, "parts", dict, at=f"{first}.content")
        text = "".join(shape.get(p, "text", str, at=f"{first}.content.parts[{i}]", default="")
                       for i, p in enumerate(parts) if not p.get("thought"))
        return text, shape.get(candidates[0], "finishReason", str, at=first), None, blocked_categories(shape, candidates[0], first)

    def _usage(self, shape: Shape, obj: Any, at: str = "") -> Usage:
        return shape.usage(obj, "usageMetadata", "promptTokenCount", "candidatesTokenCount", at=at)

    @staticmethod
    def _finish(text: str, finish: str | None, blocked: str | None, categories: list[str], notes: list[str]) -> str | None:
        """The finish reason, with a note (types.BLOCK_NOTES) for a blocked prompt or answer."""
        if blocked:
            notes.append(f"the prompt was blocked ({_why(blocked, categories)}); nothing was generated")
            return "blocked"
        if finish in FILTERED:
            why = _why(finish, categories)
            notes.append(f"the answer was blocked ({why}); nothing was generated" if not text else
                         f"the answer was blocked ({why}) part-way; the text ends there")
            return "content_filter"
        if finish and finish not in FINISH:
            notes.append(f"Gemini stopped with finishReason {finish}")
        return FINISH.get(finish or "", finish.lower() if finish else None)

    # -- calls -----------------------------------------------------------------------------
    def generate(self, request: Request) -> Completion:
        body, notes = self._body(request)
        headers, key = self._headers()
        model = request.target.model
        what = f"generateContent with {model}"
        data = http.post_json(self._ctx.http_client(), self._url(model, "generateContent"), body, headers=headers,
                              timeout_s=request.timeout_s, provider=self.id, key=key, what=what, max_body=self._max_body)
        shape = Shape(self.id, what)
        text, finish, blocked, categories = self._parse(shape, data)
        return Completion(
            text=text, usage=self._usage(shape, data), finish_reason=self._finish(text, finish, blocked, categories, notes),
            model=shape.get(data, "modelVersion", str) or model, notes=notes,
        )

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        body, notes = self._body(request)
        headers, key = self._headers()
        model = request.target.model
        what = f"streamGenerateContent with {model}"
        sse = http.SSEStream(self._ctx.http_client(), self._url(model, "streamGenerateContent") + "?alt=sse", body,
                             headers=headers, timeout_s=request.timeout_s, provider=self.id, key=key, what=what,
                             max_body=self._max_body, bare_json=True)
        shape = Shape(self.id, what)
        parts: list[str] = []
        usage = Usage()
        finish = blocked = version = None
        categories: list[str] = []
        try:
            # No [DONE] sentinel: the stream simply ends; the last event has finishReason.
            for n, (event, data) in enumerate(sse.events()):
                obj = http.loads(data, provider=self.id, what=what, key=key)
                at = f"event {n + 1}"
                # Some errors come as bare JSON, not "data:" lines: an object, or a list of them.
                for item in obj if event == http.BARE_JSON and isinstance(obj, list) else [obj]:
                    shape.check(item, dict, at)
                    if item.get("error"):
                        self._raise_stream_error(item, what, key)
                    text, f, b, c = self._parse(shape, item, at)
                    finish, blocked, categories = f or finish, b or blocked, c or categories
                    if item.get("usageMetadata") is not None:
                        usage = self._usage(shape, item, at)
                    version = shape.get(item, "modelVersion", str, at=at) or version
                    if text:
                        parts.append(text)
                        yield StreamChunk(text=text)
            if finish is None and blocked is None:
                raise TransientError(f"{what}: the stream ended without a finishReason", provider=self.id)
        except BaseException:
            sse.close()
            raise
        sse.finish()
        text = "".join(parts)
        yield StreamChunk(completion=Completion(
            text=text, usage=usage,
            finish_reason=self._finish(text, finish, blocked, categories, notes), model=version or model, notes=notes,
        ))

    def _raise_stream_error(self, obj: Any, what: str, key: str | None) -> None:
        """An error inside the stream, typed by its own HTTP code, with the provider's message."""
        message, code = failures.provider_message(obj)
        status = obj["error"].get("code") if isinstance(obj["error"], dict) else None
        status = status if isinstance(status, int) and not isinstance(status, bool) and 400 <= status < 600 else 500
        raise failures.error_for_status(status, message, code, provider=self.id, key=key, what=what)

    def embed(self, texts: Sequence[str], model: str, timeout_s: float = 120.0) -> np.ndarray:
        """embedContent for one text, batchEmbedContents (100 per request) for more."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.entry.embedding_dims or 0), dtype=np.float32)
        headers, key = self._headers()
        name = "models/" + model.removeprefix("models/")
        client = self._ctx.http_client()
        call = {"headers": headers, "timeout_s": timeout_s, "provider": self.id, "key": key, "max_body": self._max_body,
                "deadline": time.monotonic() + timeout_s}  # one attempt, however many batches
        if len(texts) == 1:
            what = f"embedContent with {model}"
            shape = Shape(self.id, what)
            data = http.post_json(client, self._url(model, "embedContent"),
                                  {"model": name, "content": {"parts": [{"text": texts[0]}]}}, what=what, **call)
            return shape.vectors([shape.get(data, "embedding", dict, default={}).get("values")], "embedding.values")
        what = f"batchEmbedContents with {model}"
        shape = Shape(self.id, what)
        vectors: list[Any] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start:start + EMBED_BATCH]
            body = {"requests": [{"model": name, "content": {"parts": [{"text": t}]}} for t in batch]}
            data = http.post_json(client, self._url(model, "batchEmbedContents"), body, what=what, **call)
            got = shape.items(data, "embeddings", dict)
            if len(got) != len(batch):
                raise BadResponseError(f"{what}: {len(got) or 'no'} vectors for {len(batch)} texts", provider=self.id)
            vectors.extend(e.get("values") for e in got)
        return shape.vectors(vectors, "embeddings[{}].values")

    def list_models(self, timeout_s: float) -> list[dict[str, Any]]:
        """``GET /v1beta/models`` (paged) as rows (adapters/listing.py)."""
        from . import listing

        headers, key = self._headers()
        pager = listing.Pager(self._ctx.http_client(), self.id, headers, key, timeout_s, self._max_body, "model listing")
        return listing.gemini_models(pager, self.entry.endpoint, str(self.entry.extra.get("api_version", "v1beta")))

    def close(self) -> None:
        """Nothing to release: the HTTP client belongs to the runtime."""


def blocked_categories(shape: Shape, obj: Any, at: str) -> list[str]:
    """The categories of ``obj``'s safetyRatings marked ``blocked``, else those rated HIGH."""
    where = f"{at}.safetyRatings".lstrip(".")
    ratings = shape.items(obj, "safetyRatings", dict, at=at)
    flagged = ([(i, r) for i, r in enumerate(ratings) if r.get("blocked") is True]
               or [(i, r) for i, r in enumerate(ratings) if r.get("probability") == "HIGH"])
    return [shape.get(r, "category", str, at=f"{where}[{i}]", default="?") for i, r in flagged]


def _why(reason: str, categories: list[str]) -> str:
    return f"{reason}: {', '.join(categories)}" if categories else reason


def factory(entry: Any, context: Any) -> GeminiProvider:
    """Registry entry point for ``protocol = "google"``."""
    return GeminiProvider(entry, context)
