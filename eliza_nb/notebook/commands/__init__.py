"""The core subcommands: generate, embed, help. Each handler is ``(shell, args, cell)``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ...core.errors import StreamInterrupted
from ...core.tokens import counted_usage
from ...core.types import Message, Result, as_messages, provenance
from ..config import eliza_config
from ..display import StreamView, partial_result, show_result
from ..interpolate import interpolate
from ..parser import (
    EmbedArgs,
    GenerateArgs,
    MagicParser,
    NoArgs,
    embed_parser,
    generate_parser,
    help_text,
    register_subcommand,
    simple_parser,
)


def runtime():
    """The shared runtime every command goes through."""
    import eliza_nb

    return eliza_nb.runtime()


def do_help(shell: Any, args: Any, cell: str | None) -> None:
    print(help_text())


@dataclass
class GenerateLineArgs(GenerateArgs):
    """GenerateArgs plus any words left on the line (``%eliza generate Hello``): the prompt
    belongs in the cell, and the handler says so in one line rather than argparse's
    "unrecognized arguments"."""

    words: list[str] = field(default_factory=list)


def generate_line_parser() -> MagicParser:
    """``generate_parser`` that also takes the words a prompt on the line would be."""
    p = generate_parser()
    p.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    return p


def do_generate(shell: Any, args: GenerateArgs, cell: str | None) -> None:
    words = getattr(args, "words", None)
    if words:  # `%eliza generate Hello`: the prompt on the line
        raise UsageError(f"use `%%eliza generate` with the prompt in the cell: `%%eliza generate [options]` on the first "
                         f"line, {' '.join(words)!r} on the lines below")
    if cell is None:
        raise UsageError("use `%%eliza generate` with the prompt in the cell: the first line `%%eliza generate [options]`, "
                         "the prompt on the lines below")
    if not cell.strip():
        raise UsageError("%%eliza generate needs the prompt in the cell body, e.g. %%eliza generate -t 0 | What is the capital of France?")
    prompt = cell.strip("\n") if args.no_interpolate else interpolate(cell.strip("\n"), shell.user_ns)
    rt = runtime()
    options = args.call_options()
    conf = eliza_config()
    fmt = args.format or conf.default_format
    if args.no_stream:
        result = rt.generate(prompt, **options)
        show_result(result, fmt, footer=conf.show_footer)
    else:
        result = stream_into_cell(rt, prompt, options, fmt)
    if args.output:
        shell.user_ns[args.output] = result


def stream_into_cell(rt: Any, prompt: str, options: dict[str, Any], fmt: str) -> Result:
    """Stream a generation into a display that the final render replaces.

    The stop button (KeyboardInterrupt) or a cut stream keeps the partial text, marked
    interrupted; the runtime caches nothing for it.
    """
    stream = rt.stream(prompt, **options)  # bad options raise here, before any output
    return show_stream(stream, fmt, rt=rt, prompt=as_messages(prompt, options.get("system")))


def show_stream(stream: Any, fmt: str, *, rt: Any = None, prompt: Sequence[Message] | None = None) -> Result:
    """Show a started stream (``Runtime.stream``'s or a conversation's) in the cell, then
    the final render. A stream whose ``close()`` settles its own partial Result (a
    conversation's keeps it as the turn) has it in ``.result``; others get one made here.

    A stopped stream's Result gets the tokens counted so far (``prompt``: the messages sent,
    when known) and the time it ran, where the provider reported nothing."""
    conf = eliza_config()
    view = StreamView(conf.stream_interval, show_footer=conf.show_footer)
    t0, first = time.monotonic(), None
    try:
        for chunk in stream:
            if first is None:
                first = time.monotonic() - t0
            view.append(chunk)
        result = stream.result
    except (KeyboardInterrupt, StreamInterrupted) as exc:
        elapsed = time.monotonic() - t0
        stream.close()
        partial = getattr(exc, "partial", "") or view.text
        result = stream.result or partial_result(stream.target, partial,
                                                 f"interrupted: {exc}" if str(exc) else "interrupted by the user")
        if result.interrupted and result.usage.total_tokens is None:
            result.usage = counted_usage(rt or runtime(), stream.target, prompt, result.text)
            result.latency_s = result.latency_s or elapsed
            result.ttft_s = result.ttft_s if result.ttft_s is not None else first
    view.finish(result, fmt)
    return result


def do_embed(shell: Any, args: EmbedArgs, cell: str | None) -> Any:
    rt = runtime()
    if cell is not None:
        texts = [line for line in cell.splitlines() if line.strip()]
        if not texts:
            raise UsageError("%%eliza embed needs one text per line in the cell body")
        import pandas as pd

        vectors, meta = embed_with_provenance(rt, texts, args.provider, args.model)
        value: Any = pd.DataFrame({"text": texts, "vector": list(vectors), "dims": [v.shape[0] for v in vectors]})
    else:
        text = " ".join(args.text).strip()
        if not text:
            raise UsageError("%eliza embed needs a text, e.g. %eliza embed the cat sat on the mat")
        value, meta = embed_with_provenance(rt, text, args.provider, args.model)
    who = f"{meta['provider']}:{meta['model']}"
    if args.output:
        shell.user_ns[args.output] = value
        shape = getattr(value, "shape", None) or (len(value),)
        _show_line(f"{args.output}: {type(value).__name__} {tuple(shape)} from {who}", meta)
        return None
    if eliza_config().show_footer:
        counts = [f"{meta['dims']} dims", f"{meta['count']} text{'s' if meta['count'] != 1 else ''}"]
        counts += [f"{meta[k]} {k}" for k in ("cached", "replayed") if meta[k]]
        _show_line(" · ".join([who, *counts]), meta)
    return value


def embed_with_provenance(rt: Any, texts: str | list[str], provider: str | None, model: str | None) -> tuple[Any, dict[str, Any]]:
    """``rt.embed(texts)`` and the provenance of its output: provider, model, dims, count, and
    how many vectors came from the cache or a replay archive.

    Those two counts come from the ledger rows the call added, so an embedding with the same
    model on another thread at the same moment would be counted too.
    """
    target = rt.resolve_embedding(provider, model)
    seen = len(rt.ledger)
    vectors = rt.embed(texts, provider=provider, model=model)
    rows = [r for r in rt.ledger.rows()[seen:]
            if r.kind == "embed" and (r.provider, r.model) == (target.provider, target.model)]
    meta = provenance(target.provider, target.model, dims=int(vectors.shape[-1]),
                      count=1 if isinstance(texts, str) else len(texts),
                      cached=sum(r.items for r in rows if r.cache_hit), replayed=sum(r.items for r in rows if r.replayed))
    return vectors, meta


def _show_line(text: str, meta: dict[str, Any]) -> None:
    display({"text/plain": text}, raw=True, metadata={"eliza_nb": meta})


register_subcommand("generate", generate_line_parser, GenerateLineArgs, "generate text from the cell body (streams)", do_generate)
register_subcommand("embed", embed_parser, EmbedArgs, "embed text: a vector, or a DataFrame for a cell of lines", do_embed)
register_subcommand("help", simple_parser("help", "List the subcommands."), NoArgs, "this list", do_help)
