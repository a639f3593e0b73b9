"""The core subcommands: generate, embed, help. Each handler is ``(shell, args, cell)``."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ...core.errors import StreamInterrupted
from ...core.types import Result, provenance
from ..config import eliza_config
from ..display import StreamView, partial_result, show_result
from ..interpolate import interpolate
from ..parser import (
    EmbedArgs,
    GenerateArgs,
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


def do_generate(shell: Any, args: GenerateArgs, cell: str | None) -> None:
    if cell is None or not cell.strip():
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
    conf = eliza_config()
    view = StreamView(conf.stream_interval, show_footer=conf.show_footer)
    try:
        for chunk in stream:
            view.append(chunk)
        result = stream.result
    except (KeyboardInterrupt, StreamInterrupted) as exc:
        stream.close()
        partial = getattr(exc, "partial", "") or view.text
        result = partial_result(stream.target, partial, f"interrupted: {exc}" if str(exc) else "interrupted by the user")
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


register_subcommand("generate", generate_parser, GenerateArgs, "generate text from the cell body (streams)", do_generate)
register_subcommand("embed", embed_parser, EmbedArgs, "embed text: a vector, or a DataFrame for a cell of lines", do_embed)
register_subcommand("help", simple_parser("help", "List the subcommands."), NoArgs, "this list", do_help)
