"""The tour notebooks executed headlessly in a real kernel, outputs asserted."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from eliza_nb.core.catalog import Catalog
from eliza_nb.core.types import ModelClass

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
    assert "application/vnd.jupyter.widget-view+json" in explorer.data and "showing 5 of 5 points" in explorer.data["text/html"]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(m["model_name"] == "AnyModel" for m in state.values())  # saved, so static exports can show it
    usage = text_of(cell_with(nb, "eliza_nb.usage()"))
    assert "smollm2-135m-instruct" in usage and "all-minilm-l6-v2" in usage
    # no tracebacks anywhere
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]


def outputs_with(nb, snippet: str) -> list:
    return [o for o in cell_with(nb, snippet).get("outputs", []) if "data" in o]


def no_errors(nb) -> None:
    errors = [(c.source[:60], o.ename, o.evalue) for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors


@pytest.mark.timeout(600)
def test_tuning(home):
    nb = run_notebook("tuning.ipynb")
    no_errors(nb)
    presets = text_of(cell_with(nb, "presets.table()"))
    assert all(p in presets for p in ("creative", "balanced", "precise"))
    assert "preset precise" in text_of(cell_with(nb, "%eliza config set preset precise"))  # the source column
    assert "session: creative 0.3" in text_of(cell_with(nb, 'panel.preset.value = "creative"'))
    assert "after reset: None" in text_of(cell_with(nb, "%eliza config reset"))
    # temperature 0: one answer whatever the seed; 1.4: the seeds differ
    counts = text_of(cell_with(nb, "distinct answers per temperature"))
    assert "'t=0.0': 1" in counts and "'t=1.4': 1" not in counts
    budgets = text_of(cell_with(nb, "budgets = pd.DataFrame(rows)"))
    assert "truncated the prompt from" in budgets and "keep-recent" in budgets and "middle-out" in budgets
    assert "(refused)" in budgets and "truncation is off" in budgets
    assert "112" in budgets.split("head-tail")[0]  # keep-recent keeps the note the question is about
    # the grid: 2 temperatures x 2 prompts x 6 cases x 2 repeats, costed first, summarised with intervals, compared
    estimate = text_of(cell_with(nb, "dry_run=True"))
    assert "llama_local" in estimate and " 48 " in estimate
    grid = text_of(cell_with(nb, "runs = eliza_nb.benchmark("))
    assert "48 rows, 4 configurations, saved as run " in grid and "score_lo" in grid and "temperature=1 · prompt=terse" in grid
    verdict = text_of(cell_with(nb, "verdict = runs.compare("))
    assert "95% interval" in verdict and "over 6 cases" in verdict
    assert ("distinguishable" in verdict) or ("too few" in verdict)
    assert "has the best mean score" in text_of(cell_with(nb, "print(runs.best())"))
    assert "finished" in text_of(cell_with(nb, "eliza_nb.bench_runs()"))


@pytest.mark.timeout(600)
def test_embeddings(home):
    nb = run_notebook("embeddings.ipynb")
    no_errors(nb)
    assert "12 texts -> (384,) float32" in text_of(cell_with(nb, 'df["vector"] = eliza_nb.embed(df.text)'))
    stats = text_of(cell_with(nb, "eliza_nb.cache.stats()"))
    assert "disk" in stats and "memory" in stats and "all-minilm-l6-v2" in stats
    fresh = text_of(cell_with(nb, "subprocess.run"))
    assert "provider calls: 0; disk hits: 12" in fresh
    hashes = [line.split()[-1] for line in fresh.splitlines() if "sha256" in line]
    assert len(hashes) == 2 and hashes[0] == hashes[1]  # a restart gets bit-identical vectors from disk
    top = text_of(cell_with(nb, 'eliza_nb.similar("How do I keep my sourdough alive?"')).splitlines()[1]
    assert "sourdough starter" in top
    assert "rocket" in text_of(cell_with(nb, "%eliza similar rockets")).splitlines()[1]
    explorer = outputs_with(nb, "eliza_nb.explorer(df")[0]
    assert "application/vnd.jupyter.widget-view+json" in explorer.data and "showing 12 of 12 points" in explorer.data["text/html"]


@pytest.mark.timeout(600)
def test_benchmark(home):
    nb = run_notebook("benchmark.ipynb")
    no_errors(nb)
    assert "24 runs" in text_of(cell_with(nb, "results = eliza_nb.benchmark("))
    summary = text_of(cell_with(nb, "summary = results.summary()"))
    assert all(p in summary for p in ("precise", "balanced", "creative")) and "p50_latency_s" in summary
    chart = outputs_with(nb, "results.chart()")[0]
    assert "<svg" in chart.data.get("image/svg+xml", "") + chart.data.get("text/html", "")
    view = outputs_with(nb, "eliza_nb.benchmark_view(results)")[0]
    assert "application/vnd.jupyter.widget-view+json" in view.data
    usage = text_of(cell_with(nb, 'eliza_nb.usage(by="model")'))
    assert "smollm2-135m-instruct" in usage and " 24 " in usage
    cost = text_of(cell_with(nb, "estimated_usd"))
    # the cell prices each provider's current default: the ids come from the catalog, not from here
    catalog = Catalog.load({}, env={})
    small = {p: catalog.get(p).models[ModelClass.SMALL] for p in ("openai", "anthropic", "groq", "google")}
    assert "24 calls" in cost and all(model in cost for model in small.values()), (small, cost)
    assert catalog.get("openai").models[ModelClass.MEDIUM] in cost
    openai_row = next(line for line in cost.splitlines() if small["openai"] in line)
    assert "NaN" not in openai_row  # a priced model shows its prices


@pytest.mark.timeout(600)
def test_providers_runs_from_its_archive_with_no_key(home):
    nb = run_notebook("providers.ipynb")
    no_errors(nb)
    assert "replaying providers.replay" in text_of(cell_with(nb, 'ARCHIVE = "providers.replay"'))
    table = text_of(cell_with(nb, "eliza_nb.providers()["))
    assert "OPENAI_API_KEY" in table and "ANTHROPIC_API_KEY" in table and " yes" not in table
    answers = text_of(cell_with(nb, "for provider in REMOTE:"))
    assert answers.count("Paris") == 11 and answers.count("True") == 11
    streamed = outputs_with(nb, "%%eliza generate -p groq")[-1]
    meta = streamed.metadata["eliza_nb"]
    assert meta["replayed"] is True and meta["provider"] == "groq" and "stand-in" in " ".join(meta["notes"])
    assert "replayed" in streamed.data["text/markdown"]
    emb = text_of(cell_with(nb, 'provider="openai")'))
    assert "openai: (3, 1536)" in emb and "The kitten chased" in emb
    refusal = text_of(cell_with(nb, "except eliza_nb.errors.ReplayMismatch"))
    assert "differs in messages[0].content" in refusal and "Spain" in refusal and "France" in refusal
    assert "stopped replaying providers.replay" in text_of(cell_with(nb, "%eliza replay --off"))
    # the executed notebook (outputs, metadata) holds no key either
    from test_secrets_scan import PATTERNS

    executed = nbformat.writes(nb).encode()
    assert not [what for what, pattern in PATTERNS.items() if pattern.search(executed)]


def test_notebooks_match_their_source():
    """notebooks/*.ipynb are generated by tools/make_notebooks.py: regenerate after editing it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS.parent / "tools" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, cells in module.NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook(cells=cells)
        expected = nbformat.reads(nbformat.writes(nbformat.read(NOTEBOOKS / name, as_version=4)), as_version=4)
        assert [c.source for c in nb.cells] == [c.source for c in expected.cells], f"{name}: run tools/make_notebooks.py"
        assert not any(c.get("outputs") for c in expected.cells), f"{name} is committed with outputs"


def test_every_notebook_is_executed_by_a_test():
    """A notebook added to notebooks/ needs its own test above (executed, key outputs asserted)."""
    tested = {"quickstart.ipynb", "tuning.ipynb", "embeddings.ipynb", "benchmark.ipynb", "providers.ipynb",
              "scale.ipynb"}  # scale: tests/scale/test_scale_notebook.py (it needs the [dask] extra)
    present = {p.name for p in NOTEBOOKS.glob("*.ipynb") if not p.name.endswith(".executed.ipynb")}
    assert present == tested
