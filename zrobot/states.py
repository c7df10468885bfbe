"""Task states, shared by the runtime, the store and the wire layer."""

from __future__ import annotations

import enum


class TaskState(enum.Enum):
    """Where a task is in its life: NEW -> RUNNING -> OK | ERROR | CANCELLED."""

    NEW = "new"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True for OK, ERROR and CANCELLED: the task will not change again."""
        return self in _FINAL


_FINAL = frozenset({TaskState.OK, TaskState.ERROR, TaskState.CANCELLED})
