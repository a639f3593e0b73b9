"""The IMAGE class: OpenAI-style generation and Heurist's job endpoint, over loopback,
through Runtime.image / eliza_nb.image; the result displays inline."""

from __future__ import annotations

import base64
import struct
import zlib

import fault_server as fs
import pytest
from provider_helpers import SECRET, openai_entry

import eliza_nb
from eliza_nb.core.errors import ConfigError, TransientError
from eliza_nb.core.runtime import Runtime
from eliza_nb.core.types import ImageResult


def tiny_png() -> bytes:
    """A valid 1x1 red PNG, built by hand (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PNG = tiny_png()


@pytest.fixture
def image_rt(home, fault_server, fake_time):
    providers = {
        "pix": openai_entry(fault_server.url + "/v1"),
        "heur": openai_entry(fault_server.url + "/v1", key_env="HEUR_KEY", image_endpoint=fault_server.url + "/submit_job",
                             image_settings={"steps": 20}),
    }
    rt = Runtime(home, config={"providers": providers, "retry": {"max_attempts": 2}},
                 env={"FAULT_KEY": SECRET, "HEUR_KEY": SECRET}, sleep=fake_time.sleep, clock=fake_time.clock)
    yield rt
    rt.close()


def test_openai_style_image_shows_inline_as_png(image_rt, fault_server):
    fault_server.script("/v1/images/generations", fs.json_reply({"data": [
        {"b64_json": base64.b64encode(PNG).decode(), "revised_prompt": "a small red square"}]}))
    img = image_rt.image("a red square", provider="pix", size="256x256", quality="hd", steps=10)
    assert isinstance(img, ImageResult)
    assert img._repr_png_() == PNG and img._repr_jpeg_() is None and img._repr_html_() is None
    assert (img.provider, img.model, img.mime, img.revised_prompt) == ("pix", "m-image", "image/png", "a small red square")
    assert img.notes == ["steps=10 dropped: OpenAI-style image APIs do not take it"]
    sent = fault_server.requests_to("/v1/images/generations")[0]
    assert sent.body == {"model": "m-image", "prompt": "a red square", "n": 1, "response_format": "b64_json",
                         "size": "256x256", "quality": "hd"}
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    row = image_rt.ledger.rows()[-1]
    assert (row.kind, row.provider, row.model_class, row.error) == ("image", "pix", "image", None)
    assert SECRET not in repr(img) and SECRET not in str(img.metadata())


def test_url_answer_shows_as_html_img(image_rt, fault_server):
    fault_server.script("/v1/images/generations", fs.json_reply({"data": [{"url": "https://cdn.example/x.png?a=1&b=2"}]}))
    img = image_rt.image("a cat", provider="pix")
    assert img._repr_png_() is None
    html = img._repr_html_()
    assert '<img src="https://cdn.example/x.png?a=1&amp;b=2"' in html and 'alt="a cat"' in html


def test_heurist_job_endpoint(image_rt, fault_server):
    fault_server.script("/submit_job", fs.raw('"https://heurist-images.example/job-1.png"', 200, content_type="text/plain"))
    img = image_rt.image("a lighthouse", provider="heur", width=768, height=512, seed=5, negative_prompt="fog", style="x")
    assert img.url == "https://heurist-images.example/job-1.png"
    sent = fault_server.requests_to("/submit_job")[0]
    sd = sent.body["model_input"]["SD"]
    assert sd == {"prompt": "a lighthouse", "neg_prompt": "fog", "num_iterations": 20, "width": 768, "height": 512,
                  "guidance_scale": 3.0, "seed": 5}
    assert sent.body["model_id"] == "m-image" and sent.body["job_id"].startswith("eliza_nb-")
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert img.notes == ["style='x' dropped: Heurist's image API does not take it"]


def test_image_errors_retry_and_fail_over(image_rt, fault_server, fake_time):
    fault_server.script("/v1/images/generations", fs.json_reply({"error": {"message": "busy"}}, 503))
    fault_server.script("/submit_job", fs.raw("https://heurist-images.example/ok.png", 200, content_type="text/plain"))
    img = image_rt.image("x", provider="pix", failover=["heur:image"])
    assert img.provider == "heur"
    assert [a.outcome for a in img.attempts] == ["TransientError", "TransientError", "ok"]
    assert len(fake_time.sleeps) == 1
    fake_time.now += 2 * image_rt.retry.cooldown_s  # past pix's cool-down: it gets its retries again
    with pytest.raises(TransientError) as info:
        image_rt.image("x", provider="pix")
    assert str(info.value).startswith("[pix]") and "\n" not in str(info.value)
    # one ledger row per attempt, as for text and embeddings: pix twice then heur, then pix twice
    rows = [r for r in image_rt.ledger.rows() if r.kind == "image"]
    assert [(r.provider, r.error is None) for r in rows] == [
        ("pix", False), ("pix", False), ("heur", True), ("pix", False), ("pix", False)]


def test_image_bad_input_is_one_line(image_rt):
    with pytest.raises(ConfigError, match="unknown image option"):
        image_rt.image("x", provider="pix", colour="red")
    with pytest.raises(ConfigError, match="llama_local has no image model; providers with one: .*openai"):
        image_rt.image("x", provider="llama_local")
    with pytest.raises(ConfigError, match="like 1024x1024"):
        image_rt.image("x", provider="pix", size="big")


def test_eliza_nb_image_uses_the_shared_runtime(image_rt, fault_server):
    fault_server.script("/v1/images/generations", fs.json_reply({"data": [{"b64_json": base64.b64encode(PNG).decode()}]}))
    old = eliza_nb.set_runtime(image_rt)
    try:
        assert eliza_nb.image("a red square", provider="pix").data == PNG
    finally:
        eliza_nb.set_runtime(old)
