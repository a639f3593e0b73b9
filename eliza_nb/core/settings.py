"""The model settings, declared once: each one's type, valid range, help and wire names.

:class:`ModelSettings` is the declaration. Each field carries a :class:`Setting` spec, and
every surface derives its part from :data:`SETTINGS`: the ``%%eliza generate`` flags,
``%eliza config set`` keys, the ``Eliza.default_*`` traitlets, the parameter panel's
controls, the replay archive's fields and the adapters' wire names. Adding a
setting means adding one field here (and, where an adapter treats it specially, that
adapter's special case).

Values are checked where they enter (building a ModelSettings): a wrong type, NaN, or a
value out of range is a one-line :class:`ConfigError` naming the setting and its range.

Presets and the merge rule live here too. Merge order (later wins where a value is set):
catalog < preset < session (panel, ``%eliza config``) < call arguments. ``None`` means
"not set"; 0 is a value.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

#: the protocols a setting's ``wire`` table names (claude_vertex speaks anthropic's)
WIRE_PROTOCOLS = ("openai", "anthropic", "google", "llama_local")


@dataclass(frozen=True)
class Setting:
    """How one setting is typed, checked, shown and sent.

    ``kind`` is ``float``, ``int`` or ``str``; a ``str`` setting holds a tuple of strings
    (one string is accepted). ``wire`` maps a protocol to the API's name for the setting;
    a protocol missing from it does not take the setting (the adapter drops it with a
    note). ``sent=False`` marks a setting eliza_nb applies itself and never sends.
    """

    name: str
    kind: type
    help: str
    min: float | None = None  # inclusive
    max: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound
    unit: str = ""
    wire: Mapping[str, str] = dataclasses.field(default_factory=dict)
    neutral: Any = None  # the value that changes nothing where an API takes the setting
    sent: bool = True
    alias: str | None = None  # the name other tools use (max_tokens)
    flag: str | None = None  # the short command-line flag (-t)
    label: str = ""  # the panel's label
    slider: tuple[float, float] | None = None  # the panel's range where the valid one is open
    step: float = 0.01  # the panel slider's step

    @property
    def user_name(self) -> str:
        """The name users type: the alias where there is one (``--max-tokens``, ``default_max_tokens``)."""
        return self.alias or self.name

    @property
    def panel_range(self) -> tuple[float, float] | None:
        """The slider's (min, max), or None when the setting has no bounded range to slide over."""
        if self.slider is not None:
            return self.slider
        if self.min is not None and self.max is not None:
            return (self.min, self.max)
        return None

    def describe(self) -> str:
        """The valid values in words: "a number from 0 to 2"."""
        if self.kind is str:
            return "a string or a list of strings"
        if self.above is not None:
            return f"a number above {self.above:g}" + (f" and at most {self.max:g}" if self.max is not None else "")
        if self.min is not None and self.max is not None:
            return f"a number from {self.min:g} to {self.max:g}"
        if self.min is not None:
            return f"a number of {self.min:g} or more"
        if self.max is not None:
            return f"a number of at most {self.max:g}"
        return "a whole number" if self.kind is int else "a finite number"

    def summary(self) -> str:
        """One line of help: what it does and what it takes."""
        return f"{self.help}; {self.describe()}" + (f", in {self.unit}" if self.unit else "")

    def check(self, value: Any) -> Any:
        """``value`` checked and made canonical (stop: a tuple; numbers: plain int/float); ConfigError if invalid."""
        if self.kind is str:
            items = (value,) if isinstance(value, str) else value
            try:
                items = tuple(items)
            except TypeError:
                items = None
            if items is None or not all(isinstance(s, str) for s in items):
                raise ConfigError(f"{self.name}: expected {self.describe()}, got {value!r}")
            return items
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{self.name}: expected {'a whole number' if self.kind is int else 'a number'}, got {value!r}")
        if self.kind is int:
            if not isinstance(value, numbers.Integral):
                raise ConfigError(f"{self.name}: expected a whole number, got {value!r}")
            value = int(value)
        elif not isinstance(value, (int, float)):  # numpy and friends: a plain float (int stays int, as given)
            value = float(value)
        valid = (_finite(value) and (self.kind is not int or abs(value) < 2**63)  # APIs take 64-bit integers
                 and (self.min is None or value >= self.min)
                 and (self.max is None or value <= self.max)
                 and (self.above is None or value > self.above))
        if not valid:
            raise ConfigError(f"{self.name}: expected {self.describe()}, got {value!r:.60}")
        return value

    def parse(self, text: str) -> Any:
        """A value typed as text (a magic flag, ``%eliza config set``), checked."""
        text = text.strip()
        if self.kind is int:
            try:
                number: Any = int(text)
            except ValueError:
                raise ConfigError(f"{self.name}: expected a whole number, got {text!r}") from None
            return self.check(number)
        if self.kind is float:
            try:
                number = float(text)
            except ValueError:
                raise ConfigError(f"{self.name}: expected a number, got {text!r}") from None
            if not math.isfinite(number):
                raise ConfigError(f"{self.name}: expected a finite number, got {text!r}")
            return self.check(number)
        return self.check(text)

    def is_neutral(self, value: Any) -> bool:
        """True when sending ``value`` would change nothing (not set, a 0 penalty, no stops)."""
        if value is None:
            return True
        if self.kind is str:
            return not value
        return self.neutral is not None and value == self.neutral


