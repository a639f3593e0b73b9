"""notebooks/scale.ipynb executed headlessly in a real kernel: it starts its own LocalCluster
(2 worker processes, 1 thread each) on the embedded local models, in a fresh home.

Asserted: the vectors' shape, that the second run is served from the cache (no text reaches
the model again, the vectors are bit-identical, and the workers' vectors are in the kernel's
own cache store), and the benchmark grid's rows without errors.
"""

from __future__ import annotations

import re

import pytest
from test_notebooks import cell_with, no_errors, run_notebook, text_of  # tests/ is on sys.path (tests/conftest.py)

N_TEXTS = 500


def counts(text: str) -> list[tuple[int, int]]:
    """(embedded by the model, served from the cache) summed over the workers, per print."""
    found = re.findall(r"texts embedded by the model: (\d+); served from the cache: (\d+)", text)
    return [(int(a), int(b)) for a, b in found]


@pytest.mark.timeout(600)
def test_scale_notebook(home):
    nb = run_notebook("scale.ipynb")
    no_errors(nb)

    assert "dashboard: http://" in text_of(cell_with(nb, "client = Client(cluster)"))
    assert f"{N_TEXTS} texts in 4 partitions" in text_of(cell_with(nb, "dd.from_pandas"))
    assert f"vectors: ({N_TEXTS}, 384) float32" in text_of(cell_with(nb, "out = ddf.assign("))
    top = text_of(cell_with(nb, 'eliza_nb.similar("Someone is baking a cake."')).splitlines()[1]
    assert "bakes a cake" in top

    # the first run: every text went to the model once, nothing came from the cache
    assert counts(text_of(cell_with(nb, "def embedded_texts"))) == [(N_TEXTS, 0)]
    # the array before it is computed: the row count is unknown, the width is known
    assert "shape=(nan, 384)" in text_of(cell_with(nb, 'vectors = eliza_nb.embed(ddf["text"], as_array=True)'))
    # the second run: no text reached the model again, all 500 were cache hits, same bits
    second = text_of(cell_with(nb, "second = vectors.compute()"))
    assert f"second run: ({N_TEXTS}, 384)" in second and "same vectors: True" in second
    assert counts(second) == [(N_TEXTS, N_TEXTS)]
    # the workers stored into the kernel's own home: its disk tier holds the 500 vectors
    stats = text_of(cell_with(nb, "stats = eliza_nb.cache.stats()"))
    stored = int(re.search(r"vectors in this kernel's disk tier: (\d+)", stats).group(1))
    assert stored == N_TEXTS + 1  # the 500 from the workers, and the similarity query embedded in the kernel

    bench = text_of(cell_with(nb, "results = eliza_nb.benchmark("))
    assert "2 rows, 0 errors" in bench
    assert "Dask dashboard: http://" in bench  # printed by the cluster runner
    assert "france" in bench and "japan" in bench
    summary = text_of(cell_with(nb, "results.summary()"))
    assert "llama_local:small" in summary and "p50_latency_s" in summary
