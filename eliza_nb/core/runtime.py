"""The Runtime: the state every call reads (config, catalog, session, cache, ledger, rate
limits, adapters, the record/replay tape) and the public calls, each of which builds a job
and runs it through one entry point, :meth:`Runtime.run`, where record/replay wraps it.
The procedure every provider call follows is core/ladder.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import registry
from .cache.tiers import Cache, CacheConfig
from .catalog import Catalog, ProviderEntry, find_key, parse_model_class
from .errors import ConfigError, MissingKeyError, ModelRetired
from .generation import GenerationStream, TextJob, plan_call
from .home import home_dir, load_user_config
from .ladder import Climb, climb, drain
from .ledger import Ledger, SpendingCap
from .ratelimit import ConcurrencyCaps, Cooldowns, RateLimiter, parse_limits
from .retry import RetryPolicy
from .session import Session, SessionState
from .settings import ModelSettings, Presets, check_defaults, merge_settings, with_output_default
from .types import ImageResult, Message, ModelClass, Result, Target
from .windows import LearnedWindows

if TYPE_CHECKING:
    import pandas as pd

    from .conversation import Conversation

log = logging.getLogger("eliza_nb")


class Runtime:
    """Holds config, catalog, session, clients, ledger; runs every call."""

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        transport: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.home = Path(home).expanduser() if home else home_dir()
        self.config: dict[str, Any] = dict(load_user_config(self.home) if config is None else config)
        self.env = os.environ if env is None else env
        self.catalog = Catalog.load(self.config, self.env)
        self.presets = Presets(self.config.get("presets"))
        self.retry = RetryPolicy.from_mapping(self.config.get("retry"))
        self.session = Session(self._initial_state())
        self.ledger = Ledger()
        self.cache = Cache(self.home, CacheConfig.from_mapping(self.config.get("cache")), warn=self.warn)
        self._embeddings: Any = None
        self.tape: Any = None  # a Recorder or Replayer (core/replay/tape.py) while one is on
        self.spending = SpendingCap.from_config(self.config.get("budget"))
        self._transport = transport
        self.sleep, self.clock = sleep, clock  # injectable: tests run long waits on a fake clock
        for entry in self.catalog:  # a bad rate_limit table is refused here, not at that provider's first call
            parse_limits(entry.id, entry.rate_limit)
        # Shared provider state; on a Dask worker, eliza_nb.scale swaps in cluster-wide ones.
        self.ratelimits: Any = RateLimiter(clock, sleep)
        self.cooldowns: Any = Cooldowns(clock)
        self.concurrency: Any = ConcurrencyCaps(clock)
        self.windows = LearnedWindows()  # context windows and count factors providers stated this session
        self._adapters: dict[str, Any] = {}
        self._http: Any = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self.warnings: list[str] = []
        self.conversations: dict[str, Conversation] = {}  # by name, for the runtime's life (never on disk)

    # -- set-up --------------------------------------------------------------------
    def _initial_state(self) -> SessionState:
        d = check_defaults(self.config.get("defaults"))
        provider = str(d.pop("provider", "llama_local"))
        model_class = parse_model_class(d.pop("model_class", "small")).value
        model, preset = d.pop("model", None), d.pop("preset", None) or None
        self.catalog.get(provider)
        self.presets.get(preset)
        known = {"embedding_provider", "embedding_model", "truncation"}  # read by their own calls
        try:
            settings = ModelSettings.from_mapping({k: v for k, v in d.items() if k not in known})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[defaults] in config.toml: {exc}") from None
        return SessionState(provider=provider, model_class=model_class, model=model, preset=preset, settings=settings)

    def warn(self, message: str) -> None:
        """Say something once per session (e.g. 'cache is memory-only')."""
        if message in self._warned:
            return
        self._warned.add(message)
        self.warnings.append(message)
        log.info(message)
        import warnings

        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def http_client(self) -> Any:
        """The one shared httpx.Client: pooled connections, reused across calls and streams."""
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(
                    transport=self._transport,
                    timeout=httpx.Timeout(self.retry.timeout_s, connect=min(10.0, self.retry.timeout_s)),
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                    follow_redirects=False,
                )
            return self._http

    def key_for(self, entry: ProviderEntry) -> str | None:
        return find_key(entry, self.env)[0]

    def check_key(self, entry: ProviderEntry) -> None:
        """MissingKeyError naming the variable, unless the adapter has its own fallback
        (catalog ``key_fallback``: claude_vertex may use google-auth credentials)."""
        if entry.needs_key and not entry.extra.get("key_fallback") and not self.key_for(entry):
            aliases = f" (or {', '.join(entry.key_env[1:])})" if len(entry.key_env) > 1 else ""
            raise MissingKeyError(f"no API key: set {entry.key_env[0]}{aliases}", provider=entry.id)

    def check_model(self, entry: ProviderEntry, target: Target) -> str | None:
        """ModelRetired (one line: when, what to use, how to set it) when the catalog says
        ``target``'s model id is retired; a note when it is only retiring."""
        gone = entry.retirement(target.model)
        if gone is None:
            return None
        advice = gone.advice(entry.id, target.model_class.value)
        if gone.is_past(self.today()):
            raise ModelRetired(f"{target.model} was retired by {entry.id} on {gone.on}; {advice}", provider=entry.id)
        return f"{target.model} will be retired by {entry.id} on {gone.on}; {advice}"

    def today(self) -> dt.date:
        """The date retirements are compared with (a method, so tests can move it)."""
        return dt.date.today()

    def adapter(self, pid: str) -> Any:
        """The adapter instance for a provider id (created once per runtime)."""
        entry = self.catalog.get(pid)
        with self._lock:
            adapter = self._adapters.get(entry.id)
        if adapter is not None:
            return adapter
        factory = registry.factory_for(entry.protocol)
        ctx = registry.AdapterContext(
            home=self.home, http_client=self.http_client, get_key=self.key_for, warn=self.warn,
            options=dict(self.config),
        )
        adapter = factory(entry, ctx)
        with self._lock:
            return self._adapters.setdefault(entry.id, adapter)

    # -- resolution ------------------------------------------------------------------
    def resolve(self, provider: str | None = None, model_class: str | ModelClass | None = None, model: str | None = None) -> Target:
        """Which provider, class and model id a call goes to.

        ``provider`` may carry a class or a model after a colon: ``"openai:large"``,
        ``"groq:openai/gpt-oss-20b"``.
        """
        state = self.session.state
        if provider and ":" in str(provider):
            provider, _, rest = str(provider).partition(":")
            try:
                model_class = parse_model_class(rest)
            except ConfigError:
                model = rest
        pid = self.catalog.get(provider or state.provider).id
        cls = parse_model_class(model_class or state.model_class)
        entry = self.catalog.get(pid)
        if model is None and state.model and pid == state.provider and cls.value == state.model_class:
            model = state.model
        return Target(pid, cls, model or entry.model_for(cls, self.catalog))

    def targets(self, primary: Target, failover: bool | Sequence[str] | None) -> list[Target]:
        """``primary`` then its failover chain: ``failover`` as given (a list of targets, or
        False for none), else the ``[failover]`` table's chain for the primary's class."""
        if failover is False:
            return [primary]
        chain = failover if isinstance(failover, (list, tuple)) else (self.config.get("failover") or {}).get(primary.model_class.value, [])
        targets = [primary]
        for spec in chain:
            t = self.resolve(spec) if ":" in spec else self.resolve(spec, primary.model_class)
            if t not in targets:
                targets.append(t)
        return targets

    def effective_settings(self, target: Target, preset: str | None = None, call: Mapping[str, Any] | None = None) -> ModelSettings:
        """catalog < preset < session < call (None never overrides). The catalog layer's
        max_output_tokens is the class default (settings.output_default), not its ceiling."""
        state = self.session.state
        entry = self.catalog.get(target.provider)
        catalog = with_output_default(entry.settings, target.model_class.value, entry.extra.get("default_max_tokens"), entry.id)
        return merge_settings(catalog, self.presets.get(preset if preset is not None else state.preset), state.settings, call)

    # -- calls ------------------------------------------------------------------------
    def run(self, job: Any) -> Climb:
        """Run a job (text, embedding or image): the one entry point of every call, where the
        record/replay tape, when on, wraps it."""
        live: Climb = job.run(self)
        return live if self.tape is None else self.tape.wrap(self, job, live)

    def generate(self, prompt: str | Iterable[Message | Mapping[str, str]], **options: Any) -> Result:
        """Generate text. ``options``: provider, model_class, model, preset, system, timeout_s,
        failover, truncation, cache, strict (an empty answer a provider's filter blocked raises
        ContentBlocked instead of coming back with a note), and any model setting
        (temperature, max_tokens, stop, ...)."""
        result: Result = drain(self.run(TextJob(self, plan_call(self, prompt, options), streaming=False)))
        return result

    def stream(self, prompt: str | Iterable[Message | Mapping[str, str]], **options: Any) -> GenerationStream:
        """Like :meth:`generate` but yields text chunks as they arrive."""
        plan = plan_call(self, prompt, options)  # bad options fail here, before any output
        return GenerationStream(self.run(TextJob(self, plan, streaming=True)), plan.targets[0])

    def conversation(self, name: str = "default", new: bool = False) -> Conversation:
        """The named multi-turn conversation (core/conversation.py), kept for this runtime's
        life (a kernel restart starts clean). ``new=True`` starts it afresh: the same object,
        its turns and system prompt cleared, so a widget showing it follows."""
        from .conversation import Conversation, check_name

        check_name(name)
        with self._lock:
            conv = self.conversations.get(name)
            if conv is None:
                conv = self.conversations[name] = Conversation(self, name)
        if new:
            conv.reset()
            conv.system = None
        return conv

    def resolve_embedding(self, provider: str | None = None, model: str | None = None) -> Target:
        """The embedding target: explicit, else [defaults] embedding_provider, else the session's provider."""
        d = self.config.get("defaults") or {}
        pid = provider or d.get("embedding_provider") or self.session.state.provider
        if model is None and not provider:
            model = d.get("embedding_model")
        return self.resolve(pid, ModelClass.EMBEDDING, model)

    def embed(self, texts: Any, provider: str | None = None, model: str | None = None, **options: Any) -> Any:
        """Embed through the cache: one text -> (d,) float32, a list -> (n, d) (input order),
        a pandas Series -> a Series of vectors (``as_array=True``: an (n, d) array).

        ``options``: ``regenerate=True`` (ask the provider again, store under the key of
        the size it returns), ``normalize=False`` (keep the provider's lengths).
        """
        from .embeddings.service import EmbedJob

        return drain(self.run(EmbedJob(texts, provider, model, options)))

    def embed_raw(self, texts: Sequence[str], target: Target) -> Any:
        """One provider request for these texts, no cache: retried on the same target, never
        failed over (another model's vectors live in another space)."""
        from .embeddings.service import EmbedBatch

        return drain(climb(self, EmbedBatch(texts), [target]))

    @property
    def embeddings(self) -> Any:
        """The EmbeddingService (batching, dedupe, single-flight) over this runtime's cache."""
        with self._lock:
            if self._embeddings is None:
                from .embeddings.service import EmbeddingService

                self._embeddings = EmbeddingService(self, self.cache)
            return self._embeddings

    def image(self, prompt: str, provider: str | None = None, model: str | None = None, **options: Any) -> ImageResult:
        """Generate one image; the result shows inline in a notebook.

        ``options``: size ("1024x1024") or width/height, steps, seed, negative_prompt,
        quality, style, guidance (an option the provider's API does not take is dropped
        with a note), timeout_s, failover (a list of "provider:image"/"provider:model").
        """
        from .images import ImageJob

        image: ImageResult = drain(self.run(ImageJob(self, prompt, provider, model, options)))
        return image

    # -- catalog view -----------------------------------------------------------------
    def providers_table(self) -> pd.DataFrame:
        """One row per provider: endpoint, model per class, key variable, key present — never the key."""
        import pandas as pd

        from .catalog import key_status

        rows = []
        for entry in self.catalog:
            status = key_status(entry, self.env)
            row = {"provider": entry.id, "protocol": entry.protocol, "endpoint": entry.endpoint or "(in process)"}
            row.update({cls.value: entry.models.get(cls, "") for cls in ModelClass})
            row["key_variable"], row["key_present"] = status.variable_names, status.present
            rows.append(row)
        return pd.DataFrame(rows)

    def models(self, provider: str | None = None, refresh: bool = False) -> pd.DataFrame:
        """The model ids each provider's own listing names (core/discovery.py): provider,
        model, catalog_class, context_window, prices per 1M tokens, created, source. Cached in
        the home for ``[models] ttl_hours`` (24); ``refresh=True`` asks again. ``provider=None``:
        every usable provider; the skipped ones and every note are in ``df.attrs``."""
        from .discovery import models

        return models(self, provider, refresh)

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Unload local models and close HTTP connections."""
        with self._lock:
            providers, self._adapters = list(self._adapters.values()), {}
            http, self._http = self._http, None
        for p in providers:
            p.close()
        if http is not None:
            http.close()
        self.cache.close()

    def __repr__(self) -> str:
        s = self.session.state
        return f"<eliza_nb.Runtime home={str(self.home)!r} provider={s.provider} class={s.model_class} preset={s.preset}>"
