"""The gRPC contract: status codes, rich errors, paging, request ids, streams."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from zrobot import errors
from zrobot.client import Client
from zrobot.states import TaskState
from zrobot.v1 import robot_pb2 as pb
from zrobot.v1 import robot_pb2_grpc as pb_grpc


@pytest.fixture
def bot(robot, kit_repo):
    return robot(template_repos=[kit_repo])


@pytest.fixture
def client(bot):
    with Client(bot.address, timeout_s=10) as opened:
        yield opened


@pytest.fixture
def stub(bot):
    with grpc.insecure_channel(bot.address) as channel:
        yield pb_grpc.RobotStub(channel)


def rich(call, request):
    """Make a raw call expected to fail; return (code, ErrorInfo, BadRequest)."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    status = rpc_status.from_call(caught.value)
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    for detail in status.details:
        detail.Unpack(info) or detail.Unpack(bad)
    return caught.value.code(), caught.value.details(), info, bad


def test_an_unknown_template_is_not_found_with_error_info(stub):
    request = pb.CreateServiceRequest(template="nope", name="x")
    code, message, info, _ = rich(stub.CreateService, request)
    assert code is grpc.StatusCode.NOT_FOUND
    assert info.reason == "TEMPLATE_NOT_FOUND"
    assert info.domain == "zrobot.v1"
    assert "recorder" in message  # lists what is known


def test_an_unknown_template_uid_is_not_found(client):
    with pytest.raises(errors.TemplateNotFound):
        client.services.create("local/acme/kit/recorder/9.9.9", "x")


def test_a_duplicate_service_is_already_exists(stub, client):
    client.services.create("recorder", "dup")
    code, message, info, _ = rich(
        stub.CreateService, pb.CreateServiceRequest(template="recorder", name="dup")
    )
    assert code is grpc.StatusCode.ALREADY_EXISTS
    assert info.reason == "SERVICE_EXISTS"
    assert "dup" in message


