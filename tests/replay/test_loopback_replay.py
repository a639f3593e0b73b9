"""The whole promise, end to end: record in a kernel against a REAL OpenAI-compatible server
on loopback (llama_cpp.server) standing in for a paid provider with a key; stop the server;
replay in a FRESH kernel with no key and no cache: the same text and the same vectors."""

from __future__ import annotations

import json
import os
import re
import shutil

import httpx
import nbformat
import pytest
from loopback_llama import run_llama_server
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

#: the paid provider's key: the loopback server requires it, the archive must never hold it
FAKE_KEY = "sk-loopback-Xy7Qw2Er5Ty8NeverInTheArchive01"


def cells(mode: str, archive: str) -> list:
    stop = "--stop" if mode == "record" else "--off"
    exact = "-t 0 --max-tokens 24 --repetition-penalty 0 --frequency-penalty 0 --presence-penalty 0"
    return [
        new_code_cell("%load_ext eliza_nb\nimport hashlib, json\nimport eliza_nb"),
        new_code_cell(f"%eliza {mode} {archive}"),
        new_code_cell(f"%%eliza generate -p paidsrv {exact} --system \"You are a helpful assistant.\" -o streamed\n"
                      "What is the capital of France?"),
        new_code_cell('r = eliza_nb.generate("Name three primary colours.", provider="paidsrv", temperature=0, max_tokens=24,\n'
                      '                      repetition_penalty=0, frequency_penalty=0, presence_penalty=0)\n'
                      'v = eliza_nb.embed(["a cat sat on the mat", "stocks fell sharply today"], provider="paidsrv")\n'
                      'one = eliza_nb.embed("a single text", provider="paidsrv")\n'
                      'print(json.dumps({"streamed": streamed.text, "text": r.text, '
                      '"tokens": [r.usage.prompt_tokens, r.usage.completion_tokens],\n'
                      '                  "shape": list(v.shape), "vectors": hashlib.sha256(v.tobytes() + one.tobytes()).hexdigest(),\n'
                      '                  "replayed": [streamed.replayed, r.replayed]}))'),
        new_code_cell(f"%eliza {mode} {stop}"),
    ]


def run(name: str, mode: str, folder, env: dict[str, str], archive: str = "paid.replay"):
    nb = new_notebook(cells=cells(mode, archive))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute(env=env)
    nbformat.write(nb, folder / f"{name}.ipynb")
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    summary = json.loads(next(o.text for o in nb.cells[3].outputs if o.output_type == "stream"))
    return nb, summary


def make_home(path, models_home, endpoint: str):
    (path / "models").parent.mkdir(parents=True)
    shutil.copytree(models_home / "models", path / "models")
    (path / "config.toml").write_text(
        "[providers.paidsrv]\n"
        'protocol = "openai"\n'
        f'endpoint = "{endpoint}"\n'
        'key_env = ["PAIDSRV_API_KEY"]\n'
        'models = { small = "smollm2", embedding = "minilm" }\n'
        "embedding_dims = 384\n"
        'repetition_penalty_param = "repeat_penalty"\n'
        '[providers.paidsrv.prices]\nsmollm2 = { input = 0.5, output = 1.5 }\n'
    )
    return path


@pytest.mark.timeout(600)
def test_record_against_a_paid_stand_in_then_replay_in_a_fresh_kernel(models_home, tmp_path):
    base_env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_ACCESS_TOKEN"))}
    folder = tmp_path / "work"
    folder.mkdir()
    with run_llama_server(models_home, tmp_path, FAKE_KEY) as endpoint:
        home = make_home(tmp_path / "author-home", models_home, endpoint)
        # the author, with the paid provider's key (the server refuses calls without it)
        env = {**base_env, "ELIZA_NB_HOME": str(home), "PAIDSRV_API_KEY": FAKE_KEY}
        recorded_nb, recorded = run("recorded", "record", folder, env)
        # the same session recorded again (another kernel, a warm cache): the same bytes
        run("recorded-again", "record", folder, env, archive="again.replay")
    with pytest.raises(httpx.HTTPError):  # the server is gone
        httpx.get(f"{endpoint}/models", timeout=2)

    # the reader: a fresh kernel, a fresh home (no cache), no key, nothing listening
    reader_home = make_home(tmp_path / "reader-home", models_home, endpoint)
    env = {**base_env, "ELIZA_NB_HOME": str(reader_home)}
    replayed_nb, replayed = run("replayed", "replay", folder, env)

    assert "Paris" in recorded["streamed"]
    assert recorded["replayed"] == [False, False] and replayed["replayed"] == [True, True]
    for field in ("streamed", "text", "tokens", "shape", "vectors"):
        assert replayed[field] == recorded[field], field
    assert replayed["shape"] == [2, 384]
    live_md = recorded_nb.cells[2].outputs[-1]
    replay_md = replayed_nb.cells[2].outputs[-1]
    assert replay_md.metadata["eliza_nb"]["replayed"] is True and live_md.metadata["eliza_nb"]["replayed"] is False
    answer = re.compile(r"\n\n<(?:div|details) class='eliza-footer'")  # the text before the footer
    assert answer.split(replay_md.data["text/markdown"])[0] == answer.split(live_md.data["text/markdown"])[0]
    assert len(answer.split(replay_md.data["text/markdown"])) == 2, "the footer is where the split expects it"
    assert "replayed" in replay_md.data["text/plain"].rsplit("—", 1)[-1]

    archive = folder / "paid.replay"
    assert {p.name: p.read_bytes() for p in archive.iterdir()} == \
        {p.name: p.read_bytes() for p in (folder / "again.replay").iterdir()}

    # no key, no auth header anywhere in the archive or the notebooks
    blobs = [p.read_bytes() for p in archive.iterdir()] + [(folder / f).read_bytes() for f in ("recorded.ipynb", "replayed.ipynb")]
    for blob in blobs:
        assert FAKE_KEY.encode() not in blob and b"Bearer" not in blob and b"Authorization" not in blob
    assert (archive / "requests.jsonl").read_text().count('"kind": "generate"') == 2
