"""The `zrobot` command end to end: a real robot, the command as a subprocess.

One robot serves the whole module; each test works on services of its own
name, so the tests do not see each other. Set-up and checks go through the
Python client, which is quicker than another run of the command. Every
failure must exit with its named code and say what went wrong in one line
on stderr, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.kit import KIT
from zrobot import cli
from zrobot.cli import DEFAULT_TIMEOUT_S, ExitCode, build_parser
from zrobot.client import Client, RemoteTask
from zrobot.states import TaskState
from zrobot.testing import RobotProcess, commit_files

BROKEN_MODULE = "import a_module_that_does_not_exist\n"
RECORDER_UID = "local/acme/kit/recorder/1.0.0"


@dataclasses.dataclass
class Run:
    """What one run of the command did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.out)


def run_zrobot(address: str, *args: str, timeout_s: float = 60) -> Run:
    """Run `python -m zrobot ARGS` with ZROBOT_ROBOT=address; blocks until it exits."""
    done = subprocess.run(
        [sys.executable, "-m", "zrobot", *args],
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, "ZROBOT_ROBOT": address},
        timeout=timeout_s,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def bot(root: pathlib.Path) -> Iterator[RobotProcess]:
    """One robot process for the module, with the Recorder template repo."""
    repo = root / "git" / "acme" / "kit"
    commit_files(repo, {"recorder.py": KIT})
    robot = RobotProcess(root / "robot", repos=[str(repo)])
    robot.start()
    try:
        yield robot
    finally:
        robot.kill()


@pytest.fixture(scope="module")
def client(bot: RobotProcess) -> Iterator[Client]:
    """A Python client of the module's robot, for set-up and checks."""
    with bot.client(timeout_s=30) as opened:
        yield opened


@pytest.fixture(scope="module")
def dead_address() -> str:
    """A loopback address where nothing listens (a port bound once, then freed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def silent_address() -> Iterator[str]:
    """A loopback address that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def zrobot(bot: RobotProcess) -> Callable[..., Run]:
    """Run the command against the module's robot; return a Run."""
    return lambda *args, **kwargs: run_zrobot(bot.address, *args, **kwargs)


@pytest.fixture
def name() -> str:
    """A service name no other test uses."""
    return f"s-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def svc(client: Client, name: str) -> str:
    """A Recorder service with data {"n": 1}; its name."""
    client.services.create("recorder", name, {"n": 1})
    return name


def fails(run: Run, code: ExitCode, *words: str) -> str:
    """Assert run exited with code and one readable stderr line; return it."""
    assert run.code == code, (run.code, run.out, run.err)
    assert "Traceback" not in run.err
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("zrobot: "), lines[0]
    for word in words:
        assert word in lines[0]
    return lines[0]


def schedule(client: Client, svc: str, action: str, **args: Any) -> RemoteTask:
    """Schedule an action through the Python client; return the task."""
    return client.services.get(svc).schedule_action(action, args)


def task_ids(client: Client, svc: str) -> list[str]:
    """Ids of the service's tasks, newest first."""
    return [task.id for task in client.services.get(svc).tasks()]


def service_names(client: Client) -> list[str]:
    return [record.name for record in client.services.list()]


# -- robot and templates -----------------------------------------------------


def test_robot_info_shows_identity_version_and_counts(zrobot, bot):
    run = zrobot("robot", "info")
    assert run.code == ExitCode.OK, run.err
    fields = dict(line.split(": ", 1) for line in run.out.splitlines())
    assert fields["address"] == bot.address
    assert fields["version"]
    assert len(fields["robot_id"]) == 32
    assert int(fields["template_count"]) >= 1


def test_robot_info_json_counts_the_services_of_a_fresh_robot(robot_process, kit_repo):
    fresh = robot_process("fresh", repos=[kit_repo])
    with fresh.client() as client:
        client.services.create("recorder", "one")
    info = run_zrobot(fresh.address, "robot", "info", "--json").json()
    assert (info["service_count"], info["template_count"]) == (1, 1)
    assert info["address"] == fresh.address
    assert info["pending_task_count"] == 0


def test_template_list_names_each_template_with_its_actions(zrobot):
    run = zrobot("template", "list")
    assert run.code == ExitCode.OK, run.err
    line = next(x for x in run.out.splitlines() if "/recorder/" in x)
    uid, actions = line.split("  actions: ")
    assert uid == RECORDER_UID
    assert {"add", "echo", "gate"} <= set(actions.split(", "))
    assert "_private" not in actions