@pytest.mark.parametrize("name", ["", "a/b", "..", "x" * 129, "ctl\x07", "a\\b"])
def test_an_invalid_name_is_invalid_argument_with_a_field_violation(stub, client, name):
    code, message, info, bad = rich(
        stub.CreateService, pb.CreateServiceRequest(template="recorder", name=name)
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert info.reason == "NAME_INVALID"
    assert bad.field_violations[0].field == "name"
    assert client.services.list() == []


@pytest.mark.parametrize(
    ("action", "args", "reason"),
    [
        ("nope", {}, "ACTION_INVALID"),
        ("_private", {}, "ACTION_INVALID"),
        ("add", {"a": 1}, "ARGUMENTS_INVALID"),
        ("add", {"a": 1, "b": 2, "zz": 0}, "ARGUMENTS_INVALID"),
        ("add", {"a": [1], "b": 2}, "ARGUMENTS_INVALID"),
    ],
)
def test_bad_actions_are_invalid_argument_and_queue_nothing(
    stub, client, action, args, reason
):
    client.services.create("recorder", "svc")
    request = pb.ScheduleActionRequest(service="svc", action=action)
    request.args.update(args)
    code, _, info, _ = rich(stub.ScheduleAction, request)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert info.reason == reason
    assert client.services.get("svc").tasks() == []


def test_scheduling_on_an_unknown_service_is_not_found(stub):
    code, _, info, _ = rich(
        stub.ScheduleAction, pb.ScheduleActionRequest(service="ghost", action="echo")
    )
    assert code is grpc.StatusCode.NOT_FOUND
    assert info.reason == "SERVICE_NOT_FOUND"


def test_an_unknown_task_is_not_found(stub, client):
    client.services.create("recorder", "svc")
    code, _, info, _ = rich(
        stub.GetTask, pb.GetTaskRequest(service="svc", task_id="nope")
    )
    assert code is grpc.StatusCode.NOT_FOUND
    assert info.reason == "TASK_NOT_FOUND"


def test_the_client_rebuilds_the_typed_error(client):
    with pytest.raises(errors.ServiceNotFound, match="no service named 'ghost'"):
        client.services.get("ghost")


def test_services_are_listed_in_pages(client, stub):
    for n in range(5):
        client.services.create("recorder", f"s{n}")
    first = stub.ListServices(pb.ListServicesRequest(page_size=2), timeout=10)
    second = stub.ListServices(
        pb.ListServicesRequest(page_size=2, page_token=first.next_page_token),
        timeout=10,
    )
    third = stub.ListServices(
        pb.ListServicesRequest(page_size=2, page_token=second.next_page_token),
        timeout=10,
    )
    names = [s.name for page in (first, second, third) for s in page.services]
    assert names == ["s0", "s1", "s2", "s3", "s4"]
    assert third.next_page_token == ""
    assert [s.name for s in client.services.list()] == names


def test_tasks_are_listed_newest_first_in_pages(client, stub):
    service = client.services.create("recorder", "svc")
    for n in range(5):
        service.schedule_action("echo", {"value": n}).wait(10)
    first = stub.ListTasks(pb.ListTasksRequest(service="svc", page_size=3), timeout=10)
    rest = stub.ListTasks(
        pb.ListTasksRequest(
            service="svc", page_size=3, page_token=first.next_page_token
        ),
        timeout=10,
    )
    values = [t.result.number_value for page in (first, rest) for t in page.tasks]
    assert values == [4, 3, 2, 1, 0]
    assert rest.next_page_token == ""


@pytest.mark.parametrize(
    "request_",
    [
        pb.ListServicesRequest(page_token="garbage"),
        pb.ListServicesRequest(page_size=-1),
    ],
)
def test_bad_paging_is_invalid_argument(stub, request_):
    code, message, _, bad = rich(stub.ListServices, request_)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert bad.field_violations[0].field in ("page_token", "page_size")


def test_a_repeated_create_with_the_same_request_id_returns_the_first_service(client):
    first = client.services.create("recorder", "once", {"a": 1}, request_id="r-1")
    again = client.services.create("recorder", "once", {"a": 1}, request_id="r-1")
    assert again.record.name == first.record.name
    assert len(client.services.list()) == 1


def test_a_repeated_schedule_with_the_same_request_id_returns_the_first_task(client):
    service = client.services.create("recorder", "svc")
    first = service.schedule_action("record", {"label": "x"}, request_id="t-1")
    again = service.schedule_action("record", {"label": "x"}, request_id="t-1")
    assert again.id == first.id
    first.wait(10)
    assert service.refresh().state == {"seen": ["x"]}


def test_a_repeated_delete_with_the_same_request_id_succeeds_once_more(client):
    client.services.create("recorder", "gone")
    client.services.delete("gone", request_id="d-1")
    client.services.delete("gone", request_id="d-1")
    with pytest.raises(errors.ServiceNotFound):
        client.services.delete("gone", request_id="d-2")


def test_wait_task_streams_every_state_until_the_end(client, stub, gate):
    service = client.services.create("recorder", "svc")
    task = service.schedule_action("gate", {"path": gate.path})
    stream = stub.WaitTask(
        pb.WaitTaskRequest(service="svc", task_id=task.id), timeout=10
    )
    states = [next(stream).task.state]
    gate.wait_arrivals()
    gate.open()
    states += [message.task.state for message in stream]
    assert states[0] in (pb.TASK_STATE_NEW, pb.TASK_STATE_RUNNING)
    assert states[-2:] == [pb.TASK_STATE_RUNNING, pb.TASK_STATE_OK]


def test_a_remote_task_handle_waits_for_its_result_and_its_error(client):
    service = client.services.create("recorder", "svc")
    assert service.schedule_action("add", {"a": 1, "b": 2}).wait(10) == 3
    failed = service.schedule_action("fail", {"message": "nope"})
    with pytest.raises(errors.ActionFailed, match="ValueError: nope"):
        failed.wait(10)
    assert failed.state is TaskState.ERROR
    assert "raise ValueError" in failed.record.error["traceback"]


def test_a_task_is_cancelled_over_the_wire(client, gate):
    service = client.services.create("recorder", "svc")
    service.schedule_action("gate", {"path": gate.path})
    queued = service.schedule_action("echo", {})
    assert queued.cancel().state is TaskState.CANCELLED
    with pytest.raises(errors.TaskCancelled):
        queued.wait(10)


def test_robot_info_counts_templates_and_services(client, bot):
    client.services.create("recorder", "svc")
    info = client.info()
    assert info["robot_id"] == bot.robot_id
    assert info["service_count"] == 1
    assert info["template_count"] == 1


GOOD_TEMPLATE = (
    "from zrobot import Template\n\n\nclass Good(Template):\n    version = '1'\n"
)


def test_adding_a_repo_reports_a_broken_module_and_loads_the_rest(client, git_repo):
    repo = git_repo(
        "acme/mixed",
        {
            "good.py": GOOD_TEMPLATE,
            "bad.py": "def broken(:\n",
        },
    )
    response = client.templates.add(str(repo))
    assert [t.name for t in response.templates] == ["good"]
    assert response.errors[0].path == "bad.py"
    assert "SyntaxError" in response.errors[0].error


def test_a_repo_that_cannot_be_cloned_is_a_clear_error(client, tmp_path):
    with pytest.raises(errors.RepoCloneFailed, match="not-a-repo"):
        client.templates.add(str(tmp_path / "not-a-repo"))


def test_a_missing_ref_is_not_found(client, kit_repo):
    with pytest.raises(errors.RepoRefNotFound, match="no-such-branch"):
        client.templates.add(f"{kit_repo}#no-such-branch")


def test_health_goes_not_serving_when_the_robot_stops(bot):
    with grpc.insecure_channel(bot.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(
            health_pb2.HealthCheckRequest(service="zrobot.v1.Robot"), timeout=10
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        import gevent

        stopper = gevent.spawn(bot.stop, 1.0)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        stopper.join(10)


def test_a_request_id_reused_for_another_delete_is_refused(client, stub):
    client.services.create("recorder", "one")
    client.services.create("recorder", "two")
    client.services.delete("one", request_id="del-1")
    code, message, info, _ = rich(
        stub.DeleteService, pb.DeleteServiceRequest(name="two", request_id="del-1")
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "first used for another DeleteService" in message
    assert [s.name for s in client.services.list()] == ["two"]


def test_a_page_of_large_tasks_is_cut_by_size(client, stub):
    service = client.services.create("recorder", "big")
    blob = "x" * (3 * 1024 * 1024)
    for n in range(3):
        service.schedule_action("carry", {"value": n, "pad": blob}).wait(30)
    pages, token = [], ""
    for _ in range(4):
        request = pb.ListTasksRequest(service="big", page_token=token)
        page = stub.ListTasks(request, timeout=30)
        pages.append([t.result.number_value for t in page.tasks])
        token = page.next_page_token
        if not token:
            break
    assert len(pages) > 1
    assert [v for page in pages for v in page] == [2, 1, 0]
