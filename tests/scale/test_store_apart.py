"""Workers whose cache store is not the notebook's (other machines, another home=): attach
says so, and embed(texts, client=) still looks up and stores in the notebook's cache."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

import eliza_nb
from eliza_nb.core.runtime import Runtime
from eliza_nb.scale import attach

APART = "do not see this notebook's cache store"


def sent_texts(lb) -> int:
    return sum(n for _, path, n in lb.hits()["hits"] if path.endswith("/embeddings"))


def test_a_cluster_sharing_the_notebooks_home_gives_no_warning(scale_rt, lb, cluster):
    eliza_nb.embed([f"shared {i}" for i in range(20)], provider="lb", client=cluster)
    assert not [w for w in scale_rt.warnings if APART in w]


def test_workers_on_another_store_are_named_and_the_eager_path_keeps_the_notebooks_cache(scale_rt, lb, cluster, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        attach(cluster, scale_rt, home=tmp_path / "elsewhere")  # the workers' store is not the notebook's
    assert any(APART in w and "2 of the cluster's workers" in w for w in scale_rt.warnings)
    texts = [f"text {i}" for i in range(60)]
    known = scale_rt.embed(texts[:20], "lb")  # cached in the notebook only: the workers cannot see it
    lb.reset()
    series = pd.Series(texts, index=[f"r{i}" for i in range(60)])
    got = eliza_nb.embed(series, provider="lb", client=cluster)
    assert sent_texts(lb) == 40  # the notebook's 20 hits were never sent
    assert list(got.index) == list(series.index)
    assert (np.stack(list(got[:20])) == known).all()
    lb.reset()
    fresh = Runtime(scale_rt.home, config=scale_rt.config)  # cold memory: the disk store answers
    try:
        assert (fresh.embed(texts, "lb") == np.stack(list(got))).all()
    finally:
        fresh.close()
    assert sent_texts(lb) == 0  # the workers' vectors landed in the notebook's store
