"""The usage ledger: one row per call attempt, cache hits and failures included."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(slots=True)  # one per attempt, kept for the whole session: slots keep that small
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
    error: str | None = None  # "ClassName: message" of a failed or interrupted attempt
    #: "ok", "error", or "interrupted" (the stop button, a stream cut after text was shown,
    #: a stream closed early): an interrupted call keeps its reason in ``error`` but is no error
    status: str = "ok"
    items: int = 1  # texts in an embedding batch
    replayed: bool = False  # answered from a replay archive (core/replay/), not a provider
    #: what the call was for: "call" (the user's), or the name given by ``Ledger.purpose``
    #: around it ("judge": a benchmark's judge grading an answer)
    purpose: str = "call"


#: what ``Ledger.totals(by=...)`` groups by
GROUPS: dict[str, list[str]] = {"provider": ["provider"], "model": ["provider", "model"], "kind": ["kind"],
                                "preset": ["preset"], "purpose": ["purpose"]}


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
        self._captures = threading.local()  # per thread: lists that also receive its rows
        self._purposes = threading.local()  # per thread: the purpose its rows are marked with

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[LedgerRow]]:
        """The rows this thread logs inside the block, also collected in a list (a Dask
        worker hands them back to the notebook's ledger)."""
        stack = self._captures.__dict__.setdefault("stack", [])
        rows: list[LedgerRow] = []
        stack.append(rows)
        try:
            yield rows
        finally:
            stack.remove(rows)

    @contextlib.contextmanager
    def purpose(self, name: str) -> Iterator[None]:
        """Mark the rows this thread logs inside the block with ``purpose=name`` (e.g. "judge"),
        unless a row names its own. Per thread, so a benchmark's judge calls are told apart
        from the calls it grades running at the same time on other threads; nests."""
        stack = self._purposes.__dict__.setdefault("stack", [])
        stack.append(str(name))
        try:
            yield
        finally:
            stack.pop()

    def add(self, rows: Iterable[LedgerRow]) -> None:
        """Append rows logged elsewhere (a worker's), as they were."""
        rows = [r for r in rows if isinstance(r, LedgerRow)]
        with self._lock:
            self._rows.extend(rows)

    def log(self, kind: str, target: Any, *, error: BaseException | str | None = None, **fields: Any) -> LedgerRow:
        """Add one row: ``kind`` of call, the ``target`` tried, and any other LedgerRow field.

        The only place rows are built, so every surface's rows agree. An ``error`` is kept
        as ``"ClassName: message"``; a StreamInterrupted one makes the row's status
        "interrupted", any other "error".
        """
        from .errors import StreamInterrupted

        status = "ok" if error is None else "interrupted" if isinstance(error, StreamInterrupted) else "error"
        marks = self._purposes.__dict__.get("stack")
        if marks and "purpose" not in fields:
            fields["purpose"] = marks[-1]
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        row = LedgerRow(time=time.time(), kind=kind, provider=target.provider, model=target.model,
                        model_class=str(target.model_class), error=error, status=status, **fields)
        with self._lock:
            self._rows.append(row)
        for rows in self._captures.__dict__.get("stack", ()):
            rows.append(row)
        return row

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

    def totals(self, by: str = "provider") -> pd.DataFrame:
        """Totals per provider, (provider, model), kind, preset or purpose: calls, errors, interrupted
        calls, cache hits, tokens, latency, cost (NaN stays NaN when no price is known)."""
        from .errors import ConfigError

        keys = GROUPS.get(by)
        if keys is None:
            raise ConfigError(f"usage(by=...) takes one of {', '.join(GROUPS)}, not {by!r}")
        df = self.dataframe()
        if df.empty:
            return df
        df[keys] = df[keys].fillna("—")
        df["is_error"], df["is_interrupted"] = df["status"].eq("error"), df["status"].eq("interrupted")
        g = df.groupby(keys, sort=False)
        out = g.agg(calls=("kind", "size"), errors=("is_error", "sum"), interrupted=("is_interrupted", "sum"),
                    cache_hits=("cache_hit", "sum"), prompt_tokens=("prompt_tokens", "sum"),
                    completion_tokens=("completion_tokens", "sum"), mean_latency_s=("latency_s", "mean"))
        out["cost_usd"] = g["cost_usd"].sum(min_count=1)
        return out.reset_index()

    def dataframe(self) -> pd.DataFrame:
        """The ledger as a pandas DataFrame (one row per attempt): ``time`` in the machine's
        local time zone, token counts as whole numbers (pandas' nullable Int64: <NA> where
        the provider reported none, never 12.0)."""
        import pandas as pd
        from dateutil.tz import tzlocal

        cols = list(LedgerRow.__dataclass_fields__)
        records = [[getattr(r, c) for c in cols] for r in self.rows()]
        df = pd.DataFrame.from_records(records, columns=cols)
        df["time"] = pd.to_datetime(df["time"], unit="s", utc=True).dt.tz_convert(tzlocal())
        for col in ("prompt_tokens", "completion_tokens", "items"):
            df[col] = df[col].astype("Int64")
        df["latency_s"] = df["latency_s"].astype(float)
        df["cost_usd"] = df["cost_usd"].astype(float)
        return df


class SpendingCap:
    """An optional cap on known spending this session: once reached, paid calls are refused
    (free ones — local models, zero-price entries — still run, so a failover chain can
    fall through to them)."""

    def __init__(self, max_usd: float | None = None) -> None:
        self.max_usd = max_usd

    @classmethod
    def from_config(cls, table: Any) -> SpendingCap:
        """From the ``[budget]`` table: ``max_usd``, a finite number >= 0 (NaN, infinity, text and
        true/false are a one-line ConfigError)."""
        from .errors import ConfigError
        from .settings import check_number, config_table

        table = config_table(table, "[budget]")
        unknown = sorted(set(table) - {"max_usd"})
        if unknown:
            raise ConfigError(f"unknown [budget] option(s) {', '.join(unknown)}; valid: max_usd")
        value = table.get("max_usd")
        return cls(None if value is None else check_number(value, "[budget] max_usd", minimum=0))

    def set(self, max_usd: float | None) -> None:
        """Set the cap in USD (None removes it); the same check as ``[budget] max_usd``."""
        from .settings import check_number

        self.max_usd = None if max_usd is None else check_number(max_usd, "the budget in USD (None for no cap)", minimum=0)

    def check(self, entry: Any, model: str, ledger: Ledger) -> None:
        """Raise BudgetExceeded when the cap is reached and this call is not free."""
        if self.max_usd is None:
            return
        if entry.price(model) == (0.0, 0.0) or entry.protocol == "llama_local":
            return
        spent = ledger.spent_usd()
        if spent >= self.max_usd:
            from .errors import BudgetExceeded

            raise BudgetExceeded(
                f"spending cap reached: ${spent:.4f} of ${self.max_usd:.2f} spent this session; "
                "raise it with eliza_nb.set_budget(usd) or use a free provider such as llama_local",
                provider=entry.id,
            )
