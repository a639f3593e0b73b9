"""Multi-turn conversations: a named history of turns, each sent through the ordinary pipeline.

A :class:`Conversation` is an optional system prompt and a list of :class:`Turn`\\ s. Each
new turn is one ordinary ``Runtime.generate`` (or ``Runtime.stream``) call whose prompt is
the whole history as a message list, so settings, presets, failover, the generation cache,
record/replay and the context budget apply to it exactly as to a single call. The history
kept here is always the full one; what a call *sends* is fitted to the model's budget by
``tokens.fit_request`` (``truncation="keep-recent"`` by default: the oldest turns go first,
the system prompt always stays), and the Result's notes say how many turns were dropped.

When a turn enters the history: only with its answer. A call that fails leaves the
conversation as it was (the error propagates). A stream stopped part-way (a cut
connection: ``StreamInterrupted``; the stop button: ``KeyboardInterrupt``; ``close()``)
after some text keeps that text as the assistant turn, its Result marked ``interrupted``:
it is what the user saw, and the next turn is sent with it. Stopped before any text,
nothing is kept. Two turns in flight at once (a cell and a widget) each send the history
as it was when they began; each is added whole when its answer is complete.

A conversation lives as long as its runtime (``Runtime.conversation``): a kernel restart
starts clean. :meth:`Conversation.save` writes JSON (never pickle; every key value the
session can see masked as in archives and caches); :meth:`Conversation.load` reads it back,
validating every field, a bad file being one ConfigError naming it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import redact
from .errors import ConfigError, StreamInterrupted
from .tokens import counted_usage
from .types import Attempt, Message, Result, Usage, as_messages, check_text

if TYPE_CHECKING:
    import pandas as pd

    from .generation import GenerationStream
    from .runtime import Runtime

FORMAT = "eliza_nb.conversation"
VERSION = 1
#: the largest saved conversation read (the file is parsed whole into memory)
MAX_FILE_BYTES = 32 * 2**20
MAX_NAME = 100
ROLES = ("user", "assistant")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def check_name(name: Any) -> str:
    """A conversation name: non-empty text of at most MAX_NAME characters, on one line."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a conversation name must be non-empty text, not {name!r}")
    if len(name) > MAX_NAME or any(c in name for c in "\r\n\t\x00"):
        raise ConfigError(f"a conversation name must be one line of at most {MAX_NAME} characters")
    return name


@dataclass(frozen=True)
class Turn:
    """One message of a conversation; an assistant turn carries the Result that answered it
    (provider, model, settings used, usage, latency, finish reason, notes: its provenance)."""

    role: str  # "user" | "assistant"
    content: str
    when: str  # ISO 8601 UTC, when the turn entered the history
    result: Result | None = None

    @property
    def interrupted(self) -> bool:
        return self.result is not None and self.result.interrupted

    def as_message(self) -> Message:
        return Message(self.role, self.content)

    def metadata(self) -> dict[str, Any]:
        """The turn as plain JSON: role, content, when and (assistant) the Result's provenance."""
        out: dict[str, Any] = {"role": self.role, "content": self.content, "when": self.when}
        if self.result is not None:
            out["result"] = self.result.metadata()
        return out


