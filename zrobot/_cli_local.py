"""The `zrobot` commands that work on this machine, not against a robot:
`server start` runs a robot in the foreground; `data export` and
`data import` move a stopped robot's services as YAML (zrobot.transfer).

Part of the command line (zrobot.cli builds the parser and owns the exit
codes); split out so that each module keeps to one kind of command.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import signal
import sys
from typing import Any

from zrobot.cli import (
    DEFAULT_ROBOT,
    ExitCode,
    UsageError,
    _address,
    _command,
    _fail,
    _group,
    address_problem,
)


def add_commands(groups: Any) -> None:
    """Add the `server` and `data` groups to the zrobot parser."""
    _server_commands(groups)
    _data_commands(groups)


def _server_commands(groups: Any) -> None:
    server = _group(groups, "server", "run a robot")
    start = _command(server, "start", _server_start, "run a robot in the foreground")
    start.add_argument(
        "--listen",
        default=DEFAULT_ROBOT,
        type=_address,
        help="HOST:PORT (port 0: any)",
    )
    start.add_argument("--data-dir", type=pathlib.Path, required=True)
    start.add_argument("--template-repo", action="append", default=[], metavar="URL")
    start.add_argument("--peer", action="append", default=[], metavar="NAME=HOST:PORT")
    start.add_argument("--name", default="", help="a name for this robot")
    start.add_argument(
        "--history-limit",
        type=int,
        default=1000,
        help="finished tasks kept per service (default %(default)s)",
    )
    start.add_argument(
        "--storage",
        choices=("sqlite", "memory"),
        default="sqlite",
        help="sqlite (default, in the data dir) or memory (forgets all)",
    )
    start.add_argument("--log-level", default="INFO")


def _data_commands(groups: Any) -> None:
    data = _group(groups, "data", "a stopped robot's services as YAML files")
    text = "write every service of a data dir to DEST/<name>.yaml, or - for stdout"
    export = _command(data, "export", _data_export, text)
    export.add_argument("dest", metavar="DEST", help="a directory, or - for stdout")
    text = "create services in a data dir from SRC/*.yaml, or - for stdin"
    load = _command(data, "import", _data_import, text)
    load.add_argument("src", metavar="SRC", help="a directory, or - for stdin")
    load.add_argument(
        "--replace",
        action="store_true",
        help="replace services of the same name (their task history is dropped)",
    )
    for sub in (export, load):
        sub.add_argument(
            "--data-dir",
            type=pathlib.Path,
            required=True,
            help="the robot's data dir; the robot must not be running",
        )


def _data_export(args: argparse.Namespace) -> None:
    from zrobot import transfer

    names = transfer.export_data_dir(args.data_dir, args.dest, sys.stdout)
    if args.dest != transfer.STREAM:
        print(f"exported {_services(len(names))} to {args.dest}")


def _data_import(args: argparse.Namespace) -> None:
    from zrobot import transfer

    names = transfer.import_data_dir(args.data_dir, args.src, sys.stdin, args.replace)
    print(f"imported {_services(len(names))} into {args.data_dir}")


def _services(count: int) -> str:
    return f"{count} service{'' if count == 1 else 's'}"


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
        data_dir=args.data_dir,
        listen=args.listen,
        name=args.name,
        peers=_peers(args.peer),
        template_repos=args.template_repo,
        history_limit=args.history_limit,
        storage=args.storage,
    )
    robot = Robot(config)
    try:
        robot.start()
    except OSError as exc:
        _fail(str(exc))
        return ExitCode.FAILURE
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, gevent.spawn, robot.stop)
    print(f"zrobot serving on {robot.address}", flush=True)
    robot.wait()
    # A handler greenlet still inside a call (a template import that waits,
    # say) would keep the interpreter waiting at exit for the executor's
    # workers. Everything the robot owns is closed by now, so leave.
    logging.shutdown()
    sys.stdout.flush()
    os._exit(ExitCode.OK)


def _peers(items: list[str]) -> dict[str, str]:
    peers = {}
    for item in items:
        name, sep, address = item.partition("=")
        if not sep or not name or address_problem(address):
            raise UsageError(
                f"--peer {item!r}: expected NAME=HOST:PORT with a port up to 65535"
            )
        if name in peers:
            raise UsageError(f"--peer {name!r} is given twice; name each peer once")
        peers[name] = address
    return peers
