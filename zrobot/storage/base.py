"""The storage interface: what a robot keeps across restarts.

A store holds the robot's identity, its template repos, its services (data
and state) and the task journal with each service's finished-task history.

The contract every backend keeps (tests/test_storage_contract.py checks it):

- Every method runs in the calling greenlet and blocks only for local I/O;
  a mutating method returns once its change is durable against a process
  crash. No method may be called concurrently from native threads.
- A mutating method is all or nothing: when it raises, the store is as it
  was before the call.
- Errors of the store itself are `zrobot.errors.StorageError` subclasses.
  Unknown names raise `ServiceNotFound` or `TaskNotFound` as each method
  says; duplicates raise `ServiceExists` or `StorageError`.
- After `close()` every other method raises StorageError; closing again is
  a no-op.
- A store never deletes data it cannot read, and never shares mutable state
  with callers: records passed in are copied, records returned are new.
- A backend takes a `history_limit` (>= 0, else ValueError) and keeps at
  most that many finished tasks per service.
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
    """What a robot needs from a store. See the module docstring for what
    holds for every method; each docstring adds what it alone promises."""

    @abc.abstractmethod
    def robot_id(self) -> str:
        """Return this store's robot id (uuid4 hex), made once on first open.

        A store that persists returns the same id after every reopen.
        """

    @abc.abstractmethod
    def add_repo(self, url: str) -> None:
        """Remember a template repo URL after the others.

        Idempotent: a URL already remembered keeps its place.
        """

    @abc.abstractmethod
    def list_repos(self) -> list[str]:
        """Return remembered repo URLs in the order they were first added."""

    @abc.abstractmethod
    def create_service(self, record: ServiceRecord) -> None:
        """Store a new service.

        Raises ServiceExists when the name is taken or another service was
        created with the same non-empty `request_id`; the stored one stays.
        """

    @abc.abstractmethod
    def delete_service(self, name: str) -> bool:
        """Delete a service with all its tasks, unfinished and finished.

        Returns False if there was no such service. The name may then be
        created again and starts with no tasks.
        """

    @abc.abstractmethod
    def list_services(self) -> list[ServiceRecord]:
        """Return every service, ordered by name."""

    @abc.abstractmethod
    def service_by_request_id(self, request_id: str) -> ServiceRecord | None:
        """Return the service created with this request id; None for ''."""

    @abc.abstractmethod
    def save_service(
        self, name: str, data: dict[str, Any], state: dict[str, Any]
    ) -> None:
        """Replace a service's data and state in one atomic write.

        Raises ServiceNotFound for an unknown service.
        """

    @abc.abstractmethod
    def add_task(self, record: TaskRecord) -> None:
        """Journal a new task and set `record.seq`.

        The seq is higher than that of every task journaled before, across
        all services. Raises ServiceNotFound for an unknown service, and
        StorageError when the task id, or the service's non-empty request
        id, is already journaled; nothing is journaled then.
        """

    @abc.abstractmethod
    def task_by_request_id(self, service: str, request_id: str) -> TaskRecord | None:
        """Return the service's task scheduled with this request id; None for
        '' and for another service's task."""

    @abc.abstractmethod
    def start_task(self, task_id: str, start_time: float) -> None:
        """Mark a journaled task RUNNING with its start time.

        Raises TaskNotFound when no task of that id is journaled.
        """

    @abc.abstractmethod
    def finish_task(
        self,
        record: TaskRecord,
        data: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Write a finished task and, when given, its service's data and state.

        Writes the task's state, result, error, start and end time; its
        other fields stay as journaled. `data` and `state` are saved
        independently: each one given replaces the stored one, None keeps
        it. Then trims the service's history to the newest `history_limit`
        finished tasks (by seq); unfinished tasks and other services' tasks
        are never trimmed. All of it is one atomic write.

        Raises ValueError if `record.state` is not final, ServiceNotFound
        if `record.service` is unknown, TaskNotFound if that service has no
        task `record.id`; nothing is written then.
        """

    @abc.abstractmethod
    def get_task(self, service: str, task_id: str) -> TaskRecord | None:
        """Return one task of a service, finished or not; None if the task
        is unknown or belongs to another service."""

    @abc.abstractmethod
    def list_tasks(
        self, service: str, limit: int, before_seq: int | None = None
    ) -> list[TaskRecord]:
        """Return up to `limit` tasks of a service, newest (highest seq) first.

        With `before_seq`, only those with a lower seq (the next page). An
        unknown service, or a limit of 0 or less, gives an empty list.
        """

    @abc.abstractmethod
    def unfinished_tasks(self) -> list[TaskRecord]:
        """Return every NEW or RUNNING task of every service, in seq order."""

    @abc.abstractmethod
    def remember_request(self, request_id: str, method: str, response: bytes) -> None:
        """Keep the response of a mutating request under (request_id, method).

        The first response kept stays: remembering the same pair again is
        ignored.
        """

    @abc.abstractmethod
    def recall_request(self, request_id: str, method: str) -> bytes | None:
        """Return the response kept for (request_id, method), if any."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store; later calls to other methods raise StorageError.

        Closing a closed store is a no-op.
        """
