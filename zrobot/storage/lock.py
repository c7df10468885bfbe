"""The data-dir lock: at most one robot process works on a data dir.

Two robots sharing a data dir would clone into the same repos and write the
same store. `DataDirLock` holds an exclusive `flock` on `robot.lock` in the
data dir for as long as the robot runs; the kernel drops it when the process
dies, even on `kill -9`, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pathlib
from types import TracebackType

from zrobot import errors

logger = logging.getLogger(__name__)

LOCK_NAME = "robot.lock"


class DataDirLock:
    """An exclusive, non-blocking hold on a data dir for this process.

    `acquire()` takes `flock(LOCK_EX | LOCK_NB)` on `data_dir/robot.lock` and
    writes this process's PID into the file, so a second robot can say who
    is in the way. The lock file is never deleted: unlinking it would let a
    process that opened the old file a moment earlier lock an orphaned inode
    while a third one locks a new file, and both would think they hold it.

    The lock belongs to the open file, not to the process: a second
    `DataDirLock` on the same dir in the same process is refused too. No
    call blocks beyond a few local system calls. Usable as a context manager.
    """

    def __init__(self, data_dir: pathlib.Path) -> None:
        self._data_dir = pathlib.Path(data_dir)
        self._fd: int | None = None

    @property
    def path(self) -> pathlib.Path:
        """The lock file, `data_dir/robot.lock`."""
        return self._data_dir / LOCK_NAME

    @property
    def held(self) -> bool:
        """True between a successful `acquire()` and `release()`."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock at once or fail; a no-op if this object holds it.

        Does not block. Raises DataDirInUse (naming the data dir and the
        holder's PID) when another holder has it, StorageUnwritable when the
        lock file cannot be created or opened for writing.
        """
        if self._fd is not None:
            return
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_pid(fd)
        except BlockingIOError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            raise self._in_use(holder) from exc
        except OSError as exc:
            os.close(fd)
            raise self._unwritable(exc) from exc
        self._fd = fd
        logger.debug("locked data dir %s", self._data_dir)

    def release(self) -> None:
        """Let the lock go and clear the PID; a no-op when not held.

        Does not block. The file stays in place (see the class docstring).
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        logger.debug("unlocked data dir %s", self._data_dir)

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DataDirLock({str(self._data_dir)!r}, held={self.held})"

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            return os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise self._unwritable(exc) from exc

    def _in_use(self, holder: int | None) -> errors.DataDirInUse:
        who = (
            f"PID {holder}" if holder else "a process that has not written its PID yet"
        )
        return errors.DataDirInUse(
            f"data dir {self._data_dir} is in use by another robot ({who}); "
            "stop that robot or choose another data dir",
            metadata={"data_dir": str(self._data_dir), "pid": str(holder or "")},
        )

    def _unwritable(self, exc: OSError) -> errors.StorageUnwritable:
        return errors.StorageUnwritable(
            f"cannot lock data dir {self._data_dir}: {self.path}: {exc.strerror}",
            metadata={"path": str(self.path)},
        )


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _read_pid(fd: int) -> int | None:
    """The PID a holder wrote, or None while it has not written one yet."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
