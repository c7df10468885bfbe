"""An in-memory store: the same contract as SQLite, kept nowhere.

For tests and for measuring what the journal costs; a robot on it forgets
everything when it stops. Records are copied in and out, so callers never
share mutable state with the store. Every check runs before any change, so
a method that raises leaves the store as it was.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from typing import Any

from zrobot import errors
from zrobot.states import TaskState
from zrobot.storage.base import (
    DEFAULT_HISTORY_LIMIT,
    ServiceRecord,
    Storage,
    TaskRecord,
)


class MemoryStorage(Storage):
    """Storage in dicts (see the module docstring).

    Never blocks; not shared between processes. Each service's tasks sit in
    a dict by id whose insertion order is seq order, so history needs no
    sorting.
    """

    def __init__(self, history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        if history_limit < 0:
            raise ValueError(f"history_limit must be >= 0, not {history_limit}")
        self._history_limit = history_limit
        self._robot_id = uuid.uuid4().hex
        self._repos: dict[str, None] = {}
        self._services: dict[str, ServiceRecord] = {}
        self._tasks: dict[str, dict[str, TaskRecord]] = {}
        self._finished: dict[str, int] = {}  # finished tasks kept, per service
        # (service, request id) -> task id; may name trimmed tasks, which
        # lookups then do not find, as with SQLite.
        self._by_request: dict[tuple[str, str], str] = {}
        self._requests: dict[tuple[str, str], bytes] = {}
        self._seq = itertools.count(1)
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStorage(closed={self._closed})"

    # -- robot and repos ------------------------------------------------------

    def robot_id(self) -> str:
        """See Storage.robot_id; new for every MemoryStorage."""
        self._live()
        return self._robot_id

    def add_repo(self, url: str) -> None:
        """See Storage.add_repo."""
        self._live()
        self._repos.setdefault(url)

    def list_repos(self) -> list[str]:
        """See Storage.list_repos."""
        self._live()
        return list(self._repos)

    # -- services -------------------------------------------------------------

    def create_service(self, record: ServiceRecord) -> None:
        """See Storage.create_service."""
        self._live()
        if record.name in self._services:
            raise errors.ServiceExists(
                f"a service named {record.name!r} already exists"
            )
        if self.service_by_request_id(record.request_id) is not None:
            raise errors.ServiceExists(
                f"a service was already created with request id {record.request_id!r}"
            )
        self._services[record.name] = copy.deepcopy(record)
        self._tasks[record.name] = {}

    def delete_service(self, name: str) -> bool:
        """See Storage.delete_service."""
        self._live()
        self._tasks.pop(name, None)
        self._finished.pop(name, None)
        for key in [k for k in self._by_request if k[0] == name]:
            del self._by_request[key]
        return self._services.pop(name, None) is not None

    def list_services(self) -> list[ServiceRecord]:
        """See Storage.list_services."""
        self._live()
        return [copy.deepcopy(self._services[n]) for n in sorted(self._services)]

    def service_by_request_id(self, request_id: str) -> ServiceRecord | None:
        """See Storage.service_by_request_id."""
        self._live()
        found = (s for s in self._services.values() if s.request_id == request_id)
        return copy.deepcopy(next(found, None)) if request_id else None

    def save_service(
        self, name: str, data: dict[str, Any], state: dict[str, Any]
    ) -> None:
        """See Storage.save_service."""
        self._live()
        self._service(name)
        self._save(name, data, state)

    # -- tasks ----------------------------------------------------------------

    def add_task(self, record: TaskRecord) -> None:
        """See Storage.add_task."""
        self._live()
        tasks = self._service_tasks(record.service)
        if self._find(record.id) is not None:
            raise errors.StorageError(f"task {record.id} is already journaled")
        if self.task_by_request_id(record.service, record.request_id) is not None:
            raise errors.StorageError(
                f"a task of {record.service!r} has request id {record.request_id!r}"
            )
        record.seq = next(self._seq)
        tasks[record.id] = copy.deepcopy(record)
        if record.request_id:
            self._by_request[(record.service, record.request_id)] = record.id

    def task_by_request_id(self, service: str, request_id: str) -> TaskRecord | None:
        """See Storage.task_by_request_id."""
        self._live()
        task_id = self._by_request.get((service, request_id)) if request_id else None
        found = self._tasks.get(service, {}).get(task_id or "")
        return copy.deepcopy(found) if found is not None else None

    def start_task(self, task_id: str, start_time: float) -> None:
        """See Storage.start_task."""
        self._live()
        record = self._find(task_id)
        if record is None:
            raise errors.TaskNotFound(f"no task {task_id} is journaled")
        if record.state.final:
            self._finished[record.service] -= 1
        record.state, record.start_time = TaskState.RUNNING, start_time

    def finish_task(
        self,
        record: TaskRecord,
        data: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """See Storage.finish_task."""
        self._live()
        if not record.state.final:
            raise ValueError(f"task {record.id} is {record.state.value}, not final")
        tasks = self._service_tasks(record.service)
        stored = tasks.get(record.id)
        if stored is None:
            raise errors.TaskNotFound(
                f"no task {record.id} of service {record.service!r} is journaled"
            )
        if not stored.state.final:
            self._finished[record.service] = self._finished.get(record.service, 0) + 1
        stored.state = record.state
        stored.start_time, stored.end_time = record.start_time, record.end_time
        stored.result, stored.error = copy.deepcopy((record.result, record.error))
        self._save(record.service, data, state)
        self._trim(record.service, tasks)

    def get_task(self, service: str, task_id: str) -> TaskRecord | None:
        """See Storage.get_task."""
        self._live()
        return copy.deepcopy(self._tasks.get(service, {}).get(task_id))

    def list_tasks(
        self, service: str, limit: int, before_seq: int | None = None
    ) -> list[TaskRecord]:
        """See Storage.list_tasks."""
        self._live()
        newest_first = reversed(self._tasks.get(service, {}).values())
        found = (t for t in newest_first if before_seq is None or t.seq < before_seq)
        return [copy.deepcopy(t) for t in itertools.islice(found, max(limit, 0))]

    def unfinished_tasks(self) -> list[TaskRecord]:
        """See Storage.unfinished_tasks."""
        self._live()
        tasks = (t for by_id in self._tasks.values() for t in by_id.values())
        unfinished = sorted((t for t in tasks if not t.state.final), key=_by_seq)
        return [copy.deepcopy(t) for t in unfinished]

    # -- request ids ----------------------------------------------------------

    def remember_request(self, request_id: str, method: str, response: bytes) -> None:
        """See Storage.remember_request."""
        self._live()
        self._requests.setdefault((request_id, method), bytes(response))

    def recall_request(self, request_id: str, method: str) -> bytes | None:
        """See Storage.recall_request."""
        self._live()
        return self._requests.get((request_id, method))

    # -- life cycle -----------------------------------------------------------

    def close(self) -> None:
        """See Storage.close. Drops everything."""
        self._closed = True
        self._repos.clear()
        self._services.clear()
        self._tasks.clear()
        self._requests.clear()

    # -- machinery ------------------------------------------------------------

    def _live(self) -> None:
        if self._closed:
            raise errors.StorageError("the in-memory store is closed")

    def _service(self, name: str) -> ServiceRecord:
        record = self._services.get(name)
        if record is None:
            raise errors.ServiceNotFound(f"no service named {name!r}")
        return record

    def _service_tasks(self, name: str) -> dict[str, TaskRecord]:
        self._service(name)
        return self._tasks[name]

    def _save(
        self, name: str, data: dict[str, Any] | None, state: dict[str, Any] | None
    ) -> None:
        """Replace the given data and/or state of a known service."""
        record = self._services[name]
        if data is not None:
            record.data = copy.deepcopy(data)
        if state is not None:
            record.state = copy.deepcopy(state)

    def _find(self, task_id: str) -> TaskRecord | None:
        """The stored task of that id, of any service; one lookup per service."""
        for tasks in self._tasks.values():
            if task_id in tasks:
                return tasks[task_id]
        return None

    def _trim(self, service: str, tasks: dict[str, TaskRecord]) -> None:
        """Drop a service's oldest finished tasks beyond the history limit.

        Tasks are in seq order, so the oldest finished ones come first and
        the scan stops as soon as enough are gone.
        """
        excess = self._finished.get(service, 0) - self._history_limit
        if excess <= 0:
            return
        finished = (task_id for task_id, t in tasks.items() if t.state.final)
        doomed = list(itertools.islice(finished, excess))
        for task_id in doomed:
            del tasks[task_id]
        self._finished[service] -= len(doomed)


def _by_seq(record: TaskRecord) -> int:
    return record.seq
