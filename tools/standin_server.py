"""A loopback stand-in for the paid providers, used to record ``notebooks/providers.replay``.

This repository's CI has no paid keys, so the archive committed beside providers.ipynb
cannot hold real answers from OpenAI, Anthropic, Gemini and the rest. This server answers
in each provider's own wire format (OpenAI chat + SSE + embeddings, Anthropic Messages,
Claude on Vertex rawPredict, Gemini generateContent / embedContent / batchEmbedContents)
with the embedded local models: SmolLM2-135M-Instruct for text and all-MiniLM-L6-v2 for
vectors, zero-padded to each provider's embedding size. The real adapters, requests and
settings mapping run end to end; only the answers are SmolLM2's, and the archive's note
says so. Loopback only; one request at a time, and each model is called from one thread.

    .venv/bin/python tools/record_providers.py   # starts this server, records the notebook
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

#: embedding sizes of the providers' embedding models (the stand-in pads MiniLM's 384 to these)
#: (retired ids stay so archives recorded with them still replay)
DIMS = {"text-embedding-3-small": 1536, "openai/text-embedding-3-small": 1536, "gemini-embedding-001": 3072,
        "text-embedding-004": 768, "togethercomputer/m2-bert-80M-32k-retrieval": 768, "nomic-embed-text": 768}


class StandIn:
    """The two local models behind every wire format."""

    def __init__(self, home: Path) -> None:
        from llama_cpp import Llama

        from eliza_nb.adapters.local_models import (
            MINILM,
            SMOLLM2,
            package_path,
            prepare_embedding_model,
        )

        self.chat = Llama(str(package_path(SMOLLM2)), n_ctx=2048, n_threads=2, verbose=False, seed=0)
        self.embedder = Llama(str(prepare_embedding_model(home, MINILM)), embedding=True, n_ctx=512, n_threads=2,
                              verbose=False)

    def complete(self, messages: list[dict[str, str]], temperature: float, max_tokens: int, stop: list[str],
                 seed: int | None) -> tuple[str, str, int, int]:
        """(text, finish "stop"|"length", prompt tokens, completion tokens)."""
        out = self.chat.create_chat_completion(messages=messages, temperature=temperature, max_tokens=max_tokens,
                                               stop=stop or None, seed=seed if seed is not None else 0,
                                               repeat_penalty=1.0)
        choice = out["choices"][0]
        usage = out["usage"]
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return choice["message"]["content"] or "", finish, usage["prompt_tokens"], usage["completion_tokens"]

    def vectors(self, texts: list[str], model: str) -> list[list[float]]:
        dims = DIMS.get(model, 384)
        rows = [self.embedder.embed(t, normalize=True) for t in texts]
        return [[float(x) for x in row] + [0.0] * (dims - len(row)) for row in rows]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


class Handler(BaseHTTPRequestHandler):
    standin: StandIn

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        path = self.path.split("?", 1)[0]
        try:
            if path.endswith("/chat/completions"):
                return self._openai_chat(body)
            if path.endswith("/embeddings"):
                data = self.standin.vectors(list(body["input"]), body["model"])
                return self._send(200, {"object": "list", "model": body["model"], "usage": {"prompt_tokens": 0},
                                        "data": [{"index": i, "embedding": v} for i, v in enumerate(data)]})
            if path.endswith(("/messages", ":rawPredict")):
                return self._anthropic(body, path)
            m = re.search(r"/models/(.+):(generateContent|embedContent|batchEmbedContents)$", path)
            if m:
                return self._gemini(body, m.group(1), m.group(2))
        except (KeyError, TypeError, ValueError) as exc:
            return self._send(400, {"error": {"message": f"stand-in: bad request ({exc})"}})
        return self._send(404, {"error": {"message": f"stand-in: no route for {path}"}})

    def _openai_chat(self, body: dict[str, Any]) -> None:
        messages = [{"role": m["role"], "content": _text_of(m["content"])} for m in body["messages"]]
        stop = body.get("stop") or []
        text, finish, pt, ct = self.standin.complete(messages, float(body.get("temperature", 1.0)),
                                                     int(body.get("max_tokens") or body.get("max_completion_tokens") or 256),
                                                     [stop] if isinstance(stop, str) else list(stop), body.get("seed"))
        model = body["model"]
        usage = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
        if not body.get("stream"):
            self._send(200, {"object": "chat.completion", "model": model, "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        events = [{"model": model, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                  for piece in re.findall(r"\s*\S+\s*|\s+", text)]
        events.append({"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        events.append({"model": model, "choices": [], "usage": usage})
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True

    def _anthropic(self, body: dict[str, Any], path: str) -> None:
        if body.get("stream"):
            return self._send(400, {"type": "error", "error": {"message": "stand-in: streaming not served"}})
        messages = [{"role": "system", "content": _text_of(body["system"])}] if body.get("system") else []
        messages += [{"role": m["role"], "content": _text_of(m["content"])} for m in body["messages"]]
        text, finish, pt, ct = self.standin.complete(messages, float(body.get("temperature", 1.0)),
                                                     int(body["max_tokens"]), list(body.get("stop_sequences") or []), None)
        model = body.get("model") or path.rsplit("/", 1)[-1].split(":", 1)[0]
        return self._send(200, {"type": "message", "role": "assistant", "model": model,
                                "content": [{"type": "text", "text": text}],
                                "stop_reason": "max_tokens" if finish == "length" else "end_turn",
                                "usage": {"input_tokens": pt, "output_tokens": ct}})

    def _gemini(self, body: dict[str, Any], model: str, method: str) -> None:
        if method == "embedContent":
            v = self.standin.vectors([_text_of(body["content"]["parts"])], model)[0]
            return self._send(200, {"embedding": {"values": v}})
        if method == "batchEmbedContents":
            texts = [_text_of(r["content"]["parts"]) for r in body["requests"]]
            return self._send(200, {"embeddings": [{"values": v} for v in self.standin.vectors(texts, model)]})
        system = body.get("systemInstruction")
        messages = [{"role": "system", "content": _text_of(system["parts"])}] if system else []
        messages += [{"role": "assistant" if c.get("role") == "model" else "user", "content": _text_of(c["parts"])}
                     for c in body["contents"]]
        config = body.get("generationConfig") or {}
        text, finish, pt, ct = self.standin.complete(messages, float(config.get("temperature", 1.0)),
                                                     int(config.get("maxOutputTokens") or 256),
                                                     list(config.get("stopSequences") or []), config.get("seed"))
        return self._send(200, {"modelVersion": model, "usageMetadata": {"promptTokenCount": pt, "candidatesTokenCount": ct},
                                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                                "finishReason": "MAX_TOKENS" if finish == "length" else "STOP"}]})


def serve(home: Path) -> tuple[HTTPServer, str]:
    """Start the stand-in on a free loopback port (one thread); returns (server, base URL)."""
    handler = type("StandInHandler", (Handler,), {"standin": StandIn(home)})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="standin", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
