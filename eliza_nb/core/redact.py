"""Keys out of log records.

eliza_nb never logs a key, but the HTTP stack does log what servers send: at DEBUG,
httpcore logs every response's headers, and a careless server or proxy echoes the request's
credentials back in them (``WWW-Authenticate``, an ``X-Debug`` header). Error messages are
scrubbed where they are made (adapters/http.py); log records are another road out, so
every key the HTTP adapters send is remembered here and masked in the records of the
HTTP-stack loggers before any handler sees them.

The mask is a log-record factory, installed once the first key is sent: httpcore makes its
loggers on the fly (one per trace), so filters on loggers would miss some. Records of
other loggers are left alone (one ``startswith`` each).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

#: loggers of the HTTP stack (and auth helpers) whose records may carry server-sent text
NOISY = ("httpx", "httpcore", "h11", "h2", "hpack", "urllib3", "google.auth")
MASK = "***"
MIN_LENGTH = 8  # shorter values are not keys; masking them would garble logs

_secrets: tuple[str, ...] = ()  # longest first, so a key containing another is masked whole
_lock = threading.Lock()
_previous: Any = None


def remember(key: str | None) -> None:
    """Mask ``key`` in HTTP log records from now on (cheap when already known: the hot path)."""
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
