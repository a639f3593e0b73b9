"""Record a session's model calls beside the notebook; replay them anywhere, with no key.

    import eliza_nb
    eliza_nb.replay.record("analysis.replay")     # every generation and embedding from here on
    ...
    eliza_nb.replay.stop()                         # the archive is complete (it is also kept up to date)

    eliza_nb.replay.replay("analysis.replay")      # someone else, no key: the same answers, marked replayed
    eliza_nb.replay.replay("analysis.replay", strict=False)   # unmatched requests go live instead of failing

The same from a cell: ``%eliza record PATH``, ``%eliza record --stop``, ``%eliza replay PATH
[--fallthrough]``, ``%eliza replay --off``. An archive is a folder of JSON lines and raw
float32 vectors (no pickle, no keys, no headers) that diffs cleanly in git; see
``eliza_nb/core/replay/archive.py`` for the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core.replay.tape import Recorder, Replayer


def _rt() -> Any:
    import eliza_nb

    return eliza_nb.runtime()


def record(path: str | Path, *, note: str | None = None) -> Recorder:
    """Start recording the shared runtime's generations and embeddings to the archive at
    ``path`` (a folder, e.g. ``"notebook.replay"``; an existing archive there is replaced).
    ``note`` is stored in the archive and shown with every replayed answer."""
    from .core.replay.tape import start_recording

    return start_recording(_rt(), path, note)


def replay(path: str | Path, strict: bool = True) -> Replayer:
    """Answer matching requests from the archive at ``path``. ``strict=True`` refuses an
    unmatched request with a one-line error naming the field that differs from the nearest
    recorded one; ``strict=False`` sends it to the provider. A damaged archive is refused
    whole, with the line that is wrong."""
    from .core.replay.tape import start_replay

    return start_replay(_rt(), path, strict)


def stop() -> Recorder | Replayer | None:
    """Stop recording or replaying; returns what was on (None if nothing was)."""
    from .core.replay.tape import stop as _stop

    return _stop(_rt())


off = stop  # ``eliza_nb.replay.off()`` reads better after replay(...)


def mode() -> str | None:
    """What is on: ``"record"``, ``"replay"``, or None."""
    tape = _rt().tape
    return None if tape is None else tape.mode


def status() -> str:
    """One line: what is being recorded to or replayed from, and how much so far."""
    from .core.replay.tape import status as _status

    return _status(_rt())


__all__ = ["mode", "off", "record", "replay", "status", "stop"]
