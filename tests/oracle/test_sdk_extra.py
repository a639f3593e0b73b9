"""The official SDKs the oracle tests use are in pyproject's ``test`` extra, installed at a
version that extra allows, and importable."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
SDKS = {"openai": "openai", "anthropic": "anthropic", "google-genai": "google.genai"}  # distribution -> module


def test_the_sdks_are_in_the_test_extra_installed_and_importable():
    extra = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["test"]
    wanted = {r.name: r for r in map(Requirement, extra)}
    for dist, module in SDKS.items():
        assert dist in wanted, f"{dist} is not in the test extra"
        installed = importlib.metadata.version(dist)
        assert wanted[dist].specifier.contains(installed, prereleases=True), (dist, installed, str(wanted[dist].specifier))
        assert importlib.import_module(module).__name__ == module
