"""Convert a BERT sentence-embedding model (safetensors + WordPiece vocab) to GGUF.

Small on purpose: numpy reads the safetensors file (a JSON header and raw arrays, no
torch, no pickle) and the ``gguf`` package writes llama.cpp's BERT layout, naming the
tensors with gguf's own HF-to-GGUF map and writing the vocab the way llama.cpp's
converter does (WordPiece "##" pieces lose the marker, word-initial pieces gain "▁").
Weights stay float32 so vectors match the reference implementation.

The output is written to a temporary file and renamed into place, so a reader never sees
a partial file; :func:`check_gguf` detects one left by anything else.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

#: bump when the conversion changes, so older converted files are rebuilt
CONVERTER_VERSION = 1

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Map every tensor of a .safetensors file into numpy arrays (read-only memmaps)."""
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        header: dict[str, Any] = json.loads(fh.read(header_len))
    base = 8 + header_len
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path.name}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        out[name] = raw[base + start : base + end].view(dtype).reshape(info["shape"])
    return out


def _vocab(src: Path, gguf: Any) -> tuple[list[str], list[int]]:
    tokens = (src / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    special: set[int] = set()
    tok_json = src / "tokenizer.json"
    if tok_json.exists():
        special = {t["id"] for t in json.loads(tok_json.read_text(encoding="utf-8")).get("added_tokens", []) if t.get("special")}
    types: list[int] = []
    pieces: list[str] = []
    for i, tok in enumerate(tokens):
        if i in special:
            types.append(int(gguf.TokenType.CONTROL))
            pieces.append(tok)
        else:
            types.append(int(gguf.TokenType.NORMAL))
            # llama.cpp's WPM tokenizer works on "phantom space" pieces.
            pieces.append(tok[2:] if tok.startswith("##") else "\u2581" + tok)
    return pieces, types


def convert_bert(src: Path, dest: Path, name: str) -> Path:
    """Write ``dest`` (GGUF, float32, mean pooling) from a sentence-transformers BERT folder."""
    import gguf  # lazy: only the first conversion pays for it

    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    n_layers = int(config["num_hidden_layers"])
    tensors = read_safetensors(src / "model.safetensors")
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(tmp, "bert")
    try:
        writer.add_name(name)
        writer.add_uint32("eliza_nb.converter_version", CONVERTER_VERSION)
        writer.add_context_length(int(config["max_position_embeddings"]))
        writer.add_embedding_length(int(config["hidden_size"]))
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_block_count(n_layers)
        writer.add_head_count(int(config["num_attention_heads"]))
        writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
        writer.add_causal_attention(False)
        writer.add_pooling_type(gguf.PoolingType.MEAN)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)

        pieces, types = _vocab(src, gguf)
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(pieces)
        writer.add_token_types(types)
        writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
        special = gguf.SpecialVocab(src, n_vocab=len(pieces), special_token_types=("bos", "eos", "unk", "sep", "pad", "mask"))
        special.add_to_gguf(writer, quiet=True)

        for hf_name, array in tensors.items():
            hf_name = hf_name.removeprefix("bert.")
            if hf_name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):
                continue
            new_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if new_name is None:
                raise ValueError(f"cannot map tensor {hf_name!r} to GGUF")
            writer.add_tensor(new_name, np.ascontiguousarray(array, dtype=np.float32))

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        write_sidecar(dest, int(config["hidden_size"]))
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_sidecar(path: Path, dims: int) -> None:
    """Record what a whole conversion looks like: version, dims, size and sha256."""
    info = {"converter_version": CONVERTER_VERSION, "dims": dims, "size": path.stat().st_size, "sha256": _sha256(path)}
    tmp = _sidecar(path).with_name(f".{path.name}.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info), encoding="utf-8")
    os.replace(tmp, _sidecar(path))


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _remember_verified(path: Path, info: dict[str, Any], stamp: list[int]) -> None:
    """Note in the sidecar that the file, as it is now (size, mtime, inode), hashed right.

    Only for a file that had not changed for a while (a write within the same clock tick
    would keep its mtime); best effort: a read-only home just hashes again next time.
    """
    import time

    if time.time_ns() - stamp[1] < 2_000_000_000:
        return
    tmp = _sidecar(path).with_name(f".{path.name}.json.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({**info, "verified": stamp}), encoding="utf-8")
        os.replace(tmp, _sidecar(path))
    except OSError:
        tmp.unlink(missing_ok=True)


def check_gguf(path: Path, expected_dims: int) -> str | None:
    """None when ``path`` is a whole GGUF of our current conversion with ``expected_dims``;
    otherwise the reason it is not (missing, truncated, corrupt, wrong dims, old version).

    Checked against the sidecar written after conversion (size + sha256), so a partial or
    damaged file is never handed to llama.cpp. Hashing 90 MB costs ~0.1 s from the page
    cache and seconds from a cold disk, at every session's first embedding: once a hash
    matched, the sidecar keeps the file's size, mtime and inode, and a file that still
    has all three is not hashed again (any write or replacement changes them).
    """
    try:
        size = path.stat().st_size
    except OSError:
        return "missing"
    try:
        info = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "without a valid record of its conversion"
    if info.get("converter_version") != CONVERTER_VERSION:
        return "made by an older converter"
    if info.get("dims") != expected_dims:
        return f"recorded with {info.get('dims')} dims, expected {expected_dims}"
    if size != info.get("size"):
        return f"truncated or resized ({size} bytes, expected {info.get('size')})"
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            return "not a GGUF file"
    stamp = _stamp(path)
    if info.get("verified") == stamp:
        return None
    if _sha256(path) != info.get("sha256"):
        return "corrupt (checksum mismatch)"
    _remember_verified(path, {k: v for k, v in info.items() if k != "verified"}, stamp)
    return None
