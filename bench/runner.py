"""Benchmark-runner overhead: N calls at concurrency C against a loopback OpenAI-compatible
server that answers after a fixed delay. Ideal wall time = ceil(N / C) x delay; the runner's
throughput should be >= 0.8 of that ideal.

    .venv/bin/python bench/runner.py [--calls 64] [--delay-ms 50] [--concurrency 1 4 8 16]

Prints a markdown table and writes it to bench/results/runner.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_server(delay_s: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body go in two packets and wait 40 ms for an ACK

        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            time.sleep(delay_s)
            text = "Paris is the capital of France."
            if body.get("stream"):
                chunks = [{"choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]} for w in text.split()]
                chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}})
                payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                data, ctype = payload.encode(), "text/event-stream"
            else:
                data = json.dumps({"id": "x", "object": "chat.completion", "model": body.get("model"),
                                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}}).encode()
                ctype = "application/json"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    args = parser.parse_args()

    from eliza_nb.core.bench import benchmark
    from eliza_nb.core.runtime import Runtime

    delay = args.delay_ms / 1000
    server = make_server(delay)
    port = server.server_address[1]
    config = {"providers": {"loop": {"protocol": "openai", "endpoint": f"http://127.0.0.1:{port}/v1", "key_env": [],
                                     "models": {"small": "fixed-50ms"}, "settings": {"max_input_tokens": 4096, "max_output_tokens": 64}}}}
    rt = Runtime(tempfile.mkdtemp(prefix="eliza-bench-"), config=config, env={})
    cases = [{"id": str(i), "input": f"Question {i}: what is the capital of France?", "expected": "Paris"} for i in range(args.calls)]
    benchmark(rt, cases[:4], models=["loop:small"], repeats=1, concurrency=4, progress=False)  # warm-up
    rows = []
    for c in args.concurrency:
        t0 = time.perf_counter()
        df = benchmark(rt, cases, models=["loop:small"], repeats=1, concurrency=c, progress=False)
        wall = time.perf_counter() - t0
        ideal = math.ceil(args.calls / c) * delay
        errors = int(df.error.notna().sum())
        rows.append((c, wall, ideal, ideal / wall, errors, df.latency_s.median() * 1000))
    rt.close()
    server.shutdown()
    lines = [f"{args.calls} cases through `eliza_nb.benchmark`, server answering after {args.delay_ms:.0f} ms "
             "(streamed); target >= 0.80 of the ideal throughput", "",
             "| concurrency | wall s | ideal s | fraction of ideal throughput | errors | p50 call ms |",
             "|---:|---:|---:|---:|---:|---:|",
             *[f"| {c} | {w:.3f} | {i:.3f} | {f:.2f} | {e} | {p:.1f} |" for c, w, i, f, e, p in rows]]
    sys.path.insert(0, str(ROOT / "bench"))
    from common import write_result

    write_result("runner", "Benchmark runner: concurrency against a 50 ms server", "\n".join(lines),
                 f"bench/runner.py --calls {args.calls} --delay-ms {args.delay_ms:g}")


if __name__ == "__main__":
    main()
