"""``%eliza`` / ``%%eliza``: the notebook's way into the runtime.

Every subcommand parses into a typed args object (parser.py), then calls the shared
Runtime; a magic never calls a provider directly. Malformed lines are one-line
UsageErrors; provider problems are ElizaErrors, which render as one line too.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..core.errors import StreamInterrupted
from ..core.types import Result, Usage
from .display import StreamView, render_bundle, show_result
from .interpolate import InterpolationError, interpolate
from .parser import EmbedArgs, GenerateArgs, HelpRequested, MagicUsageError, help_text, parse_line


def _runtime():
    import eliza_nb

    return eliza_nb.runtime()


@magics_class
class ElizaMagics(Magics):
    """The %eliza line magic and %%eliza cell magic."""

    @line_cell_magic
    def eliza(self, line: str, cell: str | None = None) -> Any:
        """%eliza SUBCOMMAND [options]  —  run `%eliza help` for the list."""
        try:
            name, args = parse_line(line)
        except HelpRequested as h:
            print(h.text)
            return None
        except MagicUsageError as exc:
            raise UsageError(str(exc)) from None
        handler = getattr(self, f"_do_{name}")
        try:
            return handler(args, cell)
        except InterpolationError as exc:
            raise UsageError(str(exc)) from None

    # -- subcommands ------------------------------------------------------------------
    def _do_help(self, args: Any, cell: str | None) -> None:
        print(help_text())

    def _do_generate(self, args: GenerateArgs, cell: str | None) -> None:
        if cell is None or not cell.strip():
            raise UsageError("%%eliza generate needs the prompt in the cell body, e.g.\n%%eliza generate -t 0\nWhat is the capital of France?"
                             .replace("\n", " | "))
        prompt = cell.strip("\n") if args.no_interpolate else interpolate(cell.strip("\n"), self.shell.user_ns)
        rt = _runtime()
        options = args.call_options()
        if args.no_stream:
            result = rt.generate(prompt, **options)
            show_result(result, args.format)
        else:
            result = self._stream(rt, prompt, options, args.format)
        if args.output:
            self.shell.user_ns[args.output] = result

    def _stream(self, rt: Any, prompt: str, options: dict[str, Any], fmt: str) -> Result:
        stream = rt.stream(prompt, **options)
        view = StreamView()
        try:
            for chunk in stream:
                view.append(chunk)
            result = stream.result
        except (KeyboardInterrupt, StreamInterrupted) as exc:
            stream.close()
            # Keep what arrived, mark it, cache nothing (the runtime only caches finished calls).
            partial = getattr(exc, "partial", "") or view.text
            target = stream.target
            result = Result(text=partial, provider=target.provider, model=target.model,
                            model_class=target.model_class.value, usage=Usage(), interrupted=True,
                            notes=[f"interrupted: {exc}" if str(exc) else "interrupted by the user"])
        view.finish(result, fmt)
        return result

    def _do_embed(self, args: EmbedArgs, cell: str | None) -> Any:
        rt = _runtime()
        options = {k: v for k, v in (("provider", args.provider), ("model", args.model)) if v}
        if cell is not None:
            texts = [line for line in cell.splitlines() if line.strip()]
            if not texts:
                raise UsageError("%%eliza embed needs one text per line in the cell body")
            import pandas as pd

            vectors = rt.embed(texts, **options)
            value: Any = pd.DataFrame({"text": texts, "vector": list(vectors), "dims": [v.shape[0] for v in vectors]})
        else:
            text = " ".join(args.text).strip()
            if not text:
                raise UsageError("%eliza embed needs a text, e.g. %eliza embed the cat sat on the mat")
            value = rt.embed(text, **options)
        if args.output:
            self.shell.user_ns[args.output] = value
            shape = getattr(value, "shape", None) or (len(value),)
            target = rt.resolve_embedding(args.provider, args.model)
            print(f"{args.output}: {type(value).__name__} {tuple(shape)} from {target}")
            return None
        return value


_loaded: dict[int, ElizaMagics] = {}


def load_ipython_extension(ipython: Any) -> None:
    magics = ElizaMagics(ipython)
    ipython.register_magics(magics)
    _loaded[id(ipython)] = magics


def unload_ipython_extension(ipython: Any) -> None:
    magics = _loaded.pop(id(ipython), None)
    if magics is not None:
        ipython.magics_manager.magics["line"].pop("eliza", None)
        ipython.magics_manager.magics["cell"].pop("eliza", None)


__all__ = ["ElizaMagics", "load_ipython_extension", "unload_ipython_extension", "render_bundle"]
