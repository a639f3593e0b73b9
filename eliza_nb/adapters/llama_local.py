"""The ``llama_local`` provider: llama-cpp-python, in process, no key, no network.

Every call into a ``Llama`` object runs on ONE thread per process (a single-worker
executor shared by every loaded model, of every runtime): the build links OpenMP, which
gives each calling thread a team of its own, and once a process holds more OpenMP
threads than cores, libgomp stops spinning at its barriers for ALL teams, so every
layer of every token waits on a futex. Calls from alternating threads ran 3-4x slower on
2 cores (bench/local.py); a thread per model did the same more quietly: generation fell
from ~85 to ~45 tokens/s for the rest of the session once the embedding model had been
used. Models load lazily on first use and stay loaded for the session; importing this
module loads nothing.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ContextTooLongError, ElizaError, StreamInterrupted, TransientError
from ..core.types import Completion, Request, Usage
from .base import StreamChunk
from .llama_embed import PackedEncoder
from .local_models import resolve_model_path
from .mapping import wire_settings


@dataclass(frozen=True)
class LocalConfig:
    """How local models are loaded. ``n_threads=2`` is explicit: llama-cpp-python's default
    on this machine kind is 1 (measured 85 tok/s with 2 threads against ~35)."""

    n_ctx: int = 8192
    n_threads: int = 2
    n_batch: int = 512
    embedding_n_ctx: int = 512
    # Keep the KV cache of the prompt prefix the last call evaluated (a conversation's
    # history) and evaluate only the rest: see LoadedModel.evaluate_prompt for why the
    # answers stay identical to a fresh evaluation. False re-evaluates every prompt whole.
    prefix_cache: bool = True
    # Prompts are evaluated in blocks of this many tokens at multiples of it, reused or not;
    # 64-token blocks evaluate prompts at ~250 tokens/s here against ~260 for 512 (SmolLM2, 2 cores),
    # and at most 63 tokens of a reused prefix are evaluated again.
    prefix_block: int = 64


_llama_thread: ThreadPoolExecutor | None = None
_llama_thread_lock = threading.Lock()


def llama_thread() -> ThreadPoolExecutor:
    """The process's one thread for llama.cpp calls (see the module doc for why one).

    Calls queue in order: an embedding asked for during a long generation waits for it
    (on 2 cores the two would only slow each other down). Nothing running on this thread
    may wait for this thread.
    """
    global _llama_thread
    with _llama_thread_lock:
        if _llama_thread is None:
            _llama_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eliza-llama")
        return _llama_thread


class LoadedModel:
    """One GGUF file, loaded on first use, driven from the process's llama thread."""

    def __init__(self, path: Path, *, embedding: bool, config: LocalConfig) -> None:
        self.path = path
        self.embedding = embedding
        self.config = config
        self._executor = llama_thread()
        self._llm: Any = None
        self._formatter: Any = None
        self._encoder: Any = None  # llama_embed.PackedEncoder of an embedding model (worker thread)
        # Tokens at the start of the KV cache that evaluate_prompt evaluated in whole blocks
        # (worker thread only); generated tokens and a prompt's last partial block are not.
        self._blocks_len = 0
        #: (tokens reused, tokens evaluated) by the last prompt on this model
        self.last_prompt: tuple[int, int] = (0, 0)

    def _load(self) -> Any:  # runs on the worker thread
        if self._llm is None:
            from llama_cpp import Llama

            cfg = self.config
            n_ctx = cfg.embedding_n_ctx if self.embedding else cfg.n_ctx
            self._llm = Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_batch=min(cfg.n_batch, n_ctx) if not self.embedding else n_ctx,
                n_ubatch=min(cfg.n_batch, n_ctx) if not self.embedding else n_ctx,
                n_threads=cfg.n_threads,
                n_threads_batch=cfg.n_threads,
                embedding=self.embedding,
                # embeddings: the CPU flash-attention kernel skips the other sentences' masked
                # tokens, so packed batches cost no more per token (llama_embed.py)
                flash_attn=self.embedding,
                verbose=False,
            )
        return self._llm

    def run(self, fn: Callable[[Any], Any]) -> Any:
        """Call ``fn(llm)`` on the llama thread and wait for it."""
        return self._executor.submit(lambda: fn(self._load())).result()

    def submit(self, fn: Callable[[Any], Any]):
        return self._executor.submit(lambda: fn(self._load()))

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def encoder(self, llm: Any) -> PackedEncoder:
        """The packed batch embedder over this embedding model (worker thread)."""
        if self._encoder is None:
            self._encoder = PackedEncoder(llm, n_threads=self.config.n_threads)
        return self._encoder

    def evaluate_prompt(self, llm: Any, prompt: list[int], *, reuse: bool) -> None:
        """Evaluate ``prompt`` into the KV cache (worker thread), reusing what it can when
        ``reuse``; ``create_completion`` then finds the whole prompt cached and samples at once.

        Why the answers do not change: llama.cpp's floating-point results depend on the
        shape of each decode (a token evaluated alone while generating gets slightly other
        keys and values than the same token inside a prompt batch, which flips near-tie
        tokens at temperature 0: llama-cpp-python's own prefix matching does). So every
        prompt, fresh or not, is decoded in the same blocks: ``prefix_block`` tokens at
        multiples of ``prefix_block``, the last one partial. Only whole blocks a previous
        prompt decoded, on the same tokens, are kept: each was computed by the same decode,
        on the same cache before it, as a fresh evaluation would make. The last block is
        always decoded again, so the first token is sampled from the same logits.
        """
        n_ctx = llm.n_ctx()
        if len(prompt) >= n_ctx:  # llama-cpp-python's own message (_classify: ContextTooLongError)
            raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {n_ctx}")
        start = self._decode_blocks(llm, prompt, len(prompt), reuse=reuse)
        self.last_prompt = (start, len(prompt) - start)

    def prefill_turn(self, llm: Any, messages: list[dict[str, str]]) -> None:
        """After an answer in a conversation (worker thread, the caller already answered):
        decode the whole blocks of the history *with* that answer, as the next turn's prompt
        will begin, so the next turn evaluates only its own message and a partial block.
        The answer's tokens were decoded one at a time while generating: those keys and
        values are not the ones a fresh evaluation makes, so they are never reused."""
        try:
            fmt = self.formatter(llm, generation_prompt=False)(messages=messages)
            tokens = llm.tokenize(fmt.prompt.encode("utf-8"), add_bos=not fmt.added_special, special=True)
            if len(tokens) < llm.n_ctx():
                block = max(1, min(self.config.prefix_block, llm.n_batch))
                self._decode_blocks(llm, tokens, len(tokens) // block * block, reuse=True)
        except Exception:  # an optimisation only: the next prompt is evaluated whole instead
            self._blocks_len = 0

    def _decode_blocks(self, llm: Any, tokens: list[int], end: int, *, reuse: bool) -> int:
        """Decode ``tokens[:end]`` in whole blocks at multiples of ``prefix_block`` (the last
        may be partial), keeping the whole blocks already decoded on the same tokens when
        ``reuse`` and decoding again at least the last block; returns where decoding began."""
        block = max(1, min(self.config.prefix_block, llm.n_batch))
        common = 0
        if reuse and self._blocks_len:
            done = llm.input_ids[: min(self._blocks_len, llm.n_tokens)]
            same = np.asarray(tokens[: len(done)], dtype=done.dtype) == done[: len(tokens)]
            common = len(same) if same.all() else int(np.argmin(same))
        start = max(min(common, end - 1), 0) // block * block
        self._blocks_len = 0  # until this evaluation has finished
        llm.reset()
        llm.n_tokens = start  # eval() first drops every cached position from n_tokens on
        for i in range(start, end, block):
            llm.eval(tokens[i : min(i + block, end)])
        self._blocks_len = end // block * block
        return start

    def formatter(self, llm: Any, generation_prompt: bool = True) -> Any:
        """The model's own chat template (the one llama-cpp-python's chat handler uses);
        ``generation_prompt=False``: without the assistant header that ends a prompt."""
        if self._formatter is None:
            from llama_cpp import llama_chat_format as lcf

            template = llm.metadata.get("tokenizer.chat_template") or lcf.CHATML_CHAT_TEMPLATE
            eos_id, bos_id = llm.token_eos(), llm.token_bos()
            self._formatter = tuple(lcf.Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos_id) if eos_id != -1 else "",
                bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
                add_generation_prompt=add,
                stop_token_ids=[eos_id],
            ) for add in (True, False))
        return self._formatter[0 if generation_prompt else 1]

    def close(self) -> None:
        def _free(_: Any) -> None:
            if self._encoder is not None:  # its small context lives on the model: freed first
                self._encoder.close()
                self._encoder = None
            if self._llm is not None:
                self._llm.close()
                self._llm = None

        if self._llm is not None:
            self._executor.submit(lambda: _free(None)).result()
        # The thread is the process's, not this model's: other models (and runtimes) keep using it.


