"""The embedded default store: one SQLite file in the robot's data dir.

Uses the standard library's `sqlite3` in WAL mode with `synchronous=NORMAL`
and foreign keys on. Every mutating method is one transaction; `finish_task`
writes the task, the service's data and state and the history trim together.

Opening never harms a file it does not understand. Before anything writes,
the file is checked read-only: the SQLite header, `PRAGMA quick_check` and
the stored schema version. A file that fails is refused with StorageCorrupt
or StorageVersionTooNew and stays byte-for-byte as it was; the -wal/-shm
side files the check itself created are removed again. An older schema is
upgraded in one transaction by the steps in `_MIGRATIONS`.

SQLite calls run in the calling greenlet and hold the gevent hub while they
run; they are short, local disk I/O.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from zrobot import errors
from zrobot.states import TaskState
from zrobot.storage.base import (
    DEFAULT_HISTORY_LIMIT,
    ServiceRecord,
    Storage,
    TaskRecord,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA_V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE repos (url TEXT PRIMARY KEY, position INTEGER NOT NULL UNIQUE)",
    """CREATE TABLE services (
        name TEXT PRIMARY KEY,
        template_uid TEXT NOT NULL,
        data TEXT NOT NULL,
        state TEXT NOT NULL,
        create_time REAL NOT NULL,
        request_id TEXT NOT NULL DEFAULT '')""",
    """CREATE UNIQUE INDEX services_request_id ON services (request_id)
        WHERE request_id != ''""",
    """CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        service TEXT NOT NULL REFERENCES services (name) ON DELETE CASCADE,
        action TEXT NOT NULL,
        args TEXT NOT NULL,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        result TEXT,
        error TEXT,
        create_time REAL NOT NULL,
        start_time REAL,
        end_time REAL,
        deadline REAL,
        call_chain TEXT NOT NULL,
        request_id TEXT NOT NULL DEFAULT '')""",
    """CREATE UNIQUE INDEX tasks_request_id ON tasks (service, request_id)
        WHERE request_id != ''""",
    "CREATE INDEX tasks_service_seq ON tasks (service, seq)",
    "CREATE INDEX tasks_state ON tasks (state, seq)",
    """CREATE TABLE requests (
        request_id TEXT NOT NULL,
        method TEXT NOT NULL,
        response BLOB NOT NULL,
        create_time REAL NOT NULL,
        PRIMARY KEY (request_id, method))""",
)

# Step N turns a version N-1 store into version N. A new schema version adds
# a step here and bumps SCHEMA_VERSION; existing steps are never rewritten.
_MIGRATIONS: dict[int, Sequence[str]] = {1: _SCHEMA_V1}

_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_SIDE_SUFFIXES = ("-wal", "-shm")
_MAX_SEQ = 2**63 - 1

_FINAL_SQL = ", ".join(f"'{s.value}'" for s in TaskState if s.final)
_OPEN_SQL = ", ".join(f"'{s.value}'" for s in TaskState if not s.final)

# Columns are named as the record fields; the JSON ones hold JSON text.
_SERVICE_FIELDS = "name template_uid data state create_time request_id".split()
_SERVICE_JSON = frozenset({"data", "state"})
_SERVICE_COLUMNS = ", ".join(_SERVICE_FIELDS)
_INSERT_SERVICE = f"INSERT INTO services ({_SERVICE_COLUMNS}) VALUES ({'?, ' * 5}?)"
_TASK_FIELDS = (
    "id service action args priority state result error create_time start_time "
    "end_time deadline call_chain request_id"
).split()
_TASK_JSON = frozenset({"args", "result", "error", "call_chain"})
_TASK_COLUMNS = ", ".join(("seq", *_TASK_FIELDS))
# seq is NULL so that SQLite assigns the next one (AUTOINCREMENT: never reused).
_INSERT_TASK = f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES (NULL{', ?' * 14})"
_FINISH_FIELDS = "state result error start_time end_time id service".split()

_UNWRITABLE_CODES = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}
)
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class SqliteStorage(Storage):
    """The robot's store in one SQLite file at `path` (see the module doc).

    Durable against a process crash (`kill -9`) once a method returns; a
    power loss may lose the last few commits (WAL with synchronous=NORMAL),
    never the file's consistency. Keeps at most `history_limit` finished
    tasks per service. Opening blocks for a read of the whole file
    (`quick_check`) and raises StorageCorrupt, StorageVersionTooNew or
    StorageUnwritable; it never deletes or recreates a file it cannot read.

    The parent directory must exist. Use from one native thread; greenlets
    may share an instance, since no method yields mid-transaction.
    """

    def __init__(
        self, path: pathlib.Path, history_limit: int = DEFAULT_HISTORY_LIMIT
    ) -> None:
        if history_limit < 0:
            raise ValueError(f"history_limit must be >= 0, not {history_limit}")
        self._path = pathlib.Path(path)
        self._history_limit = history_limit
        self._db: sqlite3.Connection | None = None

        # Refuse unreadable or too-new files before any read-write handle exists.
        version = _inspect(self._path)
        self._db = self._connect()
        try:
            self._migrate(version)
            self._robot_id = self._load_robot_id()
        except BaseException:
            self.close()
            raise
        logger.info("opened store %s (schema v%d)", self._path, SCHEMA_VERSION)

    @property
    def path(self) -> pathlib.Path:
        """The database file."""
        return self._path

    def __repr__(self) -> str:
        return f"SqliteStorage({str(self._path)!r})"

    # -- robot and repos ------------------------------------------------------

    def robot_id(self) -> str:
        """Return the robot id made on first open (uuid4 hex). Does not block."""
        self._live()
        return self._robot_id

    def add_repo(self, url: str) -> None:
        """Remember a repo URL after the others; a known URL keeps its place."""
        with self._write(f"add repo {url}") as db:
            db.execute(
                "INSERT OR IGNORE INTO repos (url, position) "
                "SELECT ?, COALESCE(MAX(position), 0) + 1 FROM repos",
                (url,),
            )

    def list_repos(self) -> list[str]:
        """Return repo URLs in the order they were first added."""
        rows = self._read("list repos", "SELECT url FROM repos ORDER BY position")
        return [row["url"] for row in rows]

    # -- services -------------------------------------------------------------

    def create_service(self, record: ServiceRecord) -> None:
        """Store a new service.

        Raises ServiceExists when the name is taken or another service was
        created with the same non-empty request id.
        """
        values = _values(record, _SERVICE_FIELDS, _SERVICE_JSON)
        with self._write(f"create service {record.name!r}") as db:
            _refuse_taken(db, record)
            db.execute(_INSERT_SERVICE, values)

    def delete_service(self, name: str) -> bool:
        """Delete a service, its task journal and history; False if unknown."""
        with self._write(f"delete service {name!r}") as db:
            deleted = db.execute("DELETE FROM services WHERE name = ?", (name,))
        return deleted.rowcount > 0

    def list_services(self) -> list[ServiceRecord]:
        """Return every service ordered by name."""
        sql = f"SELECT {_SERVICE_COLUMNS} FROM services ORDER BY name"
        return [_service_record(row) for row in self._read("list services", sql)]

    def service_by_request_id(self, request_id: str) -> ServiceRecord | None:
        """Return the service created with this request id; None for ''."""
        if not request_id:
            return None
        sql = f"SELECT {_SERVICE_COLUMNS} FROM services WHERE request_id = ?"
        rows = self._read("find a service", sql, (request_id,))
        return _service_record(rows[0]) if rows else None

    def save_service(
        self, name: str, data: dict[str, Any], state: dict[str, Any]
    ) -> None:
        """Replace a service's data and state; raise ServiceNotFound if unknown."""
        values = (_dump(data), _dump(state))
        with self._write(f"save service {name!r}") as db:
            _update_service(db, name, *values)

    # -- tasks ----------------------------------------------------------------

    def add_task(self, record: TaskRecord) -> None:
        """Journal a new task and set `record.seq`.

        Raises ServiceNotFound for an unknown service and StorageError for a
        task id or (service, request id) that is already journaled.
        """
        values = _values(record, _TASK_FIELDS, _TASK_JSON)
        with self._write(f"journal task {record.id}") as db:
            _require_service(db, record.service)
            cursor = db.execute(_INSERT_TASK, values)
        record.seq = cursor.lastrowid or 0

    def task_by_request_id(self, service: str, request_id: str) -> TaskRecord | None:
        """Return the service's task with this request id; None for ''."""
        if not request_id:
            return None
        sql = f"SELECT {_TASK_COLUMNS} FROM tasks WHERE service = ? AND request_id = ?"
        rows = self._read("find a task", sql, (service, request_id))
        return _task_record(rows[0]) if rows else None

    def start_task(self, task_id: str, start_time: float) -> None:
        """Mark a task RUNNING; raise TaskNotFound if it is not journaled."""
        with self._write(f"start task {task_id}") as db:
            cursor = db.execute(
                "UPDATE tasks SET state = ?, start_time = ? WHERE id = ?",
                (TaskState.RUNNING.value, start_time, task_id),
            )
            if cursor.rowcount == 0:
                raise errors.TaskNotFound(f"no task {task_id} is journaled")

    def finish_task(
        self,
        record: TaskRecord,
        data: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Write a finished task and, when given, its service's data and state.

        One transaction: the task's state, result, error and times, the
        service's data and/or state, and the trim of the service's finished
        history to `history_limit` (oldest first; unfinished tasks stay).
        Raises ValueError if `record.state` is not final, TaskNotFound or
        ServiceNotFound if either is unknown (then nothing is written).
        """
        if not record.state.final:
            raise ValueError(f"task {record.id} is {record.state.value}, not final")
        values = _values(record, _FINISH_FIELDS, _TASK_JSON)
        service_values = (_dump(data), _dump(state))
        with self._write(f"finish task {record.id}") as db:
            _update_finished(db, record, values)
            if data is not None or state is not None:
                _update_service(db, record.service, *service_values)
            self._trim(db, record.service)

    def get_task(self, service: str, task_id: str) -> TaskRecord | None:
        """Return one task of a service, finished or not, or None."""
        sql = f"SELECT {_TASK_COLUMNS} FROM tasks WHERE service = ? AND id = ?"
        rows = self._read("read a task", sql, (service, task_id))
        return _task_record(rows[0]) if rows else None

    def list_tasks(
        self, service: str, limit: int, before_seq: int | None = None
    ) -> list[TaskRecord]:
        """Return up to `limit` tasks of a service, newest first.

        With `before_seq`, only tasks with a lower seq (the next page).
        """
        sql = (
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE service = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT ?"
        )
        below = _MAX_SEQ if before_seq is None else before_seq
        rows = self._read("list tasks", sql, (service, below, max(limit, 0)))
        return [_task_record(row) for row in rows]

    def unfinished_tasks(self) -> list[TaskRecord]:
        """Return every NEW or RUNNING task of every service in seq order."""
        sql = (
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE state IN ({_OPEN_SQL}) "
            "ORDER BY seq"
        )
        rows = self._read("list unfinished tasks", sql)
        return [_task_record(row) for row in rows]

    # -- request ids ----------------------------------------------------------

    def remember_request(self, request_id: str, method: str, response: bytes) -> None:
        """Keep a response under (request_id, method); the first one stays.

        TODO(storage): expire old requests once a retention period is decided.
        """
        with self._write(f"remember request {request_id}") as db:
            db.execute(
                "INSERT OR IGNORE INTO requests "
                "(request_id, method, response, create_time) "
                "VALUES (?, ?, ?, ?)",
                (request_id, method, bytes(response), time.time()),
            )

    def recall_request(self, request_id: str, method: str) -> bytes | None:
        """Return the response kept for (request_id, method), or None."""
        sql = "SELECT response FROM requests WHERE request_id = ? AND method = ?"
        rows = self._read("recall a request", sql, (request_id, method))
        return bytes(rows[0]["response"]) if rows else None

    # -- life cycle -----------------------------------------------------------

    def close(self) -> None:
        """Checkpoint and close the file; later calls raise StorageError.

        Closing twice is harmless.
        """
        db, self._db = self._db, None
        if db is not None:
            with _translated(self._path, "close the store"):
                db.close()

    # -- machinery ------------------------------------------------------------

    def _configure(self, db: sqlite3.Connection) -> None:
        """Set the connection's pragmas; a hook for tests that need limits."""
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            logger.warning("store %s runs in %s mode, not WAL", self._path, mode)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")

    def _connect(self) -> sqlite3.Connection:
        with _translated(self._path, "open the store"):
            db = sqlite3.connect(self._path, isolation_level=None)
            db.row_factory = sqlite3.Row
            try:
                self._configure(db)
            except BaseException:
                db.close()
                raise
        return db

    def _migrate(self, version: int) -> None:
        if version == SCHEMA_VERSION:
            return
        with self._write("upgrade the store") as db:
            # Read again under the write lock: the version is what counts now.
            current = _stored_version(db, self._path)
            _upgrade(db, current)
        logger.info("upgraded store %s from v%d", self._path, current)

    def _load_robot_id(self) -> str:
        sql = "SELECT value FROM meta WHERE key = 'robot_id'"
        rows = self._read("read the robot id", sql)
        if not rows:
            raise errors.StorageCorrupt(
                f"{self._path} has no robot id; it was left untouched",
                metadata={"path": str(self._path)},
            )
        return str(rows[0]["value"])

    def _trim(self, db: sqlite3.Connection, service: str) -> None:
        finished = f"service = ? AND state IN ({_FINAL_SQL})"
        newest_dropped = db.execute(
            f"SELECT seq FROM tasks WHERE {finished} "
            "ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (service, self._history_limit),
        ).fetchone()
        if newest_dropped is not None:
            db.execute(
                f"DELETE FROM tasks WHERE {finished} AND seq <= ?",
                (service, newest_dropped["seq"]),
            )

    def _live(self) -> sqlite3.Connection:
        if self._db is None:
            raise errors.StorageError(
                f"store {self._path} is closed", metadata={"path": str(self._path)}
            )
        return self._db

    def _read(
        self, doing: str, sql: str, params: Sequence[Any] = ()
    ) -> list[sqlite3.Row]:
        db = self._live()
        with _translated(self._path, doing):
            return db.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """Run the block in one write transaction; roll back if anything fails."""
        db = self._live()
        with _translated(self._path, doing):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                _rollback(db, self._path)
                raise


# -- opening: read-only checks ------------------------------------------------


def _inspect(path: pathlib.Path) -> int:
    """Return the schema version of the file at path, 0 when new or empty.

    Reads only. Raises StorageCorrupt, StorageVersionTooNew or
    StorageUnwritable; on refusal removes the side files it created.
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
        return _check_file(path)
    except errors.StorageError:
        _remove_created(path, created)
        raise


def _check_file(path: pathlib.Path) -> int:
    _check_header(path)
    version = _read_version(path)
    if version > SCHEMA_VERSION:
        raise errors.StorageVersionTooNew(
            f"{path} has schema version {version}, newer than version "
            f"{SCHEMA_VERSION} of this zrobot; upgrade zrobot to open it "
            "(the file was left untouched)",
            metadata={"path": str(path), "version": str(version)},
        )
    _check_writable(path)
    return version


def _check_header(path: pathlib.Path) -> None:
    with _os_errors(path, "read the store"), path.open("rb") as file:
        header = file.read(_HEADER_SIZE)
    if header and (len(header) < _HEADER_SIZE or not header.startswith(_MAGIC)):
        raise errors.StorageCorrupt(
            f"{path} is not a SQLite database; it was left untouched",
            metadata={"path": str(path)},
        )


def _read_version(path: pathlib.Path) -> int:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with _translated(path, "open the store"):
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
    with contextlib.closing(db), _translated(path, "check the store"):
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise errors.StorageCorrupt(
                f"{path} failed its integrity check ({problems[0]}); "
                "it was left untouched",
                metadata={"path": str(path)},
            )
        return _stored_version(db, path)


def _stored_version(db: sqlite3.Connection, path: pathlib.Path) -> int:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    if not tables:
        return 0
    row = None
    if "meta" in tables:
        row = db.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
    if row is None or not str(row[0]).isdigit():
        raise errors.StorageCorrupt(
            f"{path} is a SQLite database but not a zrobot store; "
            "it was left untouched",
            metadata={"path": str(path)},
        )
    return int(row[0])


def _check_writable(path: pathlib.Path) -> None:
    """Open the file and its side files for writing, without changing them.

    SQLite silently opens a read-only file read-only; this catches it now
    instead of at the first write.
    """
    for candidate in (path, *(_side(path, s) for s in _SIDE_SUFFIXES)):
        if candidate.exists():
            with _os_errors(candidate, "open the store for writing"):
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


@contextlib.contextmanager
def _translated(path: pathlib.Path, doing: str) -> Iterator[None]:
    """Turn sqlite3 errors raised in the block into StorageError subclasses."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _storage_error(exc, path, doing) from exc


@contextlib.contextmanager
def _os_errors(path: pathlib.Path, doing: str) -> Iterator[None]:
    """Turn OS errors raised in the block into StorageUnwritable."""
    try:
        yield
    except OSError as exc:
        raise errors.StorageUnwritable(
            f"cannot {doing}: {path}: {exc.strerror}", metadata={"path": str(path)}
        ) from exc


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


def _rollback(db: sqlite3.Connection, path: pathlib.Path) -> None:
    """Roll back if a transaction is still open (SQLite may have done it)."""
    if not db.in_transaction:
        return
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        logger.exception("rollback failed in store %s", path)


# -- rows and records ---------------------------------------------------------


def _refuse_taken(db: sqlite3.Connection, record: ServiceRecord) -> None:
    if db.execute("SELECT 1 FROM services WHERE name = ?", (record.name,)).fetchone():
        raise errors.ServiceExists(f"a service named {record.name!r} already exists")
    if (
        record.request_id
        and db.execute(
            "SELECT 1 FROM services WHERE request_id = ?", (record.request_id,)
        ).fetchone()
    ):
        raise errors.ServiceExists(
            f"a service was already created with request id {record.request_id!r}"
        )


def _require_service(db: sqlite3.Connection, name: str) -> None:
    if not db.execute("SELECT 1 FROM services WHERE name = ?", (name,)).fetchone():
        raise errors.ServiceNotFound(f"no service named {name!r}")


def _update_service(
    db: sqlite3.Connection, name: str, data: str | None, state: str | None
) -> None:
    """Set the given JSON data and/or state (None keeps the stored one)."""
    cursor = db.execute(
        "UPDATE services SET data = COALESCE(?, data), state = COALESCE(?, state) "
        "WHERE name = ?",
        (data, state, name),
    )
    if cursor.rowcount == 0:
        raise errors.ServiceNotFound(f"no service named {name!r}")


def _update_finished(
    db: sqlite3.Connection, record: TaskRecord, values: tuple[Any, ...]
) -> None:
    cursor = db.execute(
        "UPDATE tasks SET state = ?, result = ?, error = ?, start_time = ?, "
        "end_time = ? WHERE id = ? AND service = ?",
        values,
    )
    if cursor.rowcount == 0:
        raise errors.TaskNotFound(
            f"no task {record.id} of service {record.service!r} is journaled"
        )


def _upgrade(db: sqlite3.Connection, current: int) -> None:
    """Apply the migration steps after `current`, then stamp version and id."""
    if current >= SCHEMA_VERSION:
        return
    for step in range(current + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[step]:
            db.execute(statement)
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('robot_id', ?)",
        (uuid.uuid4().hex,),
    )


def _dump(value: Any) -> str | None:
    """JSON text of a value (None stays NULL); TypeError if JSON cannot hold it."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _values(
    record: Any, columns: Sequence[str], json_columns: frozenset[str]
) -> tuple[Any, ...]:
    """A record's fields in column order, as SQLite stores them."""
    return tuple(_column(getattr(record, c), c in json_columns) for c in columns)


def _column(value: Any, is_json: bool) -> Any:
    if is_json:
        return _dump(value)
    return value.value if isinstance(value, TaskState) else value


def _fields(row: sqlite3.Row, json_columns: frozenset[str]) -> dict[str, Any]:
    """A row as record fields, JSON columns parsed."""
    return {
        column: json.loads(row[column])
        if column in json_columns and row[column] is not None
        else row[column]
        for column in row.keys()
    }


def _service_record(row: sqlite3.Row) -> ServiceRecord:
    return ServiceRecord(**_fields(row, _SERVICE_JSON))


def _task_record(row: sqlite3.Row) -> TaskRecord:
    fields = _fields(row, _TASK_JSON)
    return TaskRecord(**{**fields, "state": TaskState(fields["state"])})
