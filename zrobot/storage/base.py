"""The storage interface: what a robot keeps across restarts.

A store holds the robot's identity, its template repos, its services (data
and state) and the task journal with each service's finished-task history.
Every method runs in the calling greenlet and returns when the change is
durable against a process crash; none of them may be called concurrently
from native threads. Backends raise `zrobot.errors.StorageError` subclasses,
`ServiceExists` on a duplicate name, and never delete data they cannot read.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from zrobot.states import TaskState

DEFAULT_HISTORY_LIMIT = 1000


@dataclasses.dataclass
class ServiceRecord:
    """A service as stored: its template, user data and reported state."""

    name: str
    template_uid: str
    data: dict[str, Any]
    state: dict[str, Any]
    create_time: float
    request_id: str = ""


@dataclasses.dataclass
class TaskRecord:
    """A task as journaled. `seq` is assigned by the store on add_task and
    orders tasks globally in the order they were accepted."""

    id: str
    service: str
    action: str
    args: dict[str, Any]
    priority: int
    state: TaskState
    create_time: float
    result: Any = None
    error: dict[str, str] | None = None
    start_time: float | None = None
    end_time: float | None = None
    deadline: float | None = None
    call_chain: list[str] = dataclasses.field(default_factory=list)
    request_id: str = ""
    seq: int = 0


class Storage(abc.ABC):
    """What a robot needs from a store. See the module docstring."""

    @abc.abstractmethod
    def robot_id(self) -> str:
        """Return this store's robot id, made once on first open and kept."""

    @abc.abstractmethod
    def add_repo(self, url: str) -> None:
        """Remember a template repo URL (idempotent; keeps first-added order)."""

    @abc.abstractmethod
    def list_repos(self) -> list[str]:
        """Return remembered repo URLs in the order they were first added."""

    @abc.abstractmethod
    def create_service(self, record: ServiceRecord) -> None:
        """Store a new service; raise ServiceExists if the name is taken."""

    @abc.abstractmethod
    def delete_service(self, name: str) -> bool:
        """Delete a service with all its tasks; False if there was none."""

    @abc.abstractmethod
    def list_services(self) -> list[ServiceRecord]:
        """Return every service, ordered by name."""

    @abc.abstractmethod
    def service_by_request_id(self, request_id: str) -> ServiceRecord | None:
        """Return the service created with this request id, if any."""

    @abc.abstractmethod
    def save_service(
        self, name: str, data: dict[str, Any], state: dict[str, Any]
    ) -> None:
        """Replace a service's data and state in one atomic write."""

    @abc.abstractmethod
    def add_task(self, record: TaskRecord) -> None:
        """Journal a new task and set record.seq; durable when it returns."""

    @abc.abstractmethod
    def task_by_request_id(self, service: str, request_id: str) -> TaskRecord | None:
        """Return the service's task scheduled with this request id, if any."""

    @abc.abstractmethod
    def start_task(self, task_id: str, start_time: float) -> None:
        """Mark a task RUNNING."""

    @abc.abstractmethod
    def finish_task(
        self,
        record: TaskRecord,
        data: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Write a task's final state, result or error, and end time.

        When data/state are given, the service's data and state are saved in
        the same transaction, so a crash leaves either all or nothing. Trims
        the service's finished history to the store's limit; never touches
        unfinished tasks.
        """

    @abc.abstractmethod
    def get_task(self, service: str, task_id: str) -> TaskRecord | None:
        """Return one task of a service, finished or not."""

    @abc.abstractmethod
    def list_tasks(
        self, service: str, limit: int, before_seq: int | None = None
    ) -> list[TaskRecord]:
        """Return up to limit tasks of a service, newest (highest seq) first,
        only those with seq < before_seq when it is given."""

    @abc.abstractmethod
    def unfinished_tasks(self) -> list[TaskRecord]:
        """Return every NEW or RUNNING task of every service, in seq order."""

    @abc.abstractmethod
    def remember_request(self, request_id: str, method: str, response: bytes) -> None:
        """Keep the response of a mutating request under its request id."""

    @abc.abstractmethod
    def recall_request(self, request_id: str, method: str) -> bytes | None:
        """Return the response kept for (request_id, method), if any."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store; later calls are errors."""
