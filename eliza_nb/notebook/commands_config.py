"""``%eliza providers``, ``%eliza config`` and ``%eliza usage``: what the session uses and spent.

``config`` reads and writes the runtime's Session, the one place the panel, ``%config
Eliza.*`` and every generate also read, so what ``config show`` prints is what the next
call uses.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ..core.catalog import find_key, parse_model_class
from ..core.errors import ElizaError
from .commands import runtime
from .config import eliza_config
from .display import show_table
from .parser import MagicParser, _identifier, _positive_int, register_subcommand

# -- the keys `%eliza config set` takes ---------------------------------------------------

SESSION_KEYS = ("provider", "model_class", "model", "preset")
FLOAT_KEYS = ("temperature", "frequency_penalty", "presence_penalty", "repetition_penalty")
INT_KEYS = ("max_output_tokens", "max_input_tokens", "seed")
ALIASES = {"max_tokens": "max_output_tokens", "class": "model_class"}
VALID_KEYS = (*SESSION_KEYS, *FLOAT_KEYS, "max_tokens", "max_input_tokens", "stop", "seed")
_UNSET = ("none", "null", "unset", "default", "")


def _canonical_key(key: str) -> str:
    k = key.strip().lower().replace("-", "_")
    k = ALIASES.get(k, k)
    if k not in (*SESSION_KEYS, *FLOAT_KEYS, *INT_KEYS, "stop"):
        raise UsageError(f"unknown config key {key!r}; valid keys: {', '.join(VALID_KEYS)}")
    return k


def parse_value(rt: Any, key: str, values: list[str]) -> Any:
    """Turn the words after ``set KEY`` into the session value (None = not set)."""
    if key == "stop":
        if len(values) == 1 and values[0].lstrip().startswith("["):
            try:
                stops = json.loads(values[0])
            except (ValueError, RecursionError) as exc:
                raise UsageError(f"stop: not a JSON list ({exc}); e.g. %eliza config set stop '[\"\\n\\n\", \"END\"]'") from None
            if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
                raise UsageError("stop: expected a JSON list of strings, e.g. '[\"END\"]'")
            return tuple(stops) or None
        if len(values) == 1 and values[0].strip().lower() in _UNSET:
            return None
        return tuple(values)
    if len(values) != 1:
        raise UsageError(f"%eliza config set {key} takes one value, got {len(values)}; quote a value with spaces")
    text = values[0].strip()
    if text.lower() in _UNSET:
        if key in ("provider", "model_class"):
            raise UsageError(f"{key} cannot be unset; use %eliza config reset for the defaults")
        return None
    try:
        if key == "provider":
            return rt.catalog.get(text).id
        if key == "model_class":
            cls = parse_model_class(text)
            if not cls.is_text:
                raise UsageError("model_class must be small, medium or large")
            return cls.value
        if key == "preset":
            rt.presets.get(text)
            return text.lower()
    except ElizaError as exc:
        raise UsageError(str(exc)) from None
    if key == "model":
        return text
    if key in FLOAT_KEYS:
        try:
            number = float(text)
        except ValueError:
            raise UsageError(f"{key}: expected a number, got {text!r}") from None
        if not math.isfinite(number):
            raise UsageError(f"{key}: expected a finite number, got {text!r}")
        return number
    try:
        number = int(text)
    except ValueError:
        raise UsageError(f"{key}: expected a whole number, got {text!r}") from None
    if key != "seed" and number <= 0:
        raise UsageError(f"{key}: expected a number above 0, got {number}")
    return number


# -- config show ---------------------------------------------------------------------------

def config_rows(rt: Any) -> list[dict[str, Any]]:
    """One row per key: the session's value, the effective value and where it comes from."""
    state = rt.session.state
    target = rt.resolve()
    entry = rt.catalog.get(target.provider)
    preset = rt.presets.get(state.preset) if state.preset else None
    effective = rt.effective_settings(target)
    rows = [
        {"key": "provider", "session": state.provider, "effective": target.provider, "source": "session"},
        {"key": "model_class", "session": state.model_class, "effective": target.model_class.value, "source": "session"},
        {"key": "model", "session": state.model, "effective": target.model, "source": "session" if state.model else "catalog"},
        {"key": "preset", "session": state.preset, "effective": state.preset, "source": "session" if state.preset else ""},
    ]
    for name in ("temperature", "max_output_tokens", "max_input_tokens", "stop", "frequency_penalty",
                 "presence_penalty", "repetition_penalty", "seed"):
        mine = getattr(state.settings, name)
        if mine is not None:
            source = "session"
        elif preset is not None and getattr(preset, name) is not None:
            source = f"preset {state.preset}"
        elif getattr(entry.settings, name) is not None:
            source = f"catalog {entry.id}"
        else:
            source = "provider default"
        value = getattr(effective, name)
        rows.append({"key": name, "session": _show(mine), "effective": _show(value), "source": source})
    return rows


