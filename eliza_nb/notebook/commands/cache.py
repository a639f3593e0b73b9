"""``%eliza cache stats|clear|prune`` and ``%eliza similar QUERY --in VAR``.

Both go through the shared runtime (its cache, its embed); bad input is a one-line UsageError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

from ...core.errors import ConfigError, ElizaError
from ..parser import MagicParser, identifier, positive_int, register_subcommand
from . import runtime

ACTIONS = ("stats", "clear", "prune")
KINDS = ("embed", "generate")


@dataclass
class CacheArgs:
    """``%eliza cache ACTION [options]``."""

    action: str = "stats"
    age: str | None = None
    older_than: str | None = None
    model: str | None = None
    provider: str | None = None
    kind: str | None = None


@dataclass
class SimilarArgs:
    """``%eliza similar QUERY --in VAR [-k N]``."""

    query: list[str] = field(default_factory=list)
    source: str | None = None
    k: int = 5
    provider: str | None = None
    model: str | None = None
    output: str | None = None


def cache_parser() -> MagicParser:
    p = MagicParser("%eliza cache", "Show or manage the embedding/generation cache: stats, clear, prune AGE.")
    p.add_argument("action", nargs="?", default="stats", choices=ACTIONS)
    p.add_argument("age", nargs="?", help="for prune: remove entries older than this (7d, 12h, 30m, or seconds)")
    p.add_argument("--older-than", dest="older_than", metavar="AGE", help="same as the AGE of prune")
    p.add_argument("-m", "--model", help="clear only this model (a model id, or provider:model)")
    p.add_argument("-p", "--provider", help="clear only this provider's entries")
    p.add_argument("--kind", choices=KINDS, help="clear only embeddings or only generations")
    return p


def similar_parser() -> MagicParser:
    p = MagicParser("%eliza similar", "The candidates in a notebook variable most similar to QUERY, best first.")
    p.add_argument("query", nargs="+", help="the query text")
    p.add_argument("--in", dest="source", required=True, metavar="VAR",
                   help="a variable: list/Series of texts, (n, d) array, or a DataFrame with text/vector columns")
    p.add_argument("-k", type=positive_int, default=5, help="how many (default 5)")
    p.add_argument("-p", "--provider")
    p.add_argument("-m", "--model")
    p.add_argument("-o", "--output", type=identifier, metavar="VAR", help="store the DataFrame in this variable")
    return p


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def do_cache(shell: Any, args: CacheArgs, cell: str | None) -> Any:
    cache = runtime().cache
    if args.action != "prune" and (args.age or args.older_than):
        raise UsageError(f"%eliza cache {args.action} takes no age; did you mean %eliza cache prune {args.age or args.older_than}?")
    if args.action != "clear" and (args.model or args.provider or args.kind):
        raise UsageError("--model, --provider and --kind go with %eliza cache clear")
    if args.action == "stats":
        df = cache.stats()
        a = df.attrs
        where = (f"disk: {a['directory']} ({_size(a['disk_bytes'])} of {_size(a['size_limit'])}, {a['eviction_policy']})"
                 if a["disk"] else f"disk: off ({a['disk_note'] or 'disabled in [cache]'})")
        print(f"{where}; memory: TTL {a['memory_ttl_s']:.0f} s, up to {a['memory_max_entries']} entries")
        return df
    try:
        if args.action == "clear":
            removed = cache.clear(args.model, provider=args.provider, kind=args.kind)
        else:
            age = args.older_than or args.age
            if not age:
                raise UsageError("%eliza cache prune needs an age, e.g. %eliza cache prune 7d")
            removed = cache.prune(age)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    scope = args.model or args.provider or args.kind
    what = f" for {scope}" if args.action == "clear" and scope else ""
    print(f"removed {removed['disk']} disk and {removed['memory']} memory entries{what}")
    return None


def do_similar(shell: Any, args: SimilarArgs, cell: str | None) -> Any:
    from ...core.embeddings.similarity import similar

    query = " ".join(args.query).strip()
    if not query:
        raise UsageError("%eliza similar needs a query, e.g. %eliza similar a cat on a mat --in texts")
    if args.source not in shell.user_ns:
        raise UsageError(f"no variable named {args.source!r} in the notebook; --in takes a list of texts, "
                         "an (n, d) array or a DataFrame from %%eliza embed")
    try:
        df = similar(runtime(), query, shell.user_ns[args.source], args.k, provider=args.provider, model=args.model)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except ElizaError:
        raise  # renders as one line already
    except (TypeError, ValueError, KeyError) as exc:  # a variable of the wrong shape
        raise UsageError(f"cannot compare with {args.source!r}: {exc}") from None
    if args.output:
        shell.user_ns[args.output] = df
        print(f"{args.output}: top {len(df)} of {args.source!r} for {query!r}")
        return None
    return df


register_subcommand("cache", cache_parser, CacheArgs, "cache stats | clear [-m MODEL] | prune AGE", do_cache)
register_subcommand("similar", similar_parser, SimilarArgs, "the most similar texts/vectors in a variable", do_similar)
