"""Google's Gemini API: generateContent, streamGenerateContent (SSE), embedContent and
batchEmbedContents. The key goes in the ``x-goog-api-key`` header — never in the URL,
which httpx puts into its error messages.

Mapping: system messages -> ``systemInstruction``; assistant turns -> role ``model``;
stop (at most 5) and the other settings Gemini takes -> ``generationConfig`` under their
wire names in core/settings.py. repetition_penalty has no Gemini equivalent: dropped with a note.
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
from .mapping import cap_list, configured_drops, wire_settings
from .shape import Shape

FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
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
        s = request.settings
        notes: list[str] = []
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        contents = [{"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
                    for m in request.messages if m.role != "system"]
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
    def _parse(shape: Shape, obj: Any, at: str = "") -> tuple[str, str | None, str | None]:
        """(text, finishReason, blockReason) of one GenerateContentResponse."""
        candidates = shape.items(obj, "candidates", dict, at=at)
        if not candidates:
            feedback = shape.get(obj, "promptFeedback", dict, at=at, default={})
            return "", None, shape.get(feedback, "blockReason", str, at=f"{at}.promptFeedback".lstrip("."))
        first = f"{at}.candidates[0]".lstrip(".")
        content = shape.get(candidates[0], "content", dict, at=first, default={})
        parts = shape.items(content, "parts", dict, at=f"{first}.content")
        text = "".join(shape.get(p, "text", str, at=f"{first}.content.parts[{i}]", default="")
                       for i, p in enumerate(parts) if not p.get("thought"))
        return text, shape.get(candidates[0], "finishReason", str, at=first), None

    def _usage(self, shape: Shape, obj: Any, at: str = "") -> Usage:
        return shape.usage(obj, "usageMetadata", "promptTokenCount", "candidatesTokenCount", at=at)

    def _finish(self, finish: str | None, blocked: str | None, notes: list[str]) -> str | None:
        if blocked:
            notes.append(f"Gemini blocked the prompt ({blocked}); no text was generated")
            return "blocked"
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
        text, finish, blocked = self._parse(shape, data)
        return Completion(
            text=text, usage=self._usage(shape, data), finish_reason=self._finish(finish, blocked, notes),
            model=shape.get(data, "modelVersion", str) or model, notes=notes,
        )

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        body, notes = self._body(request)
        headers, key = self._headers()
        model = request.target.model
        what = f"streamGenerateContent with {model}"
        sse = http.SSEStream(self._ctx.http_client(), self._url(model, "streamGenerateContent") + "?alt=sse", body,
                             headers=headers, timeout_s=request.timeout_s, provider=self.id, key=key, what=what,
                             max_body=self._max_body)
        shape = Shape(self.id, what)
        parts: list[str] = []
        usage = Usage()
        finish = blocked = version = None
        try:
            # No [DONE] sentinel: the stream simply ends; the last event has finishReason.
            for n, (_, data) in enumerate(sse.events()):
                obj = http.loads(data, provider=self.id, what=what, key=key)
                at = f"event {n + 1}"
                shape.check(obj, dict, at)
                if obj.get("error"):
                    message, code = failures.provider_message(obj)
                    status = obj["error"].get("code") if isinstance(obj["error"], dict) else None
                    raise failures.error_for_status(status if isinstance(status, int) else 500, message, code,
                                                provider=self.id, key=key, what=what)
                text, f, b = self._parse(shape, obj, at)
                finish, blocked = f or finish, b or blocked
                if obj.get("usageMetadata") is not None:
                    usage = self._usage(shape, obj, at)
                version = shape.get(obj, "modelVersion", str, at=at) or version
                if text:
                    parts.append(text)
                    yield StreamChunk(text=text)
            if finish is None and blocked is None:
                raise TransientError(f"{what}: the stream ended without a finishReason", provider=self.id)
        except BaseException:
            sse.close()
            raise
        sse.finish()
        yield StreamChunk(completion=Completion(
            text="".join(parts), usage=usage,
            finish_reason=self._finish(finish, blocked, notes), model=version or model, notes=notes,
        ))

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

    def close(self) -> None:
        """Nothing to release: the HTTP client belongs to the runtime."""


def factory(entry: Any, context: Any) -> GeminiProvider:
    """Registry entry point for ``protocol = "google"``."""
    return GeminiProvider(entry, context)