def _finite(value: Any) -> bool:
    """math.isfinite for any real, an int too large for a float included (not finite here)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_number(value: Any, what: str, *, above: float | None = None, minimum: float | None = None,
                 whole: bool = False) -> float:
    """``value`` as a float (an int when ``whole``) if it is a finite number within the bound;
    else a one-line ConfigError such as "[budget] max_usd must be a number >= 0, got nan".

    The one check for numbers that are not model settings (config tables, call options):
    bools, text, NaN, infinity and numbers out of range are refused where they enter.
    """
    bound = f" > {above:g}" if above is not None else f" >= {minimum:g}" if minimum is not None else ""
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real)
          and (not whole or isinstance(value, numbers.Integral)) and _finite(value))
    if ok:
        number = float(value)  # finite, so it fits
        ok = (above is None or number > above) and (minimum is None or number >= minimum)
    if not ok:
        raise ConfigError(f"{what} must be {'a whole number' if whole else 'a number'}{bound}, got {value!r:.60}")
    return int(value) if whole else float(value)


def check_timeout(value: Any, default: float) -> float:
    """The ``timeout_s`` call option: ``default`` (the [retry] table's) when not given, else
    seconds above 0 (NaN, infinity, 0, negatives, text and bools are a one-line ConfigError)."""
    if value is None:
        return float(default)
    return check_number(value, "timeout_s (seconds per attempt)", above=0)


def config_table(value: Any, name: str) -> dict[str, Any]:
    """A config.toml table as a dict ({} when absent); a one-line ConfigError when it is not a table."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} in config.toml must be a table ({name} on a line of its own, then key = value "
                          f"lines), not {type(value).__name__}")
    return dict(value)


#: the [defaults] keys that name something (a provider, a class, a model, a preset): text only
DEFAULT_NAMES = ("provider", "model_class", "model", "preset", "embedding_provider", "embedding_model")


def check_defaults(table: Any) -> dict[str, Any]:
    """The ``[defaults]`` table as a dict, its names checked to be text: ``model = 5`` is a
    one-line ConfigError here, not an AttributeError on the first call. (The settings in it
    are checked by ModelSettings, the names by the catalog and presets.)"""
    d = config_table(table, "[defaults]")
    for key in DEFAULT_NAMES:
        value = d.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"[defaults] {key} in config.toml must be text (a name in quotes), got {value!r:.60}")
    return d


def setting(kind: type, *, help: str, range: tuple[float | None, float | None] = (None, None), **spec: Any) -> Any:
    """A ModelSettings field declared with its :class:`Setting` spec (the name comes from the field)."""
    lo, hi = range
    return dataclasses.field(default=None, metadata={"setting": Setting("", kind, help, min=lo, max=hi, **spec)})


