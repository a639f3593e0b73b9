"""Keys out of messages, log records and answers: the one place masking is done.

Three roads out, one rule each:

- error messages (:func:`mask`): a provider's message may echo the request's credentials.
  Every key is masked on the full text *before* the message is cut to length, so a cut
  never leaves part of a key; a key the text holds only in part (cut by the server, or by
  a read limit before the text reached us) is masked too, from :data:`MIN_PREFIX` of
  its first characters on.
- log records: at DEBUG, httpcore logs every response's headers, and a careless server or
  proxy echoes the request's credentials back in them (``WWW-Authenticate``, an
  ``X-Debug`` header). Every key the HTTP adapters send is remembered here
  (:func:`remember`) and masked in the records of the HTTP-stack loggers before any
  handler sees them. The mask is a log-record factory, installed once the first key is
  sent: httpcore makes its loggers on the fly (one per trace), so filters on loggers would
  miss some. Records of other loggers are left alone (one ``startswith`` each).
- answers (:func:`mask_answer`): a server that echoes the key in a 200 answer. The answer
  is returned with the key replaced by ``[redacted]`` (and never cached: see
  core/cache/generations.py).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

#: loggers of the HTTP stack (and auth helpers) whose records may carry server-sent text
NOISY = ("httpx", "httpcore", "h11", "h2", "hpack", "urllib3", "google.auth")
MASK = "***"
ANSWER_MASK = "[redacted]"
MIN_LENGTH = 8  # shorter values are not keys; masking them would garble logs
#: the shortest start of a key masked in a message. Below 8 characters a key's start is
#: its public format tag (``sk-``, ``AIza``, ``ya29.``, ``gsk_``, ``xai-``) plus a
#: character or two: nothing an attacker can use. From 8 on the random part begins; a
#: message that names a longer tag (``sk-proj-``) loses only that tag to the mask.
MIN_PREFIX = 8

#: credential-shaped text, masked even when it is not a key we know (a header echoed back);
#: group 1 is the label kept in front of the mask
PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|key|token|access_token)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/-]{12,}"),
    re.compile(r"\b(sk-[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{8,}"),
    re.compile(r"\b(AIza)[0-9A-Za-z_-]{20,}"),
    re.compile(r"\b(xai-|gsk_)[A-Za-z0-9]{12,}"),
)

_secrets: tuple[str, ...] = ()  # longest first, so a key containing another is masked whole
_lock = threading.Lock()
_previous: Any = None


def remember(key: str | None) -> None:
    """Mask ``key`` in HTTP log records, messages and answers from now on (cheap when
    already known: the hot path)."""
    global _secrets, _previous
    if not key or len(key) < MIN_LENGTH or key in _secrets:
        return
    with _lock:
        if key in _secrets:
            return
        _secrets = tuple(sorted({*_secrets, key}, key=len, reverse=True))
        if _previous is None:
            _previous = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_factory)


def redact(text: str) -> str:
    """``text`` with every remembered key replaced by ``***``."""
    for key in _secrets:
        if key in text:
            text = text.replace(key, MASK)
    return text


def mask(text: str, keys: Iterable[str | None] = (), limit: int | None = None) -> str:
    """``text`` with every key masked, then cut to ``limit`` characters (ending in ``…``).

    Masked: each of ``keys`` (any length) and every remembered key, whole or cut short
    (any run of :data:`MIN_PREFIX` characters or more that starts one: a server or a read
    limit may have cut it), and credential-shaped text (``Bearer …``, ``api_key=…``,
    ``sk-…``, ``AIza…``).
    """
    secrets = _known(keys, 1)
    for key in secrets:
        if key in text:
            text = text.replace(key, MASK)
    text = _mask_key_starts(text, secrets)  # before the patterns, which could take a cut key's start and leave its tail
    for pattern in PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    # every key and every start of one is masked now: the cut cannot uncover any
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def mask_answer(text: str, keys: Iterable[str | None] = ()) -> tuple[str, bool]:
    """(``text`` with every key replaced by ``[redacted]``, whether any was). Keys: ``keys``
    (values shorter than MIN_LENGTH are not keys) and every remembered key. Only whole keys:
    an answer is the model's text, and a word that merely starts like a key stays."""
    masked = False
    for key in _known(keys, MIN_LENGTH):
        if key in text:
            text, masked = text.replace(key, ANSWER_MASK), True
    return text, masked


_KEY_CHAR = re.compile(r"[A-Za-z0-9._~+/=-]")


class StreamMask:
    """Masks every sent key in streamed text as it passes, holding back only a tail that
    could be the start of one (a key split across two chunks), so text flows at once. A
    tail glued to the word before it is not a key's start ("capita|l" is not "l…"): holding
    those back would delay most chunks for nothing. The final Result is masked whole anyway."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> str:
        """What of ``pending + text`` can be shown now, keys replaced by ``[redacted]``."""
        keys = _known((), MIN_LENGTH)
        if not keys:
            return text
        text = self._pending + text
        for key in keys:
            if key in text:
                text = text.replace(key, ANSWER_MASK)
        hold = max((_key_start_at_end(text, key) for key in keys), default=0)
        self._pending = text[len(text) - hold:] if hold else ""
        return text[:len(text) - hold]

    def flush(self) -> str:
        """The held-back tail, at the end of the stream (it did not become a key)."""
        tail, self._pending = self._pending, ""
        return tail


def _key_start_at_end(text: str, key: str) -> int:
    """The length of the longest tail of ``text`` that is a proper start of ``key`` and does
    not continue a word (0: none). Only the places where ``key``'s first character occurs
    in the last ``len(key) - 1`` characters are looked at."""
    i = text.find(key[0], max(0, len(text) - len(key) + 1))
    while i != -1:
        if key.startswith(text[i:]) and (i == 0 or not _KEY_CHAR.match(text[i - 1])):
            return len(text) - i
        i = text.find(key[0], i + 1)
    return 0


def _known(keys: Iterable[str | None], min_length: int) -> list[str]:
    """``keys`` of at least ``min_length`` characters and the remembered ones, longest first."""
    given = {k for k in keys if k and len(k) >= min_length}
    return sorted(given.union(_secrets), key=len, reverse=True) if given else list(_secrets)


def _mask_key_starts(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every run of MIN_PREFIX characters or more that starts a key masked."""
    for key in secrets:
        if len(key) <= MIN_PREFIX:
            continue
        head = key[:MIN_PREFIX]
        start = text.find(head)
        while start != -1:
            end = start + MIN_PREFIX
            while end < len(text) and end - start < len(key) and text[end] == key[end - start]:
                end += 1
            text = text[:start] + MASK + text[end:]
            start = text.find(head, start + len(MASK))
    return text


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _previous(*args, **kwargs)
    if record.name.startswith(NOISY):
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report, not ours
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
    return record
