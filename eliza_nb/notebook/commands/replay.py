"""``%eliza record`` and ``%eliza replay``: reproducible notebooks (core/replay/ does the work)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from ..parser import MagicParser, register_subcommand
from . import runtime


@dataclass
class RecordArgs:
    """``%eliza record PATH [--note TEXT]`` / ``%eliza record --stop``."""

    path: str | None = None
    stop: bool = False
    note: str | None = None


@dataclass
class ReplayArgs:
    """``%eliza replay PATH [--fallthrough]`` / ``%eliza replay --off``."""

    path: str | None = None
    fallthrough: bool = False
    off: bool = False


def record_parser() -> MagicParser:
    p = MagicParser("%eliza record", "Record every generation and embedding of this session to an archive beside "
                                     "the notebook (a folder of JSON lines + float32 vectors; no keys). No PATH: what is on.")
    p.add_argument("path", nargs="?", help="the archive folder, e.g. analysis.replay (replaced if it exists)")
    p.add_argument("--stop", action="store_true", help="stop recording (the archive is complete)")
    p.add_argument("--note", help="a note stored in the archive and shown with every replayed answer")
    return p


def replay_parser() -> MagicParser:
    p = MagicParser("%eliza replay", "Answer matching requests from an archive made by %eliza record; "
                                     "unmatched ones are refused, naming what differs. No PATH: what is on.")
    p.add_argument("path", nargs="?", help="the archive folder")
    p.add_argument("--fallthrough", action="store_true", help="send unmatched requests to the provider instead")
    p.add_argument("--off", action="store_true", help="stop replaying")
    return p


def _say(text: str, meta: dict[str, Any]) -> None:
    from IPython.display import display

    display({"text/plain": text}, raw=True, metadata={"eliza_nb": meta})


def _stopped(what: Any) -> str:
    if what is None:
        return "nothing was being recorded or replayed"
    if what.mode == "record":
        return f"stopped recording: {what.path} is complete"
    return f"stopped replaying {what.path} ({what.replayed} calls served from it)"


def do_record(shell: Any, args: RecordArgs, cell: str | None) -> None:
    from ...core.replay import tape as core_replay  # numpy and the pipeline: on first use, not at %load_ext

    rt = runtime()
    if cell is not None:
        raise UsageError("%eliza record is a line magic: %eliza record PATH")
    if args.stop:
        if args.path:
            raise UsageError("%eliza record --stop takes no PATH")
        _say(_stopped(core_replay.stop(rt)), {"command": "record", "recording": False})
        return
    if not args.path:
        _say(core_replay.status(rt), {"command": "record"})
        return
    before = rt.tape
    recorder = core_replay.start_recording(rt, args.path, args.note)
    was = " (replay turned off)" if before is not None and before.mode == "replay" else ""
    _say(f"recording every generation and embedding to {recorder.path}{was}; %eliza record --stop to finish",
         {"command": "record", "recording": True, "archive": str(args.path)})


def do_replay(shell: Any, args: ReplayArgs, cell: str | None) -> None:
    from ...core.replay import tape as core_replay  # numpy and the pipeline: on first use, not at %load_ext

    rt = runtime()
    if cell is not None:
        raise UsageError("%eliza replay is a line magic: %eliza replay PATH")
    if args.off:
        if args.path:
            raise UsageError("%eliza replay --off takes no PATH")
        _say(_stopped(core_replay.stop(rt)), {"command": "replay", "replaying": False})
        return
    if not args.path:
        _say(core_replay.status(rt), {"command": "replay"})
        return
    before = rt.tape
    replayer = core_replay.start_replay(rt, args.path, strict=not args.fallthrough)
    if before is not None and before.mode == "record":
        before.save()
    a = replayer.archive
    was = " (recording stopped)" if before is not None and before.mode == "record" else ""
    how = "unmatched requests go to the provider" if args.fallthrough else "unmatched requests are refused"
    _say(f"replaying {replayer.path}: {len(a.generations)} generations, {len(a.embeddings)} embeddings; {how}{was}",
         {"command": "replay", "replaying": True, "archive": str(args.path), "strict": not args.fallthrough})


register_subcommand("record", record_parser, RecordArgs, "record model calls to an archive beside the notebook", do_record)
register_subcommand("replay", replay_parser, ReplayArgs, "answer calls from a recorded archive (no key needed)", do_replay)
