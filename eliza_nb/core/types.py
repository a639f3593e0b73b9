"""The value types every layer shares: names, settings, requests and results.

Pure data: no I/O, no imports beyond the standard library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping


class ProviderName(str, Enum):
    """The built-in providers: Eliza's eleven ids plus ollama.

    User-defined OpenAI-compatible providers are plain strings from the catalog;
    everything that takes a provider accepts either.
    """

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    CLAUDE_VERTEX = "claude_vertex"
    GROK = "grok"
    GROQ = "groq"
    LLAMA_CLOUD = "llama_cloud"
    LLAMA_LOCAL = "llama_local"
    GOOGLE = "google"
    REDPILL = "redpill"
    OPENROUTER = "openrouter"
    HEURIST = "heurist"
    OLLAMA = "ollama"

    def __str__(self) -> str:
        return self.value


class ModelClass(str, Enum):
    """What a model is for; each provider maps every class it supports to a model id."""

    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    EMBEDDING = "embedding"
    IMAGE = "image"

    def __str__(self) -> str:
        return self.value

    @property
    def is_text(self) -> bool:
        return self in (ModelClass.SMALL, ModelClass.MEDIUM, ModelClass.LARGE)


@dataclass(frozen=True)
class ModelSettings:
    """Sampling and budget settings. ``None`` means "not set here".

    Layers merge with :meth:`merged`: a later layer's value wins whenever it is not
    ``None``, so an explicit ``temperature=0`` survives every layer (the original
    system merged with ``||`` and turned 0 into the default).
    """

    stop: tuple[str, ...] | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        # Accept a single string or any iterable for stop; store an immutable tuple.
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif self.stop is not None and not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))

    # Every call merges settings, so these avoid dataclasses.fields() on the hot path.
    @classmethod
    def names(cls) -> tuple[str, ...]:
        return _SETTING_NAMES

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ModelSettings:
        """Build from a mapping, rejecting unknown keys with the valid ones listed."""
        values = dict(values or {})
        unknown = sorted(k for k in values if k not in _SETTING_SET)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}; valid: {', '.join(cls.names())}"
            )
        return cls(**values)

    def merged(self, *layers: ModelSettings | Mapping[str, Any] | None) -> ModelSettings:
        """Return these settings overlaid by each layer in turn (later wins if not None)."""
        values = {n: getattr(self, n) for n in _SETTING_NAMES}
        for layer in layers:
            if layer is None:
                continue
            if not isinstance(layer, ModelSettings):
                if not layer:
                    continue
                layer = ModelSettings.from_mapping(layer)
            for name in _SETTING_NAMES:
                value = getattr(layer, name)
                if value is not None:
                    values[name] = value
        return ModelSettings(**values)

    def as_dict(self, include_unset: bool = False) -> dict[str, Any]:
        """The settings as a plain dict; unset (None) values are left out by default."""
        if include_unset:
            return {n: getattr(self, n) for n in _SETTING_NAMES}
        # Every call's Result carries this dict: the instance is immutable, so the set values
        # are found once and each caller gets its own copy (lists copied too).
        plain = self.__dict__.get("_plain")
        if plain is None:
            plain = {n: v for n in _SETTING_NAMES if (v := getattr(self, n)) is not None}
            object.__setattr__(self, "_plain", plain)
        if self.stop is None:
            return dict(plain)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in plain.items()}


_SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ModelSettings))
_SETTING_SET = frozenset(_SETTING_NAMES)


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str  # "system" | "user" | "assistant"
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def as_messages(prompt: str | Iterable[Message | Mapping[str, str]], system: str | None = None) -> tuple[Message, ...]:
    """Normalise a prompt string or a list of messages into a tuple of Messages."""
    if isinstance(prompt, str):
        msgs = [Message("user", prompt)]
    else:
        msgs = [m if isinstance(m, Message) else Message(str(m["role"]), str(m["content"])) for m in prompt]
    if system is not None:
        msgs = [m for m in msgs if m.role != "system"]
        msgs.insert(0, Message("system", system))
    return tuple(msgs)


@dataclass(frozen=True)
class Target:
    """A resolved destination: which provider, which class, which concrete model id."""

    provider: str
    model_class: ModelClass
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class Request:
    """What a provider adapter receives: everything already resolved and merged."""

    target: Target
    messages: tuple[Message, ...]
    settings: ModelSettings
    timeout_s: float = 120.0


@dataclass
class Usage:
    """Token counts; None where the provider did not report and we could not count."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


@dataclass
class Completion:
    """What an adapter returns for one finished generation (before the runtime adds timing)."""

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    model: str | None = None  # the id the provider says answered, when it says
    notes: list[str] = field(default_factory=list)  # e.g. settings the API does not take, dropped


