"""The OpenAI wire protocol: chat completions (plain and SSE), embeddings, images.

Serves openai, grok, groq, llama_cloud, redpill, openrouter, heurist, ollama and any
user-defined catalog entry with ``protocol = "openai"`` — those differ only in data. Catalog
``extra`` keys this adapter reads (all optional):

- ``repetition_penalty_param``: the body field for Eliza's additive repetition_penalty,
  sent as ``1 + value`` (OpenRouter/Together/vLLM: "repetition_penalty", llama.cpp's
  server: "repeat_penalty"). Absent: the setting is dropped with a note.
- ``drop_settings``: settings this endpoint rejects (dropped with a note).
- ``max_stop``: how many stop sequences the endpoint takes (OpenAI: 4).
- ``stream_usage``: false for servers that reject ``stream_options``.
- ``embedding_batch_size``: texts per embeddings request (default 256; the embedding service
  batches by the same key, so a call's batch is one request).
- ``tokenize_endpoint``: where the server counts tokens, a path on the endpoint's host or a
  URL: llama.cpp's server ``/tokenize``, llama-cpp-python's ``/extras/tokenize/count``, a
  LiteLLM proxy's ``/utils/token_counter``. Used for budgets when our count is an estimate.
- ``image_endpoint`` / ``image_settings``: Heurist's own image job API.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.embeddings.service import DEFAULT_BATCH
from ..core.errors import BadResponseError, ConfigError, TransientError
from ..core.tokens import PER_MESSAGE_OVERHEAD
from ..core.types import REFUSAL_NOTE, Completion, ImageResult, Message, Request, Usage, sniff_image_mime
from . import failures, http
from .base import StreamChunk
from .mapping import cap_list, configured_drops, drop, family_settings, image_size, wire_settings
from .shape import Shape


class OpenAICompatProvider:
    """One OpenAI-compatible endpoint (base URL + optional key), over the runtime's client."""

    def __init__(self, entry: Any, context: Any) -> None:
        self.id = entry.id
        self.entry = entry
        self._ctx = context
        self._base = base = entry.endpoint.rstrip("/")
        self._chat_url = base + "/chat/completions"
        self._embed_url = base + "/embeddings"
        self._image_url = base + "/images/generations"
        extra = entry.extra
        self._drops = configured_drops(extra)
        self._rep_param = extra.get("repetition_penalty_param")
        self._max_stop = extra.get("max_stop")
        self._stream_usage = bool(extra.get("stream_usage", True))
        self._embed_batch = max(1, int(extra.get("embedding_batch_size") or DEFAULT_BATCH["openai"]))
        self._max_body = http.body_limit(context.options)
        # Whether the endpoint is plain http to a host that is not local: a fact of the
        # configuration, so it is found once (the Heurist image URL is checked where it is used).
        self._plain_remote = base.startswith("http://") and not http.is_local_host(base)

    # -- plumbing ------------------------------------------------------------------------
    def _auth(self, url: str) -> tuple[dict[str, str], str | None]:
        key = self._ctx.get_key(self.entry)
        if url.startswith(self._base) and not self._plain_remote:
            return http.bearer(key), key  # an https or a local endpoint: nothing to warn about
        http.check_plain_http(url, key, self._ctx.warn, self.id)  # the runtime says each warning once
        return http.bearer(key), key

    def _body(self, request: Request, stream: bool) -> tuple[dict[str, Any], list[str]]:
        s = request.settings
        notes: list[str] = []
        model = request.target.model
        body: dict[str, Any] = {"model": model, "messages": [m.as_dict() for m in request.messages]}
        # The model family's own rules (catalog model_rules): reasoning models take
        # max_completion_tokens and reject sampling settings.
        rules = self.entry.rules_for(model)
        s = family_settings(s, rules, self.id, model, notes, self.entry.settings)
        own = ["stop", "repetition_penalty"]
        if s.stop:
            body["stop"] = cap_list(notes, "stop", s.stop, self._max_stop, self.id)
        if rules.max_tokens_param:
            own.append("max_output_tokens")
            if s.max_output_tokens is not None:
                body[rules.max_tokens_param] = s.max_output_tokens
        body.update(wire_settings(s, "openai", self.id, notes, own=own, drops=self._drops))
        if s.repetition_penalty is None:
            pass
        elif self._rep_param and "repetition_penalty" not in self._drops:
            body[self._rep_param] = 1.0 + s.repetition_penalty
        else:
            drop(notes, self.id, "repetition_penalty", s.repetition_penalty,
                 f"{self.id}'s API has no repetition penalty (set repetition_penalty_param in its catalog entry if it has one)")
        if stream:
            body["stream"] = True
            if self._stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body, notes

    def _raise_body_error(self, data: Any, what: str, key: str | None) -> None:
        # Some gateways (OpenRouter) answer 200 with an error object, mid-stream too.
        message, code = failures.provider_message(data)
        status = data["error"].get("code") if isinstance(data.get("error"), Mapping) else None
        status = status if isinstance(status, int) and 400 <= status < 600 else 502
        raise failures.error_for_status(status, message, code, provider=self.id, key=key, what=what)

    def _call(self, key: str | None, what: str, timeout_s: float, headers: Mapping[str, str]) -> dict[str, Any]:
        """The keyword arguments of http.HTTPCall for one request."""
        return {"headers": headers, "timeout_s": timeout_s, "provider": self.id, "key": key, "what": what,
                "max_body": self._max_body}

    # -- chat ------------------------------------------------------------------------------
    def generate(self, request: Request) -> Completion:
        body, notes = self._body(request, stream=False)
        headers, key = self._auth(self._chat_url)
        what = f"chat with {request.target.model}"
        data = http.post_json(self._ctx.http_client(), self._chat_url, body, **self._call(key, what, request.timeout_s, headers))
        if isinstance(data, dict) and data.get("error") and not data.get("choices"):
            self._raise_body_error(data, what, key)
        shape = Shape(self.id, what)
        choices = shape.items(data, "choices", dict, required=True)
        choice = choices[0] if choices else {}
        message = shape.get(choice, "message", dict, at="choices[0]", default={})
        text = shape.get(message, "content", str, at="choices[0].message", default="")
        refusal = shape.get(message, "refusal", str, at="choices[0].message", default="")
        finish = answer_shape(text or refusal, bool(refusal), shape.get(choice, "finish_reason", str, at="choices[0]"), notes)
        return Completion(
            text=text or refusal,  # a refusal (content null) is the answer's text
            usage=shape.usage(data, "usage", "prompt_tokens", "completion_tokens"),
            finish_reason=finish,
            model=shape.get(data, "model", str) or request.target.model,
            notes=notes,
        )

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        body, notes = self._body(request, stream=True)
        headers, key = self._auth(self._chat_url)
        what = f"chat with {request.target.model}"
        sse = http.SSEStream(self._ctx.http_client(), self._chat_url, body, **self._call(key, what, request.timeout_s, headers))
        shape = Shape(self.id, what)
        parts: list[str] = []
        usage = None
        finish = model = None
        done = refused = False
        try:
            for n, (_, data) in enumerate(sse.events()):
                if data.startswith("[DONE]"):
                    done = True
                    break
                obj = http.loads(data, provider=self.id, what=what, key=key)
                at = f"event {n + 1}"
                shape.check(obj, dict, at)
                if obj.get("error") and not obj.get("choices"):
                    self._raise_body_error(obj, what, key)
                model = shape.get(obj, "model", str, at=at) or model
                if obj.get("usage") is not None:
                    usage = shape.usage(obj, "usage", "prompt_tokens", "completion_tokens", at=at)
                for i, choice in enumerate(shape.items(obj, "choices", dict, at=at)):
                    where = f"{at}.choices[{i}]"
                    if shape.get(choice, "index", int, at=where, default=0) != 0:
                        continue
                    delta = shape.get(choice, "delta", dict, at=where, default={})
                    text = shape.get(delta, "content", str, at=f"{where}.delta")
                    refusal = shape.get(delta, "refusal", str, at=f"{where}.delta")
                    if refusal:  # streamed like text: the refusal is the answer's text
                        refused = True
                        text = (text or "") + refusal
                    if text:
                        parts.append(text)
                        yield StreamChunk(text=text)
                    finish = shape.get(choice, "finish_reason", str, at=where) or finish
            if not done and finish is None:
                raise TransientError(f"{what}: the stream ended before its final event", provider=self.id)
        except BaseException:
            sse.close()
            raise
        sse.finish()
        if usage is not None and "x-litellm-version" in sse.response.headers:
            usage.source = "gateway"  # a LiteLLM proxy counts a stream itself when its upstream sent no usage
        text = "".join(parts)
        yield StreamChunk(completion=Completion(
            text=text, usage=usage or Usage(),
            finish_reason=answer_shape(text, refused, finish, notes), model=model or request.target.model, notes=notes,
        ))

    # -- token counts ----------------------------------------------------------------------
    def count_prompt(self, messages: Sequence[Message], model: str, timeout_s: float) -> int | None:
        """The server's count of a prompt, where the catalog names its ``tokenize_endpoint``:
        the messages' text counted by the server, plus our per-message allowance for the template.
        The key goes only to the endpoint's own host (a gateway's key is not the tokenizer's)."""
        where = self.entry.extra.get("tokenize_endpoint")
        if not where:
            return None
        url = str(where) if "://" in str(where) else http.origin(self._base) + "/" + str(where).lstrip("/")
        text = "\n".join(m.content for m in messages)
        if url.rstrip("/").endswith("token_counter"):  # LiteLLM proxy
            body: dict[str, Any] = {"model": model, "prompt": text}
        else:  # llama.cpp's server reads "content", llama-cpp-python's "input"
            body = {"content": text, "input": text, "model": model}
        headers, key = self._auth(url) if http.origin(url) == http.origin(self._base) else ({}, None)  # never another host
        what = f"count tokens with {model}"
        data = http.post_json(self._ctx.http_client(), url, body, **self._call(key, what, timeout_s, headers))
        shape = Shape(self.id, what)
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            told = len(data["tokens"])
        else:
            told = shape.get(data, "count", int) or shape.get(data, "total_tokens", int) or 0
        return told + PER_MESSAGE_OVERHEAD * len(messages) if told else None

    # -- embeddings ------------------------------------------------------------------------
    def embed(self, texts: Sequence[str], model: str, timeout_s: float = 120.0) -> np.ndarray:
        """(n, d) float32, input order, batched by ``embed_batch``."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.entry.embedding_dims or 0), dtype=np.float32)
        headers, key = self._auth(self._embed_url)
        what = f"embeddings with {model}"
        shape = Shape(self.id, what)
        client = self._ctx.http_client()
        deadline = time.monotonic() + timeout_s  # one attempt, however many batches
        rows: list[Any] = []
        for start in range(0, len(texts), self._embed_batch):
            batch = texts[start:start + self._embed_batch]
            data = http.post_json(client, self._embed_url, {"model": model, "input": batch},
                                  **self._call(key, what, timeout_s, headers), deadline=deadline)
            items = shape.items(data, "data", dict)
            if len(items) != len(batch):
                raise BadResponseError(f"{what}: {len(items) or 'no'} vectors for {len(batch)} texts", provider=self.id)
            order = [shape.get(item, "index", int, at=f"data[{i}]", default=i) for i, item in enumerate(items)]
            for i in sorted(range(len(items)), key=order.__getitem__):
                rows.append(items[i].get("embedding"))
        return shape.vectors(rows, "data[{}].embedding")

    # -- images ----------------------------------------------------------------------------
    def image(self, prompt: str, model: str, options: Mapping[str, Any], timeout_s: float) -> ImageResult:
        """One image: OpenAI's /images/generations, or Heurist's job endpoint when configured."""
        if self.entry.extra.get("image_endpoint"):
            return self._job_image(prompt, model, options, timeout_s)
        notes: list[str] = []
        rules = self.entry.rules_for(model)
        body: dict[str, Any] = {"model": model, "prompt": prompt, "n": 1}
        if rules.image_response_format:  # gpt-image models always answer in base64 and reject the field
            body["response_format"] = "b64_json"
        width, height = image_size(options)
        if "size" in rules.drop_image_options:
            drop(notes, self.id, "size", options.get("size") or (f"{width}x{height}" if width and height else None),
                 f"{model} does not take it")
        elif width and height:
            body["size"] = f"{width}x{height}"
        for name in ("quality", "style"):
            if name in rules.drop_image_options:
                drop(notes, self.id, name, options.get(name), f"{model} does not take it")
            elif options.get(name) is not None:
                body[name] = options[name]
        for name in ("steps", "seed", "negative_prompt", "guidance"):
            drop(notes, self.id, name, options.get(name), "OpenAI-style image APIs do not take it")
        headers, key = self._auth(self._image_url)
        what = f"image with {model}"
        data = http.post_json(self._ctx.http_client(), self._image_url, body, **self._call(key, what, timeout_s, headers))
        shape = Shape(self.id, what)
        items = shape.items(data, "data", dict)
        if not items:
            raise BadResponseError(f"{what}: the answer holds no image", provider=self.id)
        item = items[0]
        result = ImageResult(revised_prompt=shape.get(item, "revised_prompt", str, at="data[0]"), notes=notes)
        if shape.get(item, "b64_json", str, at="data[0]"):
            try:
                result.data = base64.b64decode(item["b64_json"], validate=True)
            except ValueError:
                raise BadResponseError(f"{what}: the image is not valid base64", provider=self.id) from None
            result.mime = sniff_image_mime(result.data)
        elif shape.get(item, "url", str, at="data[0]"):
            result.url = item["url"]
        else:
            raise BadResponseError(f"{what}: neither b64_json nor url in the answer", provider=self.id)
        return result

    def _job_image(self, prompt: str, model: str, options: Mapping[str, Any], timeout_s: float) -> ImageResult:
        """Heurist: POST a job; the answer is the image URL as text (sometimes JSON-quoted)."""
        url = str(self.entry.extra["image_endpoint"])
        defaults = dict(self.entry.extra.get("image_settings") or {})
        opts = {**defaults, **{k: v for k, v in options.items() if v is not None}}
        width, height = image_size(opts)
        notes: list[str] = []
        for name in ("quality", "style"):
            drop(notes, self.id, name, options.get(name), "Heurist's image API does not take it")
        body = {
            "job_id": f"eliza_nb-{uuid.uuid4()}",
            "model_input": {"SD": {
                "prompt": prompt,
                "neg_prompt": opts.get("negative_prompt") or "",
                "num_iterations": int(opts.get("steps") or 20),
                "width": width or 512,
                "height": height or 512,
                "guidance_scale": float(opts.get("guidance") or 3),
                "seed": int(opts["seed"]) if opts.get("seed") is not None else -1,
            }},
            "model_id": model,
            "deadline": int(min(timeout_s, 120)),
            "priority": 1,
        }
        headers, key = self._auth(url)
        what = f"image with {model}"
        text = http.post_text(self._ctx.http_client(), url, body,
                              **self._call(key, what, timeout_s, headers)).strip().strip('"')
        if not text.startswith(("http://", "https://")):
            raise BadResponseError(f"{what}: expected an image URL, got {failures.scrub(text[:60], key)!r}", provider=self.id)
        return ImageResult(url=text, notes=notes)

    def list_models(self, timeout_s: float) -> list[dict[str, Any]]:
        """The endpoint's ``GET /models`` as rows (adapters/listing.py). A catalog entry with
        ``list_models = false`` (or a reason string) has no listing endpoint and says so."""
        from . import listing

        has = self.entry.extra.get("list_models", True)
        if has is not True:
            raise listing.no_listing(self.id, has if isinstance(has, str) else "list_models = false in its catalog entry")
        headers, key = self._auth(self._base + "/models")
        pager = listing.Pager(self._ctx.http_client(), self.id, headers, key, timeout_s, self._max_body, "model listing")
        return listing.openai_models(pager, self._base)

    def close(self) -> None:
        """Nothing to release: the HTTP client belongs to the runtime."""


def answer_shape(text: str, refused: bool, finish: str | None, notes: list[str]) -> str | None:
    """The finish reason of a chat answer, with a note for the shapes a reader must not
    miss: a refusal (``message.refusal``; its text is the answer) and an answer the
    provider's content filter stopped (never a silent empty answer)."""
    if refused:
        notes.append(f"{REFUSAL_NOTE} (message.refusal): the refusal is the answer's text")
        return "refusal"
    if finish == "content_filter":
        notes.append("the answer was blocked (content_filter); nothing was generated" if not text else
                     "the answer was blocked (content_filter) part-way; the text ends there")
    return finish


def factory(entry: Any, context: Any) -> OpenAICompatProvider:
    """Registry entry point for ``protocol = "openai"``."""
    if not entry.endpoint:
        raise ConfigError(f"provider {entry.id}: needs an endpoint (base URL)")
    return OpenAICompatProvider(entry, context)
