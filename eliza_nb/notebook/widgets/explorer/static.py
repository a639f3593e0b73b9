"""What the explorer shows where the widget cannot run (exports, non-widget front ends,
untrusted notebooks): a small static SVG.

Linear in the number of points and capped in size: it draws an evenly spaced sample of at
most ``MAX_POINTS`` points, one SVG path per label, with no texts. (The "re-run the cell to
reconnect" note for a notebook reopened without widget state is ../reconnect.py.)
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]
MAX_POINTS = 2_000


def static_svg(xy: np.ndarray, codes: np.ndarray | None, legend: Sequence[str], title: str,
               w: int = 480, h: int = 320, max_points: int = MAX_POINTS) -> str:
    """The scatter plot as a self-contained SVG of at most ``max_points`` dots (a few tens
    of kB whatever the number of points), with a legend and a "showing N of M" note."""
    n = len(xy)
    if n == 0:
        return f"<div>{html.escape(title)}: no points</div>"
    pad = 12
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    take = np.unique(np.linspace(0, n - 1, min(n, max_points)).astype(np.int64))
    p = (xy[take] - lo) / span
    p[:, 0] = np.where(hi[0] > lo[0], p[:, 0], 0.5)
    p[:, 1] = np.where(hi[1] > lo[1], p[:, 1], 0.5)
    px = np.rint(pad + p[:, 0] * (w - 2 * pad)).astype(np.int64)
    py = np.rint(h - pad - p[:, 1] * (h - 2 * pad)).astype(np.int64)
    group = np.zeros(len(take), dtype=np.int64) if codes is None else codes[take].astype(np.int64)
    paths = []
    for g in np.unique(group):
        sel = group == g
        cells = np.unique(px[sel] * 4096 + py[sel])  # one dot per pixel is enough
        d = "".join(f"M{c // 4096} {c % 4096}h0" for c in cells.tolist())
        paths.append(f"<path d='{d}' stroke='{PALETTE[int(g) % len(PALETTE)]}'/>")
    keys = "".join(
        f"<span style='margin-right:10px'><span style='color:{PALETTE[i % len(PALETTE)]}'>●</span> "
        f"{html.escape(str(name)[:40])}</span>" for i, name in enumerate(list(legend)[:12]))
    more = f" (+{len(legend) - 12} more labels)" if len(legend) > 12 else ""
    note = f"static picture: showing {len(take):,} of {n:,} points; run the notebook for the interactive explorer"
    return (f"<div class='eliza-explorer-static'><div style='font-weight:600'>{html.escape(title)}</div>"
            f"<svg width='{w}' height='{h}' viewBox='0 0 {w} {h}' style='border:1px solid #ddd'>"
            f"<g fill='none' stroke-width='4' stroke-linecap='round' stroke-opacity='0.6'>{''.join(paths)}</g></svg>"
            f"<div style='font-size:12px'>{keys}{more}</div>"
            f"<div style='font-size:12px;color:#777'>{note}</div></div>")
