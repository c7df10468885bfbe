"""kill -9 at random moments loses no accepted task and runs none twice.

Each round restarts the robot, schedules tasks on several services from
several greenlets, and kills the robot after a random delay: while tasks
are being scheduled, run and journaled. A schedule call that was in flight
at the kill is ambiguous (it may or may not have been journaled), so it is
sent again after the restart with the same request id, which must return
the original task if there was one. At the end every accepted task has run
exactly once as far as the service's state can tell (its state is saved in
the same transaction as the task's end), in journal order.

ZROBOT_CRASH_ROUNDS (default 30) and ZROBOT_CRASH_SECONDS (default 150)
bound the loop.
"""

from __future__ import annotations

import os
import random
import time

import gevent
import pytest

from zrobot import errors

ROUNDS = int(os.environ.get("ZROBOT_CRASH_ROUNDS", "30"))
SECONDS = float(os.environ.get("ZROBOT_CRASH_SECONDS", "150"))
SERVICES = ["s0", "s1", "s2"]


class Ledger:
    """What the test asked for: request id -> (service, args), and what
    the robot accepted: request id -> task id."""

    def __init__(self) -> None:
        self.sent: dict[str, tuple[str, str]] = {}
        self.accepted: dict[str, str] = {}
        self.resent = 0
        self.resent_found = 0  # journaled before the kill, answer lost

    def ambiguous(self) -> list[str]:
        return [rid for rid in self.sent if rid not in self.accepted]


def schedule_forever(client, ledger: Ledger, prefix: str, worker: int) -> None:
    """Schedule record tasks until the robot dies under us. Every third
    task pauses a little, so kills also land while actions run."""
    for n in range(10_000):
        service = SERVICES[(n + worker) % len(SERVICES)]
        request_id = f"{prefix}-w{worker}-{n}"
        args = {"label": request_id, "pause_s": 0.005 if n % 3 == 0 else 0.0}
        ledger.sent[request_id] = (service, args)
        try:
            task = client.services_proxy(service).schedule_action(
                "record", args, request_id=request_id
            )
        except (errors.Unavailable, errors.DeadlineExceeded, errors.TaskCancelled):
            return
        ledger.accepted[request_id] = task.id


@pytest.mark.timeout(SECONDS + 120)
def test_kill_9_at_random_points_loses_and_duplicates_no_task(robot_process, kit_repo):
    rng = random.Random(os.environ.get("ZROBOT_CRASH_SEED", "7"))
    robot = robot_process(
        "crash", repos=[kit_repo], extra=["--history-limit", "100000"]
    )
    with robot.client() as client:
        for name in SERVICES:
            client.services.create("recorder", name)
    robot.kill()
    ledger = Ledger()
    started, kills = time.monotonic(), 0
    while kills < ROUNDS and time.monotonic() - started < SECONDS:
        robot.start()
        resend_ambiguous(robot, ledger)
        with robot.client(timeout_s=5) as client:
            client.services_proxy = _proxies(client)
            workers = [
                gevent.spawn(schedule_forever, client, ledger, f"k{kills}", w)
                for w in range(3)
            ]
            gevent.sleep(rng.uniform(0.0, 0.4))  # the random kill point
            robot.kill()
            kills += 1
            gevent.joinall(workers, timeout=30)
    robot.start()
    resend_ambiguous(robot, ledger)
    check_every_task_ran_once_in_order(robot, ledger)
    print(
        f"\n{kills} kills, {len(ledger.accepted)} tasks, {ledger.resent} resent, "
        f"{ledger.resent_found} of them journaled before the kill"
    )
    assert kills >= min(ROUNDS, 5), f"only {kills} kills in {SECONDS} s"


def _proxies(client):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = client.services.get(name)
        return cache[name]

    return get


def resend_ambiguous(robot, ledger: Ledger) -> None:
    """Send again every schedule whose answer was lost; same request id."""
    with robot.client(timeout_s=10) as client:
        for request_id in ledger.ambiguous():
            service, args = ledger.sent[request_id]
            task = client.services.get(service).schedule_action(
                "record", args, request_id=request_id
            )
            ledger.accepted[request_id] = task.id
            ledger.resent += 1
            ledger.resent_found += task.record.create_time < robot_started(client)


def robot_started(client) -> float:
    return time.time() - client.info()["uptime_s"]


def check_every_task_ran_once_in_order(robot, ledger: Ledger) -> None:
    with robot.client(timeout_s=30) as client:
        for request_id, task_id in ledger.accepted.items():
            service, _ = ledger.sent[request_id]
            client.task(service, task_id).wait(60)
        for name in SERVICES:
            service = client.services.get(name)
            journal = list(reversed(service.tasks(limit=100_000)))
            labels_in_journal_order = [t.args["label"] for t in journal]
            seen = service.refresh().state.get("seen", [])
            expected = {
                args["label"] for svc, args in ledger.sent.values() if svc == name
            }
            assert seen == labels_in_journal_order, f"{name}: order or duplicates"
            assert set(seen) == expected, f"{name}: lost {expected - set(seen)}"
            assert len(seen) == len(set(seen)), f"{name}: a task ran twice"
