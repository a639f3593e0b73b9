"""One footer (Result.footer_parts), one key-status (catalog.key_status) and one provenance
builder (types.provenance), and every surface that shows them."""

from __future__ import annotations

import json

import pytest

from eliza_nb.core.catalog import KeyStatus, key_status
from eliza_nb.core.types import Attempt, ImageResult, Result, Usage, provenance
from eliza_nb.notebook.display import footer_html, render_bundle

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def streamed(**kw) -> Result:
    base = {"text": "Paris.", "provider": "p", "model": "m", "model_class": "small", "usage": Usage(7, 21),
            "latency_s": 1.2, "ttft_s": 0.2, "settings": {"temperature": 0.0}}
    return Result(**{**base, **kw})


def test_footer_plain_text_is_the_parts_joined():
    r = streamed(notes=["dropped seed"], attempts=[Attempt("a:x", "AuthError"), Attempt("p:m", "ok")])
    assert r.footer() == " · ".join(text for text, _ in r.footer_parts())
    assert r.footer() == ("p:m · 7 → 21 tok · 1200 ms · first token 200 ms · 20 tok/s · t 0 · "
                          "tried a:x → p:m · dropped seed")
    assert render_bundle(r)["text/plain"].endswith("\n— " + r.footer())


def test_footer_marks_cache_replay_interruption_and_choice():
    hit = streamed(cached=True, replayed=True, selection="small: speed=fast")
    text = hit.footer()
    assert "cache hit" in text and "replayed" in text and "auto → small: speed=fast" in text
    assert "first token" not in text and "tok/s" not in text  # a cached answer has no live timing
    cut = streamed(interrupted=True, notes=["interrupted: connection broken"])
    assert "interrupted: connection broken" in cut.footer()
    assert cut.footer().count("interrupted") == 1  # the reason is not repeated as a note
    assert repr(cut).endswith(cut.footer() + ")")


def test_footer_html_renders_the_same_parts_with_tones():
    r = streamed(cached=True, notes=["a <b> note", "another"], attempts=[Attempt("a:x", "E"), Attempt("p:m", "ok")])
    h = footer_html(r)
    assert "<b>p:m</b>" in h and "color:#15803d'>cache hit" in h and "tried a:x → p:m" in h
    assert "notes (2)" in h and "ⓘ" not in h and "a &lt;b&gt; note" in h and "<b> note" not in h
    assert h.startswith("<details") and "<summary" in h and "onclick" not in h  # a click opens them
    assert "a &lt;b&gt; note" in r._repr_markdown_()


def test_image_footer_and_provenance():
    img = ImageResult(data=PNG, mime="image/png", provider="openai", model="dall-e-3", latency_s=2.5,
                      attempts=[Attempt("x:y", "E"), Attempt("openai:dall-e-3", "ok")], notes=["size dropped"])
    assert img.footer() == f"openai:dall-e-3 · 2500 ms · {len(PNG)} bytes image/png · tried x:y → openai:dall-e-3"
    assert img.footer_parts()[0] == ("openai:dall-e-3", "strong")
    m = img.metadata()
    assert m["provider"] == "openai" and m["latency_s"] == 2.5 and m["notes"] == ["size dropped"]
    assert [a["target"] for a in m["attempts"]] == ["x:y", "openai:dall-e-3"] and "data" not in m
    json.dumps(m)


def test_provenance_is_one_shape_for_every_output():
    r = streamed()
    m = r.metadata()
    assert list(m)[:2] == ["provider", "model"] and list(m)[-2:] == ["attempts", "notes"]
    assert m["ttft_s"] == 0.2 and m["settings"] == {"temperature": 0.0} and m["cached"] is False
    e = provenance("llama_local", "minilm", dims=384, count=2, cached=1)
    assert e == {"provider": "llama_local", "model": "minilm", "dims": 384, "count": 2, "cached": 1,
                 "attempts": [], "notes": []}


