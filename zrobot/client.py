"""Python client of a robot, also the proxy templates use for peer services.

Every call has a deadline (the client's `timeout_s` unless given) and goes
through `.future()`, which does not hold one of the hub's native threads per
call. Errors come back as the same zrobot error classes the robot raised.
Waiting on a task is pushed, not polled: WaitTask streams its state changes,
and when the producer's robot restarts mid-wait the stream is opened again
with wait_for_ready, so the wait resumes when the robot is back.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gevent
import grpc

from zrobot import _wire, errors
from zrobot.api import ServiceProxy, caller_context
from zrobot.storage.base import ServiceRecord, TaskRecord
from zrobot.task import TaskHandle, outcome
from zrobot.v1 import robot_pb2 as pb
from zrobot.v1 import robot_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from zrobot.service import Service

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
RESUBSCRIBE_DELAY_S = (0.05, 1.0)
RECONNECT_WINDOW_S = 2.0
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class Client:
    """A connection to one robot. Methods block the calling greenlet for at
    most their timeout and raise zrobot errors (Unavailable when the robot
    cannot be reached, DeadlineExceeded when it does not answer in time)."""

    def __init__(self, address: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                # A peer that restarts is back within seconds; gRPC's default
                # reconnect backoff (up to 120 s) would keep failing calls.
                # (min_reconnect_backoff_ms stays default: it also bounds
                # how long one connection attempt may take.)
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", int(RECONNECT_WINDOW_S * 1000)),
            ],
        )
        self.stub = pb_grpc.RobotStub(self._channel)
        self.templates = Templates(self)
        self.services = Services(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in flight end with Unavailable."""
        self._channel.close()

    def call(
        self,
        method: str,
        request: Any,
        timeout_s: float | None = None,
        wait_for_ready: bool = False,
        retry_unavailable: bool = False,
    ) -> Any:
        """Make one unary call with a deadline; return the response message.

        With wait_for_ready the call waits (up to its deadline) for the
        robot to be reachable instead of failing at once. With
        retry_unavailable (only for calls safe to repeat), a call that
        finds the robot unreachable is tried once more, waiting a few
        seconds for it to come back, before Unavailable is raised.
        """
        rpc = getattr(self.stub, method)
        timeout = timeout_s or self.timeout_s
        try:
            return rpc.future(
                request, timeout=timeout, wait_for_ready=wait_for_ready
            ).result()
        except grpc.RpcError as exc:
            failure = _wire.error_from_rpc(exc, self.address)
        if not (retry_unavailable and isinstance(failure, errors.Unavailable)):
            raise failure
        # One more try that waits for a robot which is just coming back.
        window = min(timeout, RECONNECT_WINDOW_S + 1)
        try:
            return self.call(method, request, window, wait_for_ready=True)
        except errors.DeadlineExceeded:
            raise failure from None

    def info(self) -> dict[str, Any]:
        """Return GetRobotInfo as a dict (robot_id, version, counts, ...)."""
        response = self.call("GetRobotInfo", pb.GetRobotInfoRequest())
        return {
            "robot_id": response.robot_id,
            "name": response.name,
            "version": response.version,
            "address": response.address,
            "uptime_s": response.uptime.ToNanoseconds() / 1e9,
            "template_count": response.template_count,
            "service_count": response.service_count,
            "pending_task_count": response.pending_task_count,
        }

    def service(self, name: str, caller: Service | None = None) -> RemoteService:
        """Return a proxy for an existing service; ServiceNotFound if none."""
        request = pb.GetServiceRequest(name=name)
        again = caller is not None  # a robot calling its peer: see _schedule
        response = self.call("GetService", request, retry_unavailable=again)
        return RemoteService(self, _wire.service_from_pb(response.service), caller)

    def task(self, service: str, task_id: str) -> RemoteTask:
        """Return a handle for an existing task; TaskNotFound if none."""
        request = pb.GetTaskRequest(service=service, task_id=task_id)
        response = self.call("GetTask", request)
        return RemoteTask(self, _wire.task_from_pb(response.task))

    def pages(self, method: str, request: Any, field: str) -> Iterator[Any]:
        """Yield every item of a List method, following next_page_token."""
        while True:
            response = self.call(method, request)
            yield from getattr(response, field)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token


class Templates:
    """`client.templates`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[pb.Template]:
        """Return every loaded template (zrobot.v1.Template messages)."""
        return list(
            self._client.pages("ListTemplates", pb.ListTemplatesRequest(), "templates")
        )

    def add(
        self, url: str, request_id: str = "", timeout_s: float = 300.0
    ) -> pb.AddTemplateRepoResponse:
        """Clone or pull a template repo on the robot; return what loaded and failed."""
        request = pb.AddTemplateRepoRequest(url=url, request_id=request_id)
        return self._client.call("AddTemplateRepo", request, timeout_s)


class Services:
    """`client.services`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[ServiceRecord]:
        """Return every service of the robot, ordered by name."""
        found = self._client.pages("ListServices", pb.ListServicesRequest(), "services")
        return [_wire.service_from_pb(message) for message in found]

    def get(self, name: str) -> RemoteService:
        """Return a proxy for a service; ServiceNotFound if none."""
        return self._client.service(name)

    def create(
        self,
        template: str,
        name: str,
        data: dict[str, Any] | None = None,
        request_id: str = "",
    ) -> RemoteService:
        """Create a service from a template UID or name; return its proxy."""
        request = pb.CreateServiceRequest(
            template=template,
            name=name,
            data=_wire.to_struct(data),
            request_id=request_id,
        )
        response = self._client.call("CreateService", request)
        return RemoteService(self._client, _wire.service_from_pb(response.service))

    def find_or_create(
        self, template: str, name: str, data: dict[str, Any] | None = None
    ) -> RemoteService:
        """Return the named service, creating it from template if missing."""
        try:
            return self.get(name)
        except errors.ServiceNotFound:
            pass
        try:
            return self.create(template, name, data)
        except errors.ServiceExists:
            return self.get(name)

    def delete(self, name: str, request_id: str = "") -> None:
        """Delete a service with its tasks and history."""
        self._client.call(
            "DeleteService", pb.DeleteServiceRequest(name=name, request_id=request_id)
        )


