"""The SQLite store and the data-dir lock against real files and processes.

The contract every backend keeps is in test_storage_contract.py; this file
covers what only a file on disk can do wrong: restarts and crashes, files
that are corrupt, too new or not writable, a full disk, and a second robot
process on the same data dir.

The suite runs as root in CI containers, where chmod alone stops nothing:
`permissions_enforced()` drops the capabilities that let root ignore file
modes from the test thread for the duration of a block (see its docstring).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import pytest

from zrobot import errors
from zrobot.states import TaskState
from zrobot.storage import (
    DataDirLock,
    ServiceRecord,
    SqliteStorage,
    TaskRecord,
)
from zrobot.storage import sqlite as sqlite_backend

SUBPROCESS_TIMEOUT_S = 30


def make_service(name: str, **data: object) -> ServiceRecord:
    """A service record with data built from keyword arguments."""
    return ServiceRecord(name, "github.com/acme/t/web/1.0.0", dict(data), {}, 1.0)


def make_task(task_id: str, service: str = "web") -> TaskRecord:
    """A NEW task record of a service."""
    return TaskRecord(task_id, service, "check", {"n": 1}, 0, TaskState.NEW, 2.0)


def snapshot(directory: pathlib.Path) -> dict[str, bytes]:
    """Every file of a directory with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def filled_store(path: pathlib.Path, services: int = 1) -> SqliteStorage:
    """A store at path with a few services, one repo, a task and a request."""
    store = SqliteStorage(path)
    for index in range(services):
        store.create_service(make_service(f"svc{index:03}", blob="x" * 500))
    store.create_service(make_service("web", url="https://web.example"))
    store.add_repo("file:///repos/templates")
    store.add_task(make_task("t1"))
    store.remember_request("req-1", "CreateService", b"response")
    return store


def finish(store: SqliteStorage, task_id: str) -> None:
    """Journal a task of "web" and finish it OK at once."""
    record = make_task(task_id)
    store.add_task(record)
    record.state, record.end_time = TaskState.OK, 3.0
    store.finish_task(record)


def raw_execute(path: pathlib.Path, sql: str) -> None:
    """Change the file behind zrobot's back, as another program would."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(sql)


def run_python(
    code: str, *args: str, stdin: int | None = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    """Start `python -c code args...` with pipes for stdout (and stdin)."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
    )


# -- restarts -----------------------------------------------------------------


