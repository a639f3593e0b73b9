"""Anthropic's Messages API, direct or as Claude on Vertex AI.

Direct: ``POST {endpoint}/messages`` with ``x-api-key`` and ``anthropic-version``. The
version header is the catalog entry's ``api_version`` (default ``2023-06-01``, the version
the Messages API has been served under since its release; a newer one is a catalog edit,
``api_version = "..."`` under ``[providers.anthropic]``, not a code change).
Vertex: the same body without ``model`` and with ``anthropic_version: vertex-2023-10-16``,
POSTed to ``{host}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/
{model}:rawPredict`` (``:streamRawPredict`` for SSE) with a Google bearer access token. The
host: ``https://{region}-aiplatform.googleapis.com`` for a single region (the entry's
endpoint template), ``https://aiplatform.googleapis.com`` for ``global``, and the
multi-regions' own hosts for ``us`` / ``eu`` (``aiplatform.us.rep.googleapis.com``,
``aiplatform.eu.rep.googleapis.com``; :data:`REGION_HOSTS`, extended or overridden by an
entry's ``region_hosts`` table).

Answer shapes: stop_reason ``refusal`` (Claude's safety classifiers stopped it) is
finish_reason "refusal" with a note, its text kept as the answer; ``pause_turn`` keeps its
name with a note on continuing; ``model_context_window_exceeded`` is "length" with a note.

Mapping: system messages become the top-level ``system``; ``max_tokens`` is always sent
(the API requires it); stop -> ``stop_sequences``; temperature is clamped to 0..1; the
other settings by their wire names in core/settings.py. Penalties and seed have no
Anthropic equivalent and are dropped with a note.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..core.errors import ConfigError, InvalidRequestError, MissingKeyError, TransientError
from ..core.settings import ModelSettings
from ..core.types import REFUSAL_NOTE, Completion, Message, ModelClass, Request, Target, Usage
from . import failures, http
from .base import StreamChunk
from .mapping import configured_drops, drop, family_settings, user_first, wire_settings
from .shape import Shape

API_VERSION = "2023-06-01"  # the default of a catalog entry's api_version
VERTEX_VERSION = "vertex-2023-10-16"
DEFAULT_MAX_TOKENS = 4096
#: Vertex hosts that are not ``{region}-aiplatform.googleapis.com`` (the path keeps locations/{region})
REGION_HOSTS = {
    "global": "https://aiplatform.googleapis.com",
    "us": "https://aiplatform.us.rep.googleapis.com",
    "eu": "https://aiplatform.eu.rep.googleapis.com",
}
FINISH: dict[Any, str] = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                          "model_context_window_exceeded": "length"}  # keyed by whatever the wire sent
#: the stop_reasons a reader must not miss, and the note each adds
STOP_NOTES = {
    "refusal": f"{REFUSAL_NOTE} (stop_reason refusal): Claude's safety classifiers stopped the answer",
    "pause_turn": "Claude paused a long turn (stop_reason pause_turn): send its answer back as an assistant turn to continue",
    "model_context_window_exceeded": "the answer stopped at the model's context window (stop_reason "
                                     "model_context_window_exceeded)",
}
#: the HTTP status an in-stream error event stands for, so it is classified like a response
STREAM_ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
    "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
    "api_error": 500, "overloaded_error": 529,
}


class AnthropicProvider:
    """Claude through the Messages API (direct with an API key)."""

    vertex = False

    def __init__(self, entry: Any, context: Any) -> None:
        self.id = entry.id
        self.entry = entry
        self._ctx = context
        self._drops = configured_drops(entry.extra)
        self._caps: Mapping[str, int] = dict(entry.extra.get("output_caps") or {})
        self._url = entry.endpoint.rstrip("/") + "/messages"
        self._version = str(entry.extra.get("api_version", API_VERSION))
        self._max_body = http.body_limit(context.options)

    # -- request ---------------------------------------------------------------------------
    def _body(self, request: Request, stream: bool) -> tuple[dict[str, Any], list[str]]:
        notes: list[str] = []
        model = request.target.model
        s = family_settings(request.settings, self.entry.rules_for(model), self.id, model, notes, self.entry.settings)
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        messages = [m.as_dict() for m in user_first([m for m in request.messages if m.role != "system"], notes, self.id)]
        if not messages:
            raise InvalidRequestError("a prompt needs at least one user message besides the system prompt", provider=self.id)
        max_tokens = s.max_output_tokens or DEFAULT_MAX_TOKENS
        cap = self._caps.get(model)
        if cap and max_tokens > cap:
            notes.append(f"max_output_tokens {max_tokens} capped at {cap}: {model}'s output limit")
            max_tokens = cap
        body: dict[str, Any] = {"model": model, "max_tokens": int(max_tokens), "messages": messages}
        if system:
            body["system"] = system
        if "temperature" in self._drops:
            drop(notes, self.id, "temperature", s.temperature)
        elif s.temperature is not None:
            if s.temperature > 1.0:  # Anthropic's range is 0..1; others' is 0..2
                notes.append(f"temperature {s.temperature} clamped to 1.0: Anthropic's range is 0-1")
            body["temperature"] = min(max(float(s.temperature), 0.0), 1.0)
        if s.stop:
            kept = [x for x in s.stop if x.strip()]
            if len(kept) < len(s.stop):
                notes.append("whitespace-only stop sequences dropped: Anthropic rejects them")
            if kept:
                body["stop_sequences"] = kept
        body.update(wire_settings(s, "anthropic", self.id, notes, own=("max_output_tokens", "temperature", "stop"),
                                  drops=self._drops, why="the Messages API has no such parameter"))
        if stream:
            body["stream"] = True
        return body, notes

    def _endpoint(self, model: str, stream: bool) -> tuple[str, dict[str, str], str | None]:
        key = self._ctx.get_key(self.entry)
        if not key:
            raise MissingKeyError(f"no API key: set {self.entry.key_env[0]}", provider=self.id)
        return self._url, {"x-api-key": key, "anthropic-version": self._version}, key

    def _prepare(self, request: Request, stream: bool):
        body, notes = self._body(request, stream)
        url, headers, key = self._endpoint(request.target.model, stream)
        if self.vertex:
            body.pop("model")  # Vertex names the model in the URL
            body["anthropic_version"] = VERTEX_VERSION
        return url, headers, key, body, notes

    def count_prompt(self, messages: Sequence[Message], model: str, timeout_s: float) -> int | None:
        """Anthropic's own count of a prompt (``/v1/messages/count_tokens``, free); None on Vertex."""
        if self.vertex:
            return None
        body, _ = self._body(Request(Target(self.id, ModelClass.LARGE, model), tuple(messages), ModelSettings()), stream=False)
        body.pop("max_tokens", None)
        url, headers, key = self._endpoint(model, stream=False)
        what = f"count tokens with {model}"
        data = http.post_json(self._ctx.http_client(), url + "/count_tokens", body, headers=headers, timeout_s=timeout_s,
                              provider=self.id, key=key, what=what, max_body=self._max_body)
        return Shape(self.id, what).get(data, "input_tokens", int)

    # -- calls -----------------------------------------------------------------------------
    def generate(self, request: Request) -> Completion:
        url, headers, key, body, notes = self._prepare(request, stream=False)
        what = f"messages with {request.target.model}"
        data = http.post_json(self._ctx.http_client(), url, body, headers=headers, timeout_s=request.timeout_s,
                              provider=self.id, key=key, what=what, max_body=self._max_body)
        if isinstance(data, dict) and data.get("type") == "error":
            self._raise_event_error(data, what, key)
        shape = Shape(self.id, what)
        blocks = shape.items(data, "content", dict, required=True)
        text = "".join(shape.get(b, "text", str, at=f"content[{i}]", default="")
                       for i, b in enumerate(blocks) if b.get("type") == "text")
        stop = shape.get(data, "stop_reason", str)
        return Completion(
            text=text,
            usage=shape.usage(data, "usage", "input_tokens", "output_tokens"),
            finish_reason=finish_reason(stop, notes),
            model=shape.get(data, "model", str) or request.target.model,
            notes=notes,
        )

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        url, headers, key, body, notes = self._prepare(request, stream=True)
        what = f"messages with {request.target.model}"
        sse = http.SSEStream(self._ctx.http_client(), url, body, headers=headers, timeout_s=request.timeout_s,
                             provider=self.id, key=key, what=what, max_body=self._max_body)
        shape = Shape(self.id, what)
        parts: list[str] = []
        prompt_tokens = completion_tokens = finish = model = None
        done = False
        try:
            for event, data in sse.events():
                obj = http.loads(data, provider=self.id, what=what, key=key)
                kind = shape.get(obj, "type", str, at=f"the {event or 'unnamed'} event", default=event)
                at = kind
                if kind == "content_block_delta":
                    delta = shape.get(obj, "delta", dict, at=at, default={})
                    text = shape.get(delta, "text", str, at=f"{at}.delta")
                    if delta.get("type") == "text_delta" and text:
                        parts.append(text)
                        yield StreamChunk(text=text)
                elif kind == "message_start":
                    message = shape.get(obj, "message", dict, at=at, default={})
                    model = shape.get(message, "model", str, at=f"{at}.message")
                    usage = shape.usage(message, "usage", "input_tokens", "output_tokens", at=f"{at}.message")
                    prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
                elif kind == "message_delta":
                    delta = shape.get(obj, "delta", dict, at=at, default={})
                    finish = shape.get(delta, "stop_reason", str, at=f"{at}.delta") or finish
                    # output_tokens here is cumulative for the whole message
                    later = shape.usage(obj, "usage", "input_tokens", "output_tokens", at=at).completion_tokens
                    completion_tokens = completion_tokens if later is None else later
                elif kind == "message_stop":
                    done = True
                    break
                elif kind == "error":
                    self._raise_event_error(obj, what, key)
                # ping, content_block_start/stop: nothing to do
            if not done:
                raise TransientError(f"{what}: the stream ended before message_stop", provider=self.id)
        except BaseException:
            sse.close()
            raise
        sse.finish()
        yield StreamChunk(completion=Completion(
            text="".join(parts), usage=Usage(prompt_tokens, completion_tokens),
            finish_reason=finish_reason(finish, notes), model=model or request.target.model, notes=notes,
        ))

    def _raise_event_error(self, obj: Mapping[str, Any], what: str, key: str | None) -> None:
        message, code = failures.provider_message(obj)
        status = STREAM_ERROR_STATUS.get(str(code), 500)
        raise failures.error_for_status(status, message, code, provider=self.id, key=key, what=what)

    def embed(self, texts: Sequence[str], model: str, timeout_s: float = 120.0) -> Any:
        raise ConfigError(f"{self.id} has no embedding API; use a provider with an embedding model", provider=self.id)

    def list_models(self, timeout_s: float) -> list[dict[str, Any]]:
        """The Models API (``GET /models``, paged) with the calls' own headers; on Vertex,
        Model Garden's Anthropic models on the calls' host and token (adapters/listing.py)."""
        from . import listing

        url, headers, key = self._endpoint("", stream=False)
        pager = listing.Pager(self._ctx.http_client(), self.id, headers, key, timeout_s, self._max_body, "model listing")
        if self.vertex:
            return listing.vertex_claude_models(pager, url.split("/v1/projects/", 1)[0])
        return listing.anthropic_models(pager, self.entry.endpoint)

    def close(self) -> None:
        """Nothing to release: the HTTP client belongs to the runtime."""


