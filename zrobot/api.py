"""`self.api` of a template: reach other services, local or remote, alike.

A proxy to a service in the same robot hands tasks straight to that
service's task list; a proxy to a service on a peer robot schedules over
gRPC and gets the result pushed back over WaitTask. Both carry the calling
task's call chain (to refuse cycles) and its deadline (so the producer gets
the remaining budget).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, Any

from zrobot import errors
from zrobot.task import TaskHandle

if TYPE_CHECKING:
    from zrobot.robot import Robot
    from zrobot.service import Service


class ServiceProxy(abc.ABC):
    """A service as a template sees it, whatever robot it lives on."""

    name: str

    @abc.abstractmethod
    def schedule_action(
        self, action: str, args: dict[str, Any] | None = None, priority: int = 0
    ) -> TaskHandle:
        """Queue a task on the service; return its handle at once.

        Raises InvalidAction/InvalidArguments before anything is queued,
        CallCycle, ServiceNotFound, and for remote services Unavailable or
        DeadlineExceeded when the robot cannot be reached in time.
        """


class LocalServiceProxy(ServiceProxy):
    """A service of the same robot: tasks go straight onto its task list."""

    def __init__(self, robot: Robot, name: str, caller: Service | None) -> None:
        self.name = name
        self._robot = robot
        self._caller = caller

    def schedule_action(
        self, action: str, args: dict[str, Any] | None = None, priority: int = 0
    ) -> TaskHandle:
        """See ServiceProxy.schedule_action. Does not block."""
        context = caller_context(self._caller)
        # TODO(tasks): cancel a local producer's task when its waiting caller is
        # cancelled, as RemoteTask.wait does for remote producers.
        service = self._robot.service(self.name)
        return service.schedule(
            action,
            args,
            priority=priority,
            request_id=context.request_id,
            deadline=context.deadline,
            call_chain=context.call_chain,
        )


@dataclasses.dataclass(frozen=True)
class CallContext:
    """What a task scheduled by another task inherits from it."""

    call_chain: list[str]
    deadline: float | None
    request_id: str


def caller_context(caller: Service | None) -> CallContext:
    """Return the context a task scheduled now by caller's running task gets.

    The request id is the caller's task id and the number of this call
    within the task's run. A task re-run after a crash makes its calls
    again under the same ids, so its producers return the tasks they
    already have instead of running them twice.
    """
    if caller is None or caller.current is None:
        return CallContext([], None, "")
    task = caller.current
    task.calls += 1
    record = task.record
    return CallContext(
        [*record.call_chain, caller.key], record.deadline, f"{record.id}.{task.calls}"
    )


class ServicesApi:
    """`self.api.services`: find, create and reach services."""

    def __init__(self, robot: Robot, caller: Service | None) -> None:
        self._robot = robot
        self._caller = caller

    def get(self, name: str, robot: str | None = None) -> ServiceProxy:
        """Return a proxy for an existing service; robot=None means this robot.

        Raises ServiceNotFound, PeerNotFound (unknown robot name),
        Unavailable (peer down). Blocks only for a remote lookup.
        """
        if robot is None:
            self._robot.service(name)
            return LocalServiceProxy(self._robot, name, self._caller)
        return self._robot.peer(robot).service(name, caller=self._caller)

    def create(
        self,
        template: str,
        name: str,
        data: dict[str, Any] | None = None,
        robot: str | None = None,
    ) -> ServiceProxy:
        """Create a service from a template UID or name; return its proxy.

        Raises TemplateNotFound, AmbiguousTemplate, ServiceExists,
        InvalidName, InvalidData, and the remote errors of `get`.
        """
        if robot is None:
            self._robot.create_service(template, name, data or {})
            return LocalServiceProxy(self._robot, name, self._caller)
        peer = self._robot.peer(robot)
        peer.services.create(template, name, data or {})
        return peer.service(name, caller=self._caller)

    def find_or_create(
        self,
        template: str,
        name: str,
        data: dict[str, Any] | None = None,
        robot: str | None = None,
    ) -> ServiceProxy:
        """Return the named service, creating it from template if it is missing."""
        try:
            return self.get(name, robot)
        except errors.ServiceNotFound:
            pass
        try:
            return self.create(template, name, data, robot)
        except errors.ServiceExists:
            return self.get(name, robot)


class Api:
    """The `api` attribute of a template instance."""

    def __init__(self, robot: Robot) -> None:
        self.services = ServicesApi(robot, None)

    def bind(self, service: Service) -> None:
        """Tie the api to the service whose template owns it (call chains)."""
        self.services._caller = service