@pytest.mark.parametrize("value", [streamed(), ImageResult(data=PNG, provider="openai", model="dall-e-3")])
def test_results_shown_as_a_cell_value_carry_provenance(value):
    from IPython.core.formatters import DisplayFormatter

    data, md = DisplayFormatter().format(value)  # a kernel's formatter (the test shell's is text-only)
    assert md["eliza_nb"] == value.metadata()
    assert ("text/markdown" in data) if isinstance(value, Result) else ("image/png" in data)
    assert "text/plain" in data


def test_key_status_names_variables_never_keys():
    from eliza_nb.core.catalog import ProviderEntry
    from eliza_nb.core.settings import ModelSettings

    def entry(*env):
        return ProviderEntry("x", "openai", "http://h", tuple(env), {}, ModelSettings())

    keyless, missing = key_status(entry(), {}), key_status(entry("A_KEY", "B_KEY"), {})
    found = key_status(entry("A_KEY", "B_KEY"), {"B_KEY": "sk-secret"})
    assert (keyless.needed, keyless.ready, keyless.present, keyless.label) == (False, True, "n/a", "not needed")
    assert keyless.phrase == "no key needed" and keyless.variable_names == "(none needed)"
    assert (missing.ready, missing.present, missing.label, missing.phrase) == (False, "no", "✗ set A_KEY", "no key (A_KEY)")
    assert missing.variable_names == "A_KEY or B_KEY"
    assert found == KeyStatus(("A_KEY", "B_KEY"), "B_KEY") and found.label == "✓ B_KEY" and found.present == "yes"
    assert "sk-secret" not in repr(found)


def test_providers_table_and_command_use_the_same_key_status(home):
    from eliza_nb.core.runtime import Runtime

    rt = Runtime(home, env={"OPENAI_API_KEY": "sk-hidden-2"})
    df = rt.providers_table().set_index("provider")
    for entry in rt.catalog:
        status = key_status(entry, rt.env)
        assert df.loc[entry.id, "key_present"] == status.present
        assert df.loc[entry.id, "key_variable"] == status.variable_names
    assert df.loc["openai", "key_present"] == "yes" and "sk-hidden-2" not in df.to_string()


def test_parser_value_checks_are_public():
    import argparse

    from eliza_nb.notebook.parser import identifier, number, positive_int

    assert identifier("df") == "df" and number("0.5") == 0.5 and positive_int("3") == 3
    for check, bad in ((identifier, "1x"), (number, "nan"), (positive_int, "0")):
        with pytest.raises(argparse.ArgumentTypeError):
            check(bad)


# -- %eliza embed outputs -------------------------------------------------------------------

def test_embed_line_form_shows_a_provenance_line_then_the_vector(run, ip):
    run("%eliza embed provenance check text")  # warm: the second call is a cache hit
    cell = run("%eliza embed provenance check text")
    assert cell.ok, cell.error
    [line] = cell.outputs  # the vector itself is the cell's value (Out[], on stdout in this shell)
    m = line.metadata["eliza_nb"]
    assert m == {"provider": "llama_local", "model": "all-minilm-l6-v2", "dims": 384, "count": 1, "cached": 1,
                 "replayed": 0, "attempts": [], "notes": []}
    assert line.data["text/plain"] == "llama_local:all-minilm-l6-v2 · 384 dims · 1 text · 1 cached"
    assert "array(" in cell.stdout


def test_embed_cell_form_counts_texts_and_cache_hits(run, ip):
    run("%eliza embed cell one")
    cell = run("%%eliza embed -o df\ncell one\ncell two, new\n")
    assert cell.ok, cell.error
    m = cell.outputs[-1].metadata["eliza_nb"]
    assert (m["count"], m["cached"], m["dims"]) == (2, 1, 384)
    assert cell.outputs[-1].data["text/plain"] == "df: DataFrame (2, 3) from llama_local:all-minilm-l6-v2"


def test_embed_footer_follows_show_footer(run, ip):
    ip.run_line_magic("config", "Eliza.show_footer = False")
    cell = run("%eliza embed no footer here")
    assert cell.ok and not cell.outputs and "array(" in cell.stdout
