"""``%eliza explain [--fix]``: the last exception, explained (or fixed) by a model.

The traceback IPython kept (``sys.last_type`` / ``last_value`` / ``last_traceback``, set by
the shell whenever it shows one) is formatted as plain text without colours, every key the
runtime knows (and every credential-shaped string) masked, and trimmed to the model's
budget from the top: the last frames and the exception line say most about an error. The
failing cell's source goes with it when IPython still has it. Locals are never sent.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import IPython

from ...core.errors import ElizaError
from ...core.redact import mask
from ...core.tokens import make_budget
from ..config import eliza_config
from ..display import show_result
from ..parser import FORMATS, GenerateArgs, MagicParser, add_model_flags, identifier, register_subcommand
from . import runtime, stream_into_cell

#: what the model is asked, written once
EXPLAIN_INSTRUCTION = ("Explain this Python error from a Jupyter notebook cell: what went wrong, where, and how "
                       "to fix it. Be brief and concrete.")
FIX_INSTRUCTION = ("Fix this Python error from a Jupyter notebook cell. Answer with the corrected code of the "
                   "failing cell in one ```python fenced block, then one or two sentences on what changed.")

#: how --fix renders without -f: the answer's first fenced block as code, the prose folded below
FIX_FORMAT = "code"
#: the most traceback text sent, whatever the model could hold: an explanation needs the
#: end of a traceback, not 50 pages of it
MAX_TRACEBACK_CHARS = 8_000
#: the failing cell's source gets at most this share of the room
SOURCE_SHARE = 3
#: characters per token when turning a token budget into characters: code and paths tokenise
#: densely, 3 keeps a trimmed traceback under the budget for the tokenizers we know
CHARS_PER_TOKEN = 3
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_IPYTHON_DIR = os.path.dirname(os.path.abspath(str(IPython.__file__))) + os.sep


@dataclass
class ExplainArgs(GenerateArgs):
    """``%eliza explain``: generate's provider, model and setting options, plus ``--fix``."""

    fix: bool = False


def explain_parser() -> MagicParser:
    p = MagicParser("%eliza explain", "Explain the last exception (its traceback, masked and trimmed, goes to the model); "
                                      "--fix asks for corrected code.")
    p.add_argument("--fix", action="store_true", help="ask for corrected code, shown as a code block")
    add_model_flags(p)
    p.add_argument("-f", "--format", choices=FORMATS, help="how to render the answer (default: markdown)")
    p.add_argument("-o", "--output", type=identifier, metavar="VAR", help="store the Result in this variable")
    p.add_argument("--no-cache", dest="no_cache", action="store_true")
    p.add_argument("--no-stream", dest="no_stream", action="store_true")
    return p


@dataclass
class Trimmed:
    """A traceback as sent: its text, and how many of its frames were left out."""

    text: str
    frames: int
    dropped: int
    chain_dropped: bool = False

    def note(self) -> str | None:
        """One line for the user, or None when nothing was trimmed."""
        if not self.dropped and not self.chain_dropped:
            return None
        parts = [f"the last {self.frames - self.dropped} of {self.frames} frames"] if self.dropped else []
        if self.chain_dropped:
            parts.append("without the exceptions it was raised from")
        return "traceback trimmed to the budget: " + ", ".join(parts)


def last_exception(shell: Any) -> tuple[type[BaseException], BaseException, TracebackType | None] | None:
    """The exception IPython showed last (it keeps it in ``sys.last_*``), or None."""
    value = getattr(sys, "last_value", None)
    if not isinstance(value, BaseException):
        return None
    return type(value), value, getattr(sys, "last_traceback", None)


