"""What every bench script shares: percentiles, markdown tables, and writing results.

Every table is printed and written to ``bench/results/NAME.md`` with a line saying when,
where and how it was measured; ``bench/report.py`` copies the tables into
docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def pct(xs: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; the median for 50."""
    if q == 50:
        return statistics.median(xs)
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ms(seconds: float | None, digits: int = 2) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.{digits}f} ms"


def ratio(a: float | None, b: float | None, digits: int = 2) -> str:
    return "—" if a is None or b in (None, 0) else f"{a / b:.{digits}f}x"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A markdown table; ``align`` is one letter per column (l / r), right by default after the first."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    return (f"Python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}, "
            f"load average {os.getloadavg()[0]:.1f} at the end")


def write_result(name: str, title: str, body: str, how: str) -> str:
    """Print and save ``bench/results/NAME.md``; returns the text."""
    text = (f"## {title}\n\n{body.rstrip()}\n\n"
            f"<sub>`{how}` — {time.strftime('%Y-%m-%d %H:%M')}, {machine()}.</sub>\n")
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text, encoding="utf-8")
    return text


def check(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "**no**")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("a helper module; run the bench scripts instead")
