"""The memory tier: a thread-safe LRU with a TTL (the seed's NodeCache, stdTTL 300 s)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any


class MemoryTier:
    """Thread-safe LRU with a TTL: the newest ``max_entries`` values, each for ``ttl_s`` after it was stored."""

    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries, self.ttl_s, self._clock = int(max_entries), float(ttl_s), clock
        self._data: OrderedDict[bytes, tuple[Any, str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Any:
        """The value, or None when absent or expired."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if self.ttl_s and self._clock() - item[2] > self.ttl_s:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return item[0]

    def get_many(self, keys: Iterable[bytes]) -> dict[bytes, Any]:
        out: dict[bytes, Any] = {}
        now = self._clock()
        with self._lock:
            data = self._data
            for key in keys:
                item = data.get(key)
                if item is None:
                    continue
                if self.ttl_s and now - item[2] > self.ttl_s:
                    del data[key]
                    continue
                data.move_to_end(key)
                out[key] = item[0]
        return out

    def put(self, key: bytes, value: Any, tag: str) -> None:
        if self.max_entries <= 0:
            return
        now = self._clock()
        with self._lock:
            self._data[key] = (value, tag, now)
            self._data.move_to_end(key)
            if len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def put_many(self, items: Iterable[tuple[bytes, Any]], tag: str) -> None:
        if self.max_entries <= 0:
            return
        now = self._clock()
        with self._lock:
            data = self._data
            for key, value in items:
                data[key] = (value, tag, now)
                data.move_to_end(key)
            while len(data) > self.max_entries:  # bounded by the number just added
                data.popitem(last=False)

    def remove_where(self, keep: Callable[[str, float], bool]) -> int:
        """Drop entries for which ``keep(tag, age_s)`` is False; returns how many."""
        now = self._clock()
        with self._lock:
            doomed = [k for k, (_, tag, at) in self._data.items() if not keep(tag, now - at)]
            for k in doomed:
                del self._data[k]
        return len(doomed)

    def by_tag(self) -> dict[str, tuple[int, int]]:
        """tag -> (entries, bytes) of the live entries."""
        out: dict[str, list[int]] = {}
        now = self._clock()
        with self._lock:
            for value, tag, at in self._data.values():
                if self.ttl_s and now - at > self.ttl_s:
                    continue
                row = out.setdefault(tag, [0, 0])
                row[0] += 1
                row[1] += int(getattr(value, "nbytes", 0) or len(str(value)))
        return {t: (n, b) for t, (n, b) in out.items()}

    def __len__(self) -> int:
        return len(self._data)
