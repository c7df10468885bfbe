"""Services and task lists, in an in-process robot with a real git template."""

from __future__ import annotations

import pathlib
import shutil
import time

import pytest

from tests.kit import BROKEN
from zrobot import _wire, errors
from zrobot.states import TaskState


@pytest.fixture
def bot(robot, kit_repo):
    return robot(template_repos=[kit_repo])


@pytest.fixture
def rec(bot):
    return bot.create_service("recorder", "rec", {})


def test_schedule_returns_a_new_task_at_once_and_wait_gives_the_result(rec, gate):
    blocker = rec.schedule("gate", {"path": gate.path})
    task = rec.schedule("add", {"a": 2, "b": 3})
    assert task.state is TaskState.NEW
    gate.wait_arrivals()
    gate.open()
    assert task.wait(10) == 5
    assert blocker.wait(10) == "open"
    assert task.state is TaskState.OK


def test_tasks_run_one_at_a_time_by_priority_then_in_order(rec, gate):
    rec.schedule("gate", {"path": gate.path})
    gate.wait_arrivals()
    plan = [("low-1", -1), ("mid-1", 0), ("high-1", 5), ("mid-2", 0), ("high-2", 5)]
    tasks = [rec.schedule("record", {"label": label}, priority=p) for label, p in plan]
    gate.open()
    for task in tasks:
        task.wait(10)
    assert rec.instance.state["seen"] == ["high-1", "high-2", "mid-1", "mid-2", "low-1"]


def test_an_exception_fails_only_that_task_and_keeps_type_message_traceback(rec):
    failed = rec.schedule("fail", {"message": "boom"})
    after = rec.schedule("echo", {"value": "still alive"})
    with pytest.raises(errors.ActionFailed, match="ValueError: boom"):
        failed.wait(10)
    assert after.wait(10) == "still alive"
    error = failed.record.error
    assert error["type"] == "ValueError"
    assert error["message"] == "boom"
    assert "raise ValueError(message)" in error["traceback"]


@pytest.mark.parametrize(
    ("action", "args", "error", "fragment"),
    [
        ("nope", {}, errors.InvalidAction, "has no action 'nope'"),
        ("_private", {}, errors.InvalidAction, "private"),
        ("validate", {}, errors.InvalidAction, "has no action"),
        ("add", {"a": 1}, errors.InvalidArguments, "b: required argument is missing"),
        ("add", {"a": 1, "b": 2, "c": 3}, errors.InvalidArguments, "no argument 'c'"),
        ("add", {"a": "1", "b": 2}, errors.InvalidArguments, "expected integer"),
        ("add", {"a": 1.5, "b": 2}, errors.InvalidArguments, "expected integer"),
    ],
)
def test_bad_actions_and_arguments_are_refused_and_nothing_is_queued(
    bot, rec, action, args, error, fragment
):
    with pytest.raises(error, match=fragment):
        rec.schedule(action, args)
    assert rec.pending == 0
    assert bot.storage.list_tasks("rec", 10) == []


def test_a_queued_task_can_be_cancelled_and_never_runs(rec, gate):
    rec.schedule("gate", {"path": gate.path})
    gate.wait_arrivals()
    doomed = rec.schedule("record", {"label": "never"})
    rec.cancel(doomed.id)
    gate.open()
    rec.schedule("echo", {}).wait(10)
    assert doomed.state is TaskState.CANCELLED
    assert "seen" not in rec.instance.state
    with pytest.raises(errors.TaskCancelled):
        doomed.wait(1)


def test_a_running_task_can_be_cancelled(rec, gate):
    running = rec.schedule("gate", {"path": gate.path})
    gate.wait_arrivals()
    rec.cancel(running.id)
    with pytest.raises(errors.TaskCancelled):
        running.wait(10)
    assert rec.schedule("echo", {"value": 1}).wait(10) == 1


def test_a_task_whose_deadline_passed_before_it_started_fails(rec, gate):
    rec.schedule("gate", {"path": gate.path})
    gate.wait_arrivals()
    late = rec.schedule("echo", {}, deadline=time.time() - 1)
    gate.open()
    with pytest.raises(errors.DeadlineExceeded):
        late.wait(10)


