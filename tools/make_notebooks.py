"""Regenerate the tour notebooks from the cell lists below (outputs stripped).

Keeping the source here makes notebook diffs readable and the notebooks reproducible:
    .venv/bin/python tools/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent / "notebooks"


def key(source: str):
    """A code cell whose output `make demo` prints as a key result."""
    return new_code_cell(source, metadata={"tags": ["key-result"]})


QUICKSTART = [
    new_markdown_cell(
        "# eliza_nb quickstart\n\n"
        "Everything here runs on the embedded local models (SmolLM2-135M-Instruct for chat, "
        "all-MiniLM-L6-v2 for embeddings): no API key, no download. Set a provider key "
        "(e.g. `OPENAI_API_KEY`) and add `-p openai` to use a remote model instead."
    ),
    new_code_cell("%load_ext eliza_nb\nimport eliza_nb\neliza_nb.runtime()"),
    new_markdown_cell("## Generate\n`{country}` is filled from the notebook's variables; the answer streams into the cell, then renders as markdown with a footer: provider, model, tokens, latency."),
    new_code_cell('country = "France"'),
    key("%%eliza generate --temperature 0 --max-tokens 40 -o answer\nWhat is the capital of {country}?"),
    key('print(answer.text)\nprint(answer.provider, answer.model, answer.usage)'),
    new_markdown_cell("The same from Python; a preset sets temperature and penalties in one word (`creative`, `balanced`, `precise`)."),
    key('r = eliza_nb.generate("Name three primary colours.", preset="precise", max_tokens=40)\nprint(r.text)\nprint(r.footer())'),
    new_markdown_cell("## Embed\n384-dimensional unit vectors from all-MiniLM-L6-v2, computed in process."),
    key("%eliza embed -o v The cat sat on the mat.\nprint(v.shape, v.dtype, round(float((v ** 2).sum()), 4))"),
    key(
        "import pandas as pd\n"
        "texts = [\"The cat sat on the mat.\", \"A cat is lying on a rug.\", \"Stock markets fell sharply today.\"]\n"
        "vecs = eliza_nb.embed(texts)\n"
        "similarity = pd.DataFrame(vecs @ vecs.T, index=texts, columns=texts).round(3)\n"
        "similarity"
    ),
    new_markdown_cell("Each text as a point (PCA of the vectors): hover a point to read it, click it to list its nearest neighbours."),
    new_code_cell("eliza_nb.explorer(texts + [\"Shares dropped on Wall Street.\", \"I like green apples.\"])"),
    new_markdown_cell(
        "## Tune\n"
        "The parameter panel shows what the next call uses, and is bound to it both ways: move the "
        "temperature slider and the next `%%eliza generate` uses that value; `%eliza config set` moves "
        "the slider. `↺` unsets a value (back to the preset or the catalog). Where widgets cannot render "
        "(a static export), a line of text says what is set."
    ),
    key("%eliza panel -o panel"),
    key("%eliza config set temperature 0.1\nprint('slider:', panel.sliders['temperature'].value)"),
    new_code_cell("%eliza config"),
    new_code_cell("%eliza config reset"),
    new_markdown_cell("`%eliza panel --playground` adds a prompt box whose answer streams in on a background thread; `%eliza providers` lists every provider and whether its key is set."),
    new_code_cell("%eliza providers"),
    new_markdown_cell("## What it cost\nEvery call is in the session's usage ledger (`%eliza usage` shows it with totals)."),
    key('eliza_nb.usage()[["kind", "provider", "model", "prompt_tokens", "completion_tokens", "latency_s"]]'),
]


def write(name: str, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = ROOT / name
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    ROOT.mkdir(exist_ok=True)
    print(write("quickstart.ipynb", QUICKSTART))
