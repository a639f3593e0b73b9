"""The disk tier: a SQLite store of our own under ``<home>/cache/store``, shared by processes.

One table, keyed by the 32-byte hash; each row holds a record's bytes, its tag, and what
the eviction policies order by::

    entries(key BLOB PRIMARY KEY, tag TEXT, value BLOB, stored_at REAL, accessed_at REAL, hits INTEGER)

The file is in WAL mode (readers never wait for a writer), every connection waits up to
``timeout_s`` for another process's write lock, and each batch is one transaction, so a
kernel killed mid-batch leaves the batch whole or absent. Values are only ever handed to
the caller's decoder as bytes: nothing is unpickled, and the database names no files.

A cache directory may come from someone else, so before the first read or write the
schema is checked: ``sqlite_master`` must hold exactly our table and indexes (a trigger,
view or other table could run the file's SQL on our reads and writes), and the file must
carry our application id and schema version; the connection also runs with
``trusted_schema = OFF``. A store that is not ours (a crafted file, the diskcache layout
of earlier versions) is moved aside to ``store.foreign-<time>`` and a new one started, with
one warning; a store of a newer eliza_nb turns the tier off rather than being moved away
from under it. A store SQLite reports as corrupt (or that fails ``quick_check`` once a
record in it failed its checksum) is moved aside to ``store.corrupt-<time>`` and rebuilt,
with one warning; a home that cannot be written turns the tier off.

Sizes: SQLite reads the file page by page as a query needs it (at most ``cache_size`` pages
plus the ``mmap_size`` window in memory), so the file's own size never has to be read in,
and the size limit is kept by eviction after each write. What could balloon is one row's
value handed to Python, so a row is read only after ``length(value)``, which SQLite answers
from the record header without loading the value, says it is a blob of at most
MAX_VALUE_BYTES; a larger or non-blob row is deleted unread. Values over the cap are never
written either.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")

DBNAME = "cache.db"
APPLICATION_ID = int.from_bytes(b"ENBc", "big")  # PRAGMA application_id: marks the file as ours
SCHEMA_VERSION = 1  # PRAGMA user_version
CHUNK = 500  # keys per IN (...) query, well under SQLite's variable limit
#: the largest record read or written: a 65,536-dimension vector is 256 KiB, a long answer a few MB
MAX_VALUE_BYTES = 16 * 2**20
TABLE = ("CREATE TABLE entries (key BLOB PRIMARY KEY NOT NULL, tag TEXT NOT NULL, value BLOB NOT NULL,"
         " stored_at REAL NOT NULL, accessed_at REAL NOT NULL, hits INTEGER NOT NULL DEFAULT 0)")
#: the column each eviction policy deletes the lowest of first
ORDER = {"least-recently-stored": "stored_at", "least-recently-used": "accessed_at", "least-frequently-used": "hits"}
#: recording an access (LRU/LFU only); an LRU access within TOUCH_GRAIN_S of the last is not rewritten
_TOUCH = {"least-recently-used": ("accessed_at = ?", "AND accessed_at < ?"), "least-frequently-used": ("hits = hits + 1", "")}
TOUCH_GRAIN_S = 3600.0


def _index(column: str) -> tuple[str, str, str, str]:
    """The ``sqlite_master`` row of the index on one column (as SQLite stores it)."""
    return ("index", f"entries_{column}", "entries", f"CREATE INDEX entries_{column} ON entries ({column})")


#: what sqlite_master must hold: the table, its key's index, and the index prune (and the default policy) use
REQUIRED = {("table", "entries", "entries", TABLE), ("index", "sqlite_autoindex_entries_1", "entries", None),
            _index("stored_at")}
#: indexes made when a process runs with the policy that orders by them
OPTIONAL = {_index(column) for column in ORDER.values()} - REQUIRED


class DiskUnavailable(Exception):
    """The store could not be opened or used; the caller falls back to memory."""


class ForeignStore(Exception):
    """The file is a SQLite database, but not a store of ours (the reason is the message)."""


class NewerStore(ForeignStore):
    """A store of a newer eliza_nb: used by other kernels, so left where it is."""


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


def check_schema(con: sqlite3.Connection) -> None:
    """Raise :class:`ForeignStore` (or :class:`NewerStore`) unless the database on ``con`` is a store of ours."""
    (app,), (version,) = (con.execute(f"PRAGMA {p}").fetchone() for p in ("application_id", "user_version"))
    rows = set(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    if app != APPLICATION_ID:
        old = {"Cache", "Settings"} <= {row[1] for row in rows}
        raise ForeignStore("the diskcache layout of earlier versions" if old else "not an eliza_nb cache")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise (NewerStore if newer else ForeignStore)(f"schema version {version}; this eliza_nb reads {SCHEMA_VERSION}")
    unknown = sorted(f"{kind} {name}" for kind, name, _, _ in rows - REQUIRED - OPTIONAL)
    if unknown:
        raise ForeignStore("it holds " + ", ".join(unknown))
    if not REQUIRED.issubset(rows):
        raise ForeignStore("its table or indexes differ from ours")


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
        self._inode: int | None = None  # the file we opened (another process may move it aside)
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self.disabled: str | None = None  # the reason, once the tier is off
        self.rejected = 0  # rows refused on read (not bytes, bad header, NaN)
        self._verified = False  # quick_check ran this session (see verify_once)

    @property
    def path(self) -> Path:
        return self.directory / DBNAME

    # -- opening -------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self._con is not None:
            if self._pid == os.getpid():
                return self._con
            self._con = None  # a forked child must not use its parent's connection
        if self.disabled:
            raise DiskUnavailable(self.disabled)
        self.directory.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
        try:
            self._inode = os.stat(self.path).st_ino
            con.execute("PRAGMA trusted_schema = OFF")  # SQL in the file's schema may not call functions with effects
            con.execute("PRAGMA auto_vacuum = FULL")  # takes only on a new file: freed pages go back to the disk
            for pragma in ("synchronous = NORMAL", "cache_size = 8192", "mmap_size = 67108864"):
                con.execute(f"PRAGMA {pragma}")
            self._create_if_empty(con)
            check_schema(con)  # before anything is written to a file that may not be ours
            con.execute("PRAGMA journal_mode = WAL")
            self._add_policy_index(con)
        except BaseException:
            con.close()
            raise
        self._con, self._pid = con, os.getpid()
        return con

    @staticmethod
    def _create_if_empty(con: sqlite3.Connection) -> None:
        if con.execute("SELECT count(*) FROM sqlite_master").fetchone() != (0,):
            return
        with _transaction(con):
            if con.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,):  # no other process made it meanwhile
                con.execute(TABLE)
                con.execute(_index("stored_at")[3])
                con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _add_policy_index(self, con: sqlite3.Connection) -> None:
        """The index the configured policy evicts by (LRU, LFU), made once per store."""
        column = ORDER.get(self.policy)
        if column is None or _index(column) in REQUIRED:
            return
        name = _index(column)[1]
        exists = "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?"
        if con.execute(exists, (name,)).fetchone() == (0,):
            with _transaction(con):
                if con.execute(exists, (name,)).fetchone() == (0,):
                    con.execute(_index(column)[3])

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    # -- the guard every operation goes through --------------------------------------
    def _run(self, op: Callable[..., T], default: T, *args: object) -> T:
        """Run ``op(connection, *args)``; replace a broken or foreign store once, degrade on anything else."""
        with self._lock:
            for attempt in (1, 2):  # bounded: the second failure turns the tier off
                try:
                    return op(self._open(), *args)
                except DiskUnavailable:
                    return default
                except NewerStore as exc:
                    self._disable(RuntimeError(f"made by a newer eliza_nb: {exc}"))
                    return default
                except ForeignStore as exc:
                    if attempt == 1:
                        self._move_aside("foreign", f"is not a cache store of this eliza_nb ({exc})")
                        continue
                    self._disable(exc)
                    return default
                except (sqlite3.Error, ValueError, OSError) as exc:
                    if isinstance(exc, sqlite3.Error) and _is_busy(exc):
                        self._warn(f"eliza_nb cache: {self.path} stayed locked for {self.timeout_s:.0f} s; "
                                   "this call went on without the disk tier")
                        return default
                    if attempt == 1 and isinstance(exc, sqlite3.Error) and _is_corrupt(exc):
                        self._move_aside("corrupt", f"was unreadable ({' '.join(str(exc).split())})")
                        continue
                    self._disable(exc)
                    return default
            return default

    def _move_aside(self, label: str, why: str) -> None:
        """Rename the store to ``store.<label>-<time>`` so the next open starts fresh."""
        self.close()
        try:
            moved_already = os.stat(self.path).st_ino != self._inode
        except OSError:
            moved_already = True
        self._inode = None
        if moved_already:
            return  # another process moved the file we opened away (and may have started a new one)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.directory.with_name(f"{self.directory.name}.{label}-{stamp}-{os.getpid()}")
        try:
            os.replace(self.directory, target)
        except OSError as err:
            self._disable(err)
            return
        self._warn(f"eliza_nb cache: {self.path} {why}; moved it to {target} and started a new cache")

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
        """The stored records for those keys that have one (values that are not bytes are deleted)."""
        if not keys:
            return {}

        def op(con: sqlite3.Connection) -> dict[bytes, bytes]:
            found: dict[bytes, bytes] = {}
            refused: list[bytes] = []
            now = time.time()
            # A column's declared type binds nothing in SQLite: a crafted row may hold text, a
            # number or a gigabyte; such a value comes back as NULL, never read into Python.
            readable = f"CASE WHEN typeof(value) = 'blob' AND length(value) <= {MAX_VALUE_BYTES} THEN value END"
            for i in range(0, len(keys), CHUNK):
                part = keys[i:i + CHUNK]
                sql = f"SELECT key, {readable} FROM entries WHERE key IN ({','.join('?' * len(part))})"
                for key, value in con.execute(sql, part):
                    if type(value) is bytes:
                        found[key] = value
                    else:
                        refused.append(key)
            if refused:
                self.rejected += len(refused)
                self._delete(con, refused)
            if found and self.policy in _TOUCH:
                self._touch(con, list(found), now)
            return found

        return self._run(op, {})

    def _touch(self, con: sqlite3.Connection, keys: list[bytes], now: float) -> None:
        """Record the access for LRU/LFU eviction; skipped (not waited for) while another writer holds the lock."""
        assign, recent = _TOUCH[self.policy]
        con.execute("PRAGMA busy_timeout = 50")
        try:
            with _transaction(con):
                for i in range(0, len(keys), CHUNK):
                    part = keys[i:i + CHUNK]
                    params = (now, *part, now - TOUCH_GRAIN_S) if recent else tuple(part)
                    con.execute(f"UPDATE entries SET {assign} WHERE key IN ({','.join('?' * len(part))}) {recent}", params)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        finally:
            con.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")

    def put_many(self, records: Iterable[tuple[bytes, bytes]], tag: str) -> int:
        """Write records (key, value) in ONE transaction, replacing any stored under the same
        keys, then evict if over the size limit (a value over MAX_VALUE_BYTES is not written:
        it would be refused when read)."""
        rows = [(key, value) for key, value in records if len(value) <= MAX_VALUE_BYTES]
        if not rows:
            return 0

        def op(con: sqlite3.Connection) -> int:
            now = time.time()
            with _transaction(con):
                con.executemany(
                    "INSERT INTO entries (key, tag, value, stored_at, accessed_at, hits) VALUES (?, ?, ?, ?, ?, 0)"
                    " ON CONFLICT (key) DO UPDATE SET tag = excluded.tag, value = excluded.value,"
                    " stored_at = excluded.stored_at, accessed_at = excluded.accessed_at",
                    [(key, tag, value, now, now) for key, value in rows])
            self._evict(con)
            return len(rows)

        return self._run(op, 0)

    def add_many(self, records: Iterable[tuple[bytes, bytes]], tag: str) -> dict[bytes, bytes]:
        """Write the records whose key is not stored yet, in ONE transaction; return the
        values already stored for the others (the first writer wins).

        The write lock is taken before the look-up (BEGIN IMMEDIATE), so two processes
        storing the same key at once cannot both see it missing: the second one gets the
        first one's value back and uses it, and every reader sees one value per key."""
        rows = {key: value for key, value in records if len(value) <= MAX_VALUE_BYTES}
        if not rows:
            return {}

        def op(con: sqlite3.Connection) -> dict[bytes, bytes]:
            now = time.time()
            keys = list(rows)
            stored: dict[bytes, bytes] = {}
            with _transaction(con):
                for i in range(0, len(keys), CHUNK):
                    part = keys[i:i + CHUNK]
                    sql = (f"SELECT key, CASE WHEN typeof(value) = 'blob' AND length(value) <= {MAX_VALUE_BYTES}"
                           f" THEN value END FROM entries WHERE key IN ({','.join('?' * len(part))})")
                    stored.update((key, value) for key, value in con.execute(sql, part) if type(value) is bytes)
                # A row that is not a readable blob is replaced, as get_many would delete it.
                con.executemany(
                    "INSERT INTO entries (key, tag, value, stored_at, accessed_at, hits) VALUES (?, ?, ?, ?, ?, 0)"
                    " ON CONFLICT (key) DO UPDATE SET tag = excluded.tag, value = excluded.value,"
                    " stored_at = excluded.stored_at, accessed_at = excluded.accessed_at",
                    [(key, tag, value, now, now) for key, value in rows.items() if key not in stored])
            self._evict(con)
            return stored

        return self._run(op, {})

    def _evict(self, con: sqlite3.Connection) -> None:
        """Delete the policy's least valuable rows until the data fits the size limit (bounded)."""
        order = ORDER.get(self.policy)
        if order is None:
            return
        for _ in range(20):
            volume = _volume(con)
            if volume <= self.size_limit:
                return
            (count,) = con.execute("SELECT count(*) FROM entries").fetchone()
            if not count:
                return
            # Down to 90% of the limit, so a full cache does not evict on every write.
            n = max(10, int((volume - self.size_limit * 0.9) / max(1.0, volume / count)) + 1)
            with _transaction(con):
                con.execute(f"DELETE FROM entries WHERE rowid IN (SELECT rowid FROM entries ORDER BY {order} LIMIT ?)", (n,))

    def _delete(self, con: sqlite3.Connection, keys: Sequence[bytes]) -> int:
        removed = 0
        with _transaction(con):
            for i in range(0, len(keys), CHUNK):
                part = list(keys[i:i + CHUNK])
                removed += con.execute(f"DELETE FROM entries WHERE key IN ({','.join('?' * len(part))})", part).rowcount
        return removed

    def delete(self, keys: Sequence[bytes]) -> int:
        """Remove these keys (e.g. records that failed validation on read)."""
        return self._run(lambda con: self._delete(con, keys), 0)

    def delete_where(self, *, tags: Sequence[str] | None = None, stored_before: float | None = None,
                     keep_tags: Sequence[str] = ()) -> int:
        """Delete by tag and/or store time; ``tags=None`` means every tag. Returns rows removed."""
        clauses: list[str] = []
        params: list[str | float] = []
        if tags is not None:
            if not tags:
                return 0
            clauses.append(f"tag IN ({','.join('?' * len(tags))})")
            params += list(tags)
        if stored_before is not None:
            clauses.append("stored_at < ?")
            params.append(stored_before)
        if keep_tags:
            clauses.append(f"tag NOT IN ({','.join('?' * len(keep_tags))})")
            params += list(keep_tags)
        where = " AND ".join(clauses) or "1"

        def op(con: sqlite3.Connection) -> int:
            with _transaction(con):
                return con.execute(f"DELETE FROM entries WHERE {where}", params).rowcount

        return self._run(op, 0)

    def tag_stats(self) -> list[tuple[str, int, int]]:
        """(tag, entries, bytes) per tag."""
        def op(con: sqlite3.Connection) -> list[tuple[str, int, int]]:
            rows = con.execute("SELECT tag, count(*), coalesce(sum(length(value)), 0) FROM entries GROUP BY tag")
            return [(t if isinstance(t, str) else "", int(n), int(b)) for t, n, b in rows]

        return self._run(op, [])

    def volume(self) -> int:
        """Bytes in use in the database (what the size limit is measured against)."""
        return self._run(_volume, 0)


def _volume(con: sqlite3.Connection) -> int:
    # Pages in use, not the file size: counting free pages would make eviction delete everything.
    (pages,), (free,), (size,) = (con.execute(f"PRAGMA {p}").fetchone() for p in ("page_count", "freelist_count", "page_size"))
    return int((pages - free) * size)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the connection is in autocommit mode)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.con.execute("COMMIT")
        elif self.con.in_transaction:
            self.con.execute("ROLLBACK")
