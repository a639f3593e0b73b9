"""A kernel stand-in that writes large batches into the embedding cache, for kill -9 tests.

    python writer.py PREFIX ROUNDS BATCH [GO_FILE]

Builds a Runtime on ``$ELIZA_NB_HOME`` with a fast in-process provider (``bulk``: 384-dim
vectors computed from the text, see :func:`expected`), then embeds ROUNDS batches of BATCH
texts ``{PREFIX} r{round} t{i}``; each batch is stored in one transaction. Prints
``ready``, then ``writing N`` / ``done N`` around each batch (flushed), and finally one
JSON line with the warnings. With GO_FILE it waits (bounded) for that file first.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from eliza_nb.core.registry import register_protocol
from eliza_nb.core.runtime import Runtime

DIMS = 384


def expected(texts: list[str]) -> np.ndarray:
    """The unit vector for ``"... r{round} t{i}"``: readable back without the provider."""
    out = np.ones((len(texts), DIMS), dtype=np.float32)
    for row, text in enumerate(texts):
        parts = text.split(" ")
        out[row, 0] = float(parts[-1][1:])
        out[row, 1] = float(parts[-2][1:])
        out[row, 2] = float(sum(map(ord, parts[0])))
    return out / np.linalg.norm(out, axis=1, keepdims=True)


class Bulk:
    def __init__(self, entry, ctx) -> None:
        self.id = entry.id

    def embed(self, texts, model, timeout_s=120.0):
        return expected(list(texts))

    def close(self) -> None:
        pass


register_protocol("bulk", Bulk)

CONFIG = {
    "providers": {"bulk": {"protocol": "bulk", "models": {"embedding": "bulk-embed"}, "embedding_dims": DIMS,
                           "embedding_batch_size": 100_000}},
    "defaults": {"provider": "bulk", "embedding_provider": "bulk"},
    "cache": {"memory_max_entries": 0},  # every lookup and store goes to disk
}


def main() -> None:
    prefix, rounds, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if len(sys.argv) > 4:
        deadline = time.monotonic() + 60
        while not os.path.exists(sys.argv[4]) and time.monotonic() < deadline:
            time.sleep(0.005)
    rt = Runtime(config=CONFIG, env={})
    print("ready", flush=True)
    for r in range(rounds):
        print(f"writing {r}", flush=True)
        rt.embed([f"{prefix} r{r} t{i}" for i in range(batch)])
        print(f"done {r}", flush=True)
    print(json.dumps({"warnings": rt.warnings}), flush=True)
    rt.close()


if __name__ == "__main__":
    main()