@dataclass
class Attempt:
    """One try inside a call: which target, and how it ended."""

    target: str
    outcome: str  # "ok" | error class name
    detail: str = ""
    waited_s: float = 0.0


@dataclass
class Result:
    """The outcome of one generation call, whatever surface made it."""

    text: str
    provider: str
    model: str
    model_class: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    ttft_s: float | None = None
    finish_reason: str | None = None
    cached: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    interrupted: bool = False
    cache_key: str | None = None
    selection: str | None = None  # "small: speed=fast (...)" when the class was chosen automatically
    replayed: bool = False  # answered from a replay archive (core/replay.py), not a provider

    def __str__(self) -> str:
        return self.text

    def footer(self) -> str:
        """One line: who answered, tokens, latency, cache."""
        u = self.usage
        toks = f"{u.prompt_tokens if u.prompt_tokens is not None else '?'}→{u.completion_tokens if u.completion_tokens is not None else '?'} tok"
        parts = [f"{self.provider}:{self.model}", toks, f"{self.latency_s * 1000:.0f} ms"]
        if self.cached:
            parts.append("cache hit")
        if self.replayed:
            parts.append("replayed")
        if self.interrupted:
            parts.append("interrupted")
        if self.selection:
            parts.append(f"auto → {self.selection}")
        if len(self.attempts) > 1:
            parts.append("tried " + " → ".join(a.target for a in self.attempts))
        return " · ".join(parts)

    def metadata(self) -> dict[str, Any]:
        """Provenance for notebook output metadata. Never contains a key."""
        return {
            "provider": self.provider,
            "model": self.model,
            "model_class": self.model_class,
            "settings": self.settings,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "latency_s": round(self.latency_s, 4),
            "ttft_s": None if self.ttft_s is None else round(self.ttft_s, 4),
            "finish_reason": self.finish_reason,
            "cached": self.cached,
            "cache_key": self.cache_key,
            "interrupted": self.interrupted,
            "replayed": self.replayed,
            "selection": self.selection,
            "attempts": [dataclasses.asdict(a) for a in self.attempts],
            "notes": list(self.notes),
        }

    def _repr_markdown_(self) -> str:
        return f"{self.text}\n\n<sub>{self.footer()}</sub>"

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"Result({text!r}, {self.footer()})"


def sniff_image_mime(data: bytes, default: str = "image/png") -> str:
    """The image type from its first bytes (providers do not always say)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return default


@dataclass
class ImageResult:
    """An image answer: raw bytes or a URL the provider returned. Shows inline in a notebook.

    Adapters fill ``data``/``url``/``mime``/``revised_prompt`` (and ``notes`` for options
    they dropped); the runtime adds who answered, timing and the attempts.
    """

    data: bytes | None = None
    url: str | None = None
    mime: str = "image/png"
    revised_prompt: str | None = None
    provider: str = ""
    model: str = ""
    prompt: str = ""
    latency_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    def footer(self) -> str:
        parts = [f"{self.provider}:{self.model}", f"{self.latency_s * 1000:.0f} ms"]
        if self.data is not None:
            parts.append(f"{len(self.data):,} bytes {self.mime}")
        if len(self.attempts) > 1:
            parts.append("tried " + " → ".join(a.target for a in self.attempts))
        return " · ".join(parts)

    # Jupyter picks HTML over PNG, so HTML is offered only when there are no PNG/JPEG bytes.
    def _repr_png_(self) -> bytes | None:
        return self.data if self.data is not None and self.mime == "image/png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.data if self.data is not None and self.mime == "image/jpeg" else None

    def _repr_html_(self) -> str | None:
        import base64
        import html

        if self.data is not None and self.mime in ("image/png", "image/jpeg"):
            return None
        if self.data is not None:
            src = f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"
        elif self.url:
            src = self.url
        else:
            return None
        alt = html.escape(self.revised_prompt or self.prompt, quote=True)
        return (f'<img src="{html.escape(src, quote=True)}" alt="{alt}" style="max-width:100%"/>'
                f"<br/><sub>{html.escape(self.footer())}</sub>")

    def save(self, path: str) -> str:
        """Write the image bytes to ``path`` (URL-only answers have no bytes here)."""
        if self.data is None:
            raise ValueError(f"this image is only a URL ({self.url}); fetch it to save it")
        with open(path, "wb") as fh:
            fh.write(self.data)
        return path

    def metadata(self) -> dict[str, Any]:
        """Provenance for notebook output metadata (no bytes, never a key)."""
        return {
            "provider": self.provider, "model": self.model, "mime": self.mime, "url": self.url,
            "revised_prompt": self.revised_prompt, "latency_s": round(self.latency_s, 4),
            "attempts": [dataclasses.asdict(a) for a in self.attempts], "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        where = f"{len(self.data):,} bytes" if self.data is not None else (self.url or "empty")
        return f"ImageResult({where}, {self.footer()})"