def test_an_action_running_past_its_deadline_is_stopped(rec):
    slow = rec.schedule("sleep", {"seconds": 30}, deadline=time.time() + 0.2)
    with pytest.raises(errors.DeadlineExceeded):
        slow.wait(10)


def test_a_result_that_is_not_json_fails_the_task_with_a_clear_message(rec):
    with pytest.raises(errors.ActionFailed, match="not a JSON value zrobot can carry"):
        rec.schedule("not_json", {}).wait(10)


def test_wait_with_a_timeout_raises_deadline_exceeded_and_leaves_the_task(rec, gate):
    task = rec.schedule("gate", {"path": gate.path})
    gate.wait_arrivals()
    with pytest.raises(errors.DeadlineExceeded, match="still running"):
        task.wait(0.05)
    gate.open()
    assert task.wait(10) == "open"


def test_a_repeated_request_id_returns_the_first_task(rec, gate):
    rec.schedule("gate", {"path": gate.path})
    first = rec.schedule("record", {"label": "x"}, request_id="req-1")
    again = rec.schedule("record", {"label": "x"}, request_id="req-1")
    assert again.id == first.id
    gate.wait_arrivals()
    gate.open()
    first.wait(10)
    assert rec.instance.state["seen"] == ["x"]
    assert rec.schedule("record", {"label": "x"}, request_id="req-1").id == first.id


def test_a_request_id_reused_for_another_request_is_refused(bot, rec):
    rec.schedule("record", {"label": "x"}, request_id="req-1").wait(10)
    with pytest.raises(errors.InvalidArguments, match="first used for record"):
        rec.schedule("record", {"label": "y"}, request_id="req-1")
    with pytest.raises(errors.InvalidArguments, match="first used for record"):
        rec.schedule("echo", {"value": "x"}, request_id="req-1")
    bot.create_service("recorder", "made", {}, request_id="c-1")
    with pytest.raises(errors.InvalidArguments, match="first used to create"):
        bot.create_service("recorder", "other", {}, request_id="c-1")


@pytest.mark.parametrize("exit_kind", ["SystemExit(3)", "KeyboardInterrupt()"])
def test_an_action_raising_system_exit_fails_only_its_task(rec, exit_kind):
    task = rec.schedule("raise_base", {"kind": exit_kind})
    with pytest.raises(errors.ActionFailed, match="may not stop the robot"):
        task.wait(10)
    assert rec.schedule("echo", {"value": "up"}).wait(10) == "up"


def test_a_float_too_large_for_an_integer_argument_is_refused(rec):
    with pytest.raises(errors.InvalidArguments, match="expected integer"):
        rec.schedule("add", {"a": 1e300, "b": 1})


@pytest.mark.parametrize("template", ["broken_init", "validate_key_error"])
def test_a_template_failing_at_creation_is_invalid_data_naming_it(
    bot, git_repo, template
):
    bot.add_template_repo(str(git_repo("acme/broken", {"broken.py": BROKEN})))
    with pytest.raises(errors.InvalidData, match=f"template {template} refused"):
        bot.create_service(template, "x", {})
    assert bot.services() == []


def test_a_producer_call_gets_a_request_id_from_its_calling_task(bot, rec):
    producer = bot.create_service("recorder", "producer", {})
    task = rec.schedule("call", {"service": "producer", "action": "echo"})
    task.wait(10)
    (made,) = bot.storage.list_tasks("producer", 10)
    assert made.request_id == f"{task.id}.1"
    assert producer.task(made.id).state is TaskState.OK


def test_a_service_calls_a_local_producer_and_gets_its_result(bot, rec):
    bot.create_service("recorder", "producer", {})
    task = rec.schedule(
        "call", {"service": "producer", "action": "add", "args": {"a": 20, "b": 22}}
    )
    assert task.wait(10) == 42


