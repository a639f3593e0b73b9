"""The value types every layer shares: names, requests and results (settings: core/settings.py).

Pure data: no I/O, no imports beyond the standard library (and the error types).
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .settings import ModelSettings


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
class Message:
    """One chat message."""

    role: str  # "system" | "user" | "assistant"
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, what: str) -> str:
    """``text`` unchanged, or a one-line ConfigError when it is not a str or holds a surrogate
    code point (what ``errors="surrogateescape"`` or a broken ``\\ud800`` escape leaves in a
    str): that cannot be encoded as UTF-8, so no provider could be sent it."""
    if not isinstance(text, str):
        raise ConfigError(f"{what} must be text, not {type(text).__name__}")
    found = None if text.isascii() else _SURROGATE.search(text)
    if found is not None:
        raise ConfigError(f"{what} holds a lone surrogate (U+{ord(found.group()):04X}) at position {found.start()}; "
                          "it is not valid text: decode the source with errors='replace', or drop it with "
                          "text.encode('utf-8', 'replace').decode()")
    return text


def as_messages(prompt: str | Iterable[Message | Mapping[str, str]], system: str | None = None) -> tuple[Message, ...]:
    """Normalise a prompt string or a list of messages into a tuple of Messages; text that
    cannot be sent (a lone surrogate) is a one-line ConfigError here, before any provider work."""
    if isinstance(prompt, str):
        msgs = [Message("user", check_text(prompt, "the prompt"))]
    elif isinstance(prompt, Iterable) and not isinstance(prompt, (bytes, bytearray)):
        msgs = [_message(m, i) for i, m in enumerate(prompt)]
    else:
        raise ConfigError(f"the prompt must be text or a list of messages, not {type(prompt).__name__}")
    if system is not None:
        msgs = [m for m in msgs if m.role != "system"]
        msgs.insert(0, Message("system", check_text(system, "the system prompt")))
    return tuple(msgs)


def _message(m: Message | Mapping[str, str], i: int) -> Message:
    if not isinstance(m, Message):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ConfigError(f"message {i} should be a Message or a {{'role': ..., 'content': ...}} dict, "
                              f"not {type(m).__name__}")
        m = Message(str(m["role"]), str(m["content"]))
    check_text(m.content, f"message {i} ({m.role})")
    return m


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
    #: None when the provider reported the counts; how we counted them when it could not (a
    #: stopped stream): "exact" (the model's own tokenizer, tiktoken) or "estimate". The footer
    #: marks counted prompt tokens with ``~`` (the chat template's overhead is a guess) and
    #: counted completion tokens too when they are an estimate.
    counted: str | None = None
    #: where the counts come from: "provider" (the API called reported them), "gateway" (a
    #: gateway's count for a stream, its own estimate when the server behind it sent none),
    #: "local" (counted here: ``counted`` says how)
    source: str = "provider"

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
    queue_s: float = 0.0  # waited before the model started on it (llama_local: other calls on its one thread, the first load)


@dataclass
class Attempt:
    """One try inside a call: which target, and how it ended."""

    target: str
    outcome: str  # "ok" | error class name
    detail: str = ""
    waited_s: float = 0.0


#: finish reasons of an answer a provider's filter stopped (Gemini's blocked prompt or
#: SAFETY / RECITATION / ... finish, OpenAI's content_filter): such an answer is never stored
#: in the generation cache, and an empty one raises ContentBlocked under ``strict=True``.
BLOCKED_REASONS = frozenset({"blocked", "content_filter"})
#: how an adapter's note on a block begins ("the answer was blocked (SAFETY: ...); nothing was
#: generated"): the footer shows that note as its own badge, and ContentBlocked says it
BLOCK_NOTES = ("the answer was blocked", "the prompt was blocked")
#: how an adapter's note on a refusal begins (finish_reason "refusal": the refusal is the text)
REFUSAL_NOTE = "the model refused"


_FENCE_LINE = re.compile(r"([ \t]*)(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of an answer (CommonMark's ``` or ~~~ fences)."""

    lang: str  # the info string's first word ("" when there is none)
    code: str  # the lines between the fences, the opener's indentation removed
    start: int  # offset of the opening fence line in the text
    end: int  # offset just after the closing fence line (len(text) when unclosed)
    code_start: int  # offset of the code's first character
    closed: bool
    indent: str  # the opening fence's indentation (a fence inside a list item is indented)
    fence: str  # the opening fence: ``` or ~~~ (or longer)


