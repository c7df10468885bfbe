"""The one error tree of zrobot.

Every error zrobot raises on purpose is a subclass of `Error`. Each class
carries a canonical status `code` and a stable UPPER_SNAKE `reason`; the wire
layer translates them once (server: error -> gRPC status with ErrorInfo;
client: ErrorInfo reason -> the same class), so a caller on another robot
catches the same type the producer raised.

This module imports nothing of gRPC: the domain stays free of the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

DOMAIN = "zrobot.v1"


class Code(enum.Enum):
    """Canonical status codes, named as gRPC names them (values match)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


class Error(Exception):
    """Root of every zrobot error.

    `metadata` is a flat str->str map sent along as ErrorInfo metadata;
    `violations` are (field, description) pairs sent as BadRequest.
    """

    code: Code = Code.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})
        self.violations = list(violations)


_BY_REASON: dict[str, type[Error]] = {}


def _register(cls: type[Error]) -> type[Error]:
    _BY_REASON[cls.reason] = cls
    return cls


def error_class(reason: str) -> type[Error] | None:
    """Return the error class registered for a reason, or None."""
    return _BY_REASON.get(reason)


class TemplateError(Error):
    """Templates and template repos."""


class ServiceError(Error):
    """Services and their names and data."""


class TaskError(Error):
    """Tasks: actions, arguments, outcomes."""


class RemoteError(Error):
    """Other robots of the mesh."""


class StorageError(Error):
    """The robot's store on disk."""


# The concrete errors, each with its status code and stable reason.


class TemplateNotFound(TemplateError):
    """No loaded template matches the UID or name."""

    code, reason = Code.NOT_FOUND, "TEMPLATE_NOT_FOUND"


class AmbiguousTemplate(TemplateError):
    """A short template name matches templates of several repos."""

    code, reason = Code.INVALID_ARGUMENT, "TEMPLATE_AMBIGUOUS"


class InvalidRepoUrl(TemplateError):
    """A template repo URL that cannot be a git URL or path."""

    code, reason = Code.INVALID_ARGUMENT, "REPO_URL_INVALID"


class RepoCloneFailed(TemplateError):
    """git could not clone or pull the repo."""

    code, reason = Code.FAILED_PRECONDITION, "REPO_CLONE_FAILED"


class RepoRefNotFound(TemplateError):
    """The #branch-or-tag of a repo URL does not exist."""

    code, reason = Code.NOT_FOUND, "REPO_REF_NOT_FOUND"


class ServiceNotFound(ServiceError):
    """No service of that name on the robot."""

    code, reason = Code.NOT_FOUND, "SERVICE_NOT_FOUND"


class ServiceExists(ServiceError):
    """A service of that name already exists."""

    code, reason = Code.ALREADY_EXISTS, "SERVICE_EXISTS"


class InvalidName(ServiceError):
    """A name that is empty, too long, or has separators or control chars."""

    code, reason = Code.INVALID_ARGUMENT, "NAME_INVALID"


class InvalidData(ServiceError):
    """Service data the template refused."""

    code, reason = Code.INVALID_ARGUMENT, "DATA_INVALID"


class ServiceStopped(ServiceError):
    """The service was deleted or its robot is stopping."""

    code, reason = Code.FAILED_PRECONDITION, "SERVICE_STOPPED"


class TaskNotFound(TaskError):
    """No task of that id on the service."""

    code, reason = Code.NOT_FOUND, "TASK_NOT_FOUND"


class InvalidAction(TaskError):
    """Unknown or private action name."""

    code, reason = Code.INVALID_ARGUMENT, "ACTION_INVALID"


class InvalidArguments(TaskError):
    """Missing, extra or wrongly typed action arguments."""

    code, reason = Code.INVALID_ARGUMENT, "ARGUMENTS_INVALID"


class ActionFailed(TaskError):
    """The action raised; `metadata` holds the original type and traceback."""

    code, reason = Code.ABORTED, "ACTION_FAILED"


class TaskCancelled(TaskError):
    """The task was cancelled before it ended."""

    code, reason = Code.CANCELLED, "TASK_CANCELLED"


class DeadlineExceeded(TaskError):
    """A deadline or a wait timeout passed first."""

    code, reason = Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"


class CallCycle(TaskError):
    """A task would wait on a service that is already waiting on it."""

    code, reason = Code.FAILED_PRECONDITION, "CALL_CYCLE"


class TaskInterrupted(TaskError):
    """The robot stopped while a not-repeat-safe action was running."""

    code, reason = Code.ABORTED, "TASK_INTERRUPTED"


class PeerNotFound(RemoteError):
    """No peer robot of that name is configured."""

    code, reason = Code.NOT_FOUND, "PEER_NOT_FOUND"


class Unavailable(RemoteError):
    """A robot could not be reached."""

    code, reason = Code.UNAVAILABLE, "UNAVAILABLE"


class RemoteFailure(RemoteError):
    """A robot answered with an error zrobot does not know by reason."""

    code, reason = Code.UNKNOWN, "REMOTE_FAILURE"


class StorageCorrupt(StorageError):
    """The store cannot be read; it was left untouched."""

    code, reason = Code.INTERNAL, "STORAGE_CORRUPT"


class StorageVersionTooNew(StorageError):
    """The store was written by a newer zrobot."""

    code, reason = Code.FAILED_PRECONDITION, "STORAGE_TOO_NEW"


class StorageUnwritable(StorageError):
    """The data dir or the store cannot be written (permissions, disk full)."""

    code, reason = Code.FAILED_PRECONDITION, "STORAGE_UNWRITABLE"


class DataDirInUse(StorageError):
    """Another robot process holds the data dir."""

    code, reason = Code.FAILED_PRECONDITION, "DATA_DIR_IN_USE"


for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, Error) and "reason" in vars(_cls):
        _register(_cls)
_register(Error)
