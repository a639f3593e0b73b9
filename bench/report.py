"""Copy the latest tables from bench/results/*.md into docs/performance.md.

    .venv/bin/python bench/report.py

docs/performance.md explains each comparison in prose and marks where its table goes:

    <!-- results:overhead -->
    ...replaced by bench/results/overhead.md (without its heading)...
    <!-- /results:overhead -->

A result file that does not exist yet leaves its section as it was. Run by ``make bench``
after the benches, so the page always shows the numbers of the last full run.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
RESULTS = ROOT / "bench" / "results"
SECTION = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def fill(doc: str) -> tuple[str, list[str]]:
    updated: list[str] = []

    def swap(m: re.Match) -> str:
        path = RESULTS / f"{m.group('name')}.md"
        if not path.exists():
            return m.group(0)
        text = path.read_text(encoding="utf-8").strip()
        text = re.sub(r"\A## .*\n+", "", text)  # the doc has its own heading
        updated.append(m.group("name"))
        return f"{m.group(1)}{text}\n{m.group(4)}"

    return SECTION.sub(swap, doc), updated


def main() -> None:
    doc, updated = fill(DOC.read_text(encoding="utf-8"))
    DOC.write_text(doc, encoding="utf-8")
    print(f"docs/performance.md: updated {', '.join(updated) or 'nothing'}")
    missing = [p.stem for p in RESULTS.glob("*.md") if p.stem not in updated]
    if missing:
        print(f"results with no section in the doc: {', '.join(missing)}", file=sys.stderr)


if __name__ == "__main__":
    main()