def test_template_list_json_lists_uids_and_actions(zrobot):
    templates = zrobot("template", "list", "--json").json()
    recorder = next(t for t in templates if t["uid"] == RECORDER_UID)
    assert "add" in {action["name"] for action in recorder["actions"]}


def test_template_add_loads_a_new_repo(zrobot, root, client):
    repo = root / "git" / "acme" / "extra"
    commit_files(repo, {"echoer.py": KIT.replace("Recorder", "Echoer")})
    run = zrobot("template", "add", str(repo))
    assert run.code == ExitCode.OK, run.err
    assert run.out.strip() == "loaded local/acme/extra/echoer/1.0.0"
    assert "local/acme/extra/echoer/1.0.0" in {t.uid for t in client.templates.list()}


def test_a_repo_with_a_broken_module_loads_the_rest_and_fails(zrobot, root):
    repo = root / "git" / "acme" / "broken"
    good = KIT.replace("Recorder", "Survivor")
    commit_files(repo, {"good.py": good, "bad.py": BROKEN_MODULE})
    run = zrobot("template", "add", str(repo))
    line = fails(run, ExitCode.FAILURE, "a_module_that_does_not_exist")
    assert line.startswith("zrobot: FAILED bad.py: ModuleNotFoundError")
    assert run.out.strip() == "loaded local/acme/broken/survivor/1.0.0"


def test_a_broken_module_is_in_the_json_errors(zrobot, root):
    repo = root / "git" / "acme" / "broken-json"
    commit_files(repo, {"bad.py": BROKEN_MODULE})
    run = zrobot("template", "add", str(repo), "--json")
    assert run.code == ExitCode.FAILURE
    assert [e["path"] for e in run.json()["errors"]] == ["bad.py"]


def test_an_invalid_repo_url_is_a_usage_error(zrobot):
    fails(zrobot("template", "add", ""), ExitCode.USAGE, "REPO_URL_INVALID")


# -- services -----------------------------------------------------------------


def test_create_prints_the_new_service(zrobot, name, client):
    run = zrobot("service", "create", "recorder", name, "--data", '{"n": 1}')
    assert run.code == ExitCode.OK, run.err
    assert run.out.splitlines() == [
        f"name: {name}",
        f"template: {RECORDER_UID}",
        'data: {"n": 1}',
        "state: {}",
    ]
    assert client.services.get(name).record.data == {"n": 1}


def test_create_takes_data_from_a_file(zrobot, name, tmp_path):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"url": "http://example.invalid", "tries": 3}))
    run = zrobot("service", "create", "recorder", name, "--data", f"@{data}", "--json")
    assert run.code == ExitCode.OK, run.err
    assert run.json()["data"] == {"url": "http://example.invalid", "tries": 3}


def test_get_and_list_show_a_service(zrobot, svc):
    shown = zrobot("service", "get", svc)
    assert shown.out.splitlines()[:3] == [
        f"name: {svc}",
        f"template: {RECORDER_UID}",
        'data: {"n": 1}',
    ]
    assert f"{svc}  {RECORDER_UID}" in zrobot("service", "list").out.splitlines()


def test_service_json_output_is_the_record(zrobot, svc):
    record = zrobot("service", "get", svc, "--json").json()
    assert (record["name"], record["template_uid"]) == (svc, RECORDER_UID)
    assert (record["data"], record["state"]) == ({"n": 1}, {})
    listed = zrobot("service", "list", "--json").json()
    assert svc in [service["name"] for service in listed]


def test_delete_removes_a_service(zrobot, svc, client):
    assert zrobot("service", "delete", svc).out.strip() == f"deleted {svc}"
    assert svc not in service_names(client)


def test_delete_json(zrobot, svc):
    assert zrobot("service", "delete", svc, "--json").json() == {"deleted": svc}


@pytest.mark.parametrize("verb", ["get", "delete"])
def test_an_unknown_service_is_not_found(zrobot, verb):
    fails(zrobot("service", verb, "ghost"), ExitCode.NOT_FOUND, "'ghost'")


def test_a_duplicate_service_is_a_conflict(zrobot, svc, client):
    run = zrobot("service", "create", "recorder", svc, "--data", '{"n": 2}')
    fails(run, ExitCode.CONFLICT, "already exists", "SERVICE_EXISTS")
    assert client.services.get(svc).record.data == {"n": 1}


