"""Command line: ``python -m eliza_nb prepare | demo | info``.

prepare  check the local model packages and convert the embedding model (once)
demo     execute notebooks/quickstart.ipynb headlessly and print its key results
info     where the home, config, cache and models are
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _prepare() -> int:
    from .adapters.local_models import MINILM, SMOLLM2, package_path, prepare_embedding_model, setup_problem
    from .core.errors import ElizaError
    from .core.home import home_dir

    home = home_dir()
    problem = setup_problem()  # every missing package in one command, not one per run
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        chat = package_path(SMOLLM2)
        t0 = time.perf_counter()
        emb = prepare_embedding_model(home, MINILM, warn=lambda m: print(f"note: {m}"))
    except ElizaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"chat model      {chat}")
    print(f"embedding model {emb} ({time.perf_counter() - t0:.2f} s)")
    return 0


def _demo(notebook: Path, out: Path, timeout: int) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute()
        ok = True
    except CellExecutionError as exc:
        print(f"error: a cell failed: {str(exc).splitlines()[0] if str(exc) else exc}", file=sys.stderr)
        ok = False
    nbformat.write(nb, out)
    print(f"executed {notebook} in {time.perf_counter() - t0:.1f} s -> {out}")
    for cell in nb.cells:
        if "key-result" not in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain")
            if text:
                text = "".join(text) if isinstance(text, list) else text
                print("  " + text.strip().replace("\n", "\n  "))
    return 0 if ok else 1


def _info() -> int:
    from .core.home import config_path, home_dir

    home = home_dir()
    print(f"home    {home}  (set ELIZA_NB_HOME to move it)")
    print(f"config  {config_path(home)}{'' if config_path(home).exists() else '  (not created)'}")
    print(f"models  {home / 'models'}")
    print(f"cache   {home / 'cache'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eliza_nb")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="check model packages, convert the embedding model")
    demo = sub.add_parser("demo", help="execute the quickstart notebook headlessly")
    demo.add_argument("--notebook", type=Path, default=Path("notebooks/quickstart.ipynb"))
    demo.add_argument("--out", type=Path, default=None)
    demo.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    sub.add_parser("info", help="where eliza_nb keeps its files")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return _prepare()
    if args.command == "demo":
        out = args.out or args.notebook.with_name(args.notebook.stem + ".executed.ipynb")
        return _demo(args.notebook, out, args.timeout)
    return _info()


if __name__ == "__main__":
    sys.exit(main())
