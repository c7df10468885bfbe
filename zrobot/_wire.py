"""Translation between zrobot's records and errors and the zrobot.v1 messages.

Used by the server, the client and the CLI, so that a value or an error
crosses the wire one way only. JSON values travel as google.protobuf.Struct
and Value, whose numbers are doubles: integral numbers come back as int.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from zrobot import errors
from zrobot.states import TaskState
from zrobot.storage.base import ServiceRecord, TaskRecord
from zrobot.v1 import robot_pb2 as pb

if TYPE_CHECKING:
    from zrobot.templates import TemplateInfo

_STATES = {state: getattr(pb, f"TASK_STATE_{state.name}") for state in TaskState}
_STATES_BACK = {number: state for state, number in _STATES.items()}
_ERROR_KEYS = ("type", "message", "traceback", "reason")


def to_struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct:
    """dict -> Struct. Raises InvalidArguments-free TypeError on non-JSON."""
    message = struct_pb2.Struct()
    if value:
        message.update(value)
    return message


def from_struct(message: struct_pb2.Struct) -> dict[str, Any]:
    """Struct -> dict, with integral numbers as int."""
    return _ints(json_format.MessageToDict(message))


def to_value(value: Any) -> struct_pb2.Value:
    """Any JSON value -> Value."""
    message = struct_pb2.Value()
    json_format.ParseDict(value, message)
    return message


def from_value(message: struct_pb2.Value) -> Any:
    """Value -> JSON value, with integral numbers as int."""
    if not message.WhichOneof("kind"):
        return None
    return _ints(json_format.MessageToDict(message))


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_ints(item) for item in value]
    return value


def to_timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    """Epoch seconds -> Timestamp (None stays unset)."""
    if seconds is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def from_timestamp(message: Any, field: str) -> float | None:
    """The Timestamp field of message as epoch seconds, None when unset."""
    if not message.HasField(field):
        return None
    return float(getattr(message, field).ToNanoseconds()) / 1e9


def task_to_pb(record: TaskRecord) -> pb.Task:
    """TaskRecord -> zrobot.v1.Task."""
    message = pb.Task(
        id=record.id,
        service=record.service,
        action=record.action,
        args=to_struct(record.args),
        priority=record.priority,
        state=_STATES[record.state],
        create_time=to_timestamp(record.create_time),
        start_time=to_timestamp(record.start_time),
        end_time=to_timestamp(record.end_time),
        deadline=to_timestamp(record.deadline),
        call_chain=record.call_chain,
    )
    if record.result is not None:
        message.result.CopyFrom(to_value(record.result))
    if record.error:
        message.error.CopyFrom(
            pb.TaskError(**{k: record.error.get(k, "") for k in _ERROR_KEYS})
        )
    return message


def task_from_pb(message: pb.Task) -> TaskRecord:
    """zrobot.v1.Task -> TaskRecord."""
    error = None
    if message.HasField("error"):
        error = {key: getattr(message.error, key) for key in _ERROR_KEYS}
    return TaskRecord(
        id=message.id,
        service=message.service,
        action=message.action,
        args=from_struct(message.args),
        priority=message.priority,
        state=_STATES_BACK.get(message.state, TaskState.NEW),
        create_time=from_timestamp(message, "create_time") or 0.0,
        result=from_value(message.result) if message.HasField("result") else None,
        error=error,
        start_time=from_timestamp(message, "start_time"),
        end_time=from_timestamp(message, "end_time"),
        deadline=from_timestamp(message, "deadline"),
        call_chain=list(message.call_chain),
    )


def service_to_pb(record: ServiceRecord, pending: int = 0) -> pb.Service:
    """ServiceRecord -> zrobot.v1.Service."""
    return pb.Service(
        name=record.name,
        template_uid=record.template_uid,
        data=to_struct(record.data),
        state=to_struct(record.state),
        create_time=to_timestamp(record.create_time),
        pending_tasks=pending,
    )


def service_from_pb(message: pb.Service) -> ServiceRecord:
    """zrobot.v1.Service -> ServiceRecord."""
    return ServiceRecord(
        name=message.name,
        template_uid=message.template_uid,
        data=from_struct(message.data),
        state=from_struct(message.state),
        create_time=from_timestamp(message, "create_time") or 0.0,
    )


def template_to_pb(info: TemplateInfo) -> pb.Template:
    """TemplateInfo -> zrobot.v1.Template."""
    actions = [
        pb.Action(
            name=spec.name,
            doc=spec.doc,
            repeat_safe=spec.repeat_safe,
            parameters=[
                pb.Parameter(name=p.name, required=p.required, type=p.type)
                for p in spec.parameters
            ],
        )
        for spec in info.actions.values()
    ]
    return pb.Template(
        uid=info.uid,
        name=info.name,
        version=info.version,
        repo=info.repo,
        doc=info.doc,
        actions=actions,
    )


# Paging: tokens are opaque to clients, base64 of a small JSON position.


def encode_page_token(position: Any) -> str:
    """Make an opaque page token from a JSON position."""
    raw = json.dumps({"after": position}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(token: str) -> Any:
    """Return the position in a page token (None for ""); InvalidArguments if bad."""
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.InvalidArguments(
            "page_token is not one this robot gave out; pass the "
            "next_page_token of the previous page, or none for the first page",
            violations=[("page_token", "unknown token")],
        ) from exc


def page_size(requested: int, default: int = 50, most: int = 1000) -> int:
    """Clamp a page_size; 0 means default; negative is InvalidArguments."""
    if requested < 0:
        raise errors.InvalidArguments(
            f"page_size must be 0 (default {default}) or positive, got {requested}",
            violations=[("page_size", "must not be negative")],
        )
    return min(requested or default, most)


# Errors: one table each way.


def error_to_status(exc: errors.Error) -> grpc.Status:
    """A zrobot error as a rich gRPC status (ErrorInfo + BadRequest)."""
    info = error_details_pb2.ErrorInfo(
        reason=exc.reason, domain=errors.DOMAIN, metadata=exc.metadata
    )
    status = status_pb2.Status(code=exc.code.value, message=exc.message)
    status.details.add().Pack(info)
    if exc.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in exc.violations
            ]
        )
        status.details.add().Pack(bad)
    return rpc_status.to_status(status)


def error_from_rpc(exc: grpc.RpcError, target: str = "") -> errors.Error:
    """Rebuild the typed zrobot error a failed call carries."""
    status = rpc_status.from_call(exc) if hasattr(exc, "trailing_metadata") else None
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = exc.details() if hasattr(exc, "details") else str(exc)
    reason, metadata, violations = "", {}, []
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(bad):
            violations = [(v.field, v.description) for v in bad.field_violations]
    cls = errors.error_class(reason) if reason else _by_code(code)
    where = f" (robot {target})" if target and cls is errors.Unavailable else ""
    return (cls or errors.RemoteFailure)(
        f"{message or code.name}{where}", metadata=metadata, violations=violations
    )


def _by_code(code: grpc.StatusCode) -> type[errors.Error] | None:
    return {
        grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
        grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
        grpc.StatusCode.CANCELLED: errors.TaskCancelled,
    }.get(code)
