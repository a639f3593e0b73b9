"""Start-up: `import eliza_nb` and `%load_ext eliza_nb` in a fresh process, against the
tools a user would load instead (`import openai`, `import litellm`, `%load_ext
jupyter_ai_magics`), each from its own venv (bench/envs.py).

    .venv/bin/python bench/startup.py [--reps 15]

Every measurement is a new process. Inside it, the step itself is timed with
``perf_counter`` (for ``%load_ext`` an IPython ``InteractiveShell`` is made first, untimed:
a notebook has one before its first cell); the whole process's wall time is taken from
outside too. Subjects take turns, the order rotating each round; the first round only
warms the OS file cache and writes bytecode, and is dropped. Then one more process runs
``%load_ext eliza_nb`` under ``python -X importtime`` to say what it imports, and checks
that none of the heavy modules (numpy, pandas, httpx, llama_cpp, widgets, diskcache) is
among them: those load on first use.

Writes bench/results/startup.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, check, pct, table, write_result
from envs import python_for

TARGET = 0.100  # %load_ext eliza_nb
HEAVY = ("numpy", "pandas", "httpx", "llama_cpp", "ipywidgets", "anywidget", "diskcache", "gguf", "tqdm")

IMPORT = """
import time, json, sys
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
print(json.dumps({{"t": t1 - t0, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""
LOAD_EXT = """
import time, json, sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = set(sys.modules)
t0 = time.perf_counter()
shell.run_line_magic("load_ext", "{module}")
t1 = time.perf_counter()
assert "{magic}" in shell.magics_manager.magics["cell"], "the extension registered no %%{magic}"
print(json.dumps({{"t": t1 - t0, "heavy": [m for m in {heavy!r} if m in sys.modules and m not in before],
                   "modules": len(set(sys.modules) - before)}}))
"""
FIRST_RUNTIME = """
import time, json, sys
t0 = time.perf_counter()
import eliza_nb
eliza_nb.runtime()
t1 = time.perf_counter()
print(json.dumps({"t": t1 - t0, "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)  # noqa: UP031 - %-formatting: the template's braces are literal Python
BARE = 'import json; print(json.dumps({"t": 0.0, "heavy": []}))'
SHELL_ONLY = """
import time, json
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
InteractiveShell.instance()
print(json.dumps({"t": time.perf_counter() - t0, "heavy": []}))
"""

#: (label, venv or None for eliza_nb's, code, role)
SUBJECTS: list[tuple[str, str | None, str, str]] = [
    ("`import eliza_nb`", None, IMPORT.format(module="eliza_nb", heavy=HEAVY), "ours"),
    ("**`%load_ext eliza_nb`**", None, LOAD_EXT.format(module="eliza_nb", magic="eliza", heavy=HEAVY), "ours"),
    ("`import httpx` (reference: one HTTP client)", None, IMPORT.format(module="httpx", heavy=HEAVY), "ref"),
    ("`import openai`", "sdk", IMPORT.format(module="openai", heavy=HEAVY), "them"),
    ("`import litellm`", "sdk", IMPORT.format(module="litellm", heavy=HEAVY), "them"),
    ("`%load_ext jupyter_ai_magics`", "jupyterai", LOAD_EXT.format(module="jupyter_ai_magics", magic="ai", heavy=HEAVY), "them"),
    ("eliza_nb: `import` + first `eliza_nb.runtime()` (first call's set-up)", None, FIRST_RUNTIME, "context"),
    ("python start-up alone (`python -c pass`)", None, BARE, "base"),
    ("creating the IPython shell (before any `%load_ext`)", None, SHELL_ONLY, "base"),
]


def child_env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(ELIZA_NB_HOME=home, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")
    return env


def run_one(python: Path, code: str, env: dict[str, str]) -> tuple[float, float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(),
                          timeout=300)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return info["t"], wall, info


def what_load_ext_imports(env: dict[str, str]) -> list[tuple[str, float]]:
    """The largest cumulative imports of ``%load_ext eliza_nb`` (python -X importtime), in ms."""
    code = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\nsh = InteractiveShell.instance()\n"
            "print('MARK', file=sys.stderr, flush=True)\nsh.run_line_magic('load_ext', 'eliza_nb')\n")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir(), timeout=120)
    lines = proc.stderr.split("MARK", 1)[-1].splitlines()
    top = []
    for line in lines:
        if line.startswith("import time:") and "|" in line:
            _, cum, name = line.split("|")
            if not name.startswith("   "):  # top-level imports only (nested ones are inside these)
                top.append((name.strip(), int(cum.split(":")[-1]) / 1000))
    return sorted(top, key=lambda x: -x[1])[:8]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    notes: list[str] = []
    subjects = []
    for label, venv, code, role in SUBJECTS:
        python = Path(sys.executable) if venv is None else python_for(venv)
        if python is None:
            notes.append(f"{label}: skipped, .venv-bench-{venv} is missing (run `make bench-envs`).")
            continue
        subjects.append((label, python, code, role))
    inner: dict[str, list[float]] = {s[0]: [] for s in subjects}
    walls: dict[str, list[float]] = {s[0]: [] for s in subjects}
    heavy: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="eliza-bench-") as home:
        env = child_env(home)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "eliza_nb")], env=env, check=False,
                       capture_output=True)  # what pip install does for a user: bytecode on disk
        for r in range(args.reps + 1):
            k = r % len(subjects)
            for label, python, code, _ in subjects[k:] + subjects[:k]:
                try:
                    t, wall, info = run_one(python, code, env)
                except RuntimeError as exc:
                    notes.append(f"{label}: failed ({exc}).")
                    subjects = [s for s in subjects if s[0] != label]
                    continue
                if r:  # round 0 warms caches and writes bytecode
                    inner[label].append(t)
                    walls[label].append(wall)
                    heavy[label] = info.get("heavy", [])
        imports = what_load_ext_imports(env)

    med = {k: statistics.median(v) for k, v in inner.items() if v}
    wmed = {k: statistics.median(v) for k, v in walls.items() if v}
    ours = "**`%load_ext eliza_nb`**"
    base_py = wmed.get("python start-up alone (`python -c pass`)")
    rows = []
    for label, _, _, role in SUBJECTS:
        if label not in med:
            continue
        if role == "base":
            rows.append([label, f"{med[label] * 1000:.1f} ms" if med[label] else "", f"{wmed[label] * 1000:.0f} ms",
                         "", "", "", ""])
            continue
        ok = med[label] <= TARGET if label == ours else None
        rel = f"{med[label] / med[ours]:.1f}x" if ours in med and label != ours else ""
        rows.append([label, f"{med[label] * 1000:.1f} ms", f"{wmed[label] * 1000:.0f} ms",
                     f"{pct(inner[label], 90) * 1000:.1f} ms", rel, "<= 100 ms" if label == ours else "", check(ok)])
    body = table(["step, fresh process", "median (the step itself)", "median process wall time", "p90 (step)",
                  "vs `%load_ext eliza_nb`", "target", "met"], rows)
    loaded = heavy.get(ours)
    body += (f"\n\n{args.reps} fresh processes per row, rows taking turns. \"The step itself\" is timed inside the "
             "process (the import, or the `%load_ext` after the shell exists); the wall time adds the interpreter's "
             f"own start-up ({base_py * 1000:.0f} ms here) and, for `%load_ext`, creating the shell. "
             if base_py else "")
    body += (f"Heavy modules loaded by `%load_ext eliza_nb`: {', '.join(loaded) if loaded else 'none'} "
             f"(checked: {', '.join(HEAVY)}). ")
    if imports:
        body += "Its largest imports (`-X importtime`, cumulative): " + ", ".join(f"{n} {t:.1f} ms" for n, t in imports) + ". "
    body += " ".join(notes)
    write_result("startup", "Start-up: import and %load_ext in a fresh process", body, f"bench/startup.py --reps {args.reps}")


if __name__ == "__main__":
    main()