@pytest.mark.parametrize("bad", ["bad name", "../up", "-dash", "x" * 129])
def test_an_invalid_name_is_a_usage_error(zrobot, bad, client):
    run = zrobot("service", "create", "recorder", "--", bad)
    fails(run, ExitCode.USAGE, "invalid service name", "NAME_INVALID")
    assert bad not in service_names(client)


def test_an_unknown_template_is_not_found(zrobot, name):
    fails(zrobot("service", "create", "nope", name), ExitCode.NOT_FOUND, "'nope'")


BAD_JSON = [
    ("{bad", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ("3", "expected a JSON object"),
    ("@/nonexistent/args.json", "cannot read /nonexistent/args.json"),
]


@pytest.mark.parametrize(("text", "says"), BAD_JSON)
def test_bad_data_is_a_usage_error_and_creates_nothing(
    zrobot, name, client, text, says
):
    run = zrobot("service", "create", "recorder", name, "--data", text)
    fails(run, ExitCode.USAGE, "--data", says)
    assert name not in service_names(client)


def test_data_that_is_not_utf8_is_a_usage_error(zrobot, name, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"\xff\xfe{}")
    run = zrobot("service", "create", "recorder", name, "--data", f"@{data}")
    fails(run, ExitCode.USAGE, "not UTF-8")


# -- actions ------------------------------------------------------------------


def test_schedule_with_wait_prints_the_result(zrobot, svc):
    run = zrobot(
        "action", "schedule", svc, "add", "--args", '{"a": 2, "b": 3}', "--wait"
    )
    assert run.code == ExitCode.OK, run.err
    head, result = run.out.splitlines()
    assert head.startswith("task ") and head.endswith(f"{svc}.add  ok")
    assert result == "result: 5"


def test_schedule_with_wait_and_json_prints_the_finished_task(zrobot, svc, tmp_path):
    args = tmp_path / "args.json"
    args.write_text('{"value": {"deep": [1, "two"]}}')
    run = zrobot(
        "action", "schedule", svc, "echo", "--args", f"@{args}", "--wait", "--json"
    )
    assert run.code == ExitCode.OK, run.err
    task = run.json()
    assert (task["state"], task["result"]) == ("ok", {"deep": [1, "two"]})
    assert task["args"] == {"value": {"deep": [1, "two"]}}


def test_schedule_without_wait_prints_the_task_id_at_once(zrobot, svc, gate, client):
    args = json.dumps({"path": gate.path})
    run = zrobot("action", "schedule", svc, "gate", "--args", args)
    assert run.code == ExitCode.OK, run.err
    _, task_id, where, state = run.out.split()
    assert where == f"{svc}.gate"
    assert state in ("new", "running")
    gate.wait_arrivals()
    gate.open("let go")
    assert client.task(svc, task_id).wait(30) == "let go"


def test_schedule_json_without_wait_is_the_new_task(zrobot, svc, client):
    run = zrobot("action", "schedule", svc, "echo", "--args", '{"value": 1}', "--json")
    task = run.json()
    assert task["id"] in task_ids(client, svc)
    assert task["action"] == "echo"


def test_an_unknown_action_is_a_usage_error(zrobot, svc, client):
    run = zrobot("action", "schedule", svc, "nope", "--wait")
    fails(run, ExitCode.USAGE, "no action 'nope'", "ACTION_INVALID")
    assert task_ids(client, svc) == []


def test_a_private_method_is_not_an_action(zrobot, svc):
    fails(zrobot("action", "schedule", svc, "_private"), ExitCode.USAGE)


def test_wrong_arguments_are_a_usage_error(zrobot, svc):
    run = zrobot("action", "schedule", svc, "add", "--args", '{"a": 1}')
    fails(run, ExitCode.USAGE, "ARGUMENTS_INVALID")


@pytest.mark.parametrize(("text", "says"), BAD_JSON)
def test_bad_args_are_a_usage_error_and_schedule_nothing(
    zrobot, svc, client, text, says
):
    run = zrobot("action", "schedule", svc, "echo", "--args", text, "--wait")
    fails(run, ExitCode.USAGE, "--args", says)
    assert task_ids(client, svc) == []


def test_scheduling_on_an_unknown_service_is_not_found(zrobot):
    fails(zrobot("action", "schedule", "ghost", "echo"), ExitCode.NOT_FOUND, "'ghost'")


def test_a_failing_action_with_wait_exits_task_failed_with_the_error(zrobot, svc):
    args = json.dumps({"message": "boom\nsecond line"})
    run = zrobot("action", "schedule", svc, "fail", "--args", args, "--wait")
    line = fails(run, ExitCode.TASK_FAILED, "ValueError: boom", "ACTION_FAILED")
    assert "second line" in line
    assert f"{svc}.fail  error" in run.out
    assert "error: ValueError: boom" in run.out


def test_a_wait_that_times_out_exits_timeout_and_names_the_task(
    zrobot, svc, gate, client
):
    args = json.dumps({"path": gate.path})
    run = zrobot(
        "action", "schedule", svc, "gate", "--args", args, "--wait", "--timeout", "0.5"
    )
    fails(run, ExitCode.TIMEOUT, "did not end in time", "DEADLINE_EXCEEDED")
    task_id = run.out.split()[1]
    assert task_ids(client, svc) == [task_id]
    gate.wait_arrivals()
    assert client.task(svc, task_id).state is TaskState.RUNNING


def test_non_ascii_results_print_as_is(zrobot, svc):
    args = json.dumps({"value": "héllo"})
    run = zrobot("action", "schedule", svc, "echo", "--args", args, "--wait")
    assert run.code == ExitCode.OK, run.err
    assert run.out.splitlines()[-1] == 'result: "héllo"'


def test_non_ascii_results_print_as_is_in_json(zrobot, svc):
    args = json.dumps({"value": "héllo"})
    run = zrobot("action", "schedule", svc, "echo", "--args", args, "--wait", "--json")
    assert run.code == ExitCode.OK, run.err
    assert '"result": "héllo"' in run.out
    assert run.json()["args"] == {"value": "héllo"}


def test_non_ascii_service_data_prints_as_is(zrobot, name):
    data = json.dumps({"city": "Zürich"})
    run = zrobot("service", "create", "recorder", name, "--data", data)
    assert run.code == ExitCode.OK, run.err
    assert 'data: {"city": "Zürich"}' in run.out.splitlines()
    assert '"city": "Zürich"' in zrobot("service", "get", name, "--json").out


@pytest.mark.parametrize("priority", ["2147483648", "-2147483649"])
def test_a_priority_outside_int32_is_a_usage_error(zrobot, svc, client, priority):
    run = zrobot("action", "schedule", svc, "echo", "--priority", priority)
    fails(run, ExitCode.USAGE, "--priority", "-2147483648 and 2147483647")
    assert task_ids(client, svc) == []


@pytest.mark.parametrize("priority", ["2147483647", "-2147483648"])
def test_a_priority_at_the_ends_of_int32_is_accepted(zrobot, svc, priority):
    run = zrobot(
        "action",
        "schedule",
        svc,
        "add",
        "--args",
        '{"a": 1, "b": 1}',
        "--priority",
        priority,
        "--wait",
    )
    assert run.code == ExitCode.OK, run.err


# -- tasks --------------------------------------------------------------------


def test_task_get_shows_the_outcome(zrobot, svc, client):
    task = schedule(client, svc, "record", label="one")
    task.wait(30)
    run = zrobot("task", "get", svc, task.id)
    assert run.out.splitlines() == [f"task {task.id}  {svc}.record  ok", "result: 1"]


def test_task_list_shows_tasks_newest_first(zrobot, svc, client):
    first = schedule(client, svc, "echo", value=1)
    second = schedule(client, svc, "echo", value=2)
    second.wait(30)
    listed = zrobot("task", "list", svc).out
    assert listed.index(second.id) < listed.index(first.id)
    assert "result: 2" in listed


def test_task_list_json_and_limit(zrobot, svc, client):
    first = schedule(client, svc, "echo", value=1)
    second = schedule(client, svc, "echo", value=2)
    listed = zrobot("task", "list", svc, "--json").json()
    assert [task["id"] for task in listed] == [second.id, first.id]
    limited = zrobot("task", "list", svc, "--limit", "1", "--json").json()
    assert [task["id"] for task in limited] == [second.id]


def test_task_wait_prints_the_result(zrobot, svc, client, gate):
    task = schedule(client, svc, "gate", path=gate.path)
    gate.wait_arrivals()
    gate.open("through")
    run = zrobot("task", "wait", svc, task.id)
    assert run.code == ExitCode.OK, run.err
    assert run.out.splitlines()[-1] == 'result: "through"'


def test_task_get_and_wait_json_parse(zrobot, svc, client):
    task = schedule(client, svc, "echo", value="hi")
    waited = zrobot("task", "wait", svc, task.id, "--json").json()
    assert (waited["id"], waited["state"], waited["result"]) == (task.id, "ok", "hi")
    assert zrobot("task", "get", svc, task.id, "--json").json() == waited


def test_task_wait_on_a_failed_task_exits_task_failed(zrobot, svc, client):
    task = schedule(client, svc, "fail", message="bad luck")
    fails(zrobot("task", "wait", svc, task.id), ExitCode.TASK_FAILED, "bad luck")


@pytest.mark.parametrize("verb", ["get", "wait", "cancel"])
def test_an_unknown_task_is_not_found(zrobot, svc, verb):
    run = zrobot("task", verb, svc, "0" * 32)
    fails(run, ExitCode.NOT_FOUND, "TASK_NOT_FOUND")


def test_a_limit_below_one_is_a_usage_error(zrobot, svc):
    fails(zrobot("task", "list", svc, "--limit", "0"), ExitCode.USAGE, "--limit")


def test_cancel_stops_a_running_task_and_prints_it_cancelled(zrobot, svc, gate, client):
    task = schedule(client, svc, "gate", path=gate.path)
    gate.wait_arrivals()
    run = zrobot("task", "cancel", svc, task.id)
    assert run.code == ExitCode.OK, run.err
    assert run.out.split() == ["task", task.id, f"{svc}.gate", "cancelled"]
    assert task.refresh().state is TaskState.CANCELLED


def test_cancel_of_a_queued_task_json(zrobot, svc, gate, client):
    schedule(client, svc, "gate", path=gate.path)
    gate.wait_arrivals()
    queued = schedule(client, svc, "echo", value=1)
    run = zrobot("task", "cancel", svc, queued.id, "--json")
    assert run.code == ExitCode.OK, run.err
    assert run.json()["state"] == "cancelled"


def test_cancel_of_a_finished_task_changes_nothing(zrobot, svc, client):
    task = schedule(client, svc, "echo", value=1)
    task.wait(30)
    run = zrobot("task", "cancel", svc, task.id)
    assert run.code == ExitCode.OK, run.err
    assert run.out.split()[3] == "ok"


def test_task_wait_on_a_cancelled_task_exits_task_failed(zrobot, svc, client, gate):
    schedule(client, svc, "gate", path=gate.path)
    gate.wait_arrivals()
    queued = schedule(client, svc, "echo", value=1)
    queued.cancel()
    fails(zrobot("task", "wait", svc, queued.id), ExitCode.TASK_FAILED, "cancelled")


def test_task_wait_times_out_on_a_gated_task(zrobot, svc, gate, client):
    task = schedule(client, svc, "gate", path=gate.path)
    gate.wait_arrivals()
    run = zrobot("task", "wait", svc, task.id, "--timeout", "0.3", "--json")
    fails(run, ExitCode.TIMEOUT, task.id, "still running")
    assert run.json()["state"] == "running"


# -- reaching the robot and usage -----------------------------------------------


UNREACHABLE = [
    ["robot", "info"],
    ["template", "list", "--json"],
    ["service", "create", "recorder", "x"],
    ["action", "schedule", "x", "echo", "--wait"],
    ["task", "wait", "x", "0" * 32],
]


@pytest.mark.parametrize("args", UNREACHABLE, ids=" ".join)
def test_an_unreachable_robot_is_unavailable_in_one_line(zrobot, dead_address, args):
    run = zrobot(*args, "--robot", dead_address)
    fails(run, ExitCode.UNAVAILABLE, dead_address, "UNAVAILABLE")
    assert run.out == ""


def test_a_robot_that_does_not_answer_in_time_is_a_timeout(zrobot, silent_address):
    run = zrobot("service", "list", "--robot", silent_address, "--timeout", "0.5")
    line = fails(run, ExitCode.TIMEOUT, silent_address, "within 0.5 s", "--timeout")
    assert line.endswith("[DEADLINE_EXCEEDED]")


def test_the_robot_address_comes_from_the_environment(dead_address):
    run = run_zrobot(dead_address, "service", "list")
    fails(run, ExitCode.UNAVAILABLE, dead_address)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["service"],
        ["service", "get"],
        ["service", "list", "--timeout", "0"],
        ["service", "list", "--timeout", "soon"],
        ["service", "list", "--robot", ""],
        ["data", "export", "-"],
    ],
    ids=repr,
)
def test_argument_errors_exit_usage_without_a_traceback(zrobot, args):
    run = zrobot(*args)
    assert run.code == ExitCode.USAGE
    assert "Traceback" not in run.err
    assert run.err.splitlines()[-1].startswith("zrobot")
    assert "error:" in run.err.splitlines()[-1]