def _show(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def _cell(value: Any) -> str:
    """A table cell: "—" for not set, lists as Python lists (so stop strings stay readable)."""
    if value is None:
        return "—"
    return repr(value) if isinstance(value, list) else str(value)


# -- handlers --------------------------------------------------------------------------------

@dataclass
class ProvidersArgs:
    output: str | None = None


@dataclass
class ConfigArgs:
    action: str = "show"
    key: str | None = None
    values: list[str] = field(default_factory=list)


@dataclass
class UsageArgs:
    by: str | None = None
    last: int | None = None
    output: str | None = None


def providers_parser() -> MagicParser:
    p = MagicParser("%eliza providers", "Every provider: protocol, model per class, and whether its key is set (never the key).")
    p.add_argument("-o", "--output", type=_identifier, metavar="VAR", help="store the table (DataFrame) in this variable")
    return p


def config_parser() -> MagicParser:
    p = MagicParser(
        "%eliza config",
        "Show or change what the next call uses (the session, shared with the panel). "
        f"Keys: {', '.join(VALID_KEYS)}. Values: numbers, 'none' to unset, stop as words or a JSON list. "
        "reset goes back to config.toml's [defaults] and %config Eliza.* values.",
    )
    p.add_argument("action", nargs="?", default="show", choices=("show", "set", "unset", "reset"))
    p.add_argument("key", nargs="?", help="the key to set or unset (KEY=VALUE also works)")
    p.add_argument("values", nargs="*", help="the value (stop takes several)")
    return p


def usage_parser() -> MagicParser:
    p = MagicParser("%eliza usage", "The session's usage ledger: one row per call attempt (tokens, latency, cost, cache hit).")
    p.add_argument("--by", choices=("provider", "model", "kind", "preset"), help="totals per group instead of rows")
    p.add_argument("--last", type=_positive_int, metavar="N", help="only the last N rows")
    p.add_argument("-o", "--output", type=_identifier, metavar="VAR", help="store the table (DataFrame) in this variable")
    return p


def _no_cell(name: str, cell: str | None) -> None:
    if cell is not None and cell.strip():
        raise UsageError(f"%eliza {name} takes no cell body; use the line magic %eliza {name}")


def do_providers(shell: Any, args: ProvidersArgs, cell: str | None) -> None:
    _no_cell("providers", cell)
    rt = runtime()
    df = rt.providers_table()
    current = rt.session.state.provider
    rows, plain = [], []
    for entry in rt.catalog:
        _, var = find_key(entry, rt.env)
        if not entry.needs_key:
            status, tone = "not needed", "#555"
        elif var:
            status, tone = f"✓ {var}", "#15803d"
        else:
            status, tone = f"✗ set {entry.key_env[0]}", "#b91c1c"
        models = " / ".join(entry.models.get(c, "—") for c in _text_and_embedding())
        mark = "●" if entry.id == current else ""
        plain.append({"": mark, "provider": entry.id, "small / medium / large / embedding": models, "key": status})
        rows.append(
            f"<tr><td>{mark}</td><td><b>{html.escape(entry.id)}</b></td><td>{html.escape(entry.protocol)}</td>"
            f"<td>{html.escape(models)}</td><td style='color:{tone}'>{html.escape(status)}</td></tr>"
        )
    table = ("<table class='eliza-providers'><thead><tr><th></th><th>provider</th><th>protocol</th>"
             "<th>small / medium / large / embedding</th><th>key</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    ready = sum(1 for e in rt.catalog if not e.needs_key or find_key(e, rt.env)[1])
    import pandas as pd

    show_table(pd.DataFrame(plain), command="providers", title=f"{len(df)} providers · {ready} ready · ● = session provider ({current})",
               html_table=table, meta={"session_provider": current})
    if args.output:
        shell.user_ns[args.output] = df


def _text_and_embedding():
    from ..core.types import ModelClass

    return (ModelClass.SMALL, ModelClass.MEDIUM, ModelClass.LARGE, ModelClass.EMBEDDING)


def do_config(shell: Any, args: ConfigArgs, cell: str | None) -> None:
    _no_cell("config", cell)
    rt = runtime()
    action, key, values = args.action, args.key, list(args.values)
    if key and "=" in key and action == "set":
        key, _, first = key.partition("=")
        values = [first, *values]
    if action == "reset":
        if key:
            raise UsageError("%eliza config reset takes no key; use %eliza config unset KEY for one setting")
        rt.session.reset()
        eliza_config().apply_to_session()
        _say("session reset to the defaults", {"action": "reset"})
    elif action in ("set", "unset"):
        if not key:
            raise UsageError(f"%eliza config {action} needs a key; valid keys: {', '.join(VALID_KEYS)}")
        name = _canonical_key(key)
        if action == "unset":
            if values:
                raise UsageError("%eliza config unset KEY takes no value")
            value = parse_value(rt, name, ["none"])
        else:
            if not values:
                raise UsageError(f"%eliza config set {name} needs a value, e.g. %eliza config set {name} {_example(name)}")
            value = parse_value(rt, name, values)
        changes = {name: value}
        state = rt.session.state
        if name in ("provider", "model_class") and state.model and getattr(state, name) != value:
            changes["model"] = None  # an explicit model id belongs to the provider/class it was set for
        rt.session.update(**changes)
        shown = "not set" if value is None else (list(value) if isinstance(value, tuple) else value)
        extra = " (model id cleared)" if "model" in changes and name != "model" else ""
        _say(f"{name} = {shown!r}{extra}; the next call uses it", {"action": action, "key": name, "value": _show(value)})
    else:
        if key:
            raise UsageError("%eliza config show takes no key; usage: %eliza config [show|set KEY VALUE|unset KEY|reset]")
        import pandas as pd

        rows = config_rows(rt)
        df = pd.DataFrame([{k: (v if k in ("key", "source") else _cell(v)) for k, v in r.items()} for r in rows])
        target = rt.resolve()
        show_table(df, command="config", title=f"next call: {target} ({target.model_class.value})",
                   note="change with %eliza config set KEY VALUE, the panel (%eliza panel) or %config Eliza.default_KEY",
                   meta={"session": {r["key"]: r["session"] for r in rows}})


def _example(name: str) -> str:
    return {"provider": "openai", "model_class": "large", "model": "gpt-4o", "preset": "precise", "stop": "END"}.get(
        name, "0.2" if name in FLOAT_KEYS else "256")


def _say(text: str, meta: dict[str, Any]) -> None:
    display({"text/plain": text}, raw=True, metadata={"eliza_nb": {"command": "config", **meta}})


def usage_summary(df: Any) -> str:
    """One line: calls, tokens, known cost, cache hits, errors."""
    if not len(df):
        return "no calls yet"
    pt = int(df["prompt_tokens"].fillna(0).sum())
    ct = int(df["completion_tokens"].fillna(0).sum())
    cost = df["cost_usd"]
    known = cost.dropna()
    parts = [f"{len(df)} calls", f"{pt:,} → {ct:,} tokens", f"${known.sum():.4f}"]
    if len(known) < len(cost):
        parts[-1] += f" ({len(cost) - len(known)} unpriced)"
    hits = int(df["cache_hit"].sum())
    if hits:
        parts.append(f"{hits} cache hits")
    errors = int(df["error"].notna().sum())
    if errors:
        parts.append(f"{errors} errors")
    return " · ".join(parts)


def do_usage(shell: Any, args: UsageArgs, cell: str | None) -> None:
    _no_cell("usage", cell)
    df = runtime().ledger.dataframe()
    summary = usage_summary(df)
    if args.by:
        df = df.groupby(df[args.by].fillna("—"), sort=True).agg(
            calls=("kind", "size"), prompt_tokens=("prompt_tokens", "sum"), completion_tokens=("completion_tokens", "sum"),
            cost_usd=("cost_usd", lambda s: s.sum(min_count=1)), mean_latency_s=("latency_s", "mean"),
            cache_hits=("cache_hit", "sum"), errors=("error", "count"),
        ).reset_index()
    elif args.last:
        df = df.tail(args.last)
    show_table(df, command="usage", title=f"usage this session: {summary}", meta={"summary": summary})
    if args.output:
        shell.user_ns[args.output] = df


register_subcommand("providers", providers_parser, ProvidersArgs, "the provider table with key status (never a key)", do_providers)
register_subcommand("config", config_parser, ConfigArgs, "show / set / unset / reset what the next call uses", do_config)
register_subcommand("usage", usage_parser, UsageArgs, "the session's token and cost ledger", do_usage)
