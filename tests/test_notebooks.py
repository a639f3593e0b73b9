"""The tour notebooks executed headlessly in a real kernel, outputs asserted."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(name: str, timeout: int = 300):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def text_of(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "data" in o:
            parts.append(o.data.get("text/plain", ""))
    return "".join(parts)


def cell_with(nb, snippet: str):
    return next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)


@pytest.mark.timeout(600)
def test_quickstart(home):
    nb = run_notebook("quickstart.ipynb")
    answer = cell_with(nb, "%%eliza generate")
    out = answer.outputs[-1]
    assert "Paris" in out.data["text/markdown"]
    assert out.metadata["eliza_nb"]["provider"] == "llama_local"
    assert "Paris" in text_of(cell_with(nb, "print(answer.text)"))
    assert "(384,) float32 1.0" in text_of(cell_with(nb, "%eliza embed -o v"))
    sim = text_of(cell_with(nb, "similarity"))
    assert "A cat is lying on a rug." in sim
    # the parameter panel: a widget view, a readable text fallback, bound to the session
    panel = next(o for o in cell_with(nb, "%eliza panel").outputs if "data" in o)
    assert "application/vnd.jupyter.widget-view+json" in panel.data
    assert panel.data["text/plain"].startswith("eliza_nb parameters: llama_local:smollm2-135m-instruct")
    assert panel.metadata["eliza_nb"]["widget"] == "ParameterPanel"
    assert "slider: 0.1" in text_of(cell_with(nb, "%eliza config set temperature 0.1"))
    explorer = next(o for o in cell_with(nb, "eliza_nb.explorer(").outputs if "data" in o)
    assert "application/vnd.jupyter.widget-view+json" in explorer.data and explorer.data["text/html"].count("<circle") == 5
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(m["model_name"] == "AnyModel" for m in state.values())  # saved, so static exports can show it
    usage = text_of(cell_with(nb, "eliza_nb.usage()"))
    assert "smollm2-135m-instruct" in usage and "all-minilm-l6-v2" in usage
    # no tracebacks anywhere
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
