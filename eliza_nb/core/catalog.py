"""The provider catalog: built-in table (catalog.toml) + user config + environment.

Adding an OpenAI-compatible provider is a table in ``$ELIZA_NB_HOME/config.toml``::

    [providers.mylab]
    protocol = "openai"
    endpoint = "http://10.0.0.5:8000/v1"
    key_env = ["MYLAB_KEY"]
    models = { small = "qwen2.5-7b" }
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .home import deep_merge, tomllib
from .ratelimit import parse_concurrency
from .settings import SETTINGS, ModelSettings
from .types import ModelClass

PROTOCOLS = ("openai", "anthropic", "claude_vertex", "google", "llama_local")


_CLASSES: dict[str, ModelClass] = {c.value: c for c in ModelClass}


def parse_model_class(value: str | ModelClass) -> ModelClass:
    """``"small"`` -> ModelClass.SMALL, or a one-line error listing the classes."""
    if isinstance(value, ModelClass):
        return value
    found = _CLASSES.get(value) if type(value) is str else None  # every call resolves one: skip Enum()'s lookup
    if found is not None:
        return found
    try:
        return ModelClass(str(value).strip().lower())
    except ValueError:
        valid = ", ".join(c.value for c in ModelClass)
        raise ConfigError(f"unknown model class {value!r}; choose one of: {valid}") from None


@dataclass(frozen=True)
class Retirement:
    """A model id its owner retired (or will retire on ``on``), and what to use instead."""

    model: str
    on: dt.date
    use: str | None = None
    source: str = ""

    def is_past(self, today: dt.date) -> bool:
        return self.on <= today

    def advice(self, provider: str, model_class: str) -> str:
        """How to move on, in one clause: the replacement and the three ways to set it."""
        if not self.use:
            return f"choose another model (%eliza models -p {provider})"
        env = f"{model_class.upper()}_{provider.upper()}_MODEL"
        return (f"use {self.use} (on the cell: -m {self.use}; for the session: %eliza config set model {self.use}; "
                f"or set {env}={self.use})")


@dataclass(frozen=True)
class ModelRules:
    """Wire differences of a model family on a provider (catalog ``[[providers.X.model_rules]]``):
    which field carries max_output_tokens, settings or image options it rejects. Several rules
    matching one model id merge (later scalars win, drop lists add up)."""

    max_tokens_param: str | None = None
    drop_settings: frozenset[str] = frozenset()
    why: str | None = None  # the reason shown in a drop note
    image_response_format: bool = True
    drop_image_options: frozenset[str] = frozenset()
    #: settings of which the family takes only one: the first that is set is sent
    one_of: tuple[str, ...] = ()

    def then(self, later: ModelRules) -> ModelRules:
        """These rules with ``later``'s on top."""
        return ModelRules(
            max_tokens_param=later.max_tokens_param or self.max_tokens_param,
            drop_settings=self.drop_settings | later.drop_settings,
            why=later.why or self.why,
            image_response_format=self.image_response_format and later.image_response_format,
            drop_image_options=self.drop_image_options | later.drop_image_options,
            one_of=later.one_of or self.one_of,
        )


@dataclass(frozen=True)
class ModelRule:
    """One catalog rule: the model ids it matches (``re.match``) and what it says."""

    match: re.Pattern[str]
    rules: ModelRules


NO_RULES = ModelRules()