def test_a_consumer_fans_out_to_a_producer_and_collects_every_result(bot, rec):
    bot.create_service("recorder", "producer", {})
    task = rec.schedule("fan_out", {"service": "producer", "values": [1, "two", None]})
    assert task.wait(10) == [1, "two", None]


def test_a_service_waiting_on_itself_gets_a_call_cycle_error(rec):
    task = rec.schedule("call", {"service": "rec", "action": "echo"})
    with pytest.raises(errors.CallCycle, match="call cycle"):
        task.wait(10)


def test_a_two_service_cycle_ends_in_a_call_cycle_error(bot, rec):
    bot.create_service("recorder", "other", {})
    inner = {"service": "rec", "action": "echo"}
    task = rec.schedule("call", {"service": "other", "action": "call", "args": inner})
    with pytest.raises(errors.CallCycle):
        task.wait(10)


def test_an_unknown_peer_robot_fails_the_task_with_peer_not_found(rec):
    task = rec.schedule("call", {"service": "x", "action": "echo", "robot": "nowhere"})
    with pytest.raises(errors.PeerNotFound, match="no peer robot named 'nowhere'"):
        task.wait(10)


def test_finished_tasks_are_listed_newest_first(bot, rec):
    for n in range(3):
        rec.schedule("echo", {"value": n}).wait(10)
    listed = bot.storage.list_tasks("rec", 10)
    assert [t.result for t in listed] == [2, 1, 0]


def test_deleting_a_service_cancels_its_queued_tasks(bot, rec, gate):
    running = rec.schedule("gate", {"path": gate.path})
    queued = rec.schedule("echo", {})
    gate.wait_arrivals()
    bot.delete_service("rec")
    assert queued.state is TaskState.CANCELLED
    assert running.state is TaskState.CANCELLED
    with pytest.raises(errors.ServiceNotFound):
        bot.service("rec")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b",
        "a\\b",
        "..",
        ".hidden",
        "x" * 129,
        "tab\there",
        "nul\x00",
        "new\nline",
        "sp ace",
    ],
)
def test_invalid_service_names_are_refused(bot, name):
    with pytest.raises(errors.InvalidName, match="invalid service name"):
        bot.create_service("recorder", name, {})
    assert bot.services() == []


def test_a_duplicate_service_name_is_refused(bot, rec):
    with pytest.raises(errors.ServiceExists, match="already exists"):
        bot.create_service("recorder", "rec", {})


def test_an_unknown_template_is_refused(bot):
    with pytest.raises(errors.TemplateNotFound):
        bot.create_service("no_such_template", "x", {})


def test_find_or_create_makes_a_local_producer_once_and_then_finds_it(bot, rec):
    assert rec.schedule("delegate", {"name": "helper", "value": 7}).wait(10) == [7, 7]
    assert [s.name for s in bot.services()] == ["helper", "rec"]


def test_history_is_bounded_per_service_and_keeps_the_newest(robot, kit_repo):
    bot = robot(template_repos=[kit_repo], history_limit=3)
    service = bot.create_service("recorder", "svc", {})
    for n in range(6):
        service.schedule("echo", {"value": n}).wait(10)
    assert [t.result for t in bot.storage.list_tasks("svc", 10)] == [5, 4, 3]


def test_deleting_a_service_deletes_its_history(bot, rec):
    rec.schedule("echo", {}).wait(10)
    bot.delete_service("rec")
    assert bot.storage.list_tasks("rec", 10) == []


