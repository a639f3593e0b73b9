"""Re-record ``notebooks/providers.replay``: run providers.ipynb in record mode against the
loopback stand-in (tools/standin_server.py), with a throw-away home and fake keys.

    .venv/bin/python tools/record_providers.py

With real keys, record the real thing instead: open providers.ipynb with
``ELIZA_NB_RECORD=1`` and your keys set, and Run All (the first cells switch to record mode).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

NOTEBOOK = ROOT / "notebooks" / "providers.ipynb"
ARCHIVE = ROOT / "notebooks" / "providers.replay"
NOTE = ("recorded against a loopback stand-in (tools/standin_server.py): SmolLM2-135M and all-MiniLM-L6-v2 "
        "answering in each provider's wire format, not the real providers")


def main() -> int:
    import nbformat
    from nbclient import NotebookClient
    from standin_server import serve

    from eliza_nb.adapters.local_models import MINILM, converted_path
    from eliza_nb.core.catalog import Catalog
    from eliza_nb.core.home import home_dir
    from eliza_nb.core.replay.archive import load, save

    with tempfile.TemporaryDirectory(prefix="eliza-standin-") as tmp:
        home = Path(tmp) / "home"
        (home / "models").mkdir(parents=True)
        mine = converted_path(home_dir(), MINILM)
        if mine.exists():  # skip the conversion when this machine already has it
            for f in mine.parent.glob(mine.name + "*"):
                shutil.copy(f, home / "models" / f.name)
        server, base = serve(home)
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_ACCESS_TOKEN"))}
        env.update(ELIZA_NB_HOME=str(home), ELIZA_NB_RECORD="1", GOOGLE_CLOUD_PROJECT="standin-project")
        lines = []
        for entry in Catalog.load({}, {}):
            if entry.protocol == "llama_local":
                continue
            endpoint = {"openai": f"{base}/{entry.id}/v1", "anthropic": f"{base}/v1"}.get(entry.protocol, base)
            lines += [f"[providers.{entry.id}]", f'endpoint = "{endpoint}"', ""]
            if entry.key_env:
                env[entry.key_env[0]] = f"standin-{entry.id}-not-a-key"
        (home / "config.toml").write_text("\n".join(lines))
        nb = nbformat.read(NOTEBOOK, as_version=4)
        t0 = time.perf_counter()
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOK.parent)}})
        client.execute(env=env)
        server.shutdown()
    archive = load(ARCHIVE)
    archive.note = NOTE
    save(archive)
    print(f"recorded {len(archive.generations)} generations and {len(archive.embeddings)} embeddings "
          f"to {ARCHIVE} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