class Conversation:
    """A named multi-turn conversation over a runtime: ``say`` / ``stream`` add a turn.

    ``runtime`` may be None (a conversation loaded only to be read): ``say`` then refuses.
    """

    def __init__(self, runtime: Runtime | None, name: str = "default", system: str | None = None) -> None:
        self.runtime = runtime
        self.name = check_name(name)
        self._system: str | None = None
        self.system = system
        self._turns: list[Turn] = []
        self._lock = threading.Lock()

    # -- state ------------------------------------------------------------------------
    @property
    def system(self) -> str | None:
        """The system prompt sent first with every turn (None: the provider's default, if any)."""
        return self._system

    @system.setter
    def system(self, value: str | None) -> None:
        self._system = None if value is None else check_text(value, "the system prompt")

    @property
    def turns(self) -> list[Turn]:
        """The turns so far (a copy), oldest first; the system prompt is not a turn."""
        with self._lock:
            return list(self._turns)

    @property
    def messages(self) -> list[dict[str, str]]:
        """The history as ``[{"role", "content"}]`` (a copy), the system prompt first when set."""
        return [m.as_dict() for m in self._history(self.system)]

    def __len__(self) -> int:
        return len(self._turns)

    def reset(self) -> None:
        """Forget every turn; the name and the system prompt stay."""
        with self._lock:
            self._turns = []

    def _history(self, system: str | None) -> list[Message]:
        with self._lock:
            turns = [t.as_message() for t in self._turns]
        return ([Message("system", system)] if system is not None else []) + turns

    # -- turns ------------------------------------------------------------------------
    def _prepare(self, text: str, options: dict[str, Any]) -> tuple[Runtime, Message, list[Message], str | None]:
        """(runtime, the user message, every message to send, the system prompt): nothing changes yet."""
        if self.runtime is None:
            raise ConfigError(f"conversation {self.name!r} has no runtime: load it with "
                              "eliza_nb.chat.load(path) or Conversation.load(path, runtime)")
        check_text(text, "the message")
        if not text.strip():
            raise ConfigError("a conversation turn needs some text")
        system = self.system
        if "system" in options:  # kept from this turn on (when it answers), as --system in the magic
            value = options.pop("system")
            system = None if value is None else check_text(value, "the system prompt")
        user = Message("user", text)
        return self.runtime, user, [*self._history(system), user], system

    def _commit(self, user: Message, result: Result, system: str | None) -> None:
        when = _now()
        with self._lock:
            self._system = system
            self._turns += [Turn("user", user.content, when), Turn("assistant", result.text, when, result)]

    def say(self, text: str, **options: Any) -> Result:
        """Add ``text`` as the next user turn, send the whole history through
        ``Runtime.generate`` (``options`` as there; ``system=`` replaces the conversation's
        system prompt from this turn on) and add the answer. A failure changes nothing."""
        rt, user, messages, system = self._prepare(text, dict(options))
        opts = {k: v for k, v in options.items() if k != "system"}
        result = rt.generate(messages, **opts)
        self._commit(user, result, system)
        return result

    def stream(self, text: str, **options: Any) -> ConversationStream:
        """Like :meth:`say`, streamed: iterate for text chunks; ``.result`` once drained.
        Bad options raise here, before any output."""
        rt, user, messages, system = self._prepare(text, dict(options))
        opts = {k: v for k, v in options.items() if k != "system"}
        return ConversationStream(self, user, system, rt.stream(messages, **opts), messages)

    # -- views ------------------------------------------------------------------------
    def _rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        if self.system is not None:
            rows.append({"turn": 0, "role": "system", "content": self.system})
        n = 0
        for t in self.turns:
            n += t.role == "user"
            row: dict[str, Any] = {"turn": n, "role": t.role, "content": t.content, "when": t.when}
            r = t.result
            if r is not None:
                row.update(provider=r.provider, model=r.model, model_class=r.model_class,
                           prompt_tokens=r.usage.prompt_tokens, completion_tokens=r.usage.completion_tokens,
                           tokens=r.usage.total_tokens, latency_s=r.latency_s, finish_reason=r.finish_reason,
                           interrupted=r.interrupted, cached=r.cached, replayed=r.replayed, notes="; ".join(r.notes))
            rows.append(row)
        return rows

    def to_dataframe(self) -> pd.DataFrame:
        """One row per message: turn (the exchange's number; the system prompt is 0), role,
        content, and for answers provider, model, model_class, prompt/completion/total tokens,
        latency_s, finish_reason, interrupted, cached, replayed, notes; when."""
        import pandas as pd

        columns = ["turn", "role", "content", "provider", "model", "model_class", "prompt_tokens",
                   "completion_tokens", "tokens", "latency_s", "finish_reason", "interrupted", "cached", "replayed",
                   "notes", "when"]
        return pd.DataFrame(self._rows(), columns=columns)

    def transcript(self) -> str:
        """The conversation as plain text: one block per message, answers with provider:model."""
        blocks = []
        for row in self._rows():
            head = f"[{row['turn']}] {row['role']}"
            if row.get("provider"):
                head += f" · {row['provider']}:{row['model']}" + (" · interrupted" if row.get("interrupted") else "")
            blocks.append(f"{head}\n{row['content']}")
        return "\n\n".join(blocks) if blocks else f"(conversation {self.name!r} is empty)"

    def __repr__(self) -> str:
        system = "" if self.system is None else f", system={self.system[:40]!r}"
        return f"<eliza_nb.Conversation {self.name!r}: {len(self)} turns{system}>"

    # -- files ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The conversation as plain JSON (what :meth:`save` writes, before masking)."""
        return {"format": FORMAT, "version": VERSION, "name": self.name, "system": self.system, "saved": _now(),
                "turns": [t.metadata() for t in self.turns]}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the conversation to ``path`` as JSON (replaced atomically); returns the path.
        Every key value the session can see is written as ``[redacted]``."""
        from .catalog import secret_values

        keys = secret_values(self.runtime.catalog, self.runtime.env) if self.runtime is not None else set()
        data = _masked(self.to_json(), keys)
        target = Path(path).expanduser()
        text = json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise ConfigError(f"cannot save the conversation to {target}: {exc.strerror or exc}") from None
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], runtime: Runtime | None = None) -> Conversation:
        """A conversation saved by :meth:`save`, bound to ``runtime`` (None: read only).
        A missing, oversized or malformed file is one ConfigError naming it."""
        p = Path(path).expanduser()
        try:
            size = p.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ConfigError(f"{p.name}: {size:,} bytes is above the {MAX_FILE_BYTES:,}-byte limit "
                                  "for a saved conversation")
            data = json.loads(p.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read the conversation {p}: {exc.strerror or exc}") from None
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ConfigError(f"{p.name} is not a saved conversation: not JSON ({_first_line(exc)})") from None
        try:
            return cls._from_json(data, runtime)
        except _Bad as exc:
            raise ConfigError(f"{p.name} is not a saved conversation: {exc}") from None
        except ConfigError as exc:
            raise ConfigError(f"{p.name} is not a saved conversation: {exc}") from None

    @classmethod
    def _from_json(cls, data: Any, runtime: Runtime | None) -> Conversation:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise _Bad(f"no \"format\": \"{FORMAT}\" header")
        version = data.get("version")
        if not isinstance(version, int) or version > VERSION or version < 1:
            raise _Bad(f"version {version!r} (this eliza_nb reads version {VERSION})")
        system = data.get("system")
        if system is not None and not isinstance(system, str):
            raise _Bad("system is not text")
        conv = cls(runtime, data.get("name", "default"), system)
        turns = data.get("turns")
        if not isinstance(turns, list):
            raise _Bad("turns is not a list")
        conv._turns = [_turn(t, i) for i, t in enumerate(turns)]
        return conv


class _Bad(ValueError):
    """A malformed saved conversation (the loader adds the file's name)."""


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _masked(value: Any, keys: set[str]) -> Any:
    """``value`` with every key value (and every key remembered by redact) replaced by [redacted] in its strings."""
    if isinstance(value, str):
        return redact.mask_answer(value, keys)[0]
    if isinstance(value, list):
        return [_masked(v, keys) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v, keys) for k, v in value.items()}
    return value


