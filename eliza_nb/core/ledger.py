"""The usage ledger: one row per call attempt, cache hits and failures included."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LedgerRow:
    time: float
    kind: str  # "generate" | "stream" | "embed" | "image"
    provider: str
    model: str
    model_class: str
    preset: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    cost_usd: float = math.nan
    cache_hit: bool = False
    error: str | None = None
    items: int = 1  # texts in an embedding batch
    extra: dict[str, Any] = field(default_factory=dict)


def cost_usd(prices: tuple[float, float], prompt_tokens: int | None, completion_tokens: int | None) -> float:
    """Cost from USD-per-1M prices; NaN when the price or the counts are unknown."""
    p_in, p_out = prices
    if prompt_tokens is None and completion_tokens is None:
        return math.nan
    return ((prompt_tokens or 0) * p_in + (completion_tokens or 0) * p_out) / 1_000_000


class Ledger:
    """Thread-safe append-only list of LedgerRows with a DataFrame view."""

    def __init__(self) -> None:
        self._rows: list[LedgerRow] = []
        self._lock = threading.Lock()

    def record(self, row: LedgerRow) -> None:
        with self._lock:
            self._rows.append(row)

    def rows(self) -> list[LedgerRow]:
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def spent_usd(self) -> float:
        """Total known cost (NaN costs count as 0 here: a cap can only see known prices)."""
        with self._lock:
            return sum(r.cost_usd for r in self._rows if not math.isnan(r.cost_usd))

    def dataframe(self):
        """The ledger as a pandas DataFrame (one row per attempt)."""
        import pandas as pd

        cols = [f for f in LedgerRow.__dataclass_fields__ if f != "extra"]
        records = [{k: v for k, v in asdict(r).items() if k != "extra"} for r in self.rows()]
        df = pd.DataFrame.from_records(records, columns=cols)
        df["time"] = pd.to_datetime(df["time"], unit="s")
        return df


def now() -> float:
    return time.time()