@dataclass(frozen=True)
class ModelSettings:
    """Sampling and budget settings. ``None`` means "not set here".

    Layers merge with :meth:`merged`: a later layer's value wins whenever it is not
    ``None``, so an explicit ``temperature=0`` survives every layer.
    """

    stop: tuple[str, ...] | None = setting(
        str, help="stop sequences: the answer ends before any of them", neutral=(), label="stop",
        wire={"openai": "stop", "anthropic": "stop_sequences", "google": "stopSequences", "llama_local": "stop"})
    max_input_tokens: int | None = setting(
        int, above=0, unit="tokens", sent=False, label="max input tok.",
        help="the most prompt tokens to send; a longer prompt is cut to fit")
    max_output_tokens: int | None = setting(
        int, above=0, unit="tokens", alias="max_tokens", label="max tokens", help="the most tokens to generate",
        wire={"openai": "max_tokens", "anthropic": "max_tokens", "google": "maxOutputTokens", "llama_local": "max_tokens"})
    temperature: float | None = setting(
        float, range=(0, 2), flag="-t", label="temperature",
        help="sampling temperature: 0 is (near) deterministic, higher is more varied",
        wire={"openai": "temperature", "anthropic": "temperature", "google": "temperature", "llama_local": "temperature"})
    top_p: float | None = setting(
        float, range=(0, 1), label="top p",
        help="nucleus sampling: pick only among the likeliest tokens whose probabilities add up to this",
        wire={"openai": "top_p", "anthropic": "top_p", "google": "topP", "llama_local": "top_p"})
    frequency_penalty: float | None = setting(
        float, range=(-2, 2), neutral=0.0, label="frequency pen.",
        help="penalise tokens by how often they already appear (0 is off)",
        wire={"openai": "frequency_penalty", "google": "frequencyPenalty", "llama_local": "frequency_penalty"})
    presence_penalty: float | None = setting(
        float, range=(-2, 2), neutral=0.0, label="presence pen.",
        help="penalise tokens that already appear at all (0 is off)",
        wire={"openai": "presence_penalty", "google": "presencePenalty", "llama_local": "presence_penalty"})
    # No API takes the additive value as it is: adapters that can send it convert it to a
    # factor (1 + value) under their own name (openai_compat, llama_local).
    repetition_penalty: float | None = setting(
        float, range=(0, None), neutral=0.0, slider=(0.0, 2.0), label="repetition pen.",
        help="additive repetition penalty (0 is off; sent as the factor 1 + value)")
    seed: int | None = setting(
        int, label="seed", help="sampling seed, for repeatable answers where the provider supports it",
        wire={"openai": "seed", "google": "seed", "llama_local": "seed"})

    def __post_init__(self) -> None:
        for name, spec in SETTINGS.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, spec.check(value))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The setting names, in declaration order."""
        return tuple(SETTINGS)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ModelSettings:
        """Build from a mapping (aliases such as ``max_tokens`` accepted); unknown keys are a
        one-line ConfigError listing the valid ones."""
        values = dict(values or {})
        found = pop_settings(values)
        if values:
            raise ConfigError(f"unknown setting(s) {', '.join(sorted(values))}; valid: {', '.join(SETTINGS)}")
        return cls(**found)

    def merged(self, *layers: ModelSettings | Mapping[str, Any] | None) -> ModelSettings:
        """Return these settings overlaid by each layer in turn (later wins if not None)."""
        values = self.as_dict(include_unset=True)
        for layer in layers:
            if layer is None:
                continue
            if not isinstance(layer, ModelSettings):
                if not layer:
                    continue
                layer = ModelSettings.from_mapping(layer)
            values.update(layer.as_dict())
        return ModelSettings(**values)

    def as_dict(self, include_unset: bool = False) -> dict[str, Any]:
        """The settings as a plain dict: the set ones (stop as a list), or every one as stored."""
        if include_unset:
            return {n: getattr(self, n) for n in SETTINGS}
        return {n: (list(v) if isinstance(v, tuple) else v) for n in SETTINGS if (v := getattr(self, n)) is not None}


#: every setting's spec, in declaration order
SETTINGS: dict[str, Setting] = {
    f.name: dataclasses.replace(f.metadata["setting"], name=f.name) for f in dataclasses.fields(ModelSettings)
}

#: other names accepted for a setting -> its name
ALIASES: dict[str, str] = {s.alias: s.name for s in SETTINGS.values() if s.alias}


def pop_settings(options: dict[str, Any]) -> dict[str, Any]:
    """Remove the settings (by name or alias) from a dict of call options; return them by name."""
    found: dict[str, Any] = {}
    for key in list(options):
        name = ALIASES.get(key, key)
        if name not in SETTINGS:
            continue
        if name in found:
            raise ConfigError(f"{name} given twice (as {name} and as {SETTINGS[name].alias}); give one")
        found[name] = options.pop(key)
    return found


# -- presets and the merge rule ------------------------------------------------------------

#: The seed's temperature presets.
BUILTIN_PRESETS: dict[str, ModelSettings] = {
    "creative": ModelSettings(temperature=0.8, frequency_penalty=0.7, presence_penalty=0.7),
    "balanced": ModelSettings(temperature=0.5, frequency_penalty=0.3, presence_penalty=0.3),
    "precise": ModelSettings(temperature=0.2, frequency_penalty=0.0, presence_penalty=0.0),
}


class Presets:
    """Built-in presets plus user ones (config file ``[presets.NAME]`` or :meth:`register`)."""

    def __init__(self, user: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._presets: dict[str, ModelSettings] = dict(BUILTIN_PRESETS)
        for name, values in (user or {}).items():
            self.register(name, **dict(values))

    def register(self, name: str, **settings: Any) -> ModelSettings:
        """Add or replace a preset; unknown setting names or bad values are a one-line error."""
        name = name.strip().lower()
        if not name.isidentifier():
            raise ConfigError(f"preset name {name!r} must be a single word")
        try:
            preset = ModelSettings.from_mapping(settings)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"preset {name}: {exc}") from None
        self._presets[name] = preset
        return preset

    def get(self, name: str | None) -> ModelSettings | None:
        """The preset's settings; None for no preset; a one-line error for an unknown name."""
        if name is None or name == "":
            return None
        key = str(name).strip().lower()
        try:
            return self._presets[key]
        except KeyError:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(self._presets)}") from None

    def names(self) -> list[str]:
        return list(self._presets)

    def table(self) -> dict[str, dict[str, Any]]:
        return {n: p.as_dict() for n, p in self._presets.items()}


