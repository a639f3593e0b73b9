"""The benchmark view's tables as the browser gets them: columns, not row objects.

A table is ``{"columns", "kinds", "n", "data"}``; ``data[column]`` is one of

* ``{"dtype": "f8" | "i1" | "i2" | "i4", "buf": bytes}``: a numeric column as a little-endian
  binary buffer (NaN = missing; integer columns without missing values use the smallest integer type);
* ``{"dtype": "b1", "buf": bytes}``: a boolean column, one byte per row (0, 1, 2 = missing);
* ``{"dtype": "u1" | "u2" | "u4", "codes": bytes, "values": [str, ...]}``: a text column,
  dictionary-encoded (the code equal to the dtype's maximum is a missing value), each text cut
  to :data:`TEXT_CHARS` characters.

ipywidgets sends the ``bytes`` as binary buffers (and a saved notebook keeps them as base64), so
100,000 rows cost a few bytes per cell instead of JSON's ~20. Everything here is vectorised:
no Python loop over rows. The filter language (:func:`filter_mask`) is the front end's, so
``BenchmarkView.frame()`` returns exactly the rows on screen.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

#: columns where a higher value is better / worse (bar colour and the default sort)
HIGHER_IS_BETTER = ("score", "mean_score", "score_lo", "score_hi", "pass_rate", "tokens_per_s", "mean_tokens_per_s")
#: numeric columns that are counts or ids, not measurements: no bars
NO_BARS = ("repeat", "runs", "case_id", "prompt_tokens")
LOWER_IS_BETTER = ("latency_s", "ttft_s", "queue_s", "mean_ttft_s", "mean_queue_s", "cost_usd", "p50_latency_s", "p95_latency_s",
                   "total_cost_usd", "cost_per_case_usd", "error_rate")
#: a table cell's text is cut to this many characters (the full text stays in the kernel's frame)
TEXT_CHARS = 80
_INTS = ((np.int8, "i1"), (np.int16, "i2"), (np.int32, "i4"))
_CODES = ((np.uint8, "u1"), (np.uint16, "u2"), (np.uint32, "u4"))
#: "column op value", the numeric (or exact text) form of a filter condition
_CONDITION = re.compile(r"^\s*(?P<col>[^<>=!]+?)\s*(?P<op><=|>=|==|!=|<|>|=)\s*(?P<value>.*?)\s*$")


def as_frame(results: Any) -> Any:
    """The runs DataFrame of a benchmark result (a DataFrame, or an object holding one)."""
    import pandas as pd

    if isinstance(results, pd.DataFrame):
        return results
    for name in ("dataframe", "df", "frame", "runs", "results"):
        value = getattr(results, name, None)
        value = value() if callable(value) else value
        if isinstance(value, pd.DataFrame):
            return value
    raise TypeError(f"expected a benchmark DataFrame, got {type(results).__name__}")


def summarize(df: Any) -> Any:
    """Per model x preset: runs, p50/p95 latency, mean score, total cost, error rate, tokens/s."""
    import pandas as pd

    if not len(df):
        return pd.DataFrame(columns=["model", "preset", "runs", "p50_latency_s", "p95_latency_s", "mean_score",
                                     "total_cost_usd", "error_rate"])
    d = df.copy()
    d["preset"] = d["preset"].fillna("—") if "preset" in d else "—"
    failed = d["error"].notna() & (d["error"].astype(str) != "") if "error" in d else pd.Series(False, index=d.index)
    d["_failed"] = failed.astype(float)
    agg: dict[str, Any] = {
        "runs": ("model", "size"),
        "p50_latency_s": ("latency_s", lambda s: s.quantile(0.5)),
        "p95_latency_s": ("latency_s", lambda s: s.quantile(0.95)),
        "mean_score": ("score", "mean"),
        "total_cost_usd": ("cost_usd", lambda s: s.sum(min_count=1)),
        "error_rate": ("_failed", "mean"),
    }
    if "tokens_per_s" in d:
        agg["mean_tokens_per_s"] = ("tokens_per_s", "mean")
    agg = {k: v for k, v in agg.items() if v[0] in d}
    return d.groupby(["model", "preset"], sort=False).agg(**agg).reset_index()


def summary_of(results: Any) -> Any:
    """The result's own ``.summary()`` when it has one, else :func:`summarize`."""
    method = getattr(type(results), "summary", None)
    if callable(method):
        return as_frame(results.summary())
    return summarize(as_frame(results))


