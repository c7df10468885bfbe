"""The gRPC face of a robot: servicer, error translation, health, reflection.

This layer only translates: requests to robot calls, records to messages,
zrobot errors to rich statuses. Handlers run in greenlets (the executor's
workers after monkey-patching) and may block on gevent primitives.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from zrobot import _wire, errors
from zrobot.v1 import robot_pb2 as pb
from zrobot.v1 import robot_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from zrobot.robot import Robot

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Robot"].full_name
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
PAGE_BYTES = 4 * 1024 * 1024  # a List page stops growing past this
# Each call in flight, WaitTask streams included, holds one handler greenlet.
# Past MAX_CONCURRENT_RPCS a call is refused with RESOURCE_EXHAUSTED at once
# instead of queueing behind the streams (which froze the robot at 1,024).
HANDLER_GREENLETS = 10_000
MAX_CONCURRENT_RPCS = 9_000
Handler = TypeVar("Handler", bound=Callable[..., Any])


def _translated(method: Handler) -> Handler:
    """Turn zrobot errors into rich statuses and anything else into INTERNAL."""

    @functools.wraps(method)
    def unary(self: RobotServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except errors.Error as exc:
            context.abort_with_status(_wire.error_to_status(exc))
        except TypeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad value: {exc}")
        except Exception:
            log.exception("%s failed", method.__name__)
            context.abort(
                grpc.StatusCode.INTERNAL, "internal error; see the robot's log"
            )

    return unary  # type: ignore[return-value]


def _idempotent(method: Handler) -> Handler:
    """Answer a repeated request_id with the first response, kept in the store.

    The response is kept behind a fingerprint of the request (without its
    request_id), so reusing the id for a different request is refused.
    """

    @functools.wraps(method)
    def once(self: RobotServicer, request: Any, context: grpc.ServicerContext) -> Any:
        if not request.request_id:
            return method(self, request, context)
        storage, name = self.robot.storage, method.__name__
        print_ = _fingerprint(request)
        kept = storage.recall_request(request.request_id, name)
        if kept is not None:
            if kept[: len(print_)] != print_:
                raise errors.InvalidArguments(
                    f"request_id {request.request_id!r} was first used for another "
                    f"{name} request; use a new request_id for a new request",
                    violations=[("request_id", "already used for another request")],
                )
            return type(_RESPONSES[name]).FromString(kept[len(print_) :])
        response = method(self, request, context)
        storage.remember_request(
            request.request_id, name, print_ + response.SerializeToString()
        )
        return response

    return once  # type: ignore[return-value]


def _fingerprint(request: Any) -> bytes:
    """32 bytes that differ when two requests differ other than in request_id."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.request_id = ""
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


_RESPONSES = {
    "AddTemplateRepo": pb.AddTemplateRepoResponse(),
    "DeleteService": pb.DeleteServiceResponse(),
    "CancelTask": pb.CancelTaskResponse(),
}