def test_a_service_whose_template_is_gone_stays_dormant_until_it_returns(
    tmp_path, kit_repo
):
    from zrobot.robot import Robot, RobotConfig

    config = RobotConfig(data_dir=tmp_path / "bot", listen="127.0.0.1:0")
    first = Robot(config)
    first.start(serve=False)
    first.add_template_repo(kit_repo)
    first.create_service("recorder", "sleeper", {"k": 1})
    first.stop(grace_s=0)
    moved = tmp_path / "moved"
    pathlib.Path(kit_repo).rename(moved)
    shutil.rmtree(config.data_dir / "repos")  # no source, no checkout on disk

    second = Robot(config)
    second.start(serve=False)
    try:
        with pytest.raises(errors.ServiceStopped, match="template repo again"):
            second.service("sleeper")
        with pytest.raises(errors.ServiceExists):
            second.create_service("recorder", "sleeper", {})
        moved.rename(kit_repo)
        second.add_template_repo(kit_repo)
        revived = second.service("sleeper")
        assert revived.record.data == {"k": 1}
        assert revived.schedule("echo", {"value": "back"}).wait(10) == "back"
    finally:
        second.stop(grace_s=0)


@pytest.mark.parametrize(
    ("kind", "where", "what", "why"),
    [
        ("surrogate", "result", "result", "not valid UTF-8"),
        ("surrogate_key", "result", "result", "not valid UTF-8"),
        ("surrogate", "state", "self.state", "not valid UTF-8"),
        ("deep", "result", "result", "nests deeper"),
        ("deep60", "state", "self.state", "nests deeper"),
        ("huge", "result", "result", "over the limit"),
        ("bigint", "state", "self.state", "beyond"),
        ("bigint", "result", "result", "beyond"),
    ],
)
def test_values_the_wire_cannot_carry_fail_the_task_and_listings_still_work(
    bot, rec, kind, where, what, why
):
    rec.schedule("record", {"label": "kept"}).wait(10)
    with pytest.raises(errors.ActionFailed, match=f"{what}.*{why}"):
        rec.schedule("make_bad", {"kind": kind, "where": where}).wait(10)
    assert rec.instance.state == {"seen": ["kept"]}
    for record in bot.storage.list_tasks("rec", 10):
        _wire.task_to_pb(record)  # every stored task still crosses the wire


def test_an_error_message_that_is_not_utf8_is_stored_readably(bot, rec):
    with pytest.raises(errors.ActionFailed):
        rec.schedule("make_bad", {"kind": "surrogate", "where": "error"}).wait(10)
    (failed,) = bot.storage.list_tasks("rec", 1)
    assert "\\ud800" in _wire.task_to_pb(failed).error.message


@pytest.mark.parametrize(
    "value",
    [
        "\ud800",
        {"\udcff": 1},
        10**30,
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    ],
)
def test_arguments_a_local_caller_passes_must_be_carriable_too(rec, value):
    with pytest.raises(errors.InvalidArguments, match="not a JSON value"):
        rec.schedule("echo", {"value": value})
    assert rec.pending == 0


def test_a_request_id_reused_with_another_priority_is_refused(rec):
    rec.schedule("echo", {"value": 1}, request_id="p-1").wait(10)
    with pytest.raises(errors.InvalidArguments, match="first used"):
        rec.schedule("echo", {"value": 1}, priority=5, request_id="p-1")


def test_system_exit_in_validate_is_invalid_data_not_a_hang(bot, git_repo):
    bot.add_template_repo(str(git_repo("acme/broken", {"broken.py": BROKEN})))
    with pytest.raises(errors.InvalidData, match="SystemExit"):
        bot.create_service("validate_exit", "x", {})


def test_a_robot_starts_from_its_checkout_when_the_repo_source_is_down(
    tmp_path, kit_repo
):
    from zrobot.robot import Robot, RobotConfig

    config = RobotConfig(data_dir=tmp_path / "bot", listen="127.0.0.1:0")
    first = Robot(config)
    first.start(serve=False)
    first.add_template_repo(kit_repo)
    first.create_service("recorder", "steady", {})
    first.stop(grace_s=0)
    pathlib.Path(kit_repo).rename(tmp_path / "away")  # the git server is down

    second = Robot(config)
    second.start(serve=False)
    try:
        service = second.service("steady")
        assert service.schedule("echo", {"value": "stale but up"}).wait(10) == (
            "stale but up"
        )
        with pytest.raises(errors.RepoCloneFailed):
            second.add_template_repo(kit_repo)  # asked for, a failed pull is an error
    finally:
        second.stop(grace_s=0)