@dataclass(frozen=True)
class ProviderEntry:
    """One provider's row of the catalog."""

    id: str
    protocol: str
    endpoint: str
    key_env: tuple[str, ...]
    models: Mapping[ModelClass, str]
    settings: ModelSettings
    embedding_dims: int | None = None
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    rate_limit: Mapping[str, float] = field(default_factory=dict)
    max_concurrency: int | None = None  # calls in flight at once (one slot: a server that cuts overlapping streams)
    extra: Mapping[str, Any] = field(default_factory=dict)
    retired: Mapping[str, Retirement] = field(default_factory=dict)
    model_rules: tuple[ModelRule, ...] = ()

    @property
    def needs_key(self) -> bool:
        return bool(self.key_env)

    def retirement(self, model: str) -> Retirement | None:
        """The retirement record of ``model`` on this provider, if its owner retired it."""
        return self.retired.get(model) if self.retired else None

    def rules_for(self, model: str) -> ModelRules:
        """The merged wire rules of every ``model_rules`` entry whose pattern matches ``model``."""
        merged = NO_RULES
        for rule in self.model_rules:
            if rule.match.match(model):
                merged = merged.then(rule.rules)
        return merged

    def model_for(self, model_class: ModelClass, catalog: Catalog | None = None) -> str:
        """The model id for a class, or a one-line error naming providers that offer it."""
        model = self.models.get(model_class)
        if model:
            return model
        others = ""
        if catalog is not None:
            offering = catalog.providers_with(model_class)
            others = f"; providers with one: {', '.join(offering)}" if offering else ""
        raise ConfigError(f"{self.id} has no {model_class.value} model{others}")

    def price(self, model: str) -> tuple[float, float]:
        """(input, output) USD per 1M tokens; NaN when the price is unknown."""
        row = self.prices.get(model)
        if not row:
            return (math.nan, math.nan)
        return (float(row.get("input", math.nan)), float(row.get("output", math.nan)))