def merge_settings(
    catalog: ModelSettings,
    preset: ModelSettings | None = None,
    session: ModelSettings | None = None,
    call: Mapping[str, Any] | ModelSettings | None = None,
) -> ModelSettings:
    """Apply the layers in order; see the module docstring."""
    return catalog.merged(preset, session, call)


# -- output length -------------------------------------------------------------------------

#: The max_output_tokens a call gets when no preset, session or call sets it, per model class:
#: a full answer of that class's usual length (512 tokens ~ 380 words; a larger model writes
#: longer code and prose), and a bound on a small model that loops (SmolLM2-135M runs ~85 tok/s
#: here: 512 tokens is ~6 s, where the ceiling took minutes). The catalog's max_output_tokens
#: stays the ceiling: the most any default gives, and the top of the panel's range. A provider's
#: ``default_max_tokens`` (one number, or a table per class) replaces these where they do not
#: fit, e.g. reasoning models, whose hidden thinking is paid from the same budget.
CLASS_OUTPUT_TOKENS: dict[str, int] = {"small": 512, "medium": 1024, "large": 2048}


def output_default(model_class: str, ceiling: int | None, declared: Any = None, provider: str = "") -> int | None:
    """The max_output_tokens a call to ``model_class`` gets when nothing sets it: the provider's
    ``declared`` default (a number or a per-class table) else :data:`CLASS_OUTPUT_TOKENS`, never
    above the catalog's ``ceiling``. A bad declared value is a one-line ConfigError."""
    if isinstance(declared, Mapping):
        declared = declared.get(model_class)
    if declared is None:
        value = CLASS_OUTPUT_TOKENS.get(model_class)
    else:
        spec = SETTINGS["max_output_tokens"]
        try:
            value = spec.check(declared)
        except ConfigError:
            raise ConfigError(f"provider {provider}: default_max_tokens must be {spec.describe()} (or one per class), "
                              f"got {declared!r:.60}") from None
    if value is None:
        return ceiling
    return min(value, ceiling) if ceiling else value


def with_output_default(catalog: ModelSettings, model_class: str, declared: Any = None, provider: str = "") -> ModelSettings:
    """The catalog layer of the merge, its max_output_tokens replaced by :func:`output_default`."""
    value = output_default(model_class, catalog.max_output_tokens, declared, provider)
    if value == catalog.max_output_tokens:
        return catalog
    return dataclasses.replace(catalog, max_output_tokens=value)
