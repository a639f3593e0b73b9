"""THE request pipeline. Every surface (function API, magic, widget, benchmark) calls here.

resolve target -> merge settings -> [cache] -> provider call (stream or not) -> on error:
classify, retry / fail over (bounded) -> ledger -> Result.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from . import registry
from .catalog import Catalog, ProviderEntry, find_key, parse_model_class
from .errors import (
    ConfigError,
    ContextTooLongError,
    ElizaError,
    MissingKeyError,
    StreamInterrupted,
)
from .home import home_dir, load_user_config
from .ledger import Ledger, LedgerRow, cost_usd
from .retry import RetryPolicy
from .session import Session, SessionState
from .settings import Presets, merge_settings
from .types import Attempt, Message, ModelClass, ModelSettings, Request, Result, Target, as_messages

log = logging.getLogger("eliza_nb")

CALL_OPTIONS = ("provider", "model_class", "model", "preset", "system", "timeout_s", "failover")


@dataclass
class _Plan:
    messages: tuple[Message, ...]
    call: dict[str, Any]
    preset: str | None
    timeout_s: float
    targets: list[Target]


class GenerationStream:
    """Iterate for text chunks; ``.result`` holds the Result once the stream is drained.

    Closing it early (``close()`` or leaving a ``for`` loop) stops the provider.
    """

    def __init__(self, gen: Iterator[str], target: Target) -> None:
        self._gen = gen
        self.target = target  # the first target tried (failover may answer from another)
        self.result: Result | None = None

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._gen)
        except StopIteration as stop:
            self.result = stop.value
            raise

    def close(self) -> None:
        self._gen.close()

    def text(self) -> str:
        """Drain the stream and return the whole text."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result.text


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
        self._transport = transport
        self._sleep, self._clock = sleep, clock
        self._providers: dict[str, Any] = {}
        self._http: Any = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()
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
        entry = self.catalog.get(target.provider)
        return merge_settings(entry.settings, self.presets.get(preset if preset is not None else state.preset), state.settings, call)

    # -- generation ------------------------------------------------------------------
    def generate(self, prompt: str | Iterable[Message | Mapping[str, str]], **options: Any) -> Result:
        """Generate text. ``options``: provider, model_class, model, preset, system, timeout_s,
        failover, and any ModelSettings field (temperature, max_output_tokens, stop, ...)."""
        gen = self._run(self._plan(prompt, options), streaming=False)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return stop.value

    def stream(self, prompt: str | Iterable[Message | Mapping[str, str]], **options: Any) -> GenerationStream:
        """Like :meth:`generate` but yields text chunks as they arrive."""
        plan = self._plan(prompt, options)  # bad options fail here, before any output
        return GenerationStream(self._run(plan, streaming=True), plan.targets[0])

    def _split_options(self, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        opts = dict(options)
        if "max_tokens" in opts:  # the name every other tool uses
            opts["max_output_tokens"] = opts.pop("max_tokens")
        call = {k: opts.pop(k) for k in list(opts) if k in ModelSettings.names()}
        unknown = sorted(set(opts) - set(CALL_OPTIONS))
        if unknown:
            valid = ", ".join((*CALL_OPTIONS, *ModelSettings.names()))
            raise ConfigError(f"unknown option(s) {', '.join(unknown)}; valid: {valid}")
        ModelSettings.from_mapping(call)
        return opts, call

    def _plan(self, prompt: Any, options: Mapping[str, Any]) -> _Plan:
        """Validate and resolve everything a call needs; raises before any provider work."""
        opts, call = self._split_options(options)
        primary = self.resolve(opts.get("provider"), opts.get("model_class"), opts.get("model"))
        if not primary.model_class.is_text:
            raise ConfigError(f"generate needs a text model class (small, medium, large), not {primary.model_class.value}")
        preset = opts.get("preset")
        self.presets.get(preset)
        return _Plan(
            messages=as_messages(prompt, opts.get("system")), call=call, preset=preset,
            timeout_s=float(opts.get("timeout_s") or self.retry.timeout_s),
            targets=self._targets(primary, opts.get("failover")),
        )

    def _run(self, plan: _Plan, *, streaming: bool) -> Iterator[str]:
        messages, call, preset, timeout, targets = plan.messages, plan.call, plan.preset, plan.timeout_s, plan.targets
        attempts: list[Attempt] = []
        started = self._clock()
        last_error: ElizaError | None = None
        for target in targets:
            settings = self.effective_settings(target, preset, call)
            request = Request(target, self._with_default_system(target, messages), settings, timeout)
            for attempt_no in range(1, self.retry.max_attempts + 1):
                t0 = self._clock()
                try:
                    if not self.key_for(self.catalog.get(target.provider)) and self.catalog.get(target.provider).needs_key:
                        entry = self.catalog.get(target.provider)
                        raise MissingKeyError(f"no API key: set {entry.key_env[0]}", provider=target.provider)
                    adapter = self.provider(target.provider)
                    result = yield from self._call_once(adapter, request, streaming, t0)
                except StreamInterrupted as exc:
                    attempts.append(Attempt(str(target), type(exc).__name__, str(exc)))
                    self._record_failure(target, preset, t0, exc)
                    raise
                except ElizaError as exc:
                    last_error = exc
                    self._record_failure(target, preset, t0, exc)
                    waited = 0.0
                    can_retry = exc.retryable and attempt_no < self.retry.max_attempts
                    if can_retry:
                        waited = self.retry.delay(attempt_no, getattr(exc, "retry_after", None))
                        if self._clock() - started + waited > self.retry.max_total_s:
                            can_retry = False
                            waited = 0.0
                    attempts.append(Attempt(str(target), type(exc).__name__, str(exc), round(waited, 3)))
                    if can_retry:
                        self._sleep(waited)
                        continue
                    if isinstance(exc, ContextTooLongError) or not exc.failover:
                        raise self._final_error(exc, attempts) from None
                    break  # next target
                result.attempts = [*attempts, Attempt(str(target), "ok")]
                result.settings = settings.as_dict()
                result.notes = [*result.notes]
                self.ledger.record(self._row(result, preset, "stream" if streaming else "generate"))
                return result
        assert last_error is not None
        raise self._final_error(last_error, attempts) from None

    def _with_default_system(self, target: Target, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        """Add the catalog's ``default_system`` prompt when the caller gave none."""
        default = self.catalog.get(target.provider).extra.get("default_system")
        if not default or any(m.role == "system" for m in messages):
            return messages
        return (Message("system", str(default)), *messages)

    def _call_once(self, adapter: Any, request: Request, streaming: bool, t0: float):
        """One provider call; yields text when streaming; returns a Result."""
        ttft = None
        completion = None
        if streaming:
            parts: list[str] = []
            stream = adapter.stream(request)
            try:
                for chunk in stream:
                    if chunk.text:
                        if ttft is None:
                            ttft = self._clock() - t0
                        parts.append(chunk.text)
                        yield chunk.text
                    if chunk.completion is not None:
                        completion = chunk.completion
            except ElizaError as exc:
                if parts and not isinstance(exc, StreamInterrupted):
                    raise StreamInterrupted(f"stream cut after {len(parts)} chunks: {exc}", provider=request.target.provider, partial="".join(parts)) from None
                raise
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
        else:
            completion = adapter.generate(request)
        if completion is None:
            from .errors import BadResponseError

            raise BadResponseError("the stream ended without a final message", provider=request.target.provider)
        t = request.target
        return Result(
            text=completion.text, provider=t.provider, model=completion.model or t.model,
            model_class=t.model_class.value, usage=completion.usage, latency_s=self._clock() - t0,
            ttft_s=ttft, finish_reason=completion.finish_reason,
        )

    @staticmethod
    def _final_error(exc: ElizaError, attempts: list[Attempt]) -> ElizaError:
        exc.attempts = list(attempts)
        return exc

    def _row(self, result: Result, preset: str | None, kind: str) -> LedgerRow:
        entry = self.catalog.get(result.provider)
        u = result.usage
        return LedgerRow(
            time=time.time(), kind=kind, provider=result.provider, model=result.model,
            model_class=result.model_class, preset=preset or self.session.state.preset,
            prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
            latency_s=result.latency_s, cost_usd=0.0 if result.cached else cost_usd(entry.price(result.model), u.prompt_tokens, u.completion_tokens),
            cache_hit=result.cached,
        )

    def _record_failure(self, target: Target, preset: str | None, t0: float, exc: ElizaError) -> None:
        self.ledger.record(LedgerRow(
            time=time.time(), kind="generate", provider=target.provider, model=target.model,
            model_class=target.model_class.value, preset=preset, latency_s=self._clock() - t0,
            error=f"{type(exc).__name__}: {exc}",
        ))

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
        if entry.needs_key and not self.key_for(entry):
            raise MissingKeyError(f"no API key: set {entry.key_env[0]}", provider=target.provider)
        t0 = self._clock()
        try:
            vectors = self.provider(target.provider).embed(list(texts), target.model, self.retry.timeout_s)
        except ElizaError as exc:
            self.ledger.record(LedgerRow(time=time.time(), kind="embed", provider=target.provider, model=target.model,
                                         model_class="embedding", latency_s=self._clock() - t0, items=len(texts),
                                         error=f"{type(exc).__name__}: {exc}"))
            raise
        self.ledger.record(LedgerRow(time=time.time(), kind="embed", provider=target.provider, model=target.model,
                                     model_class="embedding", latency_s=self._clock() - t0, items=len(texts),
                                     cost_usd=0.0 if entry.price(target.model)[0] == 0 else float("nan")))
        return vectors

    def embed(self, texts: str | Sequence[str], provider: str | None = None, model: str | None = None) -> Any:
        """Embed one text -> (d,) float32, or a list -> (n, d) float32 (input order)."""
        import numpy as np

        single = isinstance(texts, str)
        items = [texts] if single else [str(t) for t in texts]
        target = self.resolve_embedding(provider, model)
        if not items:
            return np.zeros((0, self.catalog.get(target.provider).embedding_dims or 0), dtype=np.float32)
        vectors = self.embed_raw(items, target)
        return vectors[0] if single else vectors

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

    def __repr__(self) -> str:
        s = self.session.state
        return f"<eliza_nb.Runtime home={str(self.home)!r} provider={s.provider} class={s.model_class} preset={s.preset}>"
