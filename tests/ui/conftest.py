"""Real-browser fixtures: JupyterLab (which also serves Notebook 7) on loopback, and a
Playwright page on Debian's chromium (never ``playwright install``).

The server and its kernels get their own Jupyter dirs, an ELIZA_NB_HOME holding the
converted embedding model, and no provider keys: everything runs on the local models.
Failures leave a screenshot and the server log under ``test-artifacts/ui/``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARTIFACTS = Path(os.environ.get("UI_ARTIFACTS", ROOT / "test-artifacts" / "ui"))
TOKEN = "eliza-nb-ui-test"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BIN = Path(sys.executable).parent  # jupyter from the same venv as pytest



def pytest_configure(config):
    config.addinivalue_line("markers", "ui: drives a real browser (JupyterLab / Notebook 7 + chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(url)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # jupyter_server shuts its kernels down on SIGTERM
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _server_env(root: Path, eliza_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_ACCESS_TOKEN")) and not k.endswith("_MODEL")}
    for k in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR"):
        d = root / k.lower()
        d.mkdir()
        env[k] = str(d)
    env["ELIZA_NB_HOME"] = str(eliza_home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# The notebook the browser drives. Cell indices are used by the tests: keep them in step.
CELLS = [
    "%load_ext eliza_nb\nimport eliza_nb\nprint('LOADED', eliza_nb.runtime().session.state.provider)",   # 0
    "%eliza panel -o panel",                                                                                 # 1
    "%%eliza generate --no-stream --max-tokens 4 -o r\nSay hello.",                                         # 2
    "print('USED temperature', r.settings['temperature'])",                                                 # 3
    "pg = eliza_nb.playground('What is the capital of France?', max_tokens=40)\npg",                                      # 4
    "print('PLAYGROUND', pg.chunks, pg.result is not None and not pg.result.interrupted, bool(pg.result and pg.result.text))",  # 5
    "texts = ['The cat sat on the mat.', 'A cat is lying on a rug.', 'Stock markets fell sharply today.',\n"
    "         'Shares dropped on Wall Street.', 'I like green apples.', 'Bananas are yellow.']\n"
    "ex = eliza_nb.explorer(texts, labels=['pets', 'pets', 'money', 'money', 'food', 'food'], k=3)\nex",     # 6
    "print('SELECTED', ex.selected, ex.neighbours().text.tolist() if ex.selected >= 0 else [])",             # 7
    "import pandas as pd\n"
    "runs = pd.DataFrame([dict(model=m, preset='precise', case_id=c, repeat=0, output='x', latency_s=l, ttft_s=l / 4,\n"
    "    prompt_tokens=10, completion_tokens=5, tokens_per_s=5 / l, cost_usd=0.0, cache_hit=False, score=s, error=None)\n"
    "    for m, l, s in [('fast', 0.1, 0.5), ('slow', 0.9, 1.0), ('mid', 0.4, 0.7)] for c in ('a', 'b')])\n"
    "eliza_nb.benchmark_view(runs)",                                                                          # 8
    "listed = eliza_nb.models('llama_local')\nprint('LISTED', len(listed))\npanel2 = eliza_nb.panel()\npanel2",  # 9
    "print('NEXT MODEL', eliza_nb.runtime().session.state.model)",                                          # 10
]


def write_notebooks(nbdir: Path) -> None:
    """One copy per UI, so JupyterLab and Notebook 7 each get their own kernel."""
    from lab import write_notebook

    for name in ("ui_lab.ipynb", "ui_nb7.ipynb"):
        write_notebook(nbdir / name, CELLS)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("ELIZA_NB_REQUIRE_BROWSER"):  # set by .ci/run: never skip there
            pytest.fail(f"chromium not found at {CHROMIUM} but ELIZA_NB_REQUIRE_BROWSER is set")
        pytest.skip("chromium not installed (apt-get install -y chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def jupyter(browser, tmp_path_factory, models_home):
    """`jupyter lab` on 127.0.0.1:<free port>; yields (base_url, token, notebook_dir, log_path).

    Depends on ``browser`` so that a machine without chromium skips before starting a server.
    """
    root = tmp_path_factory.mktemp("jupyter")
    nbdir = root / "nb"
    nbdir.mkdir()
    write_notebooks(nbdir)  # never let the UI save into the repo
    home = root / "eliza_home"
    shutil.copytree(models_home / "models", home / "models")
    settings = root / "user-settings"
    shutil.copytree(HERE / "lab-user-settings", settings)  # autoStartDefaultKernel, no news pop-up
    port = _free_port()
    log_path = root / "jupyter.log"
    cmd = [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={nbdir}",
           f"--LabApp.workspaces_dir={root / 'ws'}", f"--LabApp.user_settings_dir={settings}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           # window.jupyterapp, used only to wait until the kernel is really connected
           "--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # CI runs as root; without it the server refuses to start
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_server_env(root, home),
                                stdin=subprocess.DEVNULL, cwd=nbdir)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_http(f"{base}/api/status?token={TOKEN}", proc)
            yield base, TOKEN, nbdir, log_path
        finally:
            _stop(proc)


@pytest.fixture
def page(browser, jupyter, request):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:  # keep the evidence
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"{request.node.name}.png"
        pg.screenshot(path=str(shot), full_page=True)
        shutil.copy(jupyter[3], ARTIFACTS / f"{request.node.name}.jupyter.log")
        print(f"failure screenshot: {shot}")
    ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
