"""An in-memory store: the same contract as SQLite, kept nowhere.

For tests and for measuring what the journal costs; a robot on it forgets
everything when it stops. Records are copied in and out, so callers never
share mutable state with the store.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from typing import Any

from zrobot import errors
from zrobot.states import TaskState
from zrobot.storage.base import DEFAULT_HISTORY_LIMIT, ServiceRecord, Storage, TaskRecord

_UNFINISHED = (TaskState.NEW, TaskState.RUNNING)


class MemoryStorage(Storage):
    """Storage in dicts. Never blocks; not shared between processes."""

    def __init__(self, history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        self._history_limit = history_limit
        self._robot_id = uuid.uuid4().hex
        self._repos: list[str] = []
        self._services: dict[str, ServiceRecord] = {}
        self._tasks: dict[str, TaskRecord] = {}
        self._requests: dict[tuple[str, str], bytes] = {}
        self._seq = itertools.count(1)

    def robot_id(self) -> str:
        """See Storage.robot_id."""
        return self._robot_id

    def add_repo(self, url: str) -> None:
        """See Storage.add_repo."""
        if url not in self._repos:
            self._repos.append(url)

    def list_repos(self) -> list[str]:
        """See Storage.list_repos."""
        return list(self._repos)

    def create_service(self, record: ServiceRecord) -> None:
        """See Storage.create_service."""
        if record.name in self._services:
            raise errors.ServiceExists(f"a service named {record.name!r} already exists")
        self._services[record.name] = copy.deepcopy(record)

    def delete_service(self, name: str) -> bool:
        """See Storage.delete_service."""
        for task_id in [t.id for t in self._tasks.values() if t.service == name]:
            del self._tasks[task_id]
        return self._services.pop(name, None) is not None

    def list_services(self) -> list[ServiceRecord]:
        """See Storage.list_services."""
        return [copy.deepcopy(self._services[n]) for n in sorted(self._services)]

    def service_by_request_id(self, request_id: str) -> ServiceRecord | None:
        """See Storage.service_by_request_id."""
        for record in self._services.values():
            if request_id and record.request_id == request_id:
                return copy.deepcopy(record)
        return None

    def save_service(self, name: str, data: dict[str, Any], state: dict[str, Any]) -> None:
        """See Storage.save_service."""
        record = self._services[name]
        record.data, record.state = copy.deepcopy(data), copy.deepcopy(state)

    def add_task(self, record: TaskRecord) -> None:
        """See Storage.add_task."""
        record.seq = next(self._seq)
        self._tasks[record.id] = copy.deepcopy(record)

    def task_by_request_id(self, service: str, request_id: str) -> TaskRecord | None:
        """See Storage.task_by_request_id."""
        for record in self._tasks.values():
            if record.service == service and request_id and record.request_id == request_id:
                return copy.deepcopy(record)
        return None

    def start_task(self, task_id: str, start_time: float) -> None:
        """See Storage.start_task."""
        record = self._tasks[task_id]
        record.state, record.start_time = TaskState.RUNNING, start_time

    def finish_task(
        self,
        record: TaskRecord,
        data: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """See Storage.finish_task."""
        self._tasks[record.id] = copy.deepcopy(record)
        if data is not None and state is not None and record.service in self._services:
            self.save_service(record.service, data, state)
        self._trim(record.service)

    def _trim(self, service: str) -> None:
        done = [t for t in self._tasks.values()
                if t.service == service and t.state not in _UNFINISHED]
        done.sort(key=lambda t: t.seq)
        for record in done[: max(0, len(done) - self._history_limit)]:
            del self._tasks[record.id]

    def get_task(self, service: str, task_id: str) -> TaskRecord | None:
        """See Storage.get_task."""
        record = self._tasks.get(task_id)
        if record is None or record.service != service:
            return None
        return copy.deepcopy(record)

    def list_tasks(
        self, service: str, limit: int, before_seq: int | None = None
    ) -> list[TaskRecord]:
        """See Storage.list_tasks."""
        found = [t for t in self._tasks.values() if t.service == service
                 and (before_seq is None or t.seq < before_seq)]
        found.sort(key=lambda t: t.seq, reverse=True)
        return [copy.deepcopy(t) for t in found[:limit]]

    def unfinished_tasks(self) -> list[TaskRecord]:
        """See Storage.unfinished_tasks."""
        found = [t for t in self._tasks.values() if t.state in _UNFINISHED]
        return [copy.deepcopy(t) for t in sorted(found, key=lambda t: t.seq)]

    def remember_request(self, request_id: str, method: str, response: bytes) -> None:
        """See Storage.remember_request."""
        self._requests[(request_id, method)] = response

    def recall_request(self, request_id: str, method: str) -> bytes | None:
        """See Storage.recall_request."""
        return self._requests.get((request_id, method))

    def close(self) -> None:
        """See Storage.close. Drops everything."""
        self._services.clear()
        self._tasks.clear()
