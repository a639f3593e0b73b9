"""A separate Python process for the persistence and concurrency tests.

    python worker.py START COUNT CHUNK OUT.npy [GO_FILE]

Embeds texts ``text {START}`` .. in calls of CHUNK texts through a Runtime built from
``$ELIZA_NB_HOME/config.toml`` (the fake provider), saves the vectors to OUT.npy and
prints one JSON line: how many texts the provider was asked for, and the warnings.
With GO_FILE it waits (bounded) for that file to appear first, so two workers start together.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fakeprov  # noqa: F401  (registers the fake protocol)
import numpy as np

from eliza_nb.core.runtime import Runtime


def main() -> None:
    start, count, chunk, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if len(sys.argv) > 5:
        deadline = time.monotonic() + 60
        while not os.path.exists(sys.argv[5]) and time.monotonic() < deadline:
            time.sleep(0.005)
    rt = Runtime()
    texts = [f"text {i}" for i in range(start, start + count)]
    parts = [rt.embed(texts[i:i + chunk]) for i in range(0, len(texts), chunk)]
    np.save(out, np.concatenate(parts), allow_pickle=False)
    provider = rt.adapter("fake")
    print(json.dumps({"provider_texts": len(provider.embedded), "warnings": rt.warnings}))
    rt.close()


if __name__ == "__main__":
    main()