def user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without IPython's own leading frames (the shell's run_code calls the cell)."""
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_IPYTHON_DIR):
        tb = tb.tb_next
    return tb


def format_traceback(value: BaseException, tb: TracebackType | None, keys: list[str], budget: int,
                     names: Mapping[str, str] | None = None) -> Trimmed:
    """The traceback as plain text, keys masked, within ``budget`` characters: the exception
    line always, then as many of the last frames as fit, then the chained exceptions if
    everything fits. ``names`` renames cell files (``"Cell In[3]"``, as IPython shows them)."""
    exc = traceback.TracebackException(type(value), value, tb, compact=True)

    def clean(text: str) -> str:
        for filename, name in (names or {}).items():
            text = text.replace(f'File "{filename}"', f'File "{name}"')
        return mask(_ANSI.sub("", text), keys)

    tail = clean("".join(exc.format_exception_only()))
    frames: list[str] = []
    for item in exc.stack.format():  # "[Previous line repeated N more times]" belongs to the frame before
        if frames and item.lstrip().startswith("[Previous line repeated"):
            frames[-1] += item
        else:
            frames.append(item)
    frames = [clean(f) for f in frames]
    head = "Traceback (most recent call last):\n" if frames else ""
    main = head + "".join(frames) + tail
    full = clean("".join(exc.format(chain=True)))
    if len(full) <= budget:
        return Trimmed(full, len(frames), 0)
    chain_dropped = full != main
    if len(tail) >= budget:  # a huge message: its start says what it is
        return Trimmed(mask(tail, keys, limit=max(budget, 80)), len(frames), len(frames), chain_dropped)
    kept: list[str] = []
    room = budget - len(tail) - len(head) - 60  # 60: the "frames left out" line
    for frame in reversed(frames):
        if len(frame) > room:
            break
        kept.insert(0, frame)
        room -= len(frame)
    dropped = len(frames) - len(kept)
    gap = f"  … {dropped} earlier frame{'s' if dropped != 1 else ''} left out …\n" if dropped else ""
    return Trimmed(head + gap + "".join(kept) + tail, len(frames), dropped, chain_dropped)


def cell_names(shell: Any, tb: TracebackType | None) -> dict[str, str]:
    """IPython's label for every cell file in ``tb`` (``"Cell In[3]"``): shorter than a temp
    path, and the number the user sees in the notebook."""
    label = getattr(getattr(shell, "compile", None), "format_code_name", None)
    names: dict[str, str] = {}
    while tb is not None and label is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename not in names:
            found = label(filename)
            if found:
                names[filename] = " ".join(found)
        tb = tb.tb_next
    return names


def failing_cell(shell: Any, tb: TracebackType | None) -> str | None:
    """The source of the cell the traceback starts in, as typed when the shell's history
    has it (IPython keeps the cell's rewritten code in linecache), else as rewritten."""
    if tb is None:
        return None
    filename = tb.tb_frame.f_code.co_filename
    lines = linecache.getlines(filename)
    # IPython names cells <ipython-input-N-…> (terminal) or …/ipykernel_PID/HASH.py (kernel),
    # files that do not exist on disk; a file that does is a module, not a cell
    if not lines or (os.path.exists(filename) and "ipykernel_" not in filename):
        return None
    code = "".join(lines).rstrip("\n")
    manager = getattr(shell, "history_manager", None)
    if manager is not None:
        for parsed, raw in zip(reversed(manager.input_hist_parsed), reversed(manager.input_hist_raw), strict=False):
            if parsed.rstrip("\n") == code:
                return str(raw)
    return code


def budget_chars(rt: Any, args: ExplainArgs) -> int:
    """How many characters of traceback the chosen model can take: its prompt budget (settings
    and, for local models, the loaded context) in characters, at most MAX_TRACEBACK_CHARS."""
    try:
        target = rt.resolve(args.provider, args.model_class, args.model)
        settings = rt.effective_settings(target, args.preset, args.settings)
        window_of = getattr(rt.adapter(target.provider), "context_window", None)
        window = window_of(target.model) if window_of else None
    except ElizaError:
        return MAX_TRACEBACK_CHARS  # the call itself will say what is wrong, in one line
    budget = make_budget(settings.max_input_tokens, settings.max_output_tokens, window)
    if budget is None:
        return MAX_TRACEBACK_CHARS
    return max(400, min(MAX_TRACEBACK_CHARS, (budget.prompt_tokens - 100) * CHARS_PER_TOKEN))


def known_keys(rt: Any) -> list[str]:
    """Every key the runtime would send, so none goes out inside a traceback."""
    keys = []
    for entry in rt.catalog:
        try:
            key = rt.key_for(entry)
        except ElizaError:  # a malformed key is refused before any request; nothing to mask
            continue
        if key:
            keys.append(key)
    return keys


def build_prompt(shell: Any, rt: Any, args: ExplainArgs, question: str | None) -> tuple[str, Trimmed] | None:
    """The prompt for the last exception, and its traceback as sent; None when there is none."""
    found = last_exception(shell)
    if found is None:
        return None
    _, value, tb = found
    tb = user_frames(tb)
    keys = known_keys(rt)
    room = budget_chars(rt, args)
    source = failing_cell(shell, tb)
    parts = [FIX_INSTRUCTION if args.fix else EXPLAIN_INSTRUCTION]
    if question and question.strip():
        parts.append("The user asks: " + mask(question.strip(), keys))
    if source:
        cut = room // SOURCE_SHARE
        source = mask(source, keys)
        if len(source) > cut:
            source = source[:cut] + "\n# … (the rest of the cell is left out)"
        parts.append(f"The cell that failed:\n```python\n{source}\n```")
    used = sum(len(p) for p in parts)
    trimmed = format_traceback(value, tb, keys, max(400, room - used), cell_names(shell, tb))
    parts.append(f"The traceback:\n```\n{trimmed.text.rstrip()}\n```")
    return "\n\n".join(parts), trimmed


def do_explain(shell: Any, args: ExplainArgs, cell: str | None) -> None:
    rt = runtime()
    built = build_prompt(shell, rt, args, cell)
    if built is None:
        print("no exception to explain yet")
        return
    prompt, trimmed = built
    note = trimmed.note()
    if note:
        print(note)
    fmt = args.format or (FIX_FORMAT if args.fix else "markdown")
    options = args.call_options()
    if args.no_stream:
        result = rt.generate(prompt, **options)
        show_result(result, fmt, footer=eliza_config().show_footer)
    else:
        result = stream_into_cell(rt, prompt, options, fmt)
    if note:
        result.notes.append(note)
    if args.output:
        shell.user_ns[args.output] = result


register_subcommand("explain", explain_parser, ExplainArgs, "explain the last exception (--fix: corrected code)", do_explain)