def code_blocks(text: str) -> list[CodeBlock]:
    """Every fenced code block of ``text`` in order; the last one may be unclosed (an answer
    cut by max tokens or the stop button ends inside it)."""
    blocks: list[CodeBlock] = []
    pos = 0
    opener: tuple[int, int, str, str, str] | None = None
    for line in text.split("\n"):
        body = line.rstrip("\r")
        if opener is None:
            m = _FENCE_LINE.fullmatch(body)
            if m:
                opener = (pos, pos + len(line) + 1, m.group(1), m.group(2), m.group(3))
        else:
            start, code_start, indent, fence, lang = opener
            bare = body.strip()
            if len(bare) >= len(fence) and bare == fence[0] * len(bare):
                blocks.append(CodeBlock(lang, _dedent(text[code_start:pos - 1] if pos > code_start else "", indent),
                                        start, min(pos + len(line) + 1, len(text)), code_start, True, indent, fence))
                opener = None
        pos += len(line) + 1
    if opener is not None:
        start, code_start, indent, fence, lang = opener
        code_start = min(code_start, len(text))
        blocks.append(CodeBlock(lang, _dedent(text[code_start:], indent), start, len(text), code_start, False, indent, fence))
    return blocks


def _dedent(code: str, indent: str) -> str:
    if not indent:
        return code
    n = len(indent)
    return "\n".join(line[min(n, len(line) - len(line.lstrip(" \t"))):] for line in code.split("\n"))


def close_fence(text: str) -> str:
    """``text``, with the fence closed when it ends inside a fenced code block: what follows
    (a footer) must never render as code."""
    blocks = code_blocks(text) if ("```" in text or "~~~" in text) else []
    if not blocks or blocks[-1].closed:
        return text
    last = blocks[-1]
    return f"{text}{'' if text.endswith(chr(10)) else chr(10)}{last.indent}{last.fence}"


#: One piece of a footer: (text, tone). Tones say how a renderer may mark it: "strong" (who
#: answered), "good" (cache hit), "replay", "bad" (interrupted, blocked), "warn" (failed over, refused),
#: "note:N" (N notes joined with "; "), "" (plain).
FooterPart = tuple[str, str]


def _tried(attempts: list[Attempt]) -> list[FooterPart]:
    """``tried a → b`` when the call failed over; nothing when the first target answered."""
    if len(attempts) > 1:
        return [("tried " + " → ".join(a.target for a in attempts), "warn")]
    return []


def _joined(parts: list[FooterPart]) -> str:
    return " · ".join(text for text, _ in parts)


