"""Other tools' venvs: each tool a user might pick instead, and the LiteLLM proxy the gateway
tests put in front of llama.cpp servers, installed apart from eliza_nb.

    python bench/envs.py          # create what is missing (make bench-envs); idempotent
    python bench/envs.py gateway  # only the named ones (make test builds "gateway")
    python bench/envs.py --check  # exit 1 if any is missing

They live in ``.venv-bench-*`` beside ``.venv`` (gitignored) and never touch eliza_nb's
own venv: jupyter-ai-magics 2.x needs openai < 3 and langchain 0.3, while the openai SDK a
user installs today is 3.x. Versions are pinned to what was measured (and known to work
together), so a rerun compares the same tools; a stamp file records the pins, and
changing them here rebuilds that venv. ``PIP_NO_INPUT`` keeps pip from ever prompting.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: venv name -> pinned requirements
ENVS: dict[str, list[str]] = {
    # the openai SDK and litellm (which drives it) as a user installs them now
    "sdk": ["openai==3.57.0", "litellm==1.110.2", "httpx==0.28.1"],
    # jupyter-ai's magics (%%ai) with its LangChain OpenAI provider; 2.x is the line with magics
    "jupyterai": ["jupyter-ai-magics==2.31.7", "langchain-openai==0.3.35", "langchain==0.3.30",
                  "langchain-community==0.3.31", "langchain-core==0.3.86", "openai==2.54.0", "ipython==9.18.1"],
    # a company gateway (tests/gateway): the proxy server; 1.106 is the last line whose [proxy]
    # extra installs from PyPI without the separate litellm-proxy package (1.108.x needs Python 3.14)
    "gateway": ["litellm[proxy]==1.106.12"],
}


def venv_dir(name: str) -> Path:
    return ROOT / f".venv-bench-{name}"


def python_for(name: str) -> Path | None:
    """The interpreter of a bench venv, or None when it is not (fully) built."""
    d = venv_dir(name)
    stamp = d / ".bench-pins"
    if not stamp.exists() or stamp.read_text() != "\n".join(ENVS[name]):
        return None
    return d / "bin" / "python"


def ensure(name: str) -> Path:
    """Create (or rebuild after a pin change) one bench venv; returns its python."""
    found = python_for(name)
    if found is not None:
        return found
    d = venv_dir(name)
    if d.exists():
        shutil.rmtree(d)
    base = os.environ.get("PYTHON") or shutil.which("python3") or sys.executable
    print(f">>> creating {d.name}: {' '.join(ENVS[name])}", flush=True)
    subprocess.run([base, "-m", "venv", str(d)], check=True)
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(d / "bin" / "python"), "-m", "pip", "install", "-q", *ENVS[name]], check=True, env=env)
    (d / ".bench-pins").write_text("\n".join(ENVS[name]))
    return d / "bin" / "python"


def main() -> None:
    if "--check" in sys.argv:
        missing = [n for n in ENVS if python_for(n) is None]
        if missing:
            print(f"missing bench venvs: {', '.join(missing)} (run: make bench-envs)")
            sys.exit(1)
        return
    names = [a for a in sys.argv[1:] if not a.startswith("-")] or list(ENVS)
    unknown = sorted(set(names) - set(ENVS))
    if unknown:
        sys.exit(f"unknown venv(s): {', '.join(unknown)}; known: {', '.join(ENVS)}")
    for name in names:
        print(f"{venv_dir(name).name}: {ensure(name)}")


if __name__ == "__main__":
    main()
