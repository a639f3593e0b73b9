"""Model discovery: which model ids each provider serves today, from its own listing.

    eliza_nb.models("anthropic")          # a DataFrame, cached in the home for [models] ttl_hours
    eliza_nb.models(refresh=True)         # every usable provider, asked again

The adapters fetch (``adapter.list_models(timeout_s)``: plain rows, see
adapters/listing.py); this module keeps the cache, its TTL and the DataFrame. The cache is
one JSON file per provider, ``$ELIZA_NB_HOME/listings/<provider>.json``, written atomically,
holding model ids and numbers only (never a key), and tied to the endpoint it came from: a
list fetched from another endpoint is not this one's. A listing that fails (401, 5xx,
timeout, a wrong shape) falls back to the cached list with a note saying its age and why;
without a cache it is the listing's one-line error. Local listings (llama_local: files in
the home) are always read afresh; they cost no network.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import ProviderEntry, key_status
from .errors import ConfigError, ElizaError
from .types import ModelClass

if TYPE_CHECKING:
    import pandas as pd

    from .runtime import Runtime

COLUMNS = ("provider", "model", "catalog_class", "context_window", "input_price", "output_price", "created", "source")
DEFAULT_TTL_HOURS = 24.0
LISTING_TIMEOUT_S = 30.0  # a listing is one small answer (or a few pages): no need for a generation's 120 s
CACHE_VERSION = 1
LOCAL_PROTOCOLS = ("llama_local",)  # listed from files, so always afresh

Row = dict[str, Any]


@dataclass
class Listing:
    """One provider's model rows, where they came from and what to say about them."""

    provider: str
    rows: list[Row]
    fetched_at: float
    live: bool
    notes: list[str] = field(default_factory=list)


def ttl_seconds(config: Mapping[str, Any]) -> float:
    """``[models] ttl_hours`` from config.toml in seconds (24 h when unset; 0 = always ask)."""
    table = config.get("models") or {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"[models] in config.toml must be a table, got {table!r}")
    hours = table.get("ttl_hours", DEFAULT_TTL_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours) or hours < 0:
        raise ConfigError(f"[models] ttl_hours in config.toml must be a number of hours, 0 or more, got {hours!r}")
    return float(hours) * 3600.0


def cache_path(home: Path, provider: str) -> Path:
    """Where a provider's listing is cached (an id with odd characters gets a safe file name)."""
    return home / "listings" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', provider)}.json"


