"""The `zrobot` command: run a robot, talk to one, or move its services.

Human-readable output by default, `--json` for scripts. Every failure
prints one line on stderr saying what went wrong and exits with a named
code (ExitCode). `data export` and `data import` work offline on a stopped
robot's data dir (zrobot.transfer). This module only translates: parsing,
printing, exit codes. The process entry point (zrobot.__main__) sets up
gevent before this runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import json
import logging
import os
import pathlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from zrobot import errors
from zrobot.errors import Code
from zrobot.values import json_problem

log = logging.getLogger(__name__)

DEFAULT_ROBOT = "127.0.0.1:6600"
DEFAULT_TIMEOUT_S = 30.0
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class ExitCode(enum.IntEnum):
    """Exit status of the zrobot command, one per kind of failure."""

    OK = 0
    FAILURE = 1  # anything else, e.g. a template module that failed to load
    USAGE = 2  # bad arguments, names, JSON or documents; nothing was done
    NOT_FOUND = 3  # no such service, task, template or path
    CONFLICT = 4  # already exists, or the state forbids it (data dir in use)
    UNAVAILABLE = 5  # the robot cannot be reached
    TIMEOUT = 6  # a call or a wait did not end within --timeout
    TASK_FAILED = 7  # the task ended in error or was cancelled
    INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report 128 + 2


_EXIT_BY_CODE = {
    Code.INVALID_ARGUMENT: ExitCode.USAGE,
    Code.NOT_FOUND: ExitCode.NOT_FOUND,
    Code.ALREADY_EXISTS: ExitCode.CONFLICT,
    Code.FAILED_PRECONDITION: ExitCode.CONFLICT,
    Code.UNAVAILABLE: ExitCode.UNAVAILABLE,
    Code.DEADLINE_EXCEEDED: ExitCode.TIMEOUT,
    Code.ABORTED: ExitCode.TASK_FAILED,
    Code.CANCELLED: ExitCode.TASK_FAILED,
}


class UsageError(Exception):
    """Bad command-line input that argparse could not catch."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit code.

    Blocks for as long as the command runs. Usage errors from argparse
    exit with USAGE (SystemExit); every zrobot error becomes one line on
    stderr and its named exit code, never a traceback; so does Ctrl-C
    (INTERRUPTED) once the command runs.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or ExitCode.OK)
    except UsageError as exc:
        _fail(str(exc))
        return ExitCode.USAGE
    except errors.Error as exc:
        _fail(f"{_describe(exc, args)} [{exc.reason}]")
        return _EXIT_BY_CODE.get(exc.code, ExitCode.FAILURE)
    except BrokenPipeError:
        # The reader went away (`| head`); stop quietly, and keep Python's
        # final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILURE
    except KeyboardInterrupt:
        _fail("interrupted")
        return ExitCode.INTERRUPTED


def _fail(message: str) -> None:
    """Print one line on stderr, whatever line breaks message holds."""
    print(f"zrobot: {_one_line(message)}", file=sys.stderr)


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _describe(exc: errors.Error, args: argparse.Namespace) -> str:
    """The message of exc, with a hint where gRPC's own text is too terse."""
    if exc.message.lower() == "deadline exceeded" and hasattr(args, "timeout"):
        return (
            f"the robot at {args.robot} did not answer within {args.timeout:g} s; "
            "raise --timeout or check the robot"
        )
    return exc.message


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="zrobot",
        description=(__doc__ or "").splitlines()[0],
        parents=[_common_options(with_defaults=True)],
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    common = _common_options(with_defaults=False)
    # Imported here: zrobot._cli_local uses this module's helpers.
    from zrobot import _cli_local

    _cli_local.add_commands(groups)
    _robot_commands(groups, common)
    _service_commands(groups, common)
    _task_commands(groups, common)
    return parser


def _common_options(with_defaults: bool) -> argparse.ArgumentParser:
    """The options of every command that talks to a robot.

    They go before the group (`zrobot --json service list`) or after the
    command. Only the top-level copy may have defaults: argparse copies every
    attribute a command's parser sets over what the top level parsed, so a
    command's default would undo a value given before the group.
    """

    def default(value: Any) -> Any:
        return value if with_defaults else argparse.SUPPRESS

    robot = os.environ.get("ZROBOT_ROBOT", DEFAULT_ROBOT)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--robot",
        type=_address,
        default=default(robot),
        help=f"robot address HOST:PORT (default: env ZROBOT_ROBOT, {DEFAULT_ROBOT})",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print JSON for scripts",
    )
    common.add_argument(
        "--timeout",
        type=_seconds,
        default=default(DEFAULT_TIMEOUT_S),
        metavar="SECONDS",
        help=f"deadline of each call and of --wait (default {DEFAULT_TIMEOUT_S:g})",
    )
    return common