class VertexClaudeProvider(AnthropicProvider):
    """Claude on Vertex AI: URL from project + region, Google bearer token.

    The token comes from the catalog's key variables (VERTEX_ACCESS_TOKEN, ...); only when
    none is set, and google-auth is installed, application-default credentials are used.
    Region: VERTEX_REGION / GOOGLE_CLOUD_REGION / CLOUD_ML_REGION, else the catalog's
    ``region``. Project: GOOGLE_CLOUD_PROJECT / ANTHROPIC_VERTEX_PROJECT_ID /
    CLOUDSDK_CORE_PROJECT, else ``project`` in the provider's config table.
    """

    vertex = True
    REGION_VARS = ("VERTEX_REGION", "GOOGLE_CLOUD_REGION", "CLOUD_ML_REGION")
    PROJECT_VARS = ("GOOGLE_CLOUD_PROJECT", "ANTHROPIC_VERTEX_PROJECT_ID", "CLOUDSDK_CORE_PROJECT")

    def __init__(self, entry: Any, context: Any) -> None:
        super().__init__(entry, context)
        self._creds: Any = None
        self._creds_project: str | None = None
        self._creds_lock = threading.Lock()

    def _setting(self, names: Sequence[str], extra_key: str) -> str | None:
        # The runtime's key lookup reads its env mapping and ./.env: reuse it for these
        # plain settings so tests and .env files work the same way as for keys.
        probe = dataclasses.replace(self.entry, key_env=tuple(names))
        return self._ctx.get_key(probe) or (str(self.entry.extra[extra_key]) if self.entry.extra.get(extra_key) else None)

    def _endpoint(self, model: str, stream: bool) -> tuple[str, dict[str, str], str | None]:
        token = self._ctx.get_key(self.entry) or self._google_auth_token()
        region = self._setting(self.REGION_VARS, "region") or "global"
        project = self._setting(self.PROJECT_VARS, "project") or self._creds_project
        if not project:
            raise MissingKeyError(f"no Google Cloud project: set {self.PROJECT_VARS[0]} "
                                  f"(or project = \"...\" under [providers.{self.id}])", provider=self.id)
        hosts = {**REGION_HOSTS, **(self.entry.extra.get("region_hosts") or {})}
        if "{region}" in self.entry.endpoint and region in hosts:
            base = str(hosts[region]).rstrip("/")
        else:  # a single region, or an endpoint of the user's own (a proxy, a loopback test server)
            base = self.entry.endpoint.format(region=region).rstrip("/")
        method = "streamRawPredict" if stream else "rawPredict"
        url = f"{base}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:{method}"
        return url, http.bearer(token), token

    def _google_auth_token(self) -> str:
        """An access token from application-default credentials (google-auth), refreshed when stale."""
        missing = MissingKeyError(
            f"no access token: set {self.entry.key_env[0]} (e.g. to the output of `gcloud auth print-access-token`)"
            " or install google-auth and run `gcloud auth application-default login`", provider=self.id)
        try:
            import google.auth
            import google.auth.transport.requests
        except ImportError:
            raise missing from None
        with self._creds_lock:
            try:
                if self._creds is None:
                    self._creds, self._creds_project = google.auth.default(
                        scopes=["https://www.googleapis.com/auth/cloud-platform"])
                if not self._creds.valid:
                    self._creds.refresh(google.auth.transport.requests.Request())
            except Exception as exc:  # google-auth raises its own hierarchy; keep it one line
                raise MissingKeyError(f"google-auth found no usable credentials ({type(exc).__name__}); "
                                      f"set {self.entry.key_env[0]}", provider=self.id) from None
            return str(self._creds.token)


def finish_reason(stop: str | None, notes: list[str]) -> str | None:
    """Eliza's finish reason for a stop_reason, with a note for those in :data:`STOP_NOTES`."""
    if stop in STOP_NOTES:
        notes.append(STOP_NOTES[stop])
    return FINISH.get(stop, stop)


def factory(entry: Any, context: Any) -> AnthropicProvider:
    """Registry entry point for ``protocol = "anthropic"``."""
    return AnthropicProvider(entry, context)


def vertex_factory(entry: Any, context: Any) -> VertexClaudeProvider:
    """Registry entry point for ``protocol = "claude_vertex"``."""
    return VertexClaudeProvider(entry, context)
