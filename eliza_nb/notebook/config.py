"""``%config Eliza.default_provider = "openai"``: notebook defaults as IPython traitlets.

The :class:`Eliza` configurable is the IPython-config face of the runtime's Session. It
holds no state of its own that a call reads: every value given (``%config`` statement,
``ipython_config.py``'s ``c.Eliza.*``, or ``Eliza.instance().default_temperature = 0``)
is written into the session, which stays the single source of truth. Traits left at
``None`` mean "not configured here", so the config file (``$ELIZA_NB_HOME/config.toml``
``[defaults]``, loaded by the runtime) keeps its say. ``%eliza config reset`` goes back
to config.toml's defaults and then re-applies what was configured here.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Enum, Float, Int, List, TraitError, TraitType, Unicode, validate
from traitlets.config import SingletonConfigurable

from ..core.errors import ConfigError, ElizaError
from ..core.settings import SETTINGS, Setting, check_number

#: trait name -> setting name: ``default_`` + the name users type (default_max_tokens)
SETTING_TRAITS: dict[str, str] = {f"default_{spec.user_name}": name for name, spec in SETTINGS.items()}

#: trait name -> session field (settings fields go into Session.settings)
SESSION_TRAITS: dict[str, str] = {
    "default_provider": "provider",
    "default_model_class": "model_class",
    "default_model": "model",
    "default_preset": "preset",
    **SETTING_TRAITS,
}


class _StrictFloat(Float):
    """A Float that refuses True/False (traitlets' Float would take True as 1.0)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, bool):
            self.error(obj, value)
        return super().validate(obj, value)


class SettingValue(TraitType[Any, Any]):
    """A numeric setting's trait, checked by its declaration (Setting.check): a bool, text,
    NaN or a value out of range is a one-line TraitError, never cast (True is not 1)."""

    def __init__(self, spec: Setting, **kwargs: Any) -> None:
        self.spec = spec
        self.info_text = spec.describe()
        super().__init__(None, allow_none=True, **kwargs)

    def validate(self, obj: Any, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.spec.check(value)
        except ConfigError as exc:
            raise TraitError(str(exc)) from None

    def from_string(self, s: str) -> Any:
        """``--Eliza.default_temperature=0.2`` on a command line: parsed like ``%eliza config set``."""
        if s == "None":
            return None
        try:
            return self.spec.parse(s)
        except ConfigError as exc:
            raise TraitError(str(exc)) from None


def _setting_trait(spec: Setting) -> TraitType[Any, Any]:
    """The traitlet for one setting: None is "not configured here"."""
    text = spec.summary()
    text = f"{text[0].upper()}{text[1:]}."
    if spec.kind is str:
        return List(Unicode(), default_value=None, allow_none=True, help=text).tag(config=True)
    return SettingValue(spec, help=text).tag(config=True)


def _runtime() -> Any:
    import eliza_nb

    return eliza_nb.runtime()


class Eliza(SingletonConfigurable):
    """Defaults for %eliza / %%eliza and the panels; each one writes the runtime's session."""

    default_provider = Unicode(None, allow_none=True, help="Provider the next call uses (an id from %eliza providers).").tag(config=True)
    default_model_class = Enum(("small", "medium", "large"), None, allow_none=True,
                               help="Model class: small, medium or large.").tag(config=True)
    default_model = Unicode(None, allow_none=True, help="An explicit model id (overrides the class's catalog model).").tag(config=True)
    default_preset = Unicode(None, allow_none=True,
                             help="Preset: creative, balanced, precise or a registered one ('' for none).").tag(config=True)
    # default_temperature, default_max_tokens, ...: one trait per model setting, from its declaration.
    locals().update({trait: _setting_trait(SETTINGS[name]) for trait, name in SETTING_TRAITS.items()})

    # Display options: not session state, read by the magics when they render.
    default_format = Enum(("markdown", "text", "json", "code"), "markdown",
                          help="How %%eliza generate renders when -f is not given.").tag(config=True)
    show_footer = Bool(True, help="Show the one-line footer (provider, model, tokens, latency, cache) under answers.").tag(config=True)
    stream_interval = _StrictFloat(0.05, min=0.0, help="Seconds between streamed display updates (throttle).").tag(config=True)
    max_cell_chars = Int(1_000_000, min=0, help="Largest %%eliza cell body (and magic line) accepted, in characters; "
                         "0 for no limit. Above it the cell is refused with a one-line message.").tag(config=True)

    @validate("default_provider")
    def _valid_provider(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None:
            _check(lambda: _runtime().catalog.get(value))
        return value

    @validate("default_preset")
    def _valid_preset(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value:
            _check(lambda: _runtime().presets.get(value))
        return value

    @validate(*SETTING_TRAITS)
    def _valid_setting(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None:
            _check(lambda: SETTINGS[SETTING_TRAITS[proposal["trait"].name]].check(value))
        return value

    @validate("stream_interval")
    def _valid_interval(self, proposal: Any) -> Any:
        value = proposal["value"]
        _check(lambda: check_number(value, "Eliza.stream_interval (seconds)", minimum=0))
        return value

    @validate("max_cell_chars")
    def _valid_cell_chars(self, proposal: Any) -> Any:
        value = proposal["value"]
        _check(lambda: check_number(value, "Eliza.max_cell_chars (0 for no limit)", minimum=0, whole=True))
        return value

    def _load_config(self, cfg: Any, section_names: Any = None, traits: Any = None) -> None:
        # Re-apply every value a %config statement names, even when the trait already holds
        # it: `%eliza config set` may have moved the session away since.
        super()._load_config(cfg, section_names=section_names, traits=traits)
        given: set[str] = set()
        for section in self.section_names():
            if section in cfg:
                given.update(k for k in cfg[section] if k in SESSION_TRAITS)
        if given:
            self.apply_to_session(only=given)

    def configured(self, only: set[str] | None = None) -> dict[str, Any]:
        """Session changes for the traits set here (None = not configured; '' preset = none)."""
        changes: dict[str, Any] = {}
        for trait, field in SESSION_TRAITS.items():
            if only is not None and trait not in only:
                continue
            value = getattr(self, trait)
            if value is None:
                continue
            if trait in ("default_preset", "default_model") and value == "":
                value = None
            changes[field] = value
        return changes

    def apply_to_session(self, only: set[str] | None = None) -> None:
        """Write the configured values into the runtime's session."""
        changes = self.configured(only)
        if changes:
            session = _runtime().session
            if "provider" in changes and "model" not in changes and changes["provider"] != session.state.provider:
                changes["model"] = None  # a model id belongs to its provider
            session.update(**changes)


def _check(fn: Any) -> None:
    try:
        fn()
    except ElizaError as exc:
        raise TraitError(str(exc)) from None


def eliza_config() -> Eliza:
    """The Eliza configurable (created on first use, parented to IPython when one runs)."""
    if Eliza.initialized():
        return Eliza.instance()
    parent = None
    try:
        from IPython import get_ipython

        parent = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency of this layer
        pass
    return Eliza.instance(parent=parent)


def _observe_direct_assignment(change: Any) -> None:
    # `Eliza.instance().default_temperature = 0.2` from Python (not via %config).
    if change["name"] in SESSION_TRAITS:
        change["owner"].apply_to_session(only={change["name"]})


def attach(shell: Any) -> Eliza:
    """Make ``%config Eliza.*`` work in this shell and apply ipython_config values now."""
    conf = eliza_config()
    if conf not in shell.configurables:
        shell.configurables.append(conf)
        conf.observe(_observe_direct_assignment, names=list(SESSION_TRAITS))
    conf.apply_to_session()
    return conf