#: what a call sends when a setting is not set: llama-cpp-python's own defaults, except
#: max_tokens (its default is 16; None generates until a stop or the context's end)
SAMPLING_DEFAULTS: dict[str, Any] = {"temperature": 0.8, "max_tokens": None, "frequency_penalty": 0.0,
                                     "presence_penalty": 0.0, "repeat_penalty": 1.0}


def _sampling_args(request: Request, notes: list[str]) -> dict[str, Any]:
    """``create_completion`` keyword arguments for the request's settings (stop is merged with
    the chat template's own stops by the caller)."""
    s = request.settings
    args = dict(SAMPLING_DEFAULTS)
    args.update(wire_settings(s, "llama_local", "llama_local", notes, own=("stop", "repetition_penalty"),
                              why="llama.cpp has no {setting}"))
    # Eliza's repetition_penalty is additive (0 = off); llama.cpp's is a factor (1 = off).
    args["repeat_penalty"] = 1.0 + (s.repetition_penalty or 0.0)
    return args


class LlamaLocalProvider:
    """The in-process provider. One LoadedModel per GGUF path, created on first use."""

    id = "llama_local"

    def __init__(self, home: Path, config: LocalConfig | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.home = home
        self.config = config or LocalConfig()
        self._warn = warn
        self._models: dict[tuple[Path, bool], LoadedModel] = {}
        self._paths: dict[str, Path] = {}
        self._lock = threading.Lock()

    # -- model management -------------------------------------------------------------
    def model(self, name: str, *, embedding: bool) -> LoadedModel:
        path = self._paths.get(name)
        if path is None:  # resolving checks (or converts) the file: once per name per session
            path = self._paths[name] = resolve_model_path(name, self.home, warn=self._warn)[0]
        key = (path, embedding)
        with self._lock:
            loaded = self._models.get(key)
            if loaded is None:
                loaded = self._models[key] = LoadedModel(path, embedding=embedding, config=self.config)
            return loaded

    def context_window(self, model: str) -> int:
        """Tokens the loaded context holds (prompt + output)."""
        return self.config.n_ctx

    def count_tokens(self, text: str, model: str) -> int:
        """Exact token count with the model's own tokenizer."""
        m = self.model(model, embedding=False)
        return m.run(lambda llm: len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)))

    # -- generation ------------------------------------------------------------------
    def generate(self, request: Request) -> Completion:
        completion = None
        for chunk in self.stream(request):
            if chunk.completion is not None:
                completion = chunk.completion
        assert completion is not None
        return completion

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        model = self.model(request.target.model, embedding=False)
        notes: list[str] = []
        args = _sampling_args(request, notes)
        extra_stops = list(request.settings.stop or ())
        messages = [m.as_dict() for m in request.messages]
        out: queue.SimpleQueue = queue.SimpleQueue()
        cancel = threading.Event()
        # The whole attempt: waiting for the llama thread, the prompt, every token.
        deadline = time.monotonic() + request.timeout_s

        def work(llm: Any) -> None:
            if cancel.is_set():  # the caller gave up while this call waited for the thread
                return
            # How long this call waited before the model started on it (behind other calls on
            # the one llama thread; the model's load on first use): part of its latency, not of
            # its service time (a benchmark at concurrency > 1 tells them apart).
            out.put(("queued", time.monotonic() - submitted))
            try:
                fmt = model.formatter(llm)(messages=messages)
                prompt = llm.tokenize(fmt.prompt.encode("utf-8"), add_bos=not fmt.added_special, special=True)
                out.put(("prompt", len(prompt)))
                stops = list(dict.fromkeys([*fmt.stop, *extra_stops]))
                model.evaluate_prompt(llm, prompt, reuse=self.config.prefix_cache)
                gen = llm.create_completion(
                    prompt=prompt, stop=stops, stopping_criteria=fmt.stopping_criteria, stream=True, **args
                )
                finish = None
                texts: list[str] = []
                try:
                    for part in gen:
                        choice = part["choices"][0]
                        finish = choice.get("finish_reason") or finish
                        if choice.get("text"):
                            texts.append(choice["text"])
                            out.put(("text", choice["text"]))
                        if cancel.is_set():
                            finish = "interrupted"
                            break
                        if finish is None and time.monotonic() > deadline:
                            # stop here even when nobody reads: the thread is every other call's too
                            out.put(("late", None))
                            return
                finally:
                    gen.close()
                # Count here, on the llama thread: a later submit would queue behind
                # the next caller's whole generation and inflate this call's latency.
                text = "".join(texts)
                n = len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0
                out.put(("done", (finish, n)))
            except BaseException as exc:  # handed to the caller's thread
                out.put(("error", exc))
                return
            # A history with an answer in it is a conversation: its next turn will most likely
            # begin with this one and its answer (independent calls never pay for this).
            if (self.config.prefix_cache and finish in ("stop", "length")
                    and any(m["role"] == "assistant" for m in messages)):
                model.prefill_turn(llm, [*messages, {"role": "assistant", "content": text}])

        submitted = time.monotonic()
        model.submit(work)
        return self._drain(model, request, out, cancel, notes, deadline)

    def _drain(self, model: LoadedModel, request: Request, out: queue.SimpleQueue, cancel: threading.Event,
               notes: list[str], deadline: float) -> Iterator[StreamChunk]:
        parts: list[str] = []
        prompt_tokens: int | None = None
        queue_s = 0.0
        try:
            while True:
                try:  # what was made before the deadline is still handed over after it
                    kind, value = out.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    kind, value = "late", None
                if kind == "late":
                    cancel.set()
                    # before any text the ladder retries it; after, it becomes StreamInterrupted with the text kept
                    raise TransientError(f"{model.path.name}: no complete answer within {request.timeout_s:g} s",
                                         provider=self.id)
                if kind == "text":
                    parts.append(value)
                    yield StreamChunk(text=value)
                elif kind == "prompt":
                    prompt_tokens = value
                elif kind == "queued":
                    queue_s = value
                elif kind == "error":
                    raise _classify(value, self.id)
                else:  # done
                    finish, completion_tokens = value
                    yield StreamChunk(
                        completion=Completion(
                            text="".join(parts),
                            usage=Usage(prompt_tokens, completion_tokens),
                            finish_reason=finish,
                            model=request.target.model,
                            notes=notes,
                            queue_s=queue_s,
                        )
                    )
                    return
        except GeneratorExit:
            cancel.set()
            raise
        except KeyboardInterrupt:
            cancel.set()
            raise StreamInterrupted("stopped by the user", provider=self.id, partial="".join(parts)) from None

    # -- embeddings ------------------------------------------------------------------
    def embed(self, texts: Sequence[str], model: str, timeout_s: float = 120.0) -> np.ndarray:
        """L2-normalized float32 vectors, one row per text."""
        loaded = self.model(model, embedding=True)
        texts = list(texts)
        # sorted by length and packed into decodes of up to 512 tokens, rows in input order
        job = loaded.submit(lambda llm: loaded.encoder(llm).embed(texts))
        try:
            rows = job.result(timeout=timeout_s)
        except TimeoutError:
            job.cancel()  # still queued behind another call: it never runs
            raise TransientError(f"embedding {len(texts)} texts took over {timeout_s:.0f} s", provider=self.id) from None
        except ElizaError:
            raise
        except Exception as exc:
            raise _classify(exc, self.id) from None
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)

    def list_models(self, timeout_s: float) -> list[dict[str, Any]]:
        """The built-in names and the GGUF files in the home's models folder, with the
        context length each file's header states (nothing is loaded; adapters/listing.py)."""
        from .listing import local_models

        return local_models(self.home)

    def close(self) -> None:
        with self._lock:
            models, self._models = list(self._models.values()), {}
        for m in models:
            m.close()


def _classify(exc: BaseException, provider: str) -> BaseException:
    if isinstance(exc, ElizaError):
        return exc
    msg = str(exc)
    if "exceed context window" in msg or "context window" in msg:
        return ContextTooLongError(msg, provider=provider)
    if isinstance(exc, (ValueError, RuntimeError)):
        return ElizaError(f"{type(exc).__name__}: {msg}", provider=provider)
    return exc


def factory(entry: Any, context: Any) -> LlamaLocalProvider:
    """Registry entry point: one in-process provider per runtime."""
    options = dict(context.options.get("local") or {})
    known = set(LocalConfig.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:  # a typo (or reuse_prompt_cache, now prefix_cache) would otherwise be ignored silently
        raise ConfigError(f"[local] in config.toml: unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    config = LocalConfig(**options)
    return LlamaLocalProvider(context.home, config, warn=context.warn)
