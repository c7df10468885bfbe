"""Real robot processes on loopback: producers on other robots, restarts,
clean shutdown, and the data dir's guards."""

from __future__ import annotations

import signal
import subprocess

import pytest

from zrobot import errors
from zrobot.states import TaskState
from zrobot.testing import RobotProcess


@pytest.fixture
def producer(robot_process, kit_repo):
    robot = robot_process("producer", repos=[kit_repo])
    with robot.client() as client:
        client.services.create("recorder", "prod")
    return robot


@pytest.fixture
def consumer(robot_process, kit_repo, producer):
    robot = robot_process("consumer", repos=[kit_repo], peers={"p": producer.address})
    with robot.client() as client:
        client.services.create("recorder", "cons")
    return robot


def call_args(action, args, **extra):
    return {"service": "prod", "action": action, "args": args, "robot": "p", **extra}


def test_a_consumer_gets_the_result_of_a_producer_on_another_robot(consumer):
    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "call", call_args("add", {"a": 40, "b": 2})
        )
        assert task.wait(30) == 42


def test_a_consumer_fans_out_to_a_remote_producer(consumer):
    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "fan_out", {"service": "prod", "values": list(range(20)), "robot": "p"}
        )
        assert task.wait(30) == list(range(20))


def test_a_producer_error_reaches_the_remote_consumer_typed(consumer):
    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "call", call_args("fail", {"message": "remote boom"})
        )
        with pytest.raises(errors.ActionFailed, match="remote boom"):
            task.wait(30)


def test_bad_arguments_for_a_remote_producer_fail_the_consumer_task(consumer):
    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "call", call_args("add", {"a": 1})
        )
        with pytest.raises(errors.InvalidArguments, match="required argument"):
            task.wait(30)


def test_a_cycle_across_robots_ends_in_a_call_cycle_error(robot_process, kit_repo):
    a = robot_process("a", repos=[kit_repo])
    b = robot_process("b", repos=[kit_repo], peers={"a": a.address})
    a.stop()
    a.peers = {"b": b.address}
    a.start()
    with a.client() as client_a, b.client() as client_b:
        client_b.services.create("recorder", "sb")
        svc = client_a.services.create("recorder", "sa")
        back = {"service": "sa", "action": "echo", "robot": "a"}
        task = svc.schedule_action(
            "call", {"service": "sb", "action": "call", "args": back, "robot": "b"}
        )
        with pytest.raises(errors.CallCycle):
            task.wait(30)


def test_a_peer_that_is_down_fails_the_task_with_unavailable(consumer, producer):
    producer.kill()
    with consumer.client() as client:
        service = client.services.get("cons")
        task = service.schedule_action("call", call_args("echo", {"value": 1}))
        with pytest.raises(errors.Unavailable):
            task.wait(30)
        assert service.schedule_action("echo", {"value": "alive"}).wait(10) == "alive"


def test_a_consumer_waiting_on_a_killed_producer_gets_the_result_after_restart(
    consumer, producer, gate
):
    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "call", call_args("gate", {"path": gate.path}, timeout_s=60)
        )
        gate.wait_arrivals()
        producer.kill()
        gate.open("lost")  # the killed run's connection; nobody reads it
        producer.start()
        gate.wait_arrivals()  # the producer re-runs the interrupted task
        gate.open("after restart")
        assert task.wait(60) == "after restart"


def test_a_remote_wait_ends_with_deadline_exceeded_when_the_producer_stays_down(
    consumer, producer, gate
):
    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "call", call_args("gate", {"path": gate.path}, timeout_s=1.0)
        )
        gate.wait_arrivals()
        producer.kill()
        with pytest.raises(errors.DeadlineExceeded):
            task.wait(30)


def test_services_data_state_and_queued_tasks_survive_a_restart(
    robot_process, kit_repo, gate
):
    robot = robot_process("r", repos=[kit_repo])
    with robot.client() as client:
        service = client.services.create("recorder", "keep", {"colour": "blue"})
        service.schedule_action("record", {"label": "before"}).wait(10)
        service.schedule_action("gate", {"path": gate.path})
        gate.wait_arrivals()
        queued = [
            service.schedule_action("record", {"label": f"q{n}"}) for n in range(3)
        ]
    assert robot.stop() == 0
    gate.open("stopped")
    robot.start()
    gate.wait_arrivals()  # the interrupted gate task runs again
    gate.open("again")
    with robot.client() as client:
        for task in queued:
            client.task("keep", task.id).wait(30)
        record = client.services.get("keep").refresh()
    assert record.data == {"colour": "blue"}
    assert record.state["seen"] == ["before", "q0", "q1", "q2"]


def test_sigterm_stops_the_robot_cleanly_with_exit_code_zero(robot_process, kit_repo):
    robot = robot_process("r", repos=[kit_repo])
    robot.proc.send_signal(signal.SIGTERM)
    assert robot.proc.wait(timeout=30) == 0
    assert "stopped" in robot.log_tail()


def test_sigint_stops_the_robot_too(robot_process, kit_repo):
    robot = robot_process("r", repos=[kit_repo])
    robot.proc.send_signal(signal.SIGINT)
    assert robot.proc.wait(timeout=30) == 0


def test_a_second_robot_on_the_same_data_dir_exits_naming_the_holder(robot_process):
    first = robot_process("r")
    second = _start_on(first.data_dir)
    assert second.returncode != 0
    assert str(first.data_dir) in second.stderr
    assert str(first.proc.pid) in second.stderr
    with first.client() as client:
        assert client.info()["service_count"] == 0


