"""THE request pipeline. Every surface (function API, magic, widget, benchmark) calls here.

resolve target -> merge settings -> [cache] -> provider call (stream or not) -> on error:
classify, retry / fail over (bounded) -> ledger -> Result.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import registry
from .cache import Cache, CacheConfig
from .catalog import Catalog, ProviderEntry, find_key, parse_model_class
from .errors import (
    ConfigError,
    ElizaError,
    MissingKeyError,
)
from .generation import CALL_OPTIONS, GenerationStream, plan_call, run  # noqa: F401  (CALL_OPTIONS re-exported)
from .home import home_dir, load_user_config
from .ledger import Ledger, LedgerRow, SpendingCap
from .ratelimit import RateLimiter
from .retry import RetryPolicy, call_with_retry
from .session import Session, SessionState
from .settings import Presets, merge_settings
from .types import ImageResult, Message, ModelClass, ModelSettings, Result, Target

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
        self.replay: Any = None  # a Recorder or Replayer (core/replay.py) while one is on
        self.spending = SpendingCap.from_config(self.config.get("budget"))
        self._transport = transport
        self._sleep, self._clock = sleep, clock
        self.ratelimits = RateLimiter(clock, sleep)
        self._providers: dict[str, Any] = {}
        self._http: Any = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._merged: tuple[Any, ...] | None = None  # effective_settings' last (layers..., result)
        self._plan_memo: tuple[Any, ...] | None = None  # generation.plan_call's last plan without options
        self.warnings: list[str] = []

    # -- set-up --------------------------------------------------------------------
    def _initial_state(self) -> SessionState:
        d = dict(self.config.get("defaults") or {})
        state = SessionState(
            provider=str(d.pop("provider", "llama_local")),
            model_class=parse_model_class(d.pop("model_class", "small")).value,
            model=d.pop("model", None),
            preset=d.pop("preset", None) or None,
        )
        self.catalog.get(state.provider)
        self.presets.get(state.preset)
        known = {"embedding_provider", "embedding_model"}
        try:
            state.settings = ModelSettings.from_mapping({k: v for k, v in d.items() if k not in known})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[defaults] in config.toml: {exc}") from None
        return state

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
        http = self._http
        if http is not None:  # every call asks: no lock once it exists
            return http
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

    def _check_key(self, entry: ProviderEntry) -> None:
        """MissingKeyError naming the variable, unless the adapter has its own fallback
        (catalog ``key_fallback``: claude_vertex may use google-auth credentials)."""
        if entry.needs_key and not entry.extra.get("key_fallback") and not self.key_for(entry):
            aliases = f" (or {', '.join(entry.key_env[1:])})" if len(entry.key_env) > 1 else ""
            raise MissingKeyError(f"no API key: set {entry.key_env[0]}{aliases}", provider=entry.id)

    def provider(self, pid: str) -> Any:
        """The adapter instance for a provider id (created once per runtime)."""
        entry = self.catalog.get(pid)
        with self._lock:
            adapter = self._providers.get(entry.id)
        if adapter is not None:
            return adapter
        factory = registry.factory_for(entry.protocol)
        ctx = registry.AdapterContext(
            home=self.home, http_client=self.http_client, get_key=self.key_for, warn=self.warn,
            options=dict(self.config),
        )
        adapter = factory(entry, ctx)
        with self._lock:
            return self._providers.setdefault(entry.id, adapter)

    # -- resolution ------------------------------------------------------------------
    def resolve(self, provider: str | None = None, model_class: str | ModelClass | None = None, model: str | None = None) -> Target:
        """Which provider, class and model id a call goes to.

        ``provider`` may carry a class or a model after a colon: ``"openai:large"``,
        ``"groq:llama-3.1-8b-instant"``.
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

    def _targets(self, primary: Target, failover: bool | Sequence[str] | None) -> list[Target]:
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
        """catalog < preset < session < call (None never overrides)."""
        state = self.session.state
        layers = (self.catalog.get(target.provider).settings,
                  self.presets.get(preset if preset is not None else state.preset), state.settings)
        if call:
            return merge_settings(*layers, call)
        # Without call arguments the merge is a pure function of three immutable layers, and
        # every call repeats it: keep the last one (held layers cannot be reused ids).
        memo = self._merged
        if memo is not None and memo[0] is layers[0] and memo[1] is layers[1] and memo[2] is layers[2]:
            return memo[3]
        merged = merge_settings(*layers)
        self._merged = (*layers, merged)
        return merged

    # -- generation ------------------------------------------------------------------
    def generate(self, prompt: str | Iterable[Message | Mapping[str, str]], **options: Any) -> Result:
        """Generate text. ``options``: provider, model_class, model, preset, system, timeout_s,
        failover, and any ModelSettings field (temperature, max_output_tokens, stop, ...)."""
        gen = run(self, plan_call(self, prompt, options), streaming=False)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return stop.value

    def stream(self, prompt: str | Iterable[Message | Mapping[str, str]], **options: Any) -> GenerationStream:
        """Like :meth:`generate` but yields text chunks as they arrive."""
        plan = plan_call(self, prompt, options)  # bad options fail here, before any output
        return GenerationStream(run(self, plan, streaming=True), plan.targets[0])

    # -- embeddings ------------------------------------------------------------------
    def resolve_embedding(self, provider: str | None = None, model: str | None = None) -> Target:
        """The embedding target: explicit, else [defaults] embedding_provider, else the session's provider."""
        d = self.config.get("defaults") or {}
        pid = provider or d.get("embedding_provider") or self.session.state.provider
        if model is None and not provider:
            model = d.get("embedding_model")
        return self.resolve(pid, ModelClass.EMBEDDING, model)

    def embed_raw(self, texts: Sequence[str], target: Target) -> Any:
        """Call the provider for these texts, no cache (used by the cache layer on misses)."""
        entry = self.catalog.get(target.provider)
        self._check_key(entry)
        t0 = self._clock()
        try:
            # Bounded retries on the same target only: failing over to another embedding
            # model would mix vector spaces.
            vectors = call_with_retry(
                self.retry, lambda: self.provider(target.provider).embed(list(texts), target.model, self.retry.timeout_s),
                clock=self._clock, sleep=self._sleep, started=t0,
                before=lambda: self.ratelimits.acquire(entry.id, entry.rate_limit, sum(len(t) for t in texts) // 4),
            )
        except ElizaError as exc:
            self.ledger.record(LedgerRow(time=time.time(), kind="embed", provider=target.provider, model=target.model,
                                         model_class="embedding", latency_s=self._clock() - t0, items=len(texts),
                                         error=f"{type(exc).__name__}: {exc}"))
            raise
        self.ledger.record(LedgerRow(time=time.time(), kind="embed", provider=target.provider, model=target.model,
                                     model_class="embedding", latency_s=self._clock() - t0, items=len(texts),
                                     cost_usd=0.0 if entry.price(target.model)[0] == 0 else float("nan")))
        return vectors

    def embed(self, texts: Any, provider: str | None = None, model: str | None = None, **options: Any) -> Any:
        """Embed through the cache: one text -> (d,) float32, a list -> (n, d) (input order),
        a pandas Series -> a Series of vectors (``as_array=True``: an (n, d) array).

        ``options``: ``regenerate=True`` (ask the provider again, store under the key of
        the size it returns), ``normalize=False`` (keep the provider's lengths).
        """
        if self.replay is not None:  # record/replay sees every embedding call, cache hits included
            return self.replay.embed(self, texts, provider, model, options)
        return self.embeddings.embed(texts, provider, model, **options)

    @property
    def embeddings(self) -> Any:
        """The EmbeddingService (batching, dedupe, single-flight) over this runtime's cache."""
        if self._embeddings is None:
            from .embedding import EmbeddingService

            with self._lock:
                if self._embeddings is None:
                    self._embeddings = EmbeddingService(self, self.cache)
        return self._embeddings

    # -- images ----------------------------------------------------------------------
    def image(self, prompt: str, provider: str | None = None, model: str | None = None, **options: Any) -> ImageResult:
        """Generate one image; the result shows inline in a notebook.

        ``options``: size ("1024x1024") or width/height, steps, seed, negative_prompt,
        quality, style, guidance (an option the provider's API does not take is dropped
        with a note), timeout_s, failover (a list of "provider:image"/"provider:model").
        """
        from .images import generate_image

        return generate_image(self, prompt, provider, model, options)

    # -- catalog view -----------------------------------------------------------------
    def providers_table(self):
        """One row per provider: endpoint, model per class, key variable, key present — never the key."""
        import pandas as pd

        rows = []
        for entry in self.catalog:
            _, var = find_key(entry, self.env)
            row = {"provider": entry.id, "protocol": entry.protocol, "endpoint": entry.endpoint or "(in process)"}
            row.update({cls.value: entry.models.get(cls, "") for cls in ModelClass})
            row["key_variable"] = " or ".join(entry.key_env) if entry.key_env else "(none needed)"
            row["key_present"] = "yes" if var else ("n/a" if not entry.needs_key else "no")
            rows.append(row)
        return pd.DataFrame(rows)

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Unload local models and close HTTP connections."""
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
            http, self._http = self._http, None
        for p in providers:
            p.close()
        if http is not None:
            http.close()
        self.cache.close()

    def __repr__(self) -> str:
        s = self.session.state
        return f"<eliza_nb.Runtime home={str(self.home)!r} provider={s.provider} class={s.model_class} preset={s.preset}>"