GLOBAL_OPTIONS = ["--robot", "host:1", "--json", "--timeout", "2.5"]


@pytest.mark.parametrize(
    "argv",
    [
        [*GLOBAL_OPTIONS, "service", "list"],
        ["service", "list", *GLOBAL_OPTIONS],
        ["--robot", "host:1", "--json", "service", "list", "--timeout", "2.5"],
    ],
    ids=["before", "after", "both"],
)
def test_global_options_go_before_or_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert (args.robot, args.json, args.timeout) == ("host:1", True, 2.5)


def test_global_options_given_nowhere_take_their_defaults(monkeypatch):
    monkeypatch.setenv("ZROBOT_ROBOT", "env-host:7")
    args = build_parser().parse_args(["task", "list", "x"])
    assert (args.robot, args.json, args.timeout) == (
        "env-host:7",
        False,
        DEFAULT_TIMEOUT_S,
    )


def test_command_help_shows_the_real_defaults(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["service", "list", "--help"])
    text = capsys.readouterr().out
    assert "SUPPRESS" not in text
    assert f"(default {DEFAULT_TIMEOUT_S:g})" in text


def test_json_before_the_group_prints_json(zrobot, svc):
    assert zrobot("--json", "service", "get", svc).json()["name"] == svc


def test_robot_before_the_group_overrides_the_environment(zrobot, dead_address):
    run = zrobot("--robot", dead_address, "service", "list")
    fails(run, ExitCode.UNAVAILABLE, dead_address, "UNAVAILABLE")