def _address(text: str) -> str:
    """argparse type of HOST:PORT; the port must be 0..65535."""
    problem = address_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def address_problem(text: str) -> str:
    """Return why text is not HOST:PORT with a port in 0..65535, or ""."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        return f"expected HOST:PORT with a port from 0 to 65535, got {text!r}"
    return ""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds above 0, not {text!r}")
    return value


def _group(groups: Any, name: str, text: str) -> Any:
    return groups.add_parser(name, help=text, description=text).add_subparsers(
        required=True
    )


def _command(
    group: Any,
    name: str,
    run: Callable[[argparse.Namespace], int | None],
    text: str,
    common: argparse.ArgumentParser | None = None,
) -> argparse.ArgumentParser:
    parents = [common] if common is not None else []
    sub: argparse.ArgumentParser = group.add_parser(
        name, parents=parents, help=text, description=text
    )
    sub.set_defaults(run=run)
    return sub


def _robot_commands(groups: Any, common: argparse.ArgumentParser) -> None:
    robot = _group(groups, "robot", "the robot itself")
    text = "show identity, version, uptime and counts"
    _command(robot, "info", _robot_info, text, common)

    template = _group(groups, "template", "template repos")
    add = _command(
        template, "add", _template_add, "clone or pull a template repo", common
    )
    add.add_argument("url", help="git URL or path, optionally #branch-or-tag")
    _command(template, "list", _template_list, "list loaded templates", common)


def _service_commands(groups: Any, common: argparse.ArgumentParser) -> None:
    service = _group(groups, "service", "services")
    create = _command(service, "create", _service_create, "create a service", common)
    create.add_argument("template", help="template UID or name")
    create.add_argument("name")
    create.add_argument("--data", default="{}", help="JSON object, or @FILE")
    create.add_argument("--request-id", default="")
    _command(service, "list", _service_list, "list services", common)
    get = _command(service, "get", _service_get, "show a service", common)
    get.add_argument("name")
    text = "delete a service and its history"
    _command(service, "delete", _service_delete, text, common).add_argument("name")

    action = _group(groups, "action", "actions")
    schedule = _command(
        action, "schedule", _action_schedule, "schedule an action", common
    )
    schedule.add_argument("service")
    schedule.add_argument("action")
    schedule.add_argument("--args", default="{}", help="JSON object, or @FILE")
    schedule.add_argument("--priority", type=int, default=0)
    schedule.add_argument("--request-id", default="")
    schedule.add_argument("--wait", action="store_true", help="wait for the result")


def _task_commands(groups: Any, common: argparse.ArgumentParser) -> None:
    task = _group(groups, "task", "tasks")
    for name, run, text in (
        ("get", _task_get, "show a task"),
        ("wait", _task_wait, "wait until a task ends"),
        ("cancel", _task_cancel, "cancel a task"),
    ):
        sub = _command(task, name, run, text, common)
        sub.add_argument("service")
        sub.add_argument("task_id")
    text = "list a service's tasks, newest first"
    listing = _command(task, "list", _task_list, text, common)
    listing.add_argument("service")
    listing.add_argument("--limit", type=int, default=20)


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    """A client of the robot at --robot; Ctrl-C interrupts even a blocked call."""
    from zrobot.client import Client

    with Client(args.robot, timeout_s=args.timeout) as client, _sigint_interrupts():
        yield client


@contextlib.contextmanager
def _sigint_interrupts() -> Iterator[None]:
    """Raise KeyboardInterrupt in this greenlet on SIGINT, until the block ends.

    Python's own handler runs only when the main thread next runs Python
    code, which can be never while it sleeps in the event loop and a gRPC
    wait holds a pool thread; a gevent watcher wakes the loop. Must run in
    the main thread.
    """
    import gevent

    previous = signal.getsignal(signal.SIGINT)
    here = gevent.getcurrent()
    watcher = gevent.signal_handler(signal.SIGINT, here.throw, KeyboardInterrupt)
    try:
        yield
    finally:
        watcher.cancel()
        # libev leaves SIGINT at SIG_DFL when its watcher stops.
        signal.signal(signal.SIGINT, previous)


def _json_arg(text: str, flag: str) -> dict[str, Any]:
    if text.startswith("@"):
        text = _read_arg_file(text[1:], flag)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise UsageError(f"{flag}: expected a JSON object like '{{\"key\": 1}}'")
    problem = json_problem(value)
    if problem:
        raise UsageError(f"{flag}: {problem}")
    return value


def _read_arg_file(path: str, flag: str) -> str:
    try:
        return pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{flag}: {path} is not UTF-8 text ({exc.reason})") from exc


def _emit(args: argparse.Namespace, value: Any, human: Callable[[Any], str]) -> None:
    if args.json:
        print(_json_text(_plain(value), indent=2))
    else:
        print(human(value))


def _json_text(value: Any, indent: int | None = None) -> str:
    """value as JSON, with non-ASCII text as is rather than escaped."""
    return json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False)


def _plain(value: Any) -> Any:
    from google.protobuf import json_format
    from google.protobuf.message import Message

    if isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _robot_info(args: argparse.Namespace) -> None:
    with _client(args) as client:
        info = client.info()
    _emit(args, info, lambda i: "\n".join(f"{k}: {v}" for k, v in i.items()))


def _template_add(args: argparse.Namespace) -> int:
    """Print what loaded; a module that failed is a FAILED line on stderr."""
    with _client(args) as client:
        loaded = client.templates.add(args.url, timeout_s=max(args.timeout, 300.0))
    _emit(args, loaded, _loaded_text)
    if not args.json:
        for failure in loaded.errors:
            _fail(f"FAILED {failure.path}: {failure.error}")
    return ExitCode.FAILURE if loaded.errors else ExitCode.OK


def _loaded_text(response: Any) -> str:
    lines = [f"loaded {t.uid}" for t in response.templates]
    return "\n".join(lines) or "no templates loaded"


def _template_list(args: argparse.Namespace) -> None:
    with _client(args) as client:
        templates = client.templates.list()
    _emit(args, templates, _templates_text)


def _templates_text(templates: list[Any]) -> str:
    lines = [
        f"{t.uid}  actions: {', '.join(a.name for a in t.actions)}" for t in templates
    ]
    return "\n".join(lines) or "no templates"


def _service_line(record: Any) -> str:
    return f"{record.name}  {record.template_uid}"


def _service_detail(record: Any) -> str:
    return "\n".join(
        [
            f"name: {record.name}",
            f"template: {record.template_uid}",
            f"data: {_json_text(record.data)}",
            f"state: {_json_text(record.state)}",
        ]
    )


def _service_create(args: argparse.Namespace) -> None:
    data = _json_arg(args.data, "--data")
    with _client(args) as client:
        service = client.services.create(
            args.template, args.name, data, args.request_id
        )
    _emit(args, service.record, _service_detail)


def _service_list(args: argparse.Namespace) -> None:
    with _client(args) as client:
        services = client.services.list()
    _emit(args, services, lambda ss: "\n".join(map(_service_line, ss)) or "no services")


def _service_get(args: argparse.Namespace) -> None:
    with _client(args) as client:
        service = client.services.get(args.name)
    _emit(args, service.record, _service_detail)


def _service_delete(args: argparse.Namespace) -> None:
    with _client(args) as client:
        client.services.delete(args.name)
    _emit(args, {"deleted": args.name}, lambda v: f"deleted {v['deleted']}")


def _task_text(record: Any) -> str:
    lines = [
        f"task {record.id}  {record.service}.{record.action}  {record.state.value}"
    ]
    if record.state.value == "ok":
        lines.append(f"result: {_json_text(record.result)}")
    if record.error:
        lines.append(
            f"error: {record.error.get('type')}: {record.error.get('message')}"
        )
    return "\n".join(lines)


def _finish(args: argparse.Namespace, task: Any) -> int:
    """Wait for a remote task, print it, and return the exit code of its outcome.

    Blocks up to --timeout. A task that ended in error or was cancelled also
    gets one line on stderr and TASK_FAILED. When the wait itself fails
    (DeadlineExceeded, ...), the task is printed as last seen and the error
    raised, so the user still learns the task id.
    """
    try:
        task.wait(args.timeout)
    except errors.Error as exc:
        _emit(args, task.record, _task_text)
        if not task.record.state.final:
            raise
        _fail(f"{exc.message} [{exc.reason}]")
        return ExitCode.TASK_FAILED
    _emit(args, task.record, _task_text)
    return ExitCode.OK


def _settle(task: Any, timeout_s: float) -> None:
    """Block until a task ends, whatever its outcome; raise if the wait fails."""
    try:
        task.wait(timeout_s)
    except errors.Error:
        if not task.record.state.final:
            raise


def _action_schedule(args: argparse.Namespace) -> int:
    call_args = _json_arg(args.args, "--args")
    if not INT32_MIN <= args.priority <= INT32_MAX:
        raise UsageError(f"--priority must be between {INT32_MIN} and {INT32_MAX}")
    with _client(args) as client:
        service = client.services.get(args.service)
        task = service.schedule_action(
            args.action, call_args, args.priority, args.request_id
        )
        if args.wait:
            return _finish(args, task)
    _emit(args, task.record, _task_text)
    return ExitCode.OK


def _task_get(args: argparse.Namespace) -> None:
    with _client(args) as client:
        task = client.task(args.service, args.task_id)
    _emit(args, task.record, _task_text)


def _task_wait(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _finish(args, client.task(args.service, args.task_id))


def _task_cancel(args: argparse.Namespace) -> None:
    """Cancel, then wait (up to --timeout) until the task has really ended."""
    with _client(args) as client:
        task = client.task(args.service, args.task_id)
        task.cancel()
        _settle(task, args.timeout)
    _emit(args, task.record, _task_text)


def _task_list(args: argparse.Namespace) -> None:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with _client(args) as client:
        tasks = client.services.get(args.service).tasks(args.limit)
    _emit(args, tasks, lambda ts: "\n\n".join(map(_task_text, ts)) or "no tasks")