class RemoteService(ServiceProxy):
    """A service on a robot reached over gRPC."""

    def __init__(
        self, client: Client, record: ServiceRecord, caller: Service | None = None
    ) -> None:
        self.name = record.name
        self.record = record
        self._client = client
        self._caller = caller

    def refresh(self) -> ServiceRecord:
        """Fetch the service again; return and keep its record."""
        response = self._client.call("GetService", pb.GetServiceRequest(name=self.name))
        self.record = _wire.service_from_pb(response.service)
        return self.record

    def schedule_action(
        self,
        action: str,
        args: dict[str, Any] | None = None,
        priority: int = 0,
        request_id: str = "",
        deadline: float | None = None,
    ) -> RemoteTask:
        """Journal a task on the service; return its handle once it is accepted.

        Inside a template the calling task's call chain and deadline travel
        along. Raises InvalidAction/InvalidArguments (nothing queued),
        CallCycle, Unavailable.
        """
        context = caller_context(self._caller)
        # TODO(mesh): deadlines cross robots as wall-clock times, which assumes
        # synchronised clocks; send the remaining budget instead.
        ends = [d for d in (deadline, context.deadline) if d is not None]
        request = pb.ScheduleActionRequest(
            service=self.name,
            action=action,
            args=_wire.to_struct(args),
            priority=priority,
            request_id=request_id or context.request_id,
            call_chain=context.call_chain,
            deadline=_wire.to_timestamp(min(ends) if ends else None),
        )
        response = self._schedule(request)
        return RemoteTask(self._client, _wire.task_from_pb(response.task))

    def _schedule(self, request: pb.ScheduleActionRequest) -> Any:
        """ScheduleAction. From inside a robot, whose peers restart, a request
        id makes it safe to try again; a user's client fails at once."""
        again = bool(request.request_id) and self._caller is not None
        return self._client.call("ScheduleAction", request, retry_unavailable=again)

    def tasks(self, limit: int = 50) -> list[TaskRecord]:
        """Return up to limit tasks of the service, newest first."""
        request = pb.ListTasksRequest(service=self.name, page_size=min(limit, 1000))
        found = self._client.pages("ListTasks", request, "tasks")
        return [_wire.task_from_pb(m) for m in itertools.islice(found, limit)]

    def task(self, task_id: str) -> RemoteTask:
        """Return a handle for one of the service's tasks."""
        return self._client.task(self.name, task_id)


class RemoteTask(TaskHandle):
    """A task on a robot reached over gRPC."""

    def __init__(self, client: Client, record: TaskRecord) -> None:
        self.record = record
        self._client = client

    def refresh(self) -> TaskRecord:
        """Fetch the task again; return and keep its record."""
        self.record = self._client.task(self.record.service, self.id).record
        return self.record

    def cancel(self) -> TaskRecord:
        """Ask the robot to cancel the task; return the record it answers with."""
        request = pb.CancelTaskRequest(service=self.record.service, task_id=self.id)
        response = self._client.call("CancelTask", request)
        self.record = _wire.task_from_pb(response.task)
        return self.record

    def wait(self, timeout_s: float | None = None) -> Any:
        """Block this greenlet until the task ends; return or raise its outcome.

        Follows the task over WaitTask. If the robot goes away mid-wait the
        stream is reopened and waits for the robot to come back, until
        timeout_s (None: no limit). Raises DeadlineExceeded when timeout_s
        passes, the task's error otherwise (see Task.wait). When the waiting
        greenlet is killed, the remote task is cancelled.
        """
        until = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            self._follow(until)
        except gevent.GreenletExit:
            gevent.spawn(self._cancel_quietly)
            raise
        return outcome(self.record)

    def _follow(self, until: float | None) -> None:
        delay = RESUBSCRIBE_DELAY_S[0]
        request = pb.WaitTaskRequest(service=self.record.service, task_id=self.id)
        while not self.record.state.final:
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                raise errors.DeadlineExceeded(
                    f"task {self.id} ({self.record.action}) on {self._client.address} "
                    f"did not end in time; it is still {self.record.state.value}",
                    metadata={"task_id": self.id},
                )
            if self._stream_once(request, left):
                gevent.sleep(delay)
                delay = min(delay * 2, RESUBSCRIBE_DELAY_S[1])

    def _stream_once(self, request: pb.WaitTaskRequest, left: float | None) -> bool:
        """Follow one WaitTask stream; True when it broke and should reopen."""
        try:
            stream = self._client.stub.WaitTask(
                request, timeout=left, wait_for_ready=True
            )
            for response in stream:
                self.record = _wire.task_from_pb(response.task)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                return True
            if exc.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
                raise _wire.error_from_rpc(exc, self._client.address) from None
        return not self.record.state.final

    def _cancel_quietly(self) -> None:
        try:
            self.cancel()
        except errors.Error as exc:
            log.info("could not cancel task %s: %s", self.id, exc)
