"""The disk tier: a diskcache store under ``<home>/cache/store`` that can never run code.

diskcache creates the store (schema, settings, WAL, pragmas), so ``diskcache.Cache(dir)``
can open it; every read and write after that is our own SQL on our own connection,
because diskcache's read paths unpickle values stored in its pickle mode and its
delete paths remove files named by the database. A cache directory copied from someone
else must not be able to run code or delete files, so:

- only rows with a raw key, ``mode == MODE_RAW`` and a ``bytes`` value are ever read;
  anything else is ignored and deleted (never unpickled, never its file touched);
- values are written inline (MODE_RAW, no files) with one UPSERT per entry, many
  entries per transaction;
- eviction is our own ``DELETE`` by the configured policy; no file is ever removed;
- settings are always ours (unknown rows, and pragma rows with values not ours, are
  dropped before diskcache pastes them into PRAGMA statements), triggers and views other
  than diskcache's own are dropped (they would run the file's SQL on our reads and
  writes), and the connection runs with ``trusted_schema = OFF``.

A store that SQLite reports as corrupt (or that fails ``quick_check`` once a record in it
failed its checksum) is moved aside (renamed with a timestamp) and rebuilt once, with a
warning; a home that cannot be written turns the tier off.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

DBNAME = "cache.db"  # diskcache's file name
MODE_RAW = 1  # diskcache's "stored as is" mode: the only one we read
CHUNK = 500  # keys per IN (...) query, well under SQLite's variable limit
_ORDER = {
    "least-recently-stored": "store_time",
    "least-recently-used": "access_time",
    "least-frequently-used": "access_count",
}
_TOUCH = {
    # an access within the last hour is recent enough: skipping those rows saves rewriting them
    "least-recently-used": ("access_time = ?", "AND access_time < ?"),
    "least-frequently-used": ("access_count = access_count + 1", ""),
}
TOUCH_GRAIN_S = 3600.0
_KNOWN_SETTINGS = (
    "statistics", "tag_index", "eviction_policy", "size_limit", "cull_limit", "sqlite_auto_vacuum",
    "sqlite_cache_size", "sqlite_journal_mode", "sqlite_mmap_size", "sqlite_synchronous",
    "disk_min_file_size", "disk_pickle_protocol", "count", "size", "hits", "misses",
)


#: the pragmas we open every store with (diskcache keeps them in Settings as sqlite_*)
_PRAGMAS = {"sqlite_auto_vacuum": 1, "sqlite_cache_size": 2**13, "sqlite_journal_mode": "wal",
            "sqlite_mmap_size": 2**26, "sqlite_synchronous": 1}
#: diskcache's own triggers (they keep Settings' count and size), whitespace-normalised
_DISKCACHE_TRIGGER = re.compile(
    r'CREATE TRIGGER (?:IF NOT EXISTS )?Settings_(?:count|size)_(?:insert|update|delete) '
    r'AFTER (?:INSERT|UPDATE|DELETE) ON Cache FOR EACH ROW BEGIN '
    r'UPDATE Settings SET value = value(?: [+-] (?:1|NEW\.size|OLD\.size))+ WHERE key = "(?:count|size)"; END')


class DiskUnavailable(Exception):
    """The store could not be opened or used; the caller falls back to memory."""


def _is_busy(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


def _is_corrupt(exc: BaseException) -> bool:
    """SQLite's ways of saying the file is damaged (as opposed to busy or not writable).

    Only these move a store aside; anything else (including a bug of ours) only turns
    the tier off for the session.
    """
    if isinstance(exc, sqlite3.OperationalError):
        msg = str(exc).lower()
        return "malformed" in msg or "not a database" in msg or "disk i/o error" in msg or "no such table" in msg
    return isinstance(exc, sqlite3.DatabaseError) and not _is_busy(exc)


class DiskTier:
    """Bulk get/put of ``bytes`` records by 32-byte key, with a tag per record."""

    def __init__(self, directory: Path, *, size_limit: int, policy: str, timeout_s: float,
                 warn: Callable[[str], None]) -> None:
        self.directory = Path(directory)
        self.size_limit = int(size_limit)
        self.policy = policy
        self.timeout_s = float(timeout_s)
        self._warn = warn
        self._con: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None
        self._inode: int | None = None
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self.disabled: str | None = None  # the reason, once the tier is off
        self.rejected = 0  # rows refused on read (wrong mode, bad header, NaN)
        self._verified = False  # quick_check ran this session (see verify_once)

    @property
    def path(self) -> Path:
        return self.directory / DBNAME

    # -- opening -------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self._con is not None:
            if self._pid == os.getpid():
                return self._con
            self._con = self._cursor = None  # a forked child must not use its parent's connection
        if self.disabled:
            raise DiskUnavailable(self.disabled)
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._sanitise_settings()
        import diskcache

        # diskcache builds (or upgrades) the schema and settings, then we let it go.
        store = diskcache.Cache(
            str(self.directory), timeout=self.timeout_s, size_limit=self.size_limit,
            eviction_policy=self.policy if self.policy in _ORDER else "none", cull_limit=0,
            statistics=0, tag_index=0, disk_min_file_size=2**30, **_PRAGMAS,
        )
        store.close()
        con = self._connect()
        con.execute("SELECT count(*) FROM Settings").fetchone()  # a damaged header fails here
        self._con, self._inode, self._pid = con, os.stat(self.path).st_ino, os.getpid()
        return con

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
        for pragma in ("trusted_schema = OFF", "synchronous = 1", "cache_size = 8192", "mmap_size = 67108864"):
            con.execute(f"PRAGMA {pragma}")
        return con

    def _sanitise_settings(self) -> None:
        """Before diskcache opens the store, take out what a crafted file could make it run.

        diskcache runs ``PRAGMA {key} = {value}`` for every ``sqlite_*`` row of Settings
        when it connects (values pasted into the SQL), so rows we did not write, and
        pragma rows whose values are not ours, go (diskcache writes ours back). Triggers
        and views run SQL of the file's choosing on our reads and writes (a trigger can
        rewrite every entry we store); only diskcache's own bookkeeping triggers stay.
        """
        con = self._connect()
        try:
            marks = ",".join("?" * len(_KNOWN_SETTINGS))
            con.execute(f"DELETE FROM Settings WHERE key NOT IN ({marks})", _KNOWN_SETTINGS)
            for key, value in _PRAGMAS.items():
                con.execute("DELETE FROM Settings WHERE key = ? AND value IS NOT ?", (key, value))
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
        try:
            active = con.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('trigger', 'view')").fetchall()
            for kind, name, sql in active:
                if kind == "trigger" and _DISKCACHE_TRIGGER.fullmatch(" ".join(str(sql or "").split())):
                    continue
                quoted = '"' + str(name).replace('"', '""') + '"'
                con.execute(f"DROP {'TRIGGER' if kind == 'trigger' else 'VIEW'} IF EXISTS {quoted}")
        finally:
            con.close()

    def close(self) -> None:
        with self._lock:
            self._cursor = None
            if self._con is not None:
                self._con.close()
                self._con = None

    # -- the guard every operation goes through --------------------------------------
    def _run(self, op: Callable[..., object], default: object, *args: object) -> object:
        """Run ``op(connection, *args)``; recover from corruption once, degrade on anything else."""
        with self._lock:
            for attempt in (1, 2):  # bounded: the second failure turns the tier off
                try:
                    return op(self._open(), *args)
                except DiskUnavailable:
                    return default
                except (sqlite3.Error, ValueError, OSError) as exc:
                    if isinstance(exc, sqlite3.Error) and _is_busy(exc):
                        self._warn(f"eliza_nb cache: {self.path} stayed locked for {self.timeout_s:.0f} s; "
                                   "this call went on without the disk tier")
                        return default
                    if attempt == 1 and isinstance(exc, sqlite3.Error) and _is_corrupt(exc):
                        self._move_aside(exc)
                        continue
                    self._disable(exc)
                    return default
            return default

    def _move_aside(self, exc: BaseException) -> None:
        """Rename a damaged store to ``store.corrupt-<time>`` so the next open starts fresh."""
        self.close()
        try:
            current = os.stat(self.path).st_ino if self.path.exists() else None
        except OSError:
            current = None
        if current is not None and self._inode is not None and current != self._inode:
            return  # another process already moved the damaged file away and rebuilt it
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.directory.with_name(f"{self.directory.name}.corrupt-{stamp}-{os.getpid()}")
        try:
            os.replace(self.directory, target)
        except OSError as err:
            self._disable(err)
            return
        self._inode = None
        self._warn(f"eliza_nb cache: {self.path} was unreadable ({' '.join(str(exc).split())}); moved it to {target} "
                   "and started a new cache")

    def _disable(self, exc: BaseException) -> None:
        self.close()
        reason = " ".join(str(getattr(exc, "strerror", None) or exc).split()) or type(exc).__name__
        self.disabled = f"{self.directory}: {reason}"
        self._warn(f"eliza_nb cache: cannot use the disk cache at {self.directory} ({reason}); "
                   "caching in memory only for this session")

    def verify_once(self) -> None:
        """Ask SQLite whether the file is damaged, once per session, after a record failed
        its checksum or header check: damage SQLite's read path does not notice (a value's
        bytes, an index page) would otherwise stay until some later write trips on it.
        A damaged store is moved aside and rebuilt like any other."""
        if self._verified:
            return
        self._verified = True

        def op(con: sqlite3.Connection) -> None:
            row = con.execute("PRAGMA quick_check(1)").fetchone()  # O(file size): rare, and only once
            if row != ("ok",):
                raise sqlite3.DatabaseError(f"database disk image is malformed ({row[0] if row else 'no answer'})")

        self._run(op, None)

    # -- records ---------------------------------------------------------------------
    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """The stored records for those keys that have one (raw bytes only; see the module doc)."""
        if not keys:
            return {}

        def op(con: sqlite3.Connection) -> dict[bytes, bytes]:
            found: dict[bytes, bytes] = {}
            refused: list[bytes] = []
            now = time.time()
            for i in range(0, len(keys), CHUNK):
                part = keys[i:i + CHUNK]
                sql = "SELECT key, mode, value FROM Cache WHERE raw = 1 AND key IN (%s)" % ",".join("?" * len(part))
                for key, mode, value in con.execute(sql, part):
                    # Never hand anything but raw bytes on: a pickled value is not read, only removed.
                    if mode == MODE_RAW and type(value) is bytes and type(key) is bytes:
                        found[key] = value
                    else:
                        refused.append(key)
            if refused:
                self.rejected += len(refused)
                self._delete(con, refused)
            if found and self.policy in _TOUCH:
                self._touch(con, list(found), now)
            return found

        return self._run(op, {})  # type: ignore[return-value]

    def get_one(self, key: bytes) -> bytes | None:
        """One record (the single-text path: one prepared statement, no batching)."""
        return self._run(self._get_one, None, key)  # type: ignore[return-value]

    def _get_one(self, con: sqlite3.Connection, key: bytes) -> bytes | None:
        if self._cursor is None:
            self._cursor = con.cursor()  # reused: the hot path skips making a cursor per read
        row = self._cursor.execute("SELECT mode, value FROM Cache WHERE key = ? AND raw = 1", (key,)).fetchone()
        if row is None:
            return None
        if row[0] == MODE_RAW and type(row[1]) is bytes:
            if self.policy in _TOUCH:
                self._touch(con, [key], time.time())
            return row[1]
        self.rejected += 1
        self._delete(con, [key])
        return None

    def _touch(self, con: sqlite3.Connection, keys: list[bytes], now: float) -> None:
        """Record the access for LRU/LFU eviction; skipped (not waited for) while another writer holds the lock."""
        con.execute("PRAGMA busy_timeout = 50")
        try:
            with _transaction(con):
                for i in range(0, len(keys), CHUNK):
                    part = keys[i:i + CHUNK]
                    assign, recent = _TOUCH[self.policy]
                    params = (now, *part, now - TOUCH_GRAIN_S) if recent else tuple(part)
                    con.execute(f"UPDATE Cache SET {assign} WHERE raw = 1 AND key IN "
                                f"({','.join('?' * len(part))}) {recent}", params)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        finally:
            con.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")

    def put_many(self, records: Iterable[tuple[bytes, bytes]], tag: str) -> int:
        """Write records (key, value) in ONE transaction, then evict if over the size limit."""
        rows = list(records)
        if not rows:
            return 0

        def op(con: sqlite3.Connection) -> int:
            now = time.time()
            params = [(key, now, now, tag, value) for key, value in rows]
            with _transaction(con):
                con.executemany(
                    "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size,"
                    " mode, filename, value) VALUES (?, 1, ?, NULL, ?, 0, ?, 0, 1, NULL, ?)"
                    " ON CONFLICT (key, raw) DO UPDATE SET store_time = excluded.store_time,"
                    " access_time = excluded.access_time, expire_time = NULL, tag = excluded.tag, size = 0,"
                    " mode = 1, filename = NULL, value = excluded.value", params)
            self._evict(con)
            return len(rows)

        return int(self._run(op, 0))  # type: ignore[arg-type]

    def _evict(self, con: sqlite3.Connection) -> None:
        """Delete the policy's least valuable rows until the data fits the size limit (bounded)."""
        order = _ORDER.get(self.policy)
        if order is None:
            return
        for _ in range(20):
            volume = _volume(con)
            if volume <= self.size_limit:
                return
            (count,) = con.execute("SELECT count(*) FROM Cache").fetchone()
            if not count:
                return
            # Down to 90% of the limit, so a full cache does not evict on every write.
            n = max(10, int((volume - self.size_limit * 0.9) / max(1.0, volume / count)) + 1)
            with _transaction(con):
                con.execute(f"DELETE FROM Cache WHERE rowid IN (SELECT rowid FROM Cache ORDER BY {order} LIMIT ?)", (n,))

    def _delete(self, con: sqlite3.Connection, keys: Sequence[bytes]) -> int:
        removed = 0
        with _transaction(con):
            for i in range(0, len(keys), CHUNK):
                part = list(keys[i:i + CHUNK])
                removed += con.execute(f"DELETE FROM Cache WHERE key IN ({','.join('?' * len(part))})", part).rowcount
        return removed

    def delete(self, keys: Sequence[bytes]) -> int:
        """Remove these keys (e.g. records that failed validation on read)."""
        return int(self._run(lambda con: self._delete(con, keys), 0))  # type: ignore[arg-type]

    def delete_where(self, *, tags: Sequence[str] | None = None, stored_before: float | None = None,
                     keep_tags: Sequence[str] = ()) -> int:
        """Delete by tag and/or store time; ``tags=None`` means every tag. Returns rows removed."""
        clauses, params = [], []
        if tags is not None:
            if not tags:
                return 0
            clauses.append(f"tag IN ({','.join('?' * len(tags))})")
            params += list(tags)
        if stored_before is not None:
            clauses.append("store_time < ?")
            params.append(stored_before)
        if keep_tags:
            clauses.append(f"(tag IS NULL OR tag NOT IN ({','.join('?' * len(keep_tags))}))")
            params += list(keep_tags)
        where = " AND ".join(clauses) or "1"

        def op(con: sqlite3.Connection) -> int:
            with _transaction(con):
                return con.execute(f"DELETE FROM Cache WHERE {where}", params).rowcount

        return int(self._run(op, 0))  # type: ignore[arg-type]

    def tag_stats(self) -> list[tuple[str, int, int]]:
        """(tag, entries, bytes) per tag."""
        def op(con: sqlite3.Connection) -> list[tuple[str, int, int]]:
            rows = con.execute("SELECT tag, count(*), coalesce(sum(length(value)), 0) FROM Cache GROUP BY tag")
            return [(t if isinstance(t, str) else "", int(n), int(b)) for t, n, b in rows]

        return self._run(op, [])  # type: ignore[return-value]

    def volume(self) -> int:
        """Bytes in use in the database (what the size limit is measured against)."""
        return int(self._run(_volume, 0))  # type: ignore[arg-type]


def _volume(con: sqlite3.Connection) -> int:
    # Pages in use, not the file size: without auto-vacuum a file never shrinks, and
    # counting free pages would make eviction delete everything.
    (pages,), (free,), (size,) = (con.execute(f"PRAGMA {p}").fetchone() for p in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * size


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the connection is in autocommit mode)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.con.execute("COMMIT")
        elif self.con.in_transaction:
            self.con.execute("ROLLBACK")
