"""The widgets at scale in a real browser: JupyterLab on loopback + Debian's headless chromium
(as tests/ui/conftest.py starts them, whose helpers this imports), the EmbeddingExplorer at
10k, 100k and 1M points and, through bench/widgets_table.py (``benchview_rows``), the
BenchmarkView at 2k, 20k and 100k rows.

    .venv/bin/python bench/widgets.py [--sizes 10000,100000,1000000] [--no-benchview] [--nodelay]

Per explorer size, a fresh notebook and kernel: an untimed cell makes n clustered 384-dim
float32 vectors with texts and five labels; the timed cell builds the explorer (``python s``)
and displays it. Then, in the page:

- built → drawn: from the end of the build (kernel clock) to the first full draw (the page
  writes ``Date.now()`` then; same machine, same clock);
- hover: the mouse is put on 12 points spread over the data, one after the other; the page
  times each from the pointer event to the text (asked of the kernel) in the tooltip;
- click: 6 of those points clicked; timed from the request to the neighbour list drawn;
- pan: frames (requestAnimationFrame intervals) over 50 ms during a 40-step drag and 5 wheel
  zooms;
- memory: the page's JS heap (CDP ``Performance.getMetrics``) before the cell and after the
  interactions, and the explorer's own typed arrays (which live outside that heap);
- saved notebook: JupyterLab saves it with widget state (saveState on, as in the UI tests and
  Binder); its size on disk, and the widget-state part of it.

Every explorer row also gives the page's bare kernel round trip (``requestKernelInfo``), the
floor under hover and click. jupyter_server writes kernel messages to the browser's websocket
with Nagle's algorithm on (tornado's default; it never calls ``set_nodelay``), so a small reply
waits for the browser's delayed ACK, about 40 ms on Linux. ``--nodelay`` starts the server with
a config file that turns TCP_NODELAY on (``NODELAY_CONFIG`` below) to show the difference.

Goals (issue 20): 1M points drawn within 3 s of the Python work, which is under 5 s; hover
and click under 50 ms at 1M. Writes bench/results/widgets.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, check, pct, table, write_result

UI = ROOT / "tests" / "ui"
sys.path.insert(0, str(UI))

GOAL_PY_S, GOAL_DRAW_S, GOAL_LATENCY_MS = 5.0, 3.0, 50.0

SETUP = """import json, time
import numpy as np
from IPython.display import display
from eliza_nb.notebook.widgets import EmbeddingExplorer
rng = np.random.default_rng(0)
n, d = {n}, 384
names = ['alpha', 'beta', 'gamma', 'delta', 'omega']
topic = rng.integers(0, 5, n)
vecs = rng.standard_normal((n, d), dtype=np.float32)
vecs += (rng.standard_normal((5, d), dtype=np.float32) * 2)[topic]
texts = [f'text {{i}} about {{names[t]}}' for i, t in enumerate(topic.tolist())]
labels = [names[t] for t in topic.tolist()]
print('READY', n)"""
BUILD = """t0 = time.perf_counter()
ex = EmbeddingExplorer(texts, vectors=vecs, labels=labels)
PY_S, BUILT_AT = time.perf_counter() - t0, time.time()
t1 = time.perf_counter()
display(ex)
DISPLAY_S = time.perf_counter() - t1"""
REPORT = """t = time.perf_counter(); ex.neighbours(5); NN_S = time.perf_counter() - t
print('BENCH ' + json.dumps({'python_s': PY_S, 'display_s': DISPLAY_S, 'built_at': BUILT_AT, 'nn_s': NN_S}))"""

ROUND_TRIP = """async () => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const out = []; for (let i = 0; i < 12; i++) { const t = performance.now(); await k.requestKernelInfo();
  out.push(performance.now() - t); } return out.slice(2); }"""
NODELAY_CONFIG = (ROOT / "binder" / "jupyter_server_config.py").read_text()  # what Binder installs
FRAMES_START = """() => { window.__frames = []; window.__framesOn = true; let last = performance.now();
  const loop = (t) => { window.__frames.push(t - last); last = t; if (window.__framesOn) requestAnimationFrame(loop); };
  requestAnimationFrame(loop); }"""
FRAMES_STOP = "() => { window.__framesOn = false; return window.__frames.slice(1); }"
SAVE = """async () => { const w = window.jupyterapp.shell.currentWidget;
  await window.jupyterapp.commands.execute('docmanager:save'); return w.context.model.dirty; }"""


def heap_mb(cdp) -> float:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics.get("JSHeapUsedSize", 0) / 1e6


def delete_sessions(base: str, token: str) -> None:
    """Shut the kernels down between sizes (a 1M-point kernel holds a few GB)."""
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}") as r:
        sessions = json.load(r)
    for s in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{s['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req).close()


def explorer_row(browser, base: str, token: str, nbdir: Path, n: int) -> dict[str, Any]:
    from lab import open_notebook, output, run_all, write_notebook

    name = f"explorer_{n}.ipynb"
    write_notebook(nbdir / name, [SETUP.format(n=n), BUILD, REPORT])
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(600_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    cdp = ctx.new_cdp_session(page)
    cdp.send("Performance.enable")
    try:
        open_notebook(page, f"{base}/lab/tree/{name}?token={token}&reset")
        heap0 = heap_mb(cdp)
        run_all(page)
        cells = page.locator(".jp-Notebook .jp-Cell")
        root = page.locator(".eliza-explorer")
        root.wait_for()
        page.wait_for_function("() => document.querySelector('.eliza-explorer')?.dataset.drawn === '1'", timeout=600_000)
        out = output(cells, 2)
        out.filter(has_text="BENCH").wait_for(timeout=600_000)
        kernel = json.loads(out.inner_text().split("BENCH ", 1)[1].strip().splitlines()[0])
        drawn_at = float(root.get_attribute("data-drawn-at"))
        row: dict[str, Any] = {
            "widget": "EmbeddingExplorer", "size": n, "python_s": kernel["python_s"], "display_s": kernel["display_s"],
            "built_to_drawn_ms": drawn_at - kernel["built_at"] * 1000,
            "render_to_drawn_ms": float(root.get_attribute("data-first-draw-ms")),
            "redraw_ms": float(root.get_attribute("data-draw-ms")), "renderer": root.get_attribute("data-renderer"),
            "kernel_nn_ms": kernel["nn_s"] * 1000,
        }
        root.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        row["kernel_rt_ms"] = pct(page.evaluate(ROUND_TRIP), 50)

        # -- hover: one point after another, each text asked of the kernel --------------------
        hovers = []
        for k in range(12):
            i = (k * 7919 + 11) % n
            pos = root.evaluate("(el, i) => el.__explorer.screenOf(i)", i)
            j = root.evaluate("(el, p) => el.__explorer.pick(p.x, p.y)", pos)
            page.mouse.move(pos["x"], pos["y"])
            page.wait_for_function("j => document.querySelector('.eliza-explorer-tooltip')?.dataset.index === String(j)", arg=j)
            hovers.append(float(root.get_attribute("data-hover-ms")))
        # -- click: the neighbour list, computed in the kernel for that point -----------------
        clicks, lookups = [], []
        for k in range(6):
            i = (k * 104_729 + 5) % n
            pos = root.evaluate("(el, i) => el.__explorer.screenOf(i)", i)
            j = root.evaluate("(el, p) => el.__explorer.pick(p.x, p.y)", pos)
            root.evaluate("el => { delete el.dataset.clickMs; }")
            page.mouse.click(pos["x"], pos["y"])
            page.wait_for_function("() => document.querySelector('.eliza-explorer')?.dataset.clickMs !== undefined")
            assert root.locator(".eliza-explorer-neighbour").count() == 5
            clicks.append(float(root.get_attribute("data-click-ms")))
            lookups.append(float(root.get_attribute("data-click-kernel-ms")))
            del j
        # -- pan and zoom: frames over 50 ms --------------------------------------------------
        box = root.locator("canvas.eliza-explorer-overlay").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.evaluate(FRAMES_START)
        page.mouse.down()
        for s in range(40):
            page.mouse.move(cx + 3 * s, cy + 2 * s)
        page.mouse.up()
        for _ in range(5):
            page.mouse.wheel(0, -120)
            page.wait_for_timeout(30)
        page.wait_for_timeout(400)  # the full redraw once the view is still
        frames = page.evaluate(FRAMES_STOP)
        row.update(hover_p50_ms=pct(hovers, 50), hover_p95_ms=pct(hovers, 95), click_p50_ms=pct(clicks, 50),
                   click_max_ms=max(clicks), click_kernel_p50_ms=pct(lookups, 50),
                   frames=len(frames), slow_frames=sum(f > 50 for f in frames), worst_frame_ms=max(frames) if frames else 0.0)
        row["heap_mb"] = heap_mb(cdp) - heap0
        row["arrays_mb"] = root.evaluate("el => el.__explorer.bytes()") / 1e6
        # -- saved with widget state ----------------------------------------------------------
        page.evaluate(SAVE)
        page.wait_for_timeout(500)
        nb = json.loads((nbdir / name).read_text())
        row["saved_mb"] = (nbdir / name).stat().st_size / 1e6
        row["state_mb"] = len(json.dumps(nb["metadata"].get("widgets", {}))) / 1e6
        row["outputs_kb"] = len(json.dumps([c.get("outputs", []) for c in nb["cells"]])) / 1024
        row["errors"] = errors
        return row
    finally:
        ctx.close()
        delete_sessions(base, token)


def start_lab(root: Path, nodelay: bool = False):
    """JupyterLab as tests/ui/conftest.py starts it; returns (process, base url, notebook dir)."""
    import conftest as ui

    nbdir = root / "nb"
    nbdir.mkdir()
    home = root / "eliza_home"
    home.mkdir()
    settings = root / "user-settings"
    shutil.copytree(UI / "lab-user-settings", settings)  # saveState on, no news pop-up
    port = ui._free_port()
    cmd = [str(ui.BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={ui.TOKEN}", f"--ServerApp.root_dir={nbdir}",
           f"--LabApp.workspaces_dir={root / 'ws'}", f"--LabApp.user_settings_dir={settings}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    env = ui._server_env(root, home)
    if nodelay:
        (Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.py").write_text(NODELAY_CONFIG)
    log = open(root / "jupyter.log", "w")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            stdin=subprocess.DEVNULL, cwd=nbdir)
    base = f"http://127.0.0.1:{port}"
    ui._wait_http(f"{base}/api/status?token={ui.TOKEN}", proc)
    return proc, base, nbdir


def fmt(v: Any, digits: int = 0) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--no-benchview", action="store_true")
    ap.add_argument("--nodelay", action="store_true", help="TCP_NODELAY on the server's websockets")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    import conftest as ui
    from playwright.sync_api import sync_playwright

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    table_detail = ""
    with tempfile.TemporaryDirectory(prefix="bench-widgets-") as tmp, sync_playwright() as p:
        proc, base, nbdir = start_lab(Path(tmp), args.nodelay)
        browser = p.chromium.launch(executable_path=ui.CHROMIUM, args=ui.CHROMIUM_ARGS)
        try:
            for n in sizes:
                t = time.perf_counter()
                row = explorer_row(browser, base, ui.TOKEN, nbdir, n)
                print(f"explorer {n:,}: {time.perf_counter() - t:.0f} s wall", json.dumps(row), flush=True)
                rows.append(row)
            if not args.no_benchview:
                try:
                    from widgets_table import benchview_rows, markdown
                except ImportError as e:
                    notes.append(f"BenchmarkView rows missing: bench/widgets_table.py not importable ({e}).")
                else:
                    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = ctx.new_page()
                    page.set_default_timeout(300_000)
                    try:
                        bv = benchview_rows(page, nbdir, lambda path: f"{base}/lab/tree/{path.name}?token={ui.TOKEN}&reset")
                        rows += bv
                        table_detail = markdown(bv)
                    except Exception as e:  # report it rather than lose the explorer's figures
                        notes.append(f"BenchmarkView rows failed: {type(e).__name__}: {e}")
                    finally:
                        ctx.close()
                        delete_sessions(base, ui.TOKEN)
        finally:
            browser.close()
            ui._stop(proc)

    headers = ["widget", "size", "python s", "built → drawn ms", "kernel round trip ms", "hover p50 / p95 ms", "click p50 / max ms",
               "frames > 50 ms (of)", "JS heap + arrays MB", "saved .ipynb MB (state)", "sort ms"]
    body_rows = []
    for r in rows:
        if r["widget"] == "EmbeddingExplorer":
            body_rows.append([r["widget"], f"{r['size']:,}", fmt(r["python_s"], 2), fmt(r["built_to_drawn_ms"]), fmt(r["kernel_rt_ms"], 1),
                              f"{fmt(r['hover_p50_ms'], 1)} / {fmt(r['hover_p95_ms'], 1)}",
                              f"{fmt(r['click_p50_ms'], 1)} / {fmt(r['click_max_ms'], 1)}",
                              f"{r['slow_frames']} ({r['frames']})", f"{fmt(r['heap_mb'], 1)} + {fmt(r['arrays_mb'], 1)}",
                              f"{fmt(r['saved_mb'], 2)} ({fmt(r['state_mb'], 2)})", "—"])
        else:
            body_rows.append([r.get("widget", "?"), f"{r.get('size', 0):,}", fmt(r.get("python_s"), 2), fmt(r.get("first_draw_ms")),
                              "—", "—", "—", "—", "—", "—", fmt(r.get("sort_ms"))])
    body = table(headers, body_rows)
    big = [r for r in rows if r["widget"] == "EmbeddingExplorer" and r["size"] >= 1_000_000]
    if big:
        r = big[0]
        body += ("\n\nGoals at 1M points: Python work under 5 s: "
                 f"{check(r['python_s'] < GOAL_PY_S)} ({r['python_s']:.2f} s); drawn within 3 s of it: "
                 f"{check(r['built_to_drawn_ms'] < GOAL_DRAW_S * 1000)} ({r['built_to_drawn_ms'] / 1000:.2f} s); "
                 f"hover under 50 ms: {check(r['hover_p50_ms'] < GOAL_LATENCY_MS)} (p50); "
                 f"click under 50 ms: {check(r['click_p50_ms'] < GOAL_LATENCY_MS)} (p50).")
    detail = [f"{r['size']:,}: renderer {r['renderer']}, display(ex) {r['display_s']:.2f} s, render() to drawn "
              f"{r['render_to_drawn_ms']:.0f} ms, one redraw {r['redraw_ms']:.0f} ms (JS side), "
              f"neighbour look-up in the kernel {r['kernel_nn_ms']:.0f} ms in a cell, {r['click_kernel_p50_ms']:.0f} ms p50 "
              f"of the clicks, worst frame {r['worst_frame_ms']:.0f} ms, "
              f"outputs {r['outputs_kb']:.0f} kB, page errors {len(r['errors'])}"
              for r in rows if r["widget"] == "EmbeddingExplorer"]
    body += "\n\n" + "\n".join(f"- {d}" for d in detail + notes)
    if table_detail:
        body += "\n\nBenchmarkView in detail (bench/widgets_table.py):\n\n" + table_detail
    body += ("\n\n*built → drawn*: end of the widget's Python build (kernel clock) to the first full draw in the page "
             "(serialising, sending, decoding, the grid index and the draw; for the BenchmarkView its first rows "
             "painted, as benchview_rows measures it). *sort*: the first sort of a numeric column. Hover and click "
             "are timed in the page from the pointer event / the request to the text or neighbour list shown, kernel "
             "round trip included. JS heap (a difference, noisy: garbage collection) excludes ArrayBuffer backing "
             "stores, given separately as the explorer's typed arrays.")
    if args.nodelay:
        body += " This run: the server with TCP_NODELAY on its websockets (--nodelay)."
    write_result("widgets", "Widgets at scale in JupyterLab + headless chromium", body,
                 "python bench/widgets.py --sizes " + ",".join(map(str, sizes)) + (" --nodelay" if args.nodelay else ""))


if __name__ == "__main__":
    main()