def test_timeout_before_the_group_bounds_the_wait(zrobot, svc, gate, client):
    task = schedule(client, svc, "gate", path=gate.path)
    gate.wait_arrivals()
    run = zrobot("--timeout", "0.3", "task", "wait", svc, task.id)
    fails(run, ExitCode.TIMEOUT, task.id, "still running")


def test_an_interrupted_command_exits_interrupted_in_one_line(monkeypatch, capsys):
    def interrupted(args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_service_list", interrupted)
    assert cli.main(["service", "list"]) == ExitCode.INTERRUPTED == 130
    assert capsys.readouterr().err == "zrobot: interrupted\n"


def test_ctrl_c_during_a_wait_exits_interrupted(bot, svc, gate):
    args = json.dumps({"path": gate.path})
    command = ["action", "schedule", svc, "gate", "--args", args, "--wait"]
    with subprocess.Popen(
        [sys.executable, "-m", "zrobot", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        env={**os.environ, "ZROBOT_ROBOT": bot.address},
    ) as waiting:
        try:
            # A task at the gate: the command is past start-up, in its client block.
            gate.wait_arrivals()
            waiting.send_signal(signal.SIGINT)
            out, err = waiting.communicate(timeout=30)
        finally:
            if waiting.poll() is None:
                waiting.kill()
    fails(Run(waiting.returncode, out, err), ExitCode.INTERRUPTED, "interrupted")


@pytest.mark.parametrize(
    "args",
    [
        ["--robot", "127.0.0.1:99999", "robot", "info"],
        ["robot", "info", "--robot", "127.0.0.1:-1"],
        ["server", "start", "--data-dir", "unused", "--listen", "127.0.0.1:70000"],
    ],
)
def test_a_port_outside_0_to_65535_is_a_usage_error(dead_address, args):
    run = run_zrobot(dead_address, *args)
    assert run.code == ExitCode.USAGE, run.err
    assert "port from 0 to 65535" in run.err
    assert "Traceback" not in run.err


@pytest.mark.parametrize(
    ("peers", "words"),
    [
        (["b=127.0.0.1:70000"], "up to 65535"),
        (["b=127.0.0.1:1", "b=127.0.0.1:2"], "given twice"),
    ],
)
def test_bad_peers_are_usage_errors(dead_address, tmp_path, peers, words):
    args = ["server", "start", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]
    for peer in peers:
        args += ["--peer", peer]
    fails(run_zrobot(dead_address, *args), ExitCode.USAGE, words)


@pytest.mark.parametrize(
    ("flag", "text", "words"),
    [
        ("--args", '{"value": "\\ud800"}', "not valid UTF-8"),
        ("--args", '{"value": 1e400}', "not JSON compliant"),
        ("--args", '{"value": 100000000000000000000}', "beyond"),
    ],
)
def test_json_arguments_the_wire_cannot_carry_are_usage_errors(
    zrobot, svc, flag, text, words
):
    run = zrobot("action", "schedule", svc, "echo", flag, text)
    fails(run, ExitCode.USAGE, flag, words)
