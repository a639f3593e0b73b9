"""``%%eliza chat``: a multi-turn conversation in the session (core/conversation.py does the work).

    %%eliza chat [--name NAME] [--new] [--system S] [generate's options]
    the cell is the next user turn ({var} interpolated as in generate)

    %eliza chat --show [--name NAME]        the transcript
    %eliza chat --new [--name NAME]         start afresh
    %eliza chat --save PATH / --load PATH   JSON, no pickle

The conversation is the runtime's (``rt.conversation(name)``), the same object
``eliza_nb.chat(name)`` returns, so a cell and Python code continue one history.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ...core.conversation import Conversation, check_name
from ..config import eliza_config
from ..display import show_result
from ..interpolate import interpolate
from ..parser import GenerateArgs, MagicParser, generate_parser, register_subcommand
from . import runtime, show_stream


@dataclass
class ChatArgs(GenerateArgs):
    """``%%eliza chat``: generate's options (they apply to this turn; ``--system`` stays for
    later turns) plus which conversation, and the line forms' actions."""

    name: str | None = None
    new: bool = False
    show: bool = False
    save: str | None = None
    load: str | None = None


def chat_parser() -> MagicParser:
    p = generate_parser()  # every generate option, spelled the same
    p.prog = "%%eliza chat"
    p.description = ("Send the cell as the next turn of a conversation kept in the session (the history goes "
                     "through the same pipeline; the oldest turns are trimmed to the context budget). "
                     "Line forms: --show, --new, --save PATH, --load PATH.")
    p.add_argument("--name", help="which conversation (default: 'default'); names keep conversations apart")
    p.add_argument("--new", action="store_true", help="start the conversation afresh (turns and system prompt cleared)")
    p.add_argument("--show", action="store_true", help="show the conversation as a transcript (line magic)")
    p.add_argument("--save", metavar="PATH", help="save the conversation as JSON (line magic)")
    p.add_argument("--load", metavar="PATH", help="load a saved conversation (as --name, or its saved name)")
    return p


def do_chat(shell: Any, args: ChatArgs, cell: str | None) -> Any:
    rt = runtime()
    if cell is not None and (args.show or args.save):
        raise UsageError("--show and --save are line forms: %eliza chat --show / %eliza chat --save PATH")
    if args.load:
        if args.new:
            raise UsageError("--load and --new together: load a saved conversation, or start a new one")
        conv = Conversation.load(args.load, rt)
        if args.name:
            conv.name = check_name(args.name)
        rt.conversations[conv.name] = conv
        if cell is None:
            _say(f"loaded conversation {conv.name!r} ({len(conv)} turns) from {args.load}", conv)
    else:
        conv = rt.conversation(args.name or "default", new=args.new)
    if cell is None:
        return _line(conv, args)
    if not cell.strip():
        raise UsageError("%%eliza chat needs your message in the cell body, e.g. %%eliza chat | Hello!")
    text = cell.strip("\n") if args.no_interpolate else interpolate(cell.strip("\n"), shell.user_ns)
    options = args.call_options()  # --system goes to the conversation: kept from this turn on
    conf = eliza_config()
    fmt = args.format or conf.default_format
    if args.no_stream:
        result = conv.say(text, **options)
        show_result(result, fmt, footer=conf.show_footer)
    else:
        result = show_stream(conv.stream(text, **options), fmt)  # bad options raise before any output
    if args.output:
        shell.user_ns[args.output] = result
    return None


def _line(conv: Conversation, args: ChatArgs) -> None:
    """The line forms: --system (set), --save, --show, --new; with nothing, a one-line status."""
    if args.system is not None:
        conv.system = args.system
    if args.save:
        path = conv.save(args.save)
        _say(f"saved conversation {conv.name!r} ({len(conv)} turns) to {path}", conv)
    if args.show:
        show_transcript(conv)
    elif args.new:
        _say(f"started a new conversation {conv.name!r}", conv)
    elif not (args.save or args.load):
        system = "" if conv.system is None else "; a system prompt is set"
        _say(f"conversation {conv.name!r}: {len(conv)} turns{system}. Put your message in the cell: "
             f"%%eliza chat{'' if conv.name == 'default' else ' --name ' + conv.name}; %eliza chat --show for the transcript",
             conv)


def _say(text: str, conv: Conversation) -> None:
    display({"text/plain": text}, raw=True, metadata={"eliza_nb": _meta(conv)})


def _meta(conv: Conversation) -> dict[str, Any]:
    return {"command": "chat", "conversation": conv.name, "turns": len(conv)}


_ROLE_STYLE = {
    "system": "color:#6b7280;font-style:italic",
    "user": "color:#1d4ed8;font-weight:600",
    "assistant": "color:#15803d;font-weight:600",
}
_BOX = ("margin:0.3em 0;padding:0.3em 0.6em;border-left:3px solid {color};"
        "font-family:var(--jp-ui-font-family,sans-serif)")
_COLORS = {"system": "#9ca3af", "user": "#93c5fd", "assistant": "#86efac"}


def transcript_html(conv: Conversation) -> str:
    """The conversation as HTML: one block per message, its exchange number and role; each
    answer with provider:model, tokens and latency ("interrupted" when it was cut). Escaped."""
    title = f"conversation {html.escape(repr(conv.name))}"
    if conv.system is None and not len(conv):
        return f"<div><i>{title} is empty</i></div>"
    blocks = [f"<div style='font-weight:600;margin:0.2em 0'>{title} · {len(conv)} turns</div>"]
    if conv.system is not None:
        blocks.append(_block("system", 0, conv.system, ""))
    n = 0
    for turn in conv.turns:
        n += turn.role == "user"
        who = ""
        r = turn.result
        if r is not None:
            parts = [f"<b>{html.escape(r.provider)}:{html.escape(r.model)}</b>"]
            if r.usage.total_tokens is not None:
                parts.append(f"{r.usage.total_tokens} tok")
            if r.latency_s:
                parts.append(f"{r.latency_s * 1000:.0f} ms")
            if r.replayed:
                parts.append("replayed")
            if r.interrupted:
                parts.append("<span style='color:#b91c1c;font-weight:600'>interrupted</span>")
            who = " <span style='font-size:0.8em;color:var(--jp-ui-font-color2,#777)'>" + " · ".join(parts) + "</span>"
        blocks.append(_block(turn.role, n, turn.content, who))
    return "<div class='eliza-transcript'>" + "".join(blocks) + "</div>"


def _block(role: str, n: int, content: str, who: str) -> str:
    head = f"<span style='{_ROLE_STYLE[role]}'>{role}</span> <span style='color:#9ca3af'>#{n}</span>{who}"
    body = f"<div style='white-space:pre-wrap'>{html.escape(content)}</div>"
    return f"<div class='eliza-turn eliza-{role}' style='{_BOX.format(color=_COLORS[role])}'>{head}{body}</div>"


def show_transcript(conv: Conversation) -> None:
    """Display the transcript: rich HTML, plain text beside it."""
    display({"text/plain": conv.transcript(), "text/html": transcript_html(conv)}, raw=True,
            metadata={"eliza_nb": {**_meta(conv), "transcript": [t.metadata() for t in conv.turns]}})


register_subcommand("chat", chat_parser, ChatArgs, "a multi-turn conversation: the cell is your next turn", do_chat)