def _field(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, optional: bool = True) -> Any:
    value = d.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, float, (int, float)):
        raise _Bad(f"{where}: {key} is {type(value).__name__}")
    return value


def _counted(value: str | None, where: str) -> str | None:
    if value not in (None, "exact", "estimate"):
        raise _Bad(f"{where}: tokens_counted is {value!r} (expected exact or estimate)")
    return value


def _turn(t: Any, i: int) -> Turn:
    where = f"turn {i}"
    if not isinstance(t, dict):
        raise _Bad(f"{where} is not an object")
    role, content = t.get("role"), t.get("content")
    if role not in ROLES:
        raise _Bad(f"{where}: role {role!r} (expected user or assistant)")
    if not isinstance(content, str):
        raise _Bad(f"{where}: content is not text")
    check_text(content, where)
    when = t["when"] if isinstance(t.get("when"), str) else ""
    meta = t.get("result")
    if meta is None or role == "user":
        return Turn(role, content, when)
    if not isinstance(meta, dict):
        raise _Bad(f"{where}: result is not an object")
    number = (int, float)
    attempts = []
    for a in _field(meta, "attempts", list, where) or []:
        if not isinstance(a, dict) or not isinstance(a.get("target"), str) or not isinstance(a.get("outcome"), str):
            raise _Bad(f"{where}: an attempt is not {{target, outcome}}")
        attempts.append(Attempt(a["target"], a["outcome"], str(a.get("detail") or ""),
                                float(_field(a, "waited_s", number, where) or 0.0)))
    notes = _field(meta, "notes", list, where) or []
    if not all(isinstance(n, str) for n in notes):
        raise _Bad(f"{where}: a note is not text")
    settings = _field(meta, "settings", dict, where) or {}
    result = Result(
        text=content, provider=_field(meta, "provider", str, where, False), model=_field(meta, "model", str, where, False),
        model_class=_field(meta, "model_class", str, where) or "",
        usage=Usage(_field(meta, "prompt_tokens", int, where), _field(meta, "completion_tokens", int, where),
                    counted=_counted(_field(meta, "tokens_counted", str, where), where),
                    source=_field(meta, "usage_source", str, where)
                    or ("local" if meta.get("tokens_counted") else "provider")),
        latency_s=float(_field(meta, "latency_s", number, where) or 0.0), ttft_s=_field(meta, "ttft_s", number, where),
        finish_reason=_field(meta, "finish_reason", str, where), cached=bool(meta.get("cached")),
        settings=dict(settings), notes=list(notes), attempts=attempts, interrupted=bool(meta.get("interrupted")),
        cache_key=_field(meta, "cache_key", str, where), selection=_field(meta, "selection", str, where),
        replayed=bool(meta.get("replayed")),
    )
    return Turn(role, content, when, result)