def _start_on(data_dir):
    """Run a robot on data_dir that is expected to refuse to start."""
    command = RobotProcess(data_dir).command()
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_corrupt_database_stops_the_robot_and_is_left_untouched(tmp_path):
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    db = data_dir / "robot.sqlite3"
    db.write_bytes(b"SQLite format 3\x00" + b"\x13" * 4000)
    before = db.read_bytes()
    result = _start_on(data_dir)
    assert result.returncode != 0
    assert str(db) in result.stderr
    assert "Traceback" not in result.stderr
    assert db.read_bytes() == before


def test_a_database_from_a_newer_zrobot_stops_the_robot(robot_process, tmp_path):
    import sqlite3

    robot = robot_process("r")
    robot.stop()
    db = robot.data_dir / "robot.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    before = db.read_bytes()
    result = _start_on(robot.data_dir)
    assert result.returncode != 0
    assert "99" in result.stderr and "upgrade" in result.stderr
    assert db.read_bytes() == before


def test_a_data_dir_that_cannot_be_created_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = _start_on(blocker / "data")
    assert result.returncode != 0
    assert "cannot use data dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_not_repeat_safe_task_interrupted_by_a_crash_ends_in_error(
    robot_process, kit_repo, gate
):
    robot = robot_process("r", repos=[kit_repo])
    with robot.client() as client:
        service = client.services.create("recorder", "svc")
        running = service.schedule_action("once_gated", {"path": gate.path})
        gate.wait_arrivals()
        queued = service.schedule_action("once", {"label": "queued"})
    robot.kill()
    gate.open("dead")
    robot.start()
    with robot.client() as client:
        interrupted = client.task("svc", running.id)
        with pytest.raises(errors.TaskInterrupted, match="not safe to repeat"):
            interrupted.wait(30)
        assert interrupted.state is TaskState.ERROR
        # A not-repeat-safe task that had not started yet simply runs.
        assert client.task("svc", queued.id).wait(30) == "queued"


def test_a_consumer_creates_its_producer_on_a_peer_robot(consumer, producer):
    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "delegate", {"name": "made-remotely", "value": "hi", "robot": "p"}
        )
        assert task.wait(30) == ["hi", "hi"]
    with producer.client() as client:
        assert "made-remotely" in [s.name for s in client.services.list()]


def test_a_create_repeated_with_its_request_id_after_a_restart_returns_the_first(
    robot_process, kit_repo
):
    robot = robot_process("r", repos=[kit_repo])
    with robot.client() as client:
        client.services.create("recorder", "svc", {"v": 1}, request_id="create-1")
    robot.kill()
    robot.start()
    with robot.client() as client:
        again = client.services.create(
            "recorder", "svc", {"v": 1}, request_id="create-1"
        )
        assert again.record.data == {"v": 1}
        assert [s.name for s in client.services.list()] == ["svc"]


def test_a_consumer_rerun_after_its_robot_crashed_does_not_run_its_producer_twice(
    consumer, producer, gate
):
    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "call", call_args("once_gated", {"path": gate.path}, timeout_s=60)
        )
        gate.wait_arrivals()  # the producer runs once_gated for the consumer
    consumer.kill()
    consumer.start()  # the consumer's call runs again and asks again
    with consumer.client() as client:
        waiting = client.task("cons", task.id)
        gate.open("only once")
        assert waiting.wait(60) == "only once"
    with producer.client() as client:
        runs = [
            t for t in client.services.get("prod").tasks() if t.action == "once_gated"
        ]
    assert len(runs) == 1


def test_a_peer_that_comes_back_is_called_again_at_once(consumer, producer):
    producer.kill()
    with consumer.client() as client:
        service = client.services.get("cons")
        failed = service.schedule_action("call", call_args("echo", {"value": 1}))
        with pytest.raises(errors.Unavailable):
            failed.wait(30)
        producer.start()
        task = service.schedule_action("call", call_args("echo", {"value": "again"}))
        assert task.wait(30) == "again"


def test_cancelling_a_consumer_cancels_the_task_it_waits_on_at_the_producer(
    consumer, producer, gate
):
    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "call", call_args("gate", {"path": gate.path}, timeout_s=60)
        )
        gate.wait_arrivals()
        task.cancel()
        with pytest.raises(errors.TaskCancelled):
            task.wait(30)
    with producer.client() as client:
        (remote,) = client.services.get("prod").tasks()
        with pytest.raises(errors.TaskCancelled):
            client.task("prod", remote.id).wait(30)


def test_a_consumer_deadline_travels_to_the_producer_task(consumer, producer):
    import time

    with consumer.client() as client:
        task = client.services.get("cons").schedule_action(
            "call", call_args("sleep", {"seconds": 30}), deadline=time.time() + 1.5
        )
        with pytest.raises(errors.DeadlineExceeded):
            task.wait(30)
    with producer.client() as client:
        (remote,) = client.services.get("prod").tasks()
        assert remote.deadline == pytest.approx(task.record.deadline, abs=0.01)
        with pytest.raises(errors.DeadlineExceeded):
            client.task("prod", remote.id).wait(30)


STUCK_MODULE = """
import socket

import gevent

arrived = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
arrived.connect({path!r})  # tells the test the import has started
gevent.sleep(3600)
"""


def test_sigterm_ends_the_robot_even_while_a_call_is_stuck_in_a_template_import(
    robot_process, git_repo, gate
):
    import gevent

    stuck = git_repo("acme/stuck", {"stuck.py": STUCK_MODULE.format(path=gate.path)})
    robot = robot_process("r")
    with robot.client(timeout_s=120) as client:
        adding = gevent.spawn(client.templates.add, str(stuck))
        gate.wait_arrivals()
        robot.proc.send_signal(signal.SIGTERM)
        assert robot.proc.wait(timeout=20) == 0
        adding.kill()
