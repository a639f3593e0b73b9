"""``%eliza bench``: run a benchmark from a cell, show the summary and the chart."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ..parser import MagicParser, add_setting_flags, identifier, number, positive_int, register_subcommand

#: a wait for the model shorter than this is not worth a line
QUEUE_NOTE_S = 0.05


@dataclass
class BenchArgs:
    cases: str = ""
    models: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    repeats: int = 3
    concurrency: int | None = None
    client: str | None = None
    scorer: str = "contains"
    settings: dict[str, Any] = field(default_factory=dict)  # model settings given as flags, by name
    cache: bool = False
    output: str | None = None
    grid: list[tuple[str, list[Any]]] = field(default_factory=list)
    prompts: str | None = None
    judge: str | None = None
    estimate: bool = False
    max_cost: float | None = None
    resume: str | None = None
    confirm: bool = False


def bench_parser() -> MagicParser:
    p = MagicParser("%eliza bench", "Benchmark models x presets on the cases in a notebook variable "
                    "(a list of dicts or a DataFrame with input, expected, optional id).")
    p.add_argument("--cases", required=True, metavar="VAR", type=identifier)
    p.add_argument("--models", nargs="+", metavar="M", default=[], help="provider:class or provider:model")
    p.add_argument("--presets", nargs="+", metavar="P", default=[])
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--concurrency", type=positive_int, default=None, help="calls at once (default 4; on a cluster, its threads)")
    p.add_argument("--client", metavar="VAR", type=identifier, help="a Dask distributed.Client variable: run the grid on its workers")
    p.add_argument("--scorer", default="contains", help="exact, contains, regex, json-valid, embedding-similarity, or a function variable")
    add_setting_flags(p)
    p.add_argument("--cache", action="store_true", help="allow cached answers (timings are then not real)")
    p.add_argument("-o", "--output", type=identifier, metavar="VAR", help="store the full results here")
    p.add_argument("--grid", action="append", type=grid_axis, default=[], metavar="NAME=V1,V2",
                   help="sweep a setting, e.g. --grid temperature=0,0.4,0.8 (repeatable)")
    p.add_argument("--prompts", metavar="VAR", type=identifier, help="a dict of prompt variants: name -> template with {input}")
    p.add_argument("--judge", metavar="M", help="the judge model for scorer judge / judge checks (default llama_local:small)")
    p.add_argument("--estimate", action="store_true", help="show calls, tokens and cost per provider; send nothing")
    p.add_argument("--max-cost", type=number, metavar="USD", help="refuse a grid estimated above it; stop one spending past it")
    p.add_argument("--resume", metavar="RUN_ID", help="finish a saved run (give the same options again)")
    p.add_argument("--confirm", action="store_true", help="run a grid of more than 10,000 calls")
    return p


def grid_axis(text: str) -> tuple[str, list[Any]]:
    """``temperature=0,0.4,0.8`` -> ("temperature", [0.0, 0.4, 0.8]); numbers as numbers."""
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise argparse.ArgumentTypeError(f"--grid takes NAME=V1,V2,..., got {text!r}")

    def value(v: str) -> Any:
        v = v.strip()
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v

    return name.strip(), [value(v) for v in values.split(",")]


def do_bench(shell: Any, args: BenchArgs, cell: str | None) -> None:
    import eliza_nb

    if args.cases not in shell.user_ns:
        raise UsageError(f"--cases {args.cases}: no such variable in the notebook")
    scorer: Any = args.scorer
    if scorer in shell.user_ns and callable(shell.user_ns[scorer]):
        scorer = shell.user_ns[scorer]
    options: dict[str, Any] = {"repeats": args.repeats, "concurrency": args.concurrency, "scorer": scorer,
                               "cache": args.cache, **args.settings}
    if args.grid:
        options["grid"] = dict(args.grid)
    if args.prompts:
        if args.prompts not in shell.user_ns:
            raise UsageError(f"--prompts {args.prompts}: no such variable in the notebook")
        options["prompts"] = shell.user_ns[args.prompts]
    options.update({k: v for k, v in (("judge", args.judge), ("max_cost_usd", args.max_cost), ("resume", args.resume))
                    if v is not None})
    if args.confirm:
        options["confirm"] = True
    if args.estimate:
        display(eliza_nb.benchmark(shell.user_ns[args.cases], args.models or None, args.presets or None,
                                   dry_run=True, **options))
        return
    if args.client:
        if args.client not in shell.user_ns:
            raise UsageError(f"--client {args.client}: no such variable in the notebook")
        options["client"] = shell.user_ns[args.client]
    frame = eliza_nb.benchmark(shell.user_ns[args.cases], args.models or None, args.presets or None, **options)
    display(frame.summary())
    display(frame.chart())
    waited = frame["queue_s"].fillna(0.0) if "queue_s" in frame else None
    if waited is not None and (waited > QUEUE_NOTE_S).any():
        print(f"latency and TTFT are service time; {int((waited > QUEUE_NOTE_S).sum())} call(s) also waited for a busy "
              f"model (up to {waited.max():.1f} s): that is queue_s, apart")
    if args.output:
        shell.user_ns[args.output] = frame
        print(f"{args.output}: {len(frame)} rows (one per model x preset x case x repeat)")
    else:
        print(f"{len(frame)} rows; add -o VAR to keep them")


register_subcommand("bench", bench_parser, BenchArgs, "benchmark models x presets on cases -> summary and chart", do_bench)