class RobotServicer(pb_grpc.RobotServicer):
    """zrobot.v1.Robot on top of a Robot."""

    def __init__(self, robot: Robot) -> None:
        self.robot = robot

    @_translated
    def GetRobotInfo(self, request: pb.GetRobotInfoRequest, context: Any) -> Any:
        info = self.robot.info()
        uptime = duration_pb2.Duration()
        uptime.FromNanoseconds(int(info.uptime_s * 1e9))
        return pb.GetRobotInfoResponse(
            robot_id=info.robot_id,
            name=info.name,
            version=info.version,
            address=info.address,
            uptime=uptime,
            template_count=info.template_count,
            service_count=info.service_count,
            pending_task_count=info.pending_task_count,
        )

    @_translated
    def ListTemplates(self, request: pb.ListTemplatesRequest, context: Any) -> Any:
        size = _wire.page_size(request.page_size)
        after = _wire.decode_page_token(request.page_token) or ""
        found = [t for t in self.robot.templates.list() if t.uid > after]
        page = found[:size]
        token = _wire.encode_page_token(page[-1].uid) if len(found) > size else ""
        return pb.ListTemplatesResponse(
            templates=[_wire.template_to_pb(t) for t in page], next_page_token=token
        )

    @_translated
    @_idempotent
    def AddTemplateRepo(self, request: pb.AddTemplateRepoRequest, context: Any) -> Any:
        loaded = self.robot.add_template_repo(request.url)
        return pb.AddTemplateRepoResponse(
            templates=[_wire.template_to_pb(t) for t in loaded.templates],
            errors=[
                pb.TemplateLoadError(repo=e.repo, path=e.path, error=e.error)
                for e in loaded.errors
            ],
        )

    @_translated
    def CreateService(self, request: pb.CreateServiceRequest, context: Any) -> Any:
        service = self.robot.create_service(
            request.template,
            request.name,
            _wire.from_struct(request.data),
            request.request_id,
        )
        return pb.CreateServiceResponse(service=_service(service))

    @_translated
    def GetService(self, request: pb.GetServiceRequest, context: Any) -> Any:
        return pb.GetServiceResponse(service=_service(self.robot.service(request.name)))

    @_translated
    def ListServices(self, request: pb.ListServicesRequest, context: Any) -> Any:
        size = _wire.page_size(request.page_size)
        after = _wire.decode_page_token(request.page_token) or ""
        found = [s for s in self.robot.services() if s.name > after]
        page = _fill([_service(s) for s in found[: size + 1]], size)
        more = len(found) > len(page)
        token = _wire.encode_page_token(page[-1].name) if more else ""
        return pb.ListServicesResponse(services=page, next_page_token=token)

    @_translated
    @_idempotent
    def DeleteService(self, request: pb.DeleteServiceRequest, context: Any) -> Any:
        self.robot.delete_service(request.name)
        return pb.DeleteServiceResponse()

    @_translated
    def ScheduleAction(self, request: pb.ScheduleActionRequest, context: Any) -> Any:
        service = self.robot.service(request.service)
        task = service.schedule(
            request.action,
            _wire.from_struct(request.args),
            priority=request.priority,
            request_id=request.request_id,
            deadline=_wire.from_timestamp(request, "deadline"),
            call_chain=list(request.call_chain),
        )
        return pb.ScheduleActionResponse(task=_wire.task_to_pb(task.snapshot()))

    @_translated
    def GetTask(self, request: pb.GetTaskRequest, context: Any) -> Any:
        task = self.robot.service(request.service).task(request.task_id)
        return pb.GetTaskResponse(task=_wire.task_to_pb(task.snapshot()))

    @_translated
    def ListTasks(self, request: pb.ListTasksRequest, context: Any) -> Any:
        self.robot.service(request.service)
        size = _wire.page_size(request.page_size)
        before = _wire.decode_page_token(request.page_token)
        found = self.robot.storage.list_tasks(request.service, size + 1, before)
        page = _fill([_wire.task_to_pb(t) for t in found], size)
        more = len(found) > len(page)
        token = _wire.encode_page_token(found[len(page) - 1].seq) if more else ""
        return pb.ListTasksResponse(tasks=page, next_page_token=token)

    def WaitTask(self, request: pb.WaitTaskRequest, context: Any) -> Iterator[Any]:
        try:
            task = self.robot.service(request.service).task(request.task_id)
        except errors.Error as exc:
            context.abort_with_status(_wire.error_to_status(exc))
        watch = task.watch()
        # A client that goes away must not leave this greenlet blocked until
        # the task's next change: closing the watch wakes it.
        context.add_callback(watch.close)
        for snapshot in watch:
            yield pb.WaitTaskResponse(task=_wire.task_to_pb(snapshot))

    @_translated
    @_idempotent
    def CancelTask(self, request: pb.CancelTaskRequest, context: Any) -> Any:
        task = self.robot.service(request.service).cancel(request.task_id)
        return pb.CancelTaskResponse(task=_wire.task_to_pb(task.snapshot()))


def _fill(items: list[Any], size: int) -> list[Any]:
    """The first items of a page: at most size, and at most PAGE_BYTES in all
    (but at least one), so a page of large tasks never exceeds the limit."""
    total = 0
    for count, item in enumerate(items[:size]):
        total += item.ByteSize()
        if total > PAGE_BYTES and count:
            return items[:count]
    return items[:size]


def _service(service: Any) -> pb.Service:
    return _wire.service_to_pb(service.record, service.pending)


class Server:
    """The robot's gRPC server with health and reflection. Owned by Robot."""

    def __init__(self, robot: Robot, listen: str) -> None:
        self._listen = listen
        self._health = health.HealthServicer()
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=HANDLER_GREENLETS),
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        pb_grpc.add_RobotServicer_to_server(RobotServicer(robot), self._grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self._grpc)

    def start(self) -> str:
        """Bind and start serving; return the bound HOST:PORT.

        Raises OSError when the address cannot be bound.
        """
        try:
            port = self._grpc.add_insecure_port(self._listen)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self._listen}: {exc}") from exc
        self._grpc.start()
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        host = self._listen.rsplit(":", 1)[0]
        return f"{host}:{port}"

    def stop(self, grace_s: float) -> None:
        """Go NOT_SERVING, then stop; blocks up to grace_s for in-flight calls."""
        self._health.enter_graceful_shutdown()
        self._grpc.stop(grace_s).wait()
