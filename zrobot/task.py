"""A task live in memory: its record, its waiters and its state changes.

State changes happen only in the owning service's worker greenlet (or in
the greenlet that cancels a task that has not started). Any greenlet may
wait on a task or watch it; waiting blocks only the waiting greenlet.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Iterator
from typing import Any

import gevent.event
import gevent.queue

from zrobot import errors
from zrobot.states import TaskState
from zrobot.storage.base import TaskRecord


class TaskHandle:
    """What every task handle, local or remote, offers on top of `record`
    and `wait` (which subclasses provide)."""

    record: TaskRecord

    @property
    def id(self) -> str:
        """The task id, unique within its robot."""
        return self.record.id

    @property
    def state(self) -> TaskState:
        """The state as this handle last saw it (local: the current one)."""
        return self.record.state

    @property
    def result(self) -> Any:
        """Block until the task ends, then return its result (see wait)."""
        return self.wait()

    def wait(self, timeout_s: float | None = None) -> Any:
        """Block until the task ends; return its result or raise its error."""
        raise NotImplementedError


class Task(TaskHandle):
    """One request to run one action; the handle `schedule_action` returns."""

    def __init__(self, record: TaskRecord) -> None:
        self.record = record
        self.calls = 0  # producer calls this run of the task has made
        self._done = gevent.event.Event()
        self._watchers: list[gevent.queue.Queue] = []
        if record.state.final:
            self._done.set()

    def snapshot(self) -> TaskRecord:
        """Return a copy of the record that later changes do not touch."""
        return dataclasses.replace(self.record, call_chain=list(self.record.call_chain))

    def wait(self, timeout_s: float | None = None) -> Any:
        """Block this greenlet until the task ends; return its result.

        Raises DeadlineExceeded when timeout_s passes first, TaskCancelled
        when it was cancelled, and the producer's error when it failed: the
        zrobot error class of its reason, else ActionFailed.
        """
        if not self._done.wait(timeout_s):
            raise errors.DeadlineExceeded(
                f"task {self.id} ({self.record.action}) did not end within "
                f"{timeout_s} s; it is still {self.state.value}",
                metadata={"task_id": self.id},
            )
        return outcome(self.record)

    def watch(self) -> TaskWatch:
        """Return an iterator of snapshots: now, then after every change.

        See TaskWatch for when it ends and how to stop it early.
        """
        return TaskWatch(self)

    def close_watchers(self) -> None:
        """End every watch() iterator now (used on shutdown)."""
        for queue in self._watchers:
            queue.put(None)

    def transition(self, state: TaskState, **fields: Any) -> None:
        """Move to state, set the given record fields, tell every watcher."""
        self.record.state = state
        for name, value in fields.items():
            setattr(self.record, name, value)
        for queue in self._watchers:
            queue.put(self.snapshot())
        if state.final:
            self._done.set()


class TaskWatch:
    """Snapshots of one task: the current one, then one per state change.

    Iterating blocks the iterating greenlet between changes and ends after
    the final state, or early (without a final snapshot) when `close()` or
    the task's `close_watchers()` is called, e.g. when the robot stops.
    """

    def __init__(self, task: Task) -> None:
        self._task = task
        self._queue: gevent.queue.Queue = gevent.queue.Queue()

    def close(self) -> None:
        """End the iteration at its next step. Any greenlet may call it."""
        self._queue.put(None)

    def __iter__(self) -> Iterator[TaskRecord]:
        watchers = self._task._watchers
        watchers.append(self._queue)
        try:
            snapshot = self._task.snapshot()
            yield snapshot
            while not snapshot.state.final:
                snapshot = self._queue.get()
                if snapshot is None:
                    return
                yield snapshot
        finally:
            watchers.remove(self._queue)


def outcome(record: TaskRecord) -> Any:
    """Return a final record's result or raise its error as a typed error."""
    if record.state is TaskState.OK:
        return record.result
    if record.state is TaskState.CANCELLED:
        raise errors.TaskCancelled(
            f"task {record.id} ({record.action}) was cancelled",
            metadata={"task_id": record.id},
        )
    raise error_from_dict(record.error or {}, record)


def error_from_dict(info: dict[str, str], record: TaskRecord) -> errors.Error:
    """Rebuild the typed error a failed task carries."""
    cls = errors.error_class(info.get("reason", "")) or errors.ActionFailed
    if cls in (errors.ActionFailed, errors.Error):
        cls = errors.ActionFailed
        message = f"{info.get('type', 'Error')}: {info.get('message', '')}"
    else:
        message = info.get("message", "")
    return cls(
        f"task {record.id} ({record.service}.{record.action}) failed: {message}",
        metadata={
            "task_id": record.id,
            "type": info.get("type", ""),
            "traceback": info.get("traceback", ""),
        },
    )


def error_to_dict(exc: BaseException) -> dict[str, str]:
    """Describe an exception for a task record: type, message, traceback, reason."""
    cls = type(exc)
    name = cls.__qualname__
    if cls.__module__ not in ("builtins", "__main__"):
        name = f"{cls.__module__}.{name}"
    if isinstance(exc, errors.Error):
        reason, message = exc.reason, exc.message
    else:
        reason, message = errors.ActionFailed.reason, str(exc)
    return {
        "type": name,
        "message": _wire_text(message, 16 * 1024),
        "traceback": _wire_text("".join(traceback.format_exception(exc)), 64 * 1024),
        "reason": reason,
    }


def _wire_text(text: str, limit: int) -> str:
    """Text any wire can carry: valid UTF-8, at most limit characters."""
    clean = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return clean if len(clean) <= limit else clean[:limit] + "... (cut)"


def now() -> float:
    """Wall-clock time as stored on tasks (seconds since the epoch)."""
    return time.time()
