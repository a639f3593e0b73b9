"""No notebook and no replay archive in the repository holds an API key or an auth header."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", "node_modules", "test-artifacts", "__pycache__", ".hypothesis", ".ruff_cache", "build"}

PATTERNS = {
    "an OpenAI/Anthropic-style key (sk-...)": re.compile(rb"sk-[A-Za-z0-9_\-]{16,}"),
    "a bearer token": re.compile(rb"Bearer\s+[A-Za-z0-9._~+/=\-]{8,}"),
    "a Google API key (AIza...)": re.compile(rb"AIza[0-9A-Za-z_\-]{30,}"),
    "a Groq key (gsk_...)": re.compile(rb"gsk_[A-Za-z0-9]{20,}"),
    "an xAI key (xai-...)": re.compile(rb"xai-[A-Za-z0-9]{20,}"),
    "an x-api-key header": re.compile(rb"(?i)x-api-key"),
    "an x-goog-api-key header": re.compile(rb"(?i)x-goog-api-key"),
    # JSON escapes quotes in notebooks: "Authorization": appears as \"Authorization\":
    "an Authorization header": re.compile(rb"(?i)authorization\\?[\"']?\s*[:=]"),
}
_SECRET_VARS = re.compile(r".*(_API_KEY|_ACCESS_TOKEN|_SECRET|_TOKEN)$")


def shareable_files(root: Path) -> list[Path]:
    """Every notebook and every replay archive file under ``root`` (virtualenvs and caches skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".venv")]
        folder = Path(dirpath)
        is_archive = "requests.jsonl" in filenames
        for name in filenames:
            if name.endswith((".ipynb", ".jsonl")) or is_archive:
                found.append(folder / name)
    return sorted(found)


def secret_values() -> dict[str, str]:
    """Values of key-like environment variables set now (long enough to be keys)."""
    return {k: v for k, v in os.environ.items() if _SECRET_VARS.match(k) and len(v) >= 8}


def find_secrets(paths: list[Path], values: dict[str, str]) -> list[str]:
    problems = []
    for path in paths:
        data = path.read_bytes()
        for what, pattern in PATTERNS.items():
            m = pattern.search(data)
            if m:
                problems.append(f"{path.relative_to(path.anchor)}: {what} at byte {m.start()}")
        for var, value in values.items():
            if value.encode() in data:
                problems.append(f"{path}: the value of ${var}")
    return problems


def test_no_notebook_or_archive_holds_a_key():
    paths = shareable_files(ROOT)
    names = {p.relative_to(ROOT).as_posix() for p in paths}
    # the scan must see what is shared: the tour notebooks and the committed archive
    assert {"notebooks/quickstart.ipynb", "notebooks/providers.ipynb", "notebooks/providers.replay/requests.jsonl",
            "notebooks/providers.replay/vectors.f32"} <= names
    assert find_secrets(paths, secret_values()) == []


def test_the_scanner_finds_what_it_looks_for(tmp_path, monkeypatch):
    monkeypatch.setenv("SCANTEST_API_KEY", "plain-looking-value-123456")
    cells = [{"cell_type": "code", "source": src, "metadata": {}, "outputs": [], "execution_count": None}
             for src in ('headers = {"Authorization": "Bearer abcdefgh12345678"}', "key = 'sk-proj-AbCdEfGh0123456789xyz'",
                         "print('plain-looking-value-123456')")]
    (tmp_path / "leak.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    archive = tmp_path / "x.replay"
    archive.mkdir()
    (archive / "requests.jsonl").write_text('{"format": "eliza_nb.replay"}\n')
    (archive / "vectors.f32").write_bytes(b"\0\0\0\0AIzaSyA1234567890abcdefghijklmnopqrstuv")
    problems = find_secrets(shareable_files(tmp_path), secret_values())
    text = "\n".join(problems)
    for what in ("bearer token", "Authorization header", "sk-...", "$SCANTEST_API_KEY", "AIza"):
        assert what in text, (what, text)


@pytest.mark.parametrize("name", ["providers.ipynb", "tuning.ipynb"])
def test_committed_notebooks_carry_no_outputs(name):
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    assert not any(c.get("outputs") for c in nb["cells"])
