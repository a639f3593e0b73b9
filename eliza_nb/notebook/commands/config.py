"""``%eliza providers``, ``%eliza config`` and ``%eliza usage``: what the session uses and spent.

``config`` reads and writes the runtime's Session, the one place the panel, ``%config
Eliza.*`` and every generate also read, so what ``config show`` prints is what the next
call uses.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ...core.catalog import key_status, parse_model_class
from ...core.errors import ConfigError, ElizaError
from ...core.ledger import GROUPS
from ...core.settings import ALIASES as SETTING_ALIASES
from ...core.settings import SETTINGS
from ..config import eliza_config
from ..display import show_table, usage_view
from ..parser import MagicParser, identifier, positive_int, register_subcommand
from . import runtime

# -- the keys `%eliza config set` takes ---------------------------------------------------

SESSION_KEYS = ("provider", "model_class", "model", "preset")
ALIASES = {"class": "model_class", **SETTING_ALIASES}
#: the keys as users type them (a setting's alias where it has one: max_tokens)
VALID_KEYS = (*SESSION_KEYS, *(spec.user_name for spec in SETTINGS.values()))
_UNSET = ("none", "null", "unset", "default", "")


def _canonical_key(key: str) -> str:
    k = key.strip().lower().replace("-", "_")
    k = ALIASES.get(k, k)
    if k not in SESSION_KEYS and k not in SETTINGS:
        raise UsageError(f"unknown config key {key!r}; valid keys: {', '.join(VALID_KEYS)}")
    return k


def parse_value(rt: Any, key: str, values: list[str]) -> Any:
    """Turn the words after ``set KEY`` into the session value (None = not set)."""
    spec = SETTINGS.get(key)
    if spec is not None and spec.kind is str:
        if len(values) == 1 and values[0].lstrip().startswith("["):
            try:
                items = json.loads(values[0])
            except (ValueError, RecursionError) as exc:
                example = f"%eliza config set {key} '[\"\\n\\n\", \"END\"]'"
                raise UsageError(f"{key}: not a JSON list ({exc}); e.g. {example}") from None
            if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
                raise UsageError(f"{key}: expected a JSON list of strings, e.g. '[\"END\"]'")
            return tuple(items) or None
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
    try:
        return SETTINGS[key].parse(text)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


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
    for name in SETTINGS:
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
    p.add_argument("-o", "--output", type=identifier, metavar="VAR", help="store the table (DataFrame) in this variable")
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
    p.add_argument("--by", choices=tuple(GROUPS), help="totals per group instead of rows")
    p.add_argument("--last", type=positive_int, metavar="N", help="only the last N rows")
    p.add_argument("-o", "--output", type=identifier, metavar="VAR", help="store the table (DataFrame) in this variable")
    return p


def _no_cell(name: str, cell: str | None) -> None:
    if cell is not None and cell.strip():
        raise UsageError(f"%eliza {name} takes no cell body; use the line magic %eliza {name}")


def do_providers(shell: Any, args: ProvidersArgs, cell: str | None) -> None:
    _no_cell("providers", cell)
    rt = runtime()
    df = rt.providers_table()
    current = rt.session.state.provider
    rows, plain, ready = [], [], 0
    for entry in rt.catalog:
        key_state = key_status(entry, rt.env)
        ready += key_state.ready
        status = key_state.label
        tone = "#555" if not key_state.needed else ("#15803d" if key_state.found else "#b91c1c")
        models = " / ".join(entry.models.get(c, "—") for c in _text_and_embedding())
        mark = "●" if entry.id == current else ""
        plain.append({"": mark, "provider": entry.id, "small / medium / large / embedding": models, "key": status})
        rows.append(
            f"<tr><td>{mark}</td><td><b>{html.escape(entry.id)}</b></td><td>{html.escape(entry.protocol)}</td>"
            f"<td>{html.escape(models)}</td><td style='color:{tone}'>{html.escape(status)}</td></tr>"
        )
    table = ("<table class='eliza-providers'><thead><tr><th></th><th>provider</th><th>protocol</th>"
             "<th>small / medium / large / embedding</th><th>key</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    import pandas as pd

    show_table(pd.DataFrame(plain), command="providers", title=f"{len(df)} providers · {ready} ready · ● = session provider ({current})",
               html_table=table, meta={"session_provider": current})
    if args.output:
        shell.user_ns[args.output] = df


def _text_and_embedding():
    from ...core.types import ModelClass

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
    examples = {"provider": "openai", "model_class": "large", "model": "gpt-6.2-sol", "preset": "precise",
                float: "0.2", int: "256", str: "END"}
    return examples[SETTINGS[name].kind if name in SETTINGS else name]


def _say(text: str, meta: dict[str, Any]) -> None:
    display({"text/plain": text}, raw=True, metadata={"eliza_nb": {"command": "config", **meta}})


def usage_summary(df: Any) -> str:
    """One line: calls, tokens, known cost, cache hits, errors, interrupted calls."""
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
    errors = int(df["status"].eq("error").sum())
    if errors:
        parts.append(f"{errors} errors")
    stopped = int(df["status"].eq("interrupted").sum())  # the stop button is not a failure
    if stopped:
        parts.append(f"{stopped} interrupted")
    return " · ".join(parts)


def do_usage(shell: Any, args: UsageArgs, cell: str | None) -> None:
    _no_cell("usage", cell)
    ledger = runtime().ledger
    df = ledger.dataframe()
    summary = usage_summary(df)
    if args.by:
        df = ledger.totals(args.by)
    elif args.last:
        df = df.tail(args.last)
    show_table(usage_view(df), command="usage", title=f"usage this session: {summary}", meta={"summary": summary})
    if args.output:
        shell.user_ns[args.output] = df


register_subcommand("providers", providers_parser, ProvidersArgs, "the provider table with key status (never a key)", do_providers)
register_subcommand("config", config_parser, ConfigArgs, "show / set / unset / reset what the next call uses", do_config)
register_subcommand("usage", usage_parser, UsageArgs, "the session's token and cost ledger", do_usage)
