"""The `zrobot` command: run a robot, or talk to one.

Human-readable output by default, `--json` for scripts. Every failure
prints one line saying what went wrong and exits with a named code.
The process entry point (zrobot.__main__) sets up gevent before this runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import logging
import os
import pathlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from zrobot import errors
from zrobot.errors import Code

log = logging.getLogger(__name__)

DEFAULT_ROBOT = "127.0.0.1:6600"


class ExitCode(enum.IntEnum):
    """Exit status of the zrobot command."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    UNAVAILABLE = 5
    TIMEOUT = 6
    TASK_FAILED = 7


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
    """Run the command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or ExitCode.OK)
    except UsageError as exc:
        print(f"zrobot: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except errors.Error as exc:
        print(f"zrobot: {exc.message} [{exc.reason}]", file=sys.stderr)
        return _EXIT_BY_CODE.get(exc.code, ExitCode.FAILURE)
    except KeyboardInterrupt:
        return ExitCode.FAILURE


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--robot", default=os.environ.get("ZROBOT_ROBOT", DEFAULT_ROBOT),
        help="robot address HOST:PORT (env ZROBOT_ROBOT; default %(default)s)",
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="deadline of each call (default %(default)s)")
    parser = argparse.ArgumentParser(prog="zrobot", description=__doc__.splitlines()[0])
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")

    def command(group: Any, name: str, run: Callable[..., int | None], help: str) -> Any:
        sub = group.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    _server_commands(groups)
    robot = groups.add_parser("robot", help="the robot itself").add_subparsers(required=True)
    command(robot, "info", _robot_info, "show identity, version, uptime and counts")

    template = groups.add_parser("template", help="template repos").add_subparsers(required=True)
    add = command(template, "add", _template_add, "clone or pull a template repo")
    add.add_argument("url", help="git URL or path, optionally #branch-or-tag")
    command(template, "list", _template_list, "list loaded templates")

    service = groups.add_parser("service", help="services").add_subparsers(required=True)
    create = command(service, "create", _service_create, "create a service")
    create.add_argument("template", help="template UID or name")
    create.add_argument("name")
    create.add_argument("--data", default="{}", help="JSON object, or @FILE")
    create.add_argument("--request-id", default="")
    command(service, "list", _service_list, "list services")
    get = command(service, "get", _service_get, "show a service")
    get.add_argument("name")
    delete = command(service, "delete", _service_delete, "delete a service and its history")
    delete.add_argument("name")

    action = groups.add_parser("action", help="actions").add_subparsers(required=True)
    schedule = command(action, "schedule", _action_schedule, "schedule an action")
    schedule.add_argument("service")
    schedule.add_argument("action")
    schedule.add_argument("--args", default="{}", help="JSON object, or @FILE")
    schedule.add_argument("--priority", type=int, default=0)
    schedule.add_argument("--request-id", default="")
    schedule.add_argument("--wait", action="store_true", help="wait for the result")

    task = groups.add_parser("task", help="tasks").add_subparsers(required=True)
    for name, run, text in (("get", _task_get, "show a task"),
                            ("wait", _task_wait, "wait until a task ends"),
                            ("cancel", _task_cancel, "cancel a task")):
        sub = command(task, name, run, text)
        sub.add_argument("service")
        sub.add_argument("task_id")
    listing = command(task, "list", _task_list, "list a service's tasks, newest first")
    listing.add_argument("service")
    listing.add_argument("--limit", type=int, default=20)
    return parser


def _server_commands(groups: Any) -> None:
    server = groups.add_parser("server", help="run a robot").add_subparsers(required=True)
    start = server.add_parser("start", help="run a robot in the foreground")
    start.set_defaults(run=_server_start)
    start.add_argument("--listen", default=DEFAULT_ROBOT, help="HOST:PORT (port 0: any)")
    start.add_argument("--data-dir", type=pathlib.Path, required=True)
    start.add_argument("--template-repo", action="append", default=[], metavar="URL")
    start.add_argument("--peer", action="append", default=[], metavar="NAME=HOST:PORT")
    start.add_argument("--name", default="", help="a name for this robot")
    start.add_argument("--history-limit", type=int, default=1000,
                       help="finished tasks kept per service (default %(default)s)")
    start.add_argument("--storage", choices=("sqlite", "memory"), default="sqlite",
                       help="sqlite (default, in the data dir) or memory (forgets all)")
    start.add_argument("--log-level", default="INFO")


def _server_start(args: argparse.Namespace) -> int:
    import gevent

    from zrobot.robot import Robot, RobotConfig

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.history_limit < 1:
        raise UsageError("--history-limit must be at least 1")
    config = RobotConfig(
        data_dir=args.data_dir, listen=args.listen, name=args.name,
        peers=_peers(args.peer), template_repos=args.template_repo,
        history_limit=args.history_limit, storage=args.storage,
    )
    robot = Robot(config)
    try:
        robot.start()
    except OSError as exc:
        print(f"zrobot: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, gevent.spawn, robot.stop)
    print(f"zrobot serving on {robot.address}", flush=True)
    robot.wait()
    return ExitCode.OK


def _peers(items: list[str]) -> dict[str, str]:
    peers = {}
    for item in items:
        name, sep, address = item.partition("=")
        if not sep or not name or ":" not in address:
            raise UsageError(f"--peer {item!r}: expected NAME=HOST:PORT")
        peers[name] = address
    return peers


def _client(args: argparse.Namespace) -> Any:
    from zrobot.client import Client

    return Client(args.robot, timeout_s=args.timeout)


def _json_arg(text: str, flag: str) -> dict[str, Any]:
    if text.startswith("@"):
        try:
            text = pathlib.Path(text[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"{flag}: cannot read {text[1:]}: {exc.strerror}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise UsageError(f"{flag}: expected a JSON object like '{{\"key\": 1}}'")
    return value


def _emit(args: argparse.Namespace, value: Any, human: Callable[[Any], str]) -> None:
    if args.json:
        print(json.dumps(_plain(value), indent=2, sort_keys=True))
    else:
        print(human(value))


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
    with _client(args) as client:
        loaded = client.templates.add(args.url, timeout_s=max(args.timeout, 300.0))

    def human(response: Any) -> str:
        lines = [f"loaded {t.uid}" for t in response.templates]
        lines += [f"FAILED {e.path}: {e.error}" for e in response.errors]
        return "\n".join(lines) or "no templates found"

    _emit(args, loaded, human)
    return ExitCode.TASK_FAILED if loaded.errors else ExitCode.OK


def _template_list(args: argparse.Namespace) -> None:
    with _client(args) as client:
        templates = client.templates.list()
    _emit(args, templates, lambda ts: "\n".join(
        f"{t.uid}  actions: {', '.join(a.name for a in t.actions)}" for t in ts)
        or "no templates")


def _service_line(record: Any) -> str:
    return f"{record.name}  {record.template_uid}"


def _service_detail(record: Any) -> str:
    return "\n".join([
        f"name: {record.name}", f"template: {record.template_uid}",
        f"data: {json.dumps(record.data, sort_keys=True)}",
        f"state: {json.dumps(record.state, sort_keys=True)}",
    ])


def _service_create(args: argparse.Namespace) -> None:
    data = _json_arg(args.data, "--data")
    with _client(args) as client:
        service = client.services.create(args.template, args.name, data, args.request_id)
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
    lines = [f"task {record.id}  {record.service}.{record.action}  {record.state.value}"]
    if record.state.value == "ok":
        lines.append(f"result: {json.dumps(record.result, sort_keys=True)}")
    if record.error:
        lines.append(f"error: {record.error.get('type')}: {record.error.get('message')}")
    return "\n".join(lines)


def _finish(args: argparse.Namespace, task: Any) -> int:
    """Wait for a remote task, print it, and return the exit code of its outcome."""
    try:
        task.wait(None if args.timeout <= 0 else args.timeout)
    except errors.DeadlineExceeded:
        _emit(args, task.record, _task_text)
        raise
    except errors.Error:
        pass
    _emit(args, task.record, _task_text)
    return ExitCode.OK if task.record.state.value == "ok" else ExitCode.TASK_FAILED


def _action_schedule(args: argparse.Namespace) -> int:
    call_args = _json_arg(args.args, "--args")
    with _client(args) as client:
        service = client.services.get(args.service)
        task = service.schedule_action(args.action, call_args, args.priority, args.request_id)
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
    with _client(args) as client:
        record = client.task(args.service, args.task_id).cancel()
    _emit(args, record, _task_text)


def _task_list(args: argparse.Namespace) -> None:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with _client(args) as client:
        tasks = client.services.get(args.service).tasks(args.limit)
    _emit(args, tasks, lambda ts: "\n\n".join(map(_task_text, ts)) or "no tasks")
