"""Helpers the scale tests import by name (a module called ``conftest`` is ambiguous when
several test folders are collected together)."""

from __future__ import annotations


def lb_entry(base: str, prefix: str = "/d50", **extra) -> dict:
    """A keyless OpenAI-protocol entry on the loopback server (64-dim embeddings)."""
    return {"protocol": "openai", "endpoint": f"{base}{prefix}/v1", "key_env": [],
            "models": {"small": "lb-small", "medium": "lb-small", "large": "lb-small", "embedding": "lb-embed"},
            "settings": {"temperature": 0.0, "max_output_tokens": 16},
            "embedding_dims": 64, "embedding_batch_size": 16, **extra}