def column_kind(name: str, series: Any) -> str:
    """"bool", "count" (numbers without bars), "high" / "low" (better direction), "number" or "text"."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or (series.dtype == object and len(series)
                                               and pd.api.types.infer_dtype(series, skipna=True) == "boolean"):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        if name in NO_BARS:
            return "count"
        return "high" if name in HIGHER_IS_BETTER else "low" if name in LOWER_IS_BETTER else "number"
    return "text"


def cut_texts(series: Any) -> Any:
    """The column as the table shows it: strings cut to TEXT_CHARS (ending in "…"), missing as NaN."""
    import pandas as pd

    missing = series.isna().to_numpy()
    out = pd.Series(np.where(missing, None, series.astype(object)), index=series.index, dtype=object)
    text = out[~missing].astype(str)
    long = text.str.len() > TEXT_CHARS
    if long.any():
        text = text.where(~long, text.str.slice(0, TEXT_CHARS - 1) + "…")
    out[~missing] = text
    return out


def numbers(series: Any) -> np.ndarray:
    """A numeric column as float64 with NaN for missing and non-finite values."""
    import pandas as pd

    values = np.array(pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
    values[~np.isfinite(values)] = np.nan
    return values


def encode_column(series: Any, kind: str) -> dict[str, Any]:
    """One column for the browser (module docstring)."""
    import pandas as pd

    if kind == "bool":
        values = numbers(series)
        return {"dtype": "b1", "buf": np.where(np.isnan(values), 2, values).astype(np.uint8).tobytes()}
    if kind != "text":
        values = numbers(series)
        finite = values[~np.isnan(values)]
        if len(finite) == len(values) and pd.api.types.is_integer_dtype(series.dtype):
            lo, hi = (int(finite.min()), int(finite.max())) if len(finite) else (0, 0)
            for np_type, code in _INTS:
                if np.iinfo(np_type).min <= lo and hi <= np.iinfo(np_type).max:
                    return {"dtype": code, "buf": values.astype(np.dtype(np_type).newbyteorder("<")).tobytes()}
        return {"dtype": "f8", "buf": values.astype("<f8").tobytes()}
    codes, uniques = pd.factorize(cut_texts(series), use_na_sentinel=True)
    for code_type, code in _CODES:
        top = np.iinfo(code_type).max
        if len(uniques) < top:
            packed = np.where(codes < 0, top, codes).astype(np.dtype(code_type).newbyteorder("<"))
            return {"dtype": code, "codes": packed.tobytes(), "values": [str(v) for v in uniques]}
    raise ValueError("more than 4 billion distinct texts in one column")  # pragma: no cover


def table_payload(df: Any) -> dict[str, Any]:
    """Columns, their kinds, the row count and the encoded columns (module docstring)."""
    columns = [str(c) for c in df.columns]
    kinds = {name: column_kind(name, df[col]) for name, col in zip(columns, df.columns, strict=True)}
    data = {name: encode_column(df[col], kinds[name]) for name, col in zip(columns, df.columns, strict=True)}
    return {"columns": columns, "kinds": kinds, "n": len(df), "data": data}


def payload_bytes(payload: Any) -> int:
    """The size of a payload as it travels (binary buffers plus the JSON of the rest), roughly."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return len(payload)
    if isinstance(payload, dict):
        return sum(len(str(k)) + 4 + payload_bytes(v) for k, v in payload.items())
    if isinstance(payload, (list, tuple)):
        return 2 + sum(payload_bytes(v) + 1 for v in payload)
    return len(str(payload).encode()) + 2


def decode_column(spec: dict[str, Any]) -> list[Any]:
    """A column back from its encoding (for tests and the static views): None for missing."""
    dtype = spec["dtype"]
    if "codes" in spec:
        codes = np.frombuffer(spec["codes"], dtype=np.dtype(dtype).newbyteorder("<"))
        top = np.iinfo(codes.dtype).max
        return [None if c == top else spec["values"][c] for c in codes.tolist()]
    if dtype == "b1":
        return [None if b == 2 else bool(b) for b in np.frombuffer(spec["buf"], dtype=np.uint8).tolist()]
    values = np.frombuffer(spec["buf"], dtype=np.dtype(dtype).newbyteorder("<"))
    return [None if v != v else v for v in values.tolist()]


# -- filtering and sorting, as the front end does it ----------------------------------------------

def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def filter_mask(df: Any, query: str) -> np.ndarray:
    """Which rows a filter keeps. Conditions are separated by ";" and must all hold. A condition
    ``column op value`` (op one of < <= > >= = == !=) compares a numeric column with a number,
    or a text column's (cut) text with ``value`` for = and !=; anything else keeps the rows
    where some text column contains it, ignoring case. Missing values never match a comparison."""
    keep = np.ones(len(df), dtype=bool)
    names = {str(c): c for c in df.columns}
    for part in (p.strip() for p in (query or "").split(";")):
        if not part:
            continue
        m = _CONDITION.match(part)
        col = names.get(m.group("col").strip()) if m else None
        if m and col is not None:
            keep &= _compare(df[col], column_kind(str(col), df[col]), m.group("op"), m.group("value"))
            continue
        needle = part.lower()
        hit = np.zeros(len(df), dtype=bool)
        for c in df.columns:
            if column_kind(str(c), df[c]) == "text":
                hit |= cut_texts(df[c]).str.lower().str.contains(needle, regex=False, na=False).to_numpy(dtype=bool)
        keep &= hit
    return keep


def _compare(series: Any, kind: str, op: str, raw: str) -> np.ndarray:
    if kind == "text":
        text = cut_texts(series)
        equal = (text == raw).to_numpy(dtype=bool) & text.notna().to_numpy(dtype=bool)
        if op in ("=", "=="):
            return equal
        if op == "!=":
            return ~equal & text.notna().to_numpy(dtype=bool)
        return np.zeros(len(series), dtype=bool)
    target = {"true": 1.0, "false": 0.0}.get(raw.lower(), _as_number(raw)) if raw else None
    if target is None:
        return np.zeros(len(series), dtype=bool)
    values = numbers(series)
    with np.errstate(invalid="ignore"):
        result = {"<": values < target, "<=": values <= target, ">": values > target, ">=": values >= target,
                  "=": values == target, "==": values == target, "!=": values != target}[op]
    return result & ~np.isnan(values)


def shown_rows(df: Any, sort_by: str = "", ascending: bool = True, query: str = "") -> Any:
    """``df`` as the table shows it: filtered, then sorted stably with missing values last."""
    if query:
        df = df[filter_mask(df, query)]
    if sort_by and sort_by in df.columns:
        key = df[sort_by]
        if column_kind(sort_by, key) == "text":
            df = df.assign(_key=cut_texts(key)).sort_values("_key", ascending=ascending, na_position="last",
                                                            kind="stable").drop(columns="_key")
        else:
            df = df.sort_values(sort_by, ascending=ascending, na_position="last", kind="stable")
    return df