def provenance(provider: str, model: str, *, attempts: Iterable[Attempt] = (), notes: Iterable[str] = (),
               **fields: Any) -> dict[str, Any]:
    """What an output's ``metadata["eliza_nb"]`` says about where it came from.

    Answers, images and embeddings all describe themselves here: who answered, the
    ``fields`` particular to the output, every attempt and every note. Values are plain
    JSON; callers pass no key and no raw bytes.
    """
    return {"provider": provider, "model": model, **fields,
            "attempts": [dataclasses.asdict(a) for a in attempts], "notes": list(notes)}


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
    queue_s: float = 0.0  # of latency_s and ttft_s: the wait for a model busy with another call (service = latency - queue)
    finish_reason: str | None = None
    cached: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    interrupted: bool = False
    cache_key: str | None = None
    selection: str | None = None  # "small: speed=fast (...)" when the class was chosen automatically
    replayed: bool = False  # answered from a replay archive (core/replay/), not a provider

    def __str__(self) -> str:
        return self.text

    @property
    def blocked(self) -> bool:
        """Whether a provider's filter stopped this answer (:data:`BLOCKED_REASONS`)."""
        return self.finish_reason in BLOCKED_REASONS

    def block_note(self) -> str | None:
        """The adapter's note on a block or a refusal, or None (an answer that was neither)."""
        if self.blocked:
            return next((n for n in self.notes if n.startswith(BLOCK_NOTES)), f"the answer was blocked ({self.finish_reason})")
        if self.finish_reason == "refusal":
            return next((n for n in self.notes if n.startswith(REFUSAL_NOTE)), REFUSAL_NOTE)
        return None

    def footer_parts(self) -> list[FooterPart]:
        """The footer as (text, tone) pieces: who answered, tokens, timing, settings, cache, notes."""
        u = self.usage
        rough = u.source == "gateway"  # a gateway's stream count may be its own estimate
        pt = "?" if u.prompt_tokens is None else ("~" if u.counted or rough else "") + str(u.prompt_tokens)
        ct = "?" if u.completion_tokens is None else ("~" if u.counted == "estimate" or rough else "") + str(u.completion_tokens)
        parts: list[FooterPart] = [(f"{self.provider}:{self.model}", "strong"), (f"{pt} → {ct} tok", ""),
                                   (f"{self.latency_s * 1000:.0f} ms", "")]
        ttft = None if self.cached else self.ttft_s  # timings of a live call only
        if ttft is not None:
            parts.append((f"first token {ttft * 1000:.0f} ms", ""))
        # Decode speed: tokens after the first over the time after the first (prompt time and a
        # model's first load would drown it otherwise), so only for streams with a few tokens.
        tokens = u.completion_tokens
        if ttft is not None and tokens is not None and tokens >= 4 and self.latency_s > ttft:
            parts.append((f"{(tokens - 1) / (self.latency_s - ttft):.0f} tok/s", ""))
        if self.settings.get("temperature") is not None:
            parts.append((f"t {self.settings['temperature']:g}", ""))
        if self.cached:
            parts.append(("cache hit", "good"))
        if self.replayed:
            parts.append(("replayed", "replay"))
        if self.interrupted:
            # Say why (a cut connection reads differently from the stop button), on this one line.
            why = next((n for n in self.notes if n.startswith("interrupted")), "interrupted")
            parts.append((why, "bad"))
        shown = self.block_note()  # a block or a refusal is its own badge, never only a hover note
        if shown:
            parts.append((shown, "bad" if self.blocked else "warn"))
        elif self.finish_reason == "empty":
            shown = next((n for n in self.notes if n.startswith("the answer was empty")), "the answer was empty")
            parts.append((shown, "bad"))
        if self.selection:
            parts.append((f"auto → {self.selection}", ""))
        parts += _tried(self.attempts)
        notes = [n for n in self.notes if n and n != shown and not (self.interrupted and n.startswith("interrupted"))]
        if notes:
            parts.append(("; ".join(notes), f"note:{len(notes)}"))
        return parts

    def footer(self) -> str:
        """The footer as one plain line."""
        return _joined(self.footer_parts())

    def metadata(self) -> dict[str, Any]:
        """Provenance for notebook output metadata. Never contains a key."""
        return provenance(
            self.provider, self.model, attempts=self.attempts, notes=self.notes,
            model_class=self.model_class, settings=self.settings,
            prompt_tokens=self.usage.prompt_tokens, completion_tokens=self.usage.completion_tokens,
            tokens_counted=self.usage.counted, usage_source=self.usage.source,
            latency_s=round(self.latency_s, 4), ttft_s=None if self.ttft_s is None else round(self.ttft_s, 4),
            finish_reason=self.finish_reason, cached=self.cached, cache_key=self.cache_key,
            interrupted=self.interrupted, replayed=self.replayed, selection=self.selection,
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        # Only the metadata: IPython adds the _repr_markdown_ below, so a Result shown as a
        # cell's value carries its provenance like a %%eliza answer does.
        return {}, {"eliza_nb": self.metadata()}

    def _repr_markdown_(self) -> str:
        return f"{close_fence(self.text)}\n\n<sub>{html.escape(self.footer(), quote=False)}</sub>"

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

    def footer_parts(self) -> list[FooterPart]:
        """The footer as (text, tone) pieces: who answered, latency, size, failover."""
        parts: list[FooterPart] = [(f"{self.provider}:{self.model}", "strong"), (f"{self.latency_s * 1000:.0f} ms", "")]
        if self.data is not None:
            parts.append((f"{len(self.data):,} bytes {self.mime}", ""))
        return parts + _tried(self.attempts)

    def footer(self) -> str:
        """The footer as one plain line."""
        return _joined(self.footer_parts())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        # Only the metadata: IPython adds the image or HTML below from their own _repr_ methods.
        return {}, {"eliza_nb": self.metadata()}

    # Jupyter picks HTML over PNG, so HTML is offered only when there are no PNG/JPEG bytes.
    def _repr_png_(self) -> bytes | None:
        return self.data if self.data is not None and self.mime == "image/png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.data if self.data is not None and self.mime == "image/jpeg" else None

    def _repr_html_(self) -> str | None:
        import base64

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
        return provenance(self.provider, self.model, attempts=self.attempts, notes=self.notes, mime=self.mime,
                          url=self.url, revised_prompt=self.revised_prompt, latency_s=round(self.latency_s, 4))

    def __repr__(self) -> str:
        where = f"{len(self.data):,} bytes" if self.data is not None else (self.url or "empty")
        return f"ImageResult({where}, {self.footer()})"
