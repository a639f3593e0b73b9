"""Model listings: what each API's own listing endpoint says it serves, as plain rows.

Every row is ``{"id", "context_window", "input_price", "output_price", "created"}``:
prices in USD per 1M tokens, ``created`` an ISO 8601 string, each None where the listing
does not say. Rows are data only (no key, no header): the runtime caches them as JSON.

- OpenAI-compatible ``GET {endpoint}/models``: ``data[]`` (``id``, ``created``), or a bare
  list (Together); OpenRouter adds ``context_length`` and ``pricing.prompt/completion``
  (USD per token, as strings), Groq ``context_window``, Together ``pricing.input/output``
  (already per 1M).
- Anthropic ``GET {endpoint}/models``: ``data[]`` (``id``, ``created_at``), paged by
  ``has_more`` / ``last_id`` -> ``?after_id=``.
- Gemini ``GET {endpoint}/v1beta/models``: ``models[]`` (``name``, ``inputTokenLimit``),
  paged by ``nextPageToken`` -> ``?pageToken=``.
- Claude on Vertex: Model Garden's ``GET /v1beta1/publishers/anthropic/models`` (Google's
  catalog of Claude models, not a list of what the project has enabled).
- llama_local: the built-in names and the ``*.gguf`` files in ``$ELIZA_NB_HOME/models``,
  each with the context length its GGUF header states (read from the header, never loaded).

Pages are bounded (:data:`MAX_PAGES`) and share one deadline: a server that always says
there is more ends in one error, not a loop. Everything goes through :mod:`.http`, so a
401, a 5xx, a timeout or a wrong shape is the same one-line typed error as for a call.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

from ..core.errors import BadResponseError, ConfigError, ModelPackageMissing, NotFoundError
from . import http
from .local_models import BUILTINS, converted_path, package_path
from .shape import Shape, is_kind

MAX_PAGES = 50  # a listing that has not ended after this many pages is broken
PAGE_SIZE = 1000

Row = dict[str, Any]


def row(model_id: str, *, context_window: Any = None, input_price: Any = None, output_price: Any = None,
        created: Any = None) -> Row:
    """One listed model, normalized: an int context, floats per 1M tokens, an ISO date."""
    return {"id": model_id, "context_window": _int(context_window), "input_price": _price(input_price),
            "output_price": _price(output_price), "created": _iso(created)}


def _int(value: Any) -> int | None:
    return int(value) if is_kind(value, int) and value > 0 else None


def _price(value: Any, scale: float = 1.0) -> float | None:
    """A price as a float (times ``scale``); None for absent, unreadable or negative
    ("-1" is OpenRouter's "varies", e.g. for its auto router)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value) * scale
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _iso(value: Any) -> str | None:
    """Unix seconds or an ISO string -> ISO 8601 UTC; None for anything else."""
    if is_kind(value, float) and value > 0:
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return None
    return value[:40] if isinstance(value, str) and value else None


class Pager:
    """GETs of one listing, sharing one deadline, at most MAX_PAGES of them."""

    def __init__(self, client: Any, provider: str, headers: Mapping[str, str], key: str | None, timeout_s: float,
                 max_body: int | None, what: str) -> None:
        self.client, self.provider, self.headers, self.key = client, provider, headers, key
        self.timeout_s, self.max_body, self.what = timeout_s, max_body, what
        self.deadline = time.monotonic() + timeout_s
        self.shape = Shape(provider, what)

    def get(self, url: str, query: Mapping[str, Any] | None = None) -> Any:
        full = f"{url}?{urlencode(query)}" if query else url
        try:
            return http.get_json(self.client, full, headers=self.headers, timeout_s=self.timeout_s, provider=self.provider,
                                 key=self.key, what=self.what, max_body=self.max_body, deadline=self.deadline)
        except NotFoundError:
            raise NotFoundError(f"{self.what}: the endpoint has no model listing (HTTP 404 for "
                                f"{url.split('://', 1)[-1].split('/', 1)[-1] or '/'}); set the model id by hand",
                                provider=self.provider) from None

    def paged(self, fetch: Callable[[Any], tuple[list[Row], Any]], first: Any) -> list[Row]:
        """Pages from ``fetch(cursor) -> (rows, next cursor or None)``, bounded and loop-checked."""
        rows: list[Row] = []
        cursor, seen = first, set()
        for _ in range(MAX_PAGES):
            page, cursor = fetch(cursor)
            rows.extend(page)
            if cursor is None:
                return _unique(rows)
            if cursor in seen:
                raise BadResponseError(f"{self.what}: the listing repeats its page cursor", provider=self.provider)
            seen.add(cursor)
        raise BadResponseError(f"{self.what}: the listing did not end after {MAX_PAGES} pages", provider=self.provider)


def _unique(rows: list[Row]) -> list[Row]:
    """Rows in order, the first of each id kept."""
    out: dict[str, Row] = {}
    for r in rows:
        out.setdefault(r["id"], r)
    return list(out.values())


# -- OpenAI-compatible ---------------------------------------------------------------------
def openai_models(pager: Pager, base: str) -> list[Row]:
    """``GET {base}/models``: OpenAI's ``{"data": [...]}`` or a bare list."""
    data = pager.get(base.rstrip("/") + "/models")
    shape = pager.shape
    if isinstance(data, list):
        items = data
        for i, item in enumerate(items):
            shape.check(item, dict, f"[{i}]")
        at = ""
    else:
        items, at = shape.items(data, "data", dict, required=True), "data"
    rows = []
    for i, item in enumerate(items):
        where = f"{at}[{i}]"
        pricing = shape.get(item, "pricing", dict, at=where, default={})
        if "prompt" in pricing or "completion" in pricing:  # OpenRouter: USD per token, as strings
            prices = (_price(pricing.get("prompt"), 1e6), _price(pricing.get("completion"), 1e6))
        else:  # Together: USD per 1M already
            prices = (_price(pricing.get("input")), _price(pricing.get("output")))
        context = item.get("context_length") or item.get("context_window") or item.get("max_model_len")
        rows.append(row(shape.get(item, "id", str, at=where, required=True), context_window=context,
                        input_price=prices[0], output_price=prices[1], created=item.get("created")))
    return _unique(rows)


# -- Anthropic -----------------------------------------------------------------------------
def anthropic_models(pager: Pager, base: str) -> list[Row]:
    """``GET {base}/models``, paged with ``after_id``."""
    url, shape = base.rstrip("/") + "/models", pager.shape

    def fetch(after: str | None) -> tuple[list[Row], str | None]:
        data = pager.get(url, {"limit": PAGE_SIZE, **({"after_id": after} if after else {})})
        rows = [row(shape.get(item, "id", str, at=f"data[{i}]", required=True),
                    context_window=item.get("max_input_tokens") or item.get("context_window"),
                    created=item.get("created_at"))
                for i, item in enumerate(shape.items(data, "data", dict, required=True))]
        if not shape.get(data, "has_more", bool, default=False):
            return rows, None
        last = shape.get(data, "last_id", str) or (rows[-1]["id"] if rows else None)
        if not last:
            raise shape.wrong("last_id", "missing while has_more is true")
        return rows, last

    return pager.paged(fetch, None)


# -- Gemini --------------------------------------------------------------------------------
def gemini_models(pager: Pager, base: str, api_version: str = "v1beta") -> list[Row]:
    """``GET {base}/{api_version}/models``, paged with ``pageToken``."""
    url, shape = f"{base.rstrip('/')}/{api_version}/models", pager.shape

    def fetch(token: str | None) -> tuple[list[Row], str | None]:
        data = pager.get(url, {"pageSize": PAGE_SIZE, **({"pageToken": token} if token else {})})
        rows = [row(shape.get(item, "name", str, at=f"models[{i}]", required=True).removeprefix("models/"),
                    context_window=item.get("inputTokenLimit"))
                for i, item in enumerate(shape.items(data, "models", dict))]
        return rows, shape.get(data, "nextPageToken", str) or None

    return pager.paged(fetch, None)


# -- Claude on Vertex ----------------------------------------------------------------------
def vertex_claude_models(pager: Pager, host: str) -> list[Row]:
    """Model Garden's Anthropic models: ``name`` "publishers/anthropic/models/X" and its
    ``versionId`` make the id a call uses, ``X@version``."""
    url, shape = f"{host.rstrip('/')}/v1beta1/publishers/anthropic/models", pager.shape

    def fetch(token: str | None) -> tuple[list[Row], str | None]:
        data = pager.get(url, {"pageSize": 100, "listAllVersions": "true", **({"pageToken": token} if token else {})})
        rows = []
        for i, item in enumerate(shape.items(data, "publisherModels", dict)):
            name = shape.get(item, "name", str, at=f"publisherModels[{i}]", required=True).rsplit("/", 1)[-1]
            version = shape.get(item, "versionId", str, at=f"publisherModels[{i}]")
            rows.append(row(f"{name}@{version}" if version and version != "001" else name))
        return rows, shape.get(data, "nextPageToken", str) or None

    return pager.paged(fetch, None)


# -- llama_local ---------------------------------------------------------------------------
def local_models(home: Path) -> list[Row]:
    """The built-in names and the GGUF files in ``home/models``, with their stated context."""
    rows = []
    converted = set()
    for model in BUILTINS.values():
        path: Path | None
        if model.embedding:
            path = converted_path(home, model)
            converted.add(path.name)
        else:
            try:
                path = package_path(model)
            except ModelPackageMissing:
                path = None
        rows.append(row(model.name, context_window=gguf_context_length(path) if path else None, input_price=0.0,
                        output_price=0.0))
    folder = home / "models"
    files = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
    for path in files:
        if path.name not in converted and not path.name.startswith("."):
            rows.append(row(str(path), context_window=gguf_context_length(path), input_price=0.0, output_price=0.0,
                            created=path.stat().st_mtime))
    return rows


# GGUF value types -> struct formats (8: string, 9: array are read by hand)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_MAX_KEYS = 4096


def gguf_context_length(path: Path) -> int | None:
    """``{architecture}.context_length`` from a GGUF file's header, read key by key until it
    is found (the tokenizer's long arrays come later); None when the file says nothing or is
    not a GGUF v2+ file."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"GGUF" or struct.unpack("<I", fh.read(4))[0] < 2:
                return None
            _, n_kv = struct.unpack("<QQ", fh.read(16))
            arch = None
            for _ in range(min(n_kv, _MAX_KEYS)):
                key = _string(fh)
                kind = struct.unpack("<I", fh.read(4))[0]
                if key == "general.architecture" and kind == 8:
                    arch = _string(fh)
                    continue
                if arch and key == f"{arch}.context_length" and kind in _SCALARS:
                    value = _scalar(fh, kind)
                    return int(value) if value else None
                _skip(fh, kind)
    except (OSError, struct.error, ValueError, UnicodeDecodeError):
        return None
    return None


def _string(fh: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", fh.read(8))
    if n > 1 << 20:
        raise ValueError("string too long for a header key")
    return fh.read(n).decode("utf-8")


def _scalar(fh: BinaryIO, kind: int) -> Any:
    fmt = _SCALARS[kind]
    return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]


def _skip(fh: BinaryIO, kind: int) -> None:
    if kind in _SCALARS:
        fh.seek(struct.calcsize(_SCALARS[kind]), 1)
    elif kind == 8:
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(n, 1)
    elif kind == 9:
        item, count = struct.unpack("<IQ", fh.read(12))
        if item in _SCALARS:
            fh.seek(struct.calcsize(_SCALARS[item]) * count, 1)
        elif item == 8:
            for _ in range(count):
                (n,) = struct.unpack("<Q", fh.read(8))
                fh.seek(n, 1)
        else:
            raise ValueError("nested arrays")
    else:
        raise ValueError(f"unknown GGUF value type {kind}")


def no_listing(provider: str, why: str) -> ConfigError:
    """The one-line error of a provider without a listing endpoint."""
    return ConfigError(f"{provider} has no model listing endpoint ({why}); set the model id by hand", provider=provider)
