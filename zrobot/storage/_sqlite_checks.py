"""Open-time checks and error translation for the SQLite store.

Private to `zrobot.storage.sqlite`. Two concerns that surround the store
without being part of it:

- `inspect` reads an existing file read-only before any read-write handle
  exists: the SQLite header, `PRAGMA quick_check` and the stored schema
  version. A file that fails is refused with StorageCorrupt,
  StorageVersionTooNew or StorageUnwritable and stays byte-for-byte as it
  was; the -wal/-shm side files the check itself created are removed again.
- `translated` and `os_errors` turn sqlite3 and OS errors into the
  StorageError subtree, once, at the store's boundary.

Everything here runs in the calling greenlet and blocks for local disk I/O.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import sqlite3
from collections.abc import Iterator

from zrobot import errors

logger = logging.getLogger(__name__)

_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_SIDE_SUFFIXES = ("-wal", "-shm")

_UNWRITABLE_CODES = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}
)
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


# -- opening: read-only checks ------------------------------------------------


def inspect(path: pathlib.Path, newest: int) -> int:
    """Return the schema version of the file at path, 0 when new or empty.

    Reads only; `newest` is the highest version this zrobot understands.
    Raises StorageCorrupt, StorageVersionTooNew or StorageUnwritable; on
    refusal removes the side files it created.
    """
    if not path.parent.is_dir():
        raise errors.StorageUnwritable(
            f"cannot create the store {path}: {path.parent} is not a directory",
            metadata={"path": str(path)},
        )
    if not path.exists():
        return 0
    created = [s for s in _SIDE_SUFFIXES if not _side(path, s).exists()]
    try:
        return _check_file(path, newest)
    except errors.StorageError:
        _remove_created(path, created)
        raise


def stored_version(db: sqlite3.Connection, path: pathlib.Path) -> int:
    """Return the schema version kept in the store, 0 for an empty database.

    Raises StorageCorrupt for a database that is not a zrobot store.
    """
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    if not tables:
        return 0
    row = None
    if "meta" in tables:
        sql = "SELECT value FROM meta WHERE key = 'schema_version'"
        row = db.execute(sql).fetchone()
    if row is None or not str(row[0]).isdigit():
        raise corrupt(path, "is a SQLite database but not a zrobot store")
    return int(row[0])


def _check_file(path: pathlib.Path, newest: int) -> int:
    _check_header(path)
    version = _read_version(path)
    if version > newest:
        raise errors.StorageVersionTooNew(
            f"{path} has schema version {version}, newer than version "
            f"{newest} of this zrobot; upgrade zrobot to open it "
            "(the file was left untouched)",
            metadata={"path": str(path), "version": str(version)},
        )
    _check_writable(path)
    return version


def _check_header(path: pathlib.Path) -> None:
    with os_errors(path, "read the store"), path.open("rb") as file:
        header = file.read(_HEADER_SIZE)
    if header and (len(header) < _HEADER_SIZE or not header.startswith(_MAGIC)):
        raise corrupt(path, "is not a SQLite database")


def _read_version(path: pathlib.Path) -> int:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with translated(path, "open the store"):
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
    with contextlib.closing(db), translated(path, "check the store"):
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise corrupt(path, f"failed its integrity check ({problems[0]})")
        return stored_version(db, path)


def _check_writable(path: pathlib.Path) -> None:
    """Open the file and its side files for writing, without changing them.

    SQLite silently opens a read-only file read-only; this catches it now
    instead of at the first write.
    """
    for candidate in (path, *(_side(path, s) for s in _SIDE_SUFFIXES)):
        if candidate.exists():
            with os_errors(candidate, "open the store for writing"):
                os.close(os.open(candidate, os.O_RDWR))


def _side(path: pathlib.Path, suffix: str) -> pathlib.Path:
    return path.with_name(path.name + suffix)


def _remove_created(path: pathlib.Path, suffixes: list[str]) -> None:
    """Remove side files a refused read-only check made (an empty WAL, an index)."""
    for suffix in suffixes:
        side = _side(path, suffix)
        with contextlib.suppress(FileNotFoundError):
            if suffix == "-shm" or side.stat().st_size == 0:
                side.unlink()


# -- errors -------------------------------------------------------------------


def corrupt(path: pathlib.Path, what: str) -> errors.StorageCorrupt:
    """StorageCorrupt for a file that `what` describes; it stays untouched."""
    return errors.StorageCorrupt(
        f"{path} {what}; it was left untouched", metadata={"path": str(path)}
    )


@contextlib.contextmanager
def translated(path: pathlib.Path, doing: str) -> Iterator[None]:
    """Turn sqlite3 errors raised in the block into StorageError subclasses."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _storage_error(exc, path, doing) from exc


@contextlib.contextmanager
def os_errors(path: pathlib.Path, doing: str) -> Iterator[None]:
    """Turn OS errors raised in the block into StorageUnwritable."""
    try:
        yield
    except OSError as exc:
        raise errors.StorageUnwritable(
            f"cannot {doing}: {path}: {exc.strerror}", metadata={"path": str(path)}
        ) from exc


def rollback(db: sqlite3.Connection, path: pathlib.Path) -> None:
    """Roll back if a transaction is still open (SQLite may have done it).

    A failing rollback is logged, not raised: the error that caused it is
    the one the caller needs to see.
    """
    if not db.in_transaction:
        return
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        logger.exception("rollback failed in store %s", path)


def _storage_error(
    exc: sqlite3.Error, path: pathlib.Path, doing: str
) -> errors.StorageError:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    metadata = {"path": str(path), "sqlite_error": str(exc)}
    if code == sqlite3.SQLITE_FULL:
        message = (
            f"cannot {doing}: the disk holding {path} is full; nothing was written"
        )
        return errors.StorageUnwritable(message, metadata=metadata)
    if code in _UNWRITABLE_CODES:
        message = f"cannot {doing}: {path} is not writable ({exc})"
        return errors.StorageUnwritable(message, metadata=metadata)
    if code in _CORRUPT_CODES:
        message = f"cannot {doing}: {path} is corrupt ({exc}); it was left untouched"
        return errors.StorageCorrupt(message, metadata=metadata)
    return errors.StorageError(f"cannot {doing} in {path}: {exc}", metadata=metadata)