def age_text(seconds: float) -> str:
    """``"under a minute"``, ``"12 min"``, ``"3 h"``, ``"2 d"``."""
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def clean_rows(rows: Any) -> list[Row]:
    """Rows from an adapter (a plugin's may be sloppy) as the cache stores them: a string id,
    an int context, float prices, a string date; anything else left out."""
    out: list[Row] = []
    for r in rows if isinstance(rows, list) else []:
        if not isinstance(r, Mapping) or not isinstance(r.get("id"), str) or not r["id"]:
            continue
        ctx, created = r.get("context_window"), r.get("created")
        out.append({
            "id": r["id"],
            "context_window": ctx if isinstance(ctx, int) and not isinstance(ctx, bool) and ctx > 0 else None,
            "input_price": _float(r.get("input_price")),
            "output_price": _float(r.get("output_price")),
            "created": created if isinstance(created, str) else None,
        })
    return out


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def read_cache(home: Path, entry: ProviderEntry) -> tuple[list[Row], float] | None:
    """(rows, when fetched) of a provider's cached listing, or None: no file, an unreadable
    or foreign one, or a list fetched from another endpoint."""
    try:
        data = json.loads(cache_path(home, entry.id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(data, dict) or data.get("version") != CACHE_VERSION or data.get("provider") != entry.id
            or data.get("endpoint") != entry.endpoint or not isinstance(data.get("fetched_at"), (int, float))):
        return None
    return clean_rows(data.get("models")), float(data["fetched_at"])


def write_cache(home: Path, entry: ProviderEntry, rows: list[Row], fetched_at: float) -> None:
    """Write a listing atomically (a temporary file renamed into place): a reader sees the
    old list or the new one, never half of one."""
    path = cache_path(home, entry.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = {"version": CACHE_VERSION, "provider": entry.id, "endpoint": entry.endpoint, "fetched_at": fetched_at,
            "models": rows}
    try:
        tmp.write_text(json.dumps(body, indent=0), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cached_ids(home: Path, entry: ProviderEntry) -> list[str]:
    """The model ids of a provider's cached listing, whatever its age ([] when none): what the
    parameter panel offers, without any network call."""
    found = read_cache(home, entry)
    return [r["id"] for r in found[0]] if found else []


def catalog_classes(entry: ProviderEntry) -> dict[str, str]:
    """model id -> the classes the catalog uses it for, comma-joined in class order."""
    out: dict[str, list[str]] = {}
    for cls in ModelClass:
        model = entry.models.get(cls)
        if model:
            out.setdefault(model, []).append(cls.value)
    return {model: ",".join(classes) for model, classes in out.items()}


def fetch(rt: Runtime, entry: ProviderEntry, *, refresh: bool, ttl_s: float, now: float) -> Listing:
    """One provider's listing: the cache while fresh, else the live listing (cached), else
    the cache with a note saying why live failed; without a cache, the listing's error."""
    cached = read_cache(rt.home, entry)
    local = entry.protocol in LOCAL_PROTOCOLS
    if cached is not None and not refresh and not local and now - cached[1] < ttl_s:
        return Listing(entry.id, cached[0], cached[1], live=False)
    try:
        rt.check_key(entry)
        lister: Callable[[float], Any] | None = getattr(rt.adapter(entry.id), "list_models", None)
        if lister is None:
            raise ConfigError(f"{entry.id} has no model listing: the {entry.protocol} adapter offers none; "
                              "set the model id by hand", provider=entry.id)
        rows = clean_rows(lister(min(LISTING_TIMEOUT_S, rt.retry.timeout_s)))
    except ElizaError as exc:
        if cached is None:
            raise
        note = f"{exc}; showing the list cached {age_text(now - cached[1])} ago"
        return Listing(entry.id, cached[0], cached[1], live=False, notes=[note])
    listing = Listing(entry.id, rows, now, live=True)
    try:
        write_cache(rt.home, entry, rows, now)
    except OSError as exc:
        listing.notes.append(f"{entry.id}: the listing could not be cached in {cache_path(rt.home, entry.id).parent} "
                             f"({exc.strerror or type(exc).__name__})")
    return listing


def missing_defaults(entry: ProviderEntry, listing: Listing) -> str | None:
    """A note naming the catalog's model ids that the provider's own listing does not hold."""
    listed = {r["id"] for r in listing.rows}
    absent = [f"{model} ({classes})" for model, classes in catalog_classes(entry).items() if model not in listed]
    if not listing.rows or not absent:
        return None
    return f"[{entry.id}] catalog ids its listing does not hold: {', '.join(absent)}"


def models(rt: Runtime, provider: str | None = None, refresh: bool = False, *,
           clock: Callable[[], float] = time.time) -> pd.DataFrame:
    """Every model each provider's listing names, one row per model (see :data:`COLUMNS`).

    ``provider=None`` lists every provider usable now (its key set, or keyless); the others
    are named in ``df.attrs["skipped"]`` and a note, and one provider's failure is a note,
    not an error. ``df.attrs["notes"]`` holds every note (a cached list shown because the
    live one failed also raises a RuntimeWarning, so it is seen outside a notebook too).
    """
    ttl_s = ttl_seconds(rt.config)
    now = clock()
    listings: list[Listing] = []
    notes: list[str] = []
    skipped: dict[str, str] = {}
    if provider is not None:
        entries = [rt.catalog.get(provider)]
        listings.append(fetch(rt, entries[0], refresh=refresh, ttl_s=ttl_s, now=now))
    else:
        entries = []
        for entry in rt.catalog:
            status = key_status(entry, rt.env)
            if not status.ready:
                skipped[entry.id] = status.phrase
                continue
            entries.append(entry)
            try:
                listings.append(fetch(rt, entry, refresh=refresh, ttl_s=ttl_s, now=now))
            except ElizaError as exc:
                notes.append(f"{exc} (no cached list)" if str(exc).startswith("[") else f"[{entry.id}] {exc}")
    by_id = {e.id: e for e in entries}
    for listing in listings:
        notes.extend(listing.notes)
        gap = missing_defaults(by_id[listing.provider], listing)
        if gap:
            notes.append(gap)
    if skipped:
        notes.append("skipped: " + "; ".join(f"{pid}: {why}" for pid, why in skipped.items()))
    for listing in listings:
        for note in listing.notes:
            if "showing the list cached" in note:
                warnings.warn(note, RuntimeWarning, stacklevel=3)
    df = frame(listings, by_id, now)
    df.attrs["notes"] = notes
    df.attrs["skipped"] = skipped
    return df


def frame(listings: list[Listing], entries: Mapping[str, ProviderEntry], now: float) -> pd.DataFrame:
    """The DataFrame of listings: Int64 contexts (<NA> unknown), NaN prices, UTC dates."""
    import pandas as pd

    records = []
    for listing in listings:
        classes = catalog_classes(entries[listing.provider])
        source = "live" if listing.live else f"cache ({age_text(now - listing.fetched_at)} old)"
        for r in listing.rows:
            records.append({
                "provider": listing.provider, "model": r["id"], "catalog_class": classes.get(r["id"], ""),
                "context_window": r["context_window"],
                "input_price": math.nan if r["input_price"] is None else r["input_price"],
                "output_price": math.nan if r["output_price"] is None else r["output_price"],
                "created": r["created"], "source": source,
            })
    df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    df["context_window"] = pd.array(df["context_window"].tolist(), dtype="Int64")
    df["input_price"] = df["input_price"].astype("float64")
    df["output_price"] = df["output_price"].astype("float64")
    df["created"] = pd.to_datetime(df["created"], utc=True, errors="coerce", format="ISO8601")
    return df