class ConversationStream:
    """What :meth:`Conversation.stream` returns: iterate for text chunks (as
    ``Runtime.stream``'s GenerationStream); ``.result`` holds the Result once drained, and
    the turn is in the conversation then. Interrupted (StreamInterrupted, KeyboardInterrupt
    while iterating, or ``close()``) after some text: ``.result`` is that text marked
    interrupted, kept as the assistant turn; before any text: None, nothing kept."""

    def __init__(self, conversation: Conversation, user: Message, system: str | None, inner: GenerationStream,
                 sent: Sequence[Message | Mapping[str, str]] = ()) -> None:
        self.conversation = conversation
        self.target = inner.target  # the first target tried (failover may answer from another)
        self.result: Result | None = None
        self._user, self._system, self._inner = user, system, inner
        self._sent = sent  # what the call sends, to count its tokens if it is stopped
        self._parts: list[str] = []
        self._done = False
        self._t0 = time.monotonic()
        self._first: float | None = None  # seconds to the first chunk

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        try:
            chunk = next(self._inner)
        except StopIteration:
            self._done = True
            assert self._inner.result is not None
            self.result = self._inner.result
            self.conversation._commit(self._user, self.result, self._system)
            raise
        except StreamInterrupted as exc:
            self._stop(exc.partial or "".join(self._parts), f"interrupted: {exc}")
            raise
        except KeyboardInterrupt:
            self._inner.close()
            self._stop("".join(self._parts), "interrupted by the user")
            raise
        except BaseException:
            self._done = True  # failed with no text shown (after text, the job raises StreamInterrupted)
            raise
        if self._first is None:
            self._first = time.monotonic() - self._t0
        self._parts.append(chunk)
        return chunk

    def close(self) -> None:
        """Stop the provider; the text so far (if any) becomes the assistant turn, interrupted."""
        if self._done:
            return
        self._inner.close()
        self._stop("".join(self._parts), "interrupted by the user")

    def text(self) -> str:
        """Drain the stream and return the whole text."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result.text

    def _stop(self, text: str, note: str) -> None:
        self._done = True
        if not text:
            return
        t, rt = self.target, self.conversation.runtime
        # The provider reported no usage for a stopped stream: count what was sent and shown.
        usage = counted_usage(rt, t, as_messages(list(self._sent)), text) if rt is not None else Usage()
        self.result = Result(text=text, provider=t.provider, model=t.model, model_class=t.model_class.value,
                             usage=usage, latency_s=time.monotonic() - self._t0, ttft_s=self._first,
                             interrupted=True, notes=[note])
        self.conversation._commit(self._user, self.result, self._system)


__all__ = ["Conversation", "ConversationStream", "Turn", "check_name"]