def _entry_from_table(pid: str, table: Mapping[str, Any], env: Mapping[str, str]) -> ProviderEntry:
    protocol = table.get("protocol", "openai")
    if protocol not in PROTOCOLS:
        from .registry import is_known  # plugins add protocols through the registry

        if not is_known(str(protocol)):
            raise ConfigError(f"provider {pid}: unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if protocol in PROTOCOLS and protocol != "llama_local" and not table.get("endpoint"):
        raise ConfigError(f"provider {pid}: needs an endpoint (base URL)")
    models: dict[ModelClass, str] = {}
    for cls_name, model in (table.get("models") or {}).items():
        if model:
            models[parse_model_class(cls_name)] = str(model)
    # SMALL_OPENAI_MODEL-style overrides, one per class.
    for cls in ModelClass:
        override = env.get(f"{cls.value.upper()}_{pid.upper()}_MODEL")
        if override:
            models[cls] = override
    key_env = table.get("key_env") or []
    if isinstance(key_env, str):
        key_env = [key_env]
    try:
        settings = ModelSettings.from_mapping(table.get("settings"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"provider {pid}: {exc}") from None
    known = {"protocol", "endpoint", "key_env", "models", "settings", "embedding_dims", "prices", "rate_limit",
             "max_concurrency", "retired", "model_rules"}
    return ProviderEntry(
        id=pid,
        protocol=protocol,
        endpoint=str(table.get("endpoint") or ""),
        key_env=tuple(key_env),
        models=models,
        settings=settings,
        embedding_dims=table.get("embedding_dims"),
        prices=dict(table.get("prices") or {}),
        rate_limit=dict(table.get("rate_limit") or {}),
        max_concurrency=parse_concurrency(pid, table.get("max_concurrency")),
        extra={k: v for k, v in table.items() if k not in known},
        retired=_retirements(pid, table.get("retired") or {}),
        model_rules=tuple(_model_rule(pid, i, r) for i, r in enumerate(table.get("model_rules") or [])),
    )


def _retirements(pid: str, table: Mapping[str, Any]) -> dict[str, Retirement]:
    out: dict[str, Retirement] = {}
    for model, row in table.items():
        if not isinstance(row, Mapping) or "on" not in row:
            raise ConfigError(f"provider {pid}: retired.{model!r} needs {{ on = \"YYYY-MM-DD\", use = \"...\" }}")
        on = row["on"]
        try:
            day = on if isinstance(on, dt.date) else dt.date.fromisoformat(str(on))
        except ValueError:
            raise ConfigError(f"provider {pid}: retired.{model!r}: on = {on!r} is not a YYYY-MM-DD date") from None
        use = row.get("use")
        out[str(model)] = Retirement(str(model), day, str(use) if use else None, str(row.get("source") or ""))
    return out


def _model_rule(pid: str, i: int, row: Any) -> ModelRule:
    where = f"provider {pid}: model_rules[{i}]"
    if not isinstance(row, Mapping) or not isinstance(row.get("match"), str):
        raise ConfigError(f"{where} needs match = \"<regular expression on the model id>\"")
    unknown = set(row) - {"match", "max_tokens_param", "drop_settings", "why", "image_response_format",
                          "drop_image_options", "one_of"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        pattern = re.compile(row["match"])
    except re.error as exc:
        raise ConfigError(f"{where}: match {row['match']!r} is not a regular expression ({exc})") from None
    drops = frozenset(str(x) for x in row.get("drop_settings") or ())
    one_of = tuple(str(x) for x in row.get("one_of") or ())
    nameless = (drops | set(one_of)) - set(SETTINGS)
    if nameless:
        raise ConfigError(f"{where}: drop_settings / one_of names no setting: {', '.join(sorted(nameless))}")
    return ModelRule(pattern, ModelRules(
        max_tokens_param=row.get("max_tokens_param"),
        drop_settings=drops,
        why=row.get("why"),
        image_response_format=bool(row.get("image_response_format", True)),
        drop_image_options=frozenset(str(x) for x in row.get("drop_image_options") or ()),
        one_of=one_of,
    ))


def builtin_table() -> dict[str, Any]:
    """The shipped catalog.toml as a dict."""
    text = resources.files("eliza_nb.core").joinpath("catalog.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


class Catalog:
    """All providers known to this session, built once per config load."""

    def __init__(self, providers: Mapping[str, ProviderEntry]) -> None:
        self._providers = dict(providers)

    @classmethod
    def load(cls, user_config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Catalog:
        env = os.environ if env is None else env
        table = builtin_table().get("providers", {})
        user = (user_config or {}).get("providers", {})
        merged = deep_merge(table, dict(user))
        return cls({pid: _entry_from_table(pid, t, env) for pid, t in merged.items()})

    def __contains__(self, pid: object) -> bool:
        return str(pid) in self._providers

    def __iter__(self) -> Iterator[ProviderEntry]:
        return iter(self._providers.values())

    def ids(self) -> list[str]:
        return list(self._providers)

    def get(self, provider: str) -> ProviderEntry:
        """The entry for a provider id, or a one-line error listing the valid ids."""
        if type(provider) is str:  # the hot path (several lookups per call): an exact id
            entry = self._providers.get(provider)
            if entry is not None:
                return entry
        pid = str(provider).strip().lower()
        try:
            return self._providers[pid]
        except KeyError:
            raise ConfigError(f"unknown provider {provider!r}; choose one of: {', '.join(self._providers)}") from None

    def providers_with(self, model_class: ModelClass) -> list[str]:
        return [p.id for p in self._providers.values() if p.models.get(model_class)]


_KEY_CHARS = re.compile(r"[!-~]+")  # visible ASCII: what an HTTP header value may carry


def find_key(entry: ProviderEntry, env: Mapping[str, str] | None = None, dotenv_dir: Path | None = None) -> tuple[str | None, str | None]:
    """(key, variable name) for a provider from the environment, then ``./.env``.

    Returns (None, None) when no variable is set. Whitespace around the value is dropped
    (a key read from a file keeps its newline); a key with a space, a control character or
    a non-ASCII character inside is a one-line ConfigError naming the variable, never the
    value, so that no request is built with it. The key itself must never be logged or
    shown; callers pass it straight into an auth header.
    """
    key, var = _key_value(entry, env, dotenv_dir)
    if key is not None and not _KEY_CHARS.fullmatch(key):
        bad = next(c for c in key if not _KEY_CHARS.fullmatch(c))
        kind = "a space" if bad.isspace() else "a non-ASCII character" if ord(bad) > 127 else "a control character"
        raise ConfigError(f"{var} has {kind} inside the key; set it to the key alone", provider=entry.id) from None
    return key, var


def _key_value(entry: ProviderEntry, env: Mapping[str, str] | None, dotenv_dir: Path | None = None) -> tuple[str | None, str | None]:
    """(value without surrounding whitespace, variable) of the first of ``entry``'s key
    variables set in ``env`` (else the environment), then ``./.env``; not checked."""
    if not entry.key_env:  # keyless (local, ollama, loopback): no .env to stat on every call
        return None, None
    env = os.environ if env is None else env
    for var in entry.key_env:
        value = (env.get(var) or "").strip()  # once: every call looks its key up twice, and os.environ decodes each read
        if value:
            return value, var
    dotenv = _dotenv_values(dotenv_dir or Path.cwd())
    for var in entry.key_env:
        value = (dotenv.get(var) or "").strip()
        if value:
            return value, var
    return None, None


#: environment variables whose values are secrets even when no provider names them
SECRET_VARS = re.compile(r".*(_API_KEY|_ACCESS_TOKEN|_TOKEN|_SECRET|_KEY)$")


def secret_values(catalog: Catalog, env: Mapping[str, str] | None = None, *, named: bool = True) -> set[str]:
    """Values of every key variable the session can see: each provider's key (valid or
    not, from ``env`` or ``./.env``) and, with ``named``, variables named like secrets
    (``*_API_KEY``, ``*_TOKEN``, ...) in ``env`` and the environment. Values shorter than 8
    characters are not keys (masking them would garble text)."""
    env = os.environ if env is None else env
    dotenv: dict[str, str] | None = None  # read at most once: a stat per provider adds up
    values: set[str] = set()
    for entry in catalog:
        found = next((v for var in entry.key_env if (v := (env.get(var) or "").strip())), None)
        if found is None and entry.key_env:
            dotenv = _dotenv_values(Path.cwd()) if dotenv is None else dotenv
            found = next((v for var in entry.key_env if (v := (dotenv.get(var) or "").strip())), None)
        values.add(found or "")
    if named:
        for source in (os.environ,) if env is os.environ else (env, os.environ):
            values.update(v.strip() for k, v in source.items() if SECRET_VARS.match(k) and v)
    return {v for v in values if v and len(v) >= 8}


@dataclass(frozen=True)
class KeyStatus:
    """Whether a provider's key is set, for showing: variable names only, never the key."""

    variables: tuple[str, ...]  # where the key is looked for, in order; () for keyless providers
    found: str | None  # the variable that holds it, when one does
    invalid: str | None = None  # the variable that holds a key find_key refuses (a space inside)

    @property
    def needed(self) -> bool:
        return bool(self.variables)

    @property
    def ready(self) -> bool:
        """True when a call can go out: no key needed, or one is set."""
        return not self.needed or self.found is not None

    @property
    def present(self) -> str:
        """``yes``, ``no``, or ``n/a`` for keyless providers."""
        return "n/a" if not self.needed else ("yes" if self.found else "invalid" if self.invalid else "no")

    @property
    def variable_names(self) -> str:
        """``A or B``; ``(none needed)`` for keyless providers."""
        return " or ".join(self.variables) if self.variables else "(none needed)"

    @property
    def label(self) -> str:
        """A cell of a key column: ``✓ VAR``, ``✗ set VAR``, ``✗ fix VAR`` or ``not needed``."""
        if not self.needed:
            return "not needed"
        if self.invalid:
            return f"✗ fix {self.invalid}"
        return f"✓ {self.found}" if self.found else f"✗ set {self.variables[0]}"

    @property
    def phrase(self) -> str:
        """The status on its own, beside a provider's name: ``key ✓ VAR``, ``no key (VAR)``,
        ``bad key (VAR)`` or ``no key needed``."""
        if not self.needed:
            return "no key needed"
        if self.invalid:
            return f"bad key ({self.invalid})"
        return f"key ✓ {self.found}" if self.found else f"no key ({self.variables[0]})"


def key_status(entry: ProviderEntry, env: Mapping[str, str] | None = None) -> KeyStatus:
    """Whether ``entry``'s key is set in ``env`` (else the environment) or ``./.env``, and usable."""
    try:
        return KeyStatus(tuple(entry.key_env), find_key(entry, env)[1])
    except ConfigError:
        return KeyStatus(tuple(entry.key_env), None, invalid=_key_value(entry, env)[1])


_DOTENV_CACHE: dict[Path, tuple[float, dict[str, str]]] = {}


def _dotenv_values(directory: Path) -> dict[str, str]:
    path = directory / ".env"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    cached = _DOTENV_CACHE.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    from dotenv import dotenv_values  # lazy: only when a .env exists

    values = {k: v for k, v in dotenv_values(path).items() if v}
    _DOTENV_CACHE[path] = (mtime, values)
    return values