def test_reopening_keeps_everything(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "robot.db"
    store = filled_store(path)
    before = (store.robot_id(), store.list_services(), store.unfinished_tasks())
    store.close()

    reopened = SqliteStorage(path)

    after = (
        reopened.robot_id(),
        reopened.list_services(),
        reopened.unfinished_tasks(),
    )
    assert after == before
    assert reopened.list_repos() == ["file:///repos/templates"]
    assert reopened.recall_request("req-1", "CreateService") == b"response"
    reopened.close()


def test_history_is_trimmed_to_the_limit_given_at_reopen(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "robot.db"
    store = SqliteStorage(path, history_limit=5)
    store.create_service(make_service("web"))
    for task_id in ["t1", "t2", "t3", "t4"]:
        finish(store, task_id)
    store.close()

    reopened = SqliteStorage(path, history_limit=2)
    finish(reopened, "t5")

    assert [t.id for t in reopened.list_tasks("web", 10)] == ["t5", "t4"]
    reopened.close()


CRASHING_ROBOT = """
import os, pathlib, signal, sys
from zrobot.states import TaskState
from zrobot.storage import ServiceRecord, SqliteStorage, TaskRecord

store = SqliteStorage(pathlib.Path(sys.argv[1]))
store.create_service(ServiceRecord("web", "uid", {"a": 1}, {}, 1.0))
for task_id in ("t1", "t2"):
    store.add_task(TaskRecord(task_id, "web", "check", {}, 0, TaskState.NEW, 2.0))
store.start_task("t1", 3.0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_tasks_journaled_before_a_kill_9_are_there_after_restart(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "robot.db"
    robot = run_python(CRASHING_ROBOT, str(path))
    robot.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    assert robot.returncode == -signal.SIGKILL
    assert (tmp_path / "robot.db-wal").stat().st_size > 0

    store = SqliteStorage(path)

    assert [s.data for s in store.list_services()] == [{"a": 1}]
    unfinished = [(t.id, t.state) for t in store.unfinished_tasks()]
    assert unfinished == [("t1", TaskState.RUNNING), ("t2", TaskState.NEW)]
    store.close()


def test_the_file_is_in_wal_mode(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "robot.db"
    SqliteStorage(path).close()

    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_empty_file_becomes_a_new_store(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "robot.db"
    path.touch()

    store = SqliteStorage(path)

    assert store.list_services() == [] and len(store.robot_id()) == 32
    store.close()


# -- schema versions ----------------------------------------------------------


def test_a_newer_schema_version_is_refused_and_the_file_left_unchanged(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "robot.db"
    filled_store(path).close()
    raw_execute(path, "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    before = snapshot(tmp_path)

    with pytest.raises(errors.StorageVersionTooNew) as refused:
        SqliteStorage(path)

    message = str(refused.value)
    assert str(path) in message and "version 2" in message
    assert "version 1" in message and "upgrade zrobot" in message
    assert snapshot(tmp_path) == before


def test_an_older_store_is_upgraded_by_the_added_steps(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "robot.db"
    filled_store(path).close()
    step = "ALTER TABLE services ADD COLUMN secret_hash TEXT NOT NULL DEFAULT ''"
    monkeypatch.setattr(sqlite_backend, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(sqlite_backend._MIGRATIONS, 2, [step])

    store = SqliteStorage(path)
    store.close()

    with contextlib.closing(sqlite3.connect(path)) as db:
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        assert version.fetchone() == ("2",)
        hashes = db.execute("SELECT name, secret_hash FROM services ORDER BY name")
        assert hashes.fetchall() == [("svc000", ""), ("web", "")]


def test_a_failing_upgrade_step_leaves_the_store_at_its_old_version(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "robot.db"
    filled_store(path).close()
    steps = ["ALTER TABLE services ADD COLUMN extra TEXT", "NOT VALID SQL"]
    monkeypatch.setattr(sqlite_backend, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(sqlite_backend._MIGRATIONS, 2, steps)

    with pytest.raises(errors.StorageError, match="upgrade the store"):
        SqliteStorage(path)
    monkeypatch.undo()

    store = SqliteStorage(path)
    assert [s.name for s in store.list_services()] == ["svc000", "web"]
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(services)")]
    assert "extra" not in columns


# -- corrupt files ------------------------------------------------------------


def test_random_garbage_is_refused_as_corrupt_and_left_unchanged(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "robot.db"
    path.write_bytes(os.urandom(10_000))
    before = snapshot(tmp_path)

    with pytest.raises(errors.StorageCorrupt) as refused:
        SqliteStorage(path)

    assert str(path) in str(refused.value) and "left untouched" in str(refused.value)
    assert snapshot(tmp_path) == before


CORRUPTIONS = {
    "cut inside the header": lambda data: data[:60],
    "cut after the first page": lambda data: data[:4096],
    "cut in half": lambda data: data[: len(data) // 2],
    "a page overwritten": lambda data: data[:8192] + b"\xa5" * 4096 + data[12288:],
}


@pytest.mark.parametrize("damage", sorted(CORRUPTIONS))
def test_a_damaged_store_is_refused_as_corrupt_and_left_unchanged(
    tmp_path: pathlib.Path, damage: str
) -> None:
    path = tmp_path / "robot.db"
    filled_store(path, services=40).close()
    path.write_bytes(CORRUPTIONS[damage](path.read_bytes()))
    before = snapshot(tmp_path)

    with pytest.raises(errors.StorageCorrupt) as refused:
        SqliteStorage(path)

    assert str(path) in str(refused.value) and "left untouched" in str(refused.value)
    assert snapshot(tmp_path) == before


def test_a_sqlite_database_of_another_program_is_refused(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "robot.db"
    raw_execute(path, "CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    before = snapshot(tmp_path)

    with pytest.raises(errors.StorageCorrupt, match="not a zrobot store"):
        SqliteStorage(path)

    assert snapshot(tmp_path) == before


# -- unwritable files and full disks ------------------------------------------


class _UserCapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _UserCapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_CAPABILITY_VERSION_3 = 0x20080522
_DAC_CAPABILITIES = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


def _set_effective_capabilities(change: int, drop: bool) -> int:
    """capget/capset on the calling thread; returns the previous effective set."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _UserCapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_UserCapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    previous = data[0].effective
    data[0].effective = previous & ~change if drop else previous | change
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    return previous


@contextlib.contextmanager
def permissions_enforced() -> Iterator[None]:
    """Make file modes bind in this thread for the block, even for root.

    Root writes anywhere through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH.
    The block runs with both dropped from the calling thread's effective
    capability set (capset(2)); they stay in the permitted set, so they are
    raised again afterwards. SQLite runs in this thread, so it meets the same
    EACCES a normal user would. Skips the test where capset is not allowed.
    """
    if os.geteuid() != 0:
        yield
        return
    try:
        previous = _set_effective_capabilities(_DAC_CAPABILITIES, drop=True)
    except OSError as exc:
        pytest.skip(f"cannot drop root's file-permission override: {exc}")
    try:
        yield
    finally:
        _set_effective_capabilities(previous & _DAC_CAPABILITIES, drop=False)


@pytest.fixture
def data_dir(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A data dir whose mode the test may change; writable again afterwards."""
    directory = tmp_path / "data"
    directory.mkdir()
    yield directory
    directory.chmod(0o755)


def test_a_read_only_directory_without_a_store_is_unwritable(
    data_dir: pathlib.Path,
) -> None:
    data_dir.chmod(0o555)

    with permissions_enforced(), pytest.raises(errors.StorageUnwritable) as refused:
        SqliteStorage(data_dir / "robot.db")

    assert str(data_dir / "robot.db") in str(refused.value)
    assert list(data_dir.iterdir()) == []


def test_a_read_only_store_file_is_unwritable_and_left_unchanged(
    data_dir: pathlib.Path,
) -> None:
    path = data_dir / "robot.db"
    filled_store(path).close()
    path.chmod(0o444)
    before = snapshot(data_dir)

    with permissions_enforced(), pytest.raises(errors.StorageUnwritable) as refused:
        SqliteStorage(path)

    assert str(path) in str(refused.value)
    assert snapshot(data_dir) == before


def test_a_store_in_a_read_only_directory_is_unwritable_and_left_unchanged(
    data_dir: pathlib.Path,
) -> None:
    path = data_dir / "robot.db"
    filled_store(path).close()
    data_dir.chmod(0o555)
    before = snapshot(data_dir)

    with permissions_enforced(), pytest.raises(errors.StorageUnwritable) as refused:
        SqliteStorage(path)

    assert str(path) in str(refused.value)
    assert snapshot(data_dir) == before


def test_a_missing_directory_is_reported_as_unwritable(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "missing" / "robot.db"

    with pytest.raises(errors.StorageUnwritable, match="not a directory"):
        SqliteStorage(path)

    assert not path.parent.exists()


class NearlyFullStorage(SqliteStorage):
    """A store whose file may not grow past its size at open.

    `PRAGMA max_page_count` makes SQLite itself fail with its real
    SQLITE_FULL "database or disk is full", as on a full disk.
    """

    def _configure(self, db: sqlite3.Connection) -> None:
        super()._configure(db)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_disk_is_unwritable_and_keeps_what_was_stored(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "robot.db"
    filled_store(path).close()
    store = NearlyFullStorage(path)
    before = store.list_services()

    with pytest.raises(errors.StorageUnwritable) as refused:
        store.create_service(make_service("big", blob="x" * 200_000))

    assert "disk" in str(refused.value) and "full" in str(refused.value)
    assert "nothing was written" in str(refused.value)
    assert isinstance(refused.value.__cause__, sqlite3.OperationalError)
    assert store.list_services() == before
    store.save_service("web", {"still": "writable"}, {})
    store.close()
    reopened = SqliteStorage(path)
    assert [s.name for s in reopened.list_services()] == ["svc000", "web"]
    assert reopened.list_services()[1].data == {"still": "writable"}
    reopened.close()


# -- the data-dir lock --------------------------------------------------------


LOCKING_ROBOT = """
import pathlib, sys
from zrobot import errors
from zrobot.storage import DataDirLock

lock = DataDirLock(pathlib.Path(sys.argv[1]))
try:
    lock.acquire()
except errors.DataDirInUse as exc:
    print(exc, flush=True)
    sys.exit(3)
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_process_is_refused_with_the_holders_pid(
    tmp_path: pathlib.Path,
) -> None:
    with DataDirLock(tmp_path):
        other = run_python(LOCKING_ROBOT, str(tmp_path))
        output, _ = other.communicate(timeout=SUBPROCESS_TIMEOUT_S)

    assert other.returncode == 3
    assert f"PID {os.getpid()}" in output and str(tmp_path) in output


def test_a_second_process_gets_the_lock_after_release(
    tmp_path: pathlib.Path,
) -> None:
    lock = DataDirLock(tmp_path)
    lock.acquire()
    lock.release()

    other = run_python(LOCKING_ROBOT, str(tmp_path))
    output, _ = other.communicate(timeout=SUBPROCESS_TIMEOUT_S)

    assert (other.returncode, output) == (0, "held\n")


def test_a_lock_held_by_another_process_names_it_and_dies_with_it(
    tmp_path: pathlib.Path,
) -> None:
    holder = run_python(LOCKING_ROBOT, str(tmp_path), stdin=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"

    with pytest.raises(errors.DataDirInUse, match=f"PID {holder.pid}\\b"):
        DataDirLock(tmp_path).acquire()

    holder.kill()
    holder.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    with DataDirLock(tmp_path) as lock:
        assert lock.held


def test_the_lock_file_holds_the_pid_and_is_never_deleted(
    tmp_path: pathlib.Path,
) -> None:
    lock = DataDirLock(tmp_path)

    with lock:
        assert lock.path.read_text() == f"{os.getpid()}\n"

    assert lock.path.exists() and not lock.held


def test_a_second_lock_in_the_same_process_is_refused(tmp_path: pathlib.Path) -> None:
    with DataDirLock(tmp_path), pytest.raises(errors.DataDirInUse):
        DataDirLock(tmp_path).acquire()


def test_a_lock_in_a_missing_directory_is_unwritable(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.StorageUnwritable, match="robot.lock"):
        DataDirLock(tmp_path / "missing").acquire()
