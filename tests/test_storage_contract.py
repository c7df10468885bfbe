"""What every storage backend promises, run against each backend.

A backend joins the suite by adding one entry to BACKENDS: a factory that
gets a directory of its own and the history limit, and whether the backend
persists. A persistent backend must find what it stored there when called
again with the same directory (the reopen tests); the others skip those,
since forgetting everything on close is what they promise.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from zrobot import errors
from zrobot.states import TaskState
from zrobot.storage import (
    DEFAULT_HISTORY_LIMIT,
    ServiceRecord,
    SqliteStorage,
    Storage,
    TaskRecord,
)
from zrobot.storage.memory import MemoryStorage

Opener = Callable[..., Storage]


@dataclasses.dataclass(frozen=True)
class Backend:
    """How to open one backend's store in a directory, and whether it persists."""

    open: Callable[[pathlib.Path, int], Storage]
    persistent: bool


BACKENDS: dict[str, Backend] = {
    "sqlite": Backend(
        lambda directory, limit: SqliteStorage(directory / "robot.db", limit),
        persistent=True,
    ),
    "memory": Backend(lambda _, limit: MemoryStorage(limit), persistent=False),
}

_clock = itertools.count(1_700_000_000)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    """The backend under test."""
    return BACKENDS[request.param]


@pytest.fixture
def open_storage(backend: Backend, tmp_path: pathlib.Path) -> Iterator[Opener]:
    """Open (or reopen) the backend's store in tmp_path; close all at the end."""
    opened: list[Storage] = []

    def open_(history_limit: int = DEFAULT_HISTORY_LIMIT) -> Storage:
        store = backend.open(tmp_path, history_limit)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def storage(open_storage: Opener) -> Storage:
    """A fresh store of the backend under test."""
    return open_storage()


def service(name: str = "web", **fields: Any) -> ServiceRecord:
    """A service record with plausible values; fields override them."""
    values: dict[str, Any] = {
        "template_uid": "github.com/acme/templates/web_check/1.2.0",
        "data": {"url": f"https://{name}.example"},
        "state": {},
        "create_time": float(next(_clock)),
    }
    return ServiceRecord(name=name, **{**values, **fields})


def task(service_name: str = "web", **fields: Any) -> TaskRecord:
    """A NEW task record with a fresh id; fields override the defaults."""
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "action": "check",
        "args": {"retries": 3},
        "priority": 0,
        "state": TaskState.NEW,
        "create_time": float(next(_clock)),
    }
    return TaskRecord(service=service_name, **{**values, **fields})


def finished(record: TaskRecord, state: TaskState = TaskState.OK) -> TaskRecord:
    """Turn record into a finished one (times, and a result when OK)."""
    record.state = state
    record.start_time = float(next(_clock))
    record.end_time = float(next(_clock))
    record.result = {"status": 200} if state is TaskState.OK else None
    return record


def add_tasks(store: Storage, service_name: str, count: int) -> list[TaskRecord]:
    """Journal count new tasks of a service, oldest first."""
    records = [task(service_name) for _ in range(count)]
    for record in records:
        store.add_task(record)
    return records


def ids(records: list[TaskRecord]) -> list[str]:
    """The task ids, in order."""
    return [record.id for record in records]


# -- robot id and life cycle --------------------------------------------------


def test_a_new_store_is_empty(storage: Storage) -> None:
    assert storage.list_services() == []
    assert storage.list_repos() == []
    assert storage.unfinished_tasks() == []


def test_the_robot_id_is_a_uuid_hex(storage: Storage) -> None:
    robot_id = storage.robot_id()

    assert uuid.UUID(hex=robot_id).hex == robot_id


def test_a_persistent_store_keeps_its_robot_id_across_reopen(
    backend: Backend, open_storage: Opener
) -> None:
    if not backend.persistent:
        pytest.skip("this backend forgets everything on close, by design")
    first = open_storage()
    robot_id = first.robot_id()
    first.close()

    assert open_storage().robot_id() == robot_id


def test_a_negative_history_limit_is_refused(open_storage: Opener) -> None:
    with pytest.raises(ValueError, match="history_limit"):
        open_storage(history_limit=-1)


CALLS_AFTER_CLOSE: dict[str, Callable[[Storage], object]] = {
    "robot_id": lambda s: s.robot_id(),
    "add_repo": lambda s: s.add_repo("file:///r"),
    "list_repos": lambda s: s.list_repos(),
    "create_service": lambda s: s.create_service(service()),
    "delete_service": lambda s: s.delete_service("web"),
    "list_services": lambda s: s.list_services(),
    "service_by_request_id": lambda s: s.service_by_request_id("req-1"),
    "save_service": lambda s: s.save_service("web", {}, {}),
    "add_task": lambda s: s.add_task(task()),
    "task_by_request_id": lambda s: s.task_by_request_id("web", "req-1"),
    "start_task": lambda s: s.start_task("t1", 1.0),
    "finish_task": lambda s: s.finish_task(finished(task())),
    "get_task": lambda s: s.get_task("web", "t1"),
    "list_tasks": lambda s: s.list_tasks("web", 10),
    "unfinished_tasks": lambda s: s.unfinished_tasks(),
    "remember_request": lambda s: s.remember_request("req-1", "M", b""),
    "recall_request": lambda s: s.recall_request("req-1", "M"),
}


@pytest.mark.parametrize("method", sorted(CALLS_AFTER_CLOSE))
def test_calls_after_close_raise_a_storage_error(storage: Storage, method: str) -> None:
    storage.close()

    with pytest.raises(errors.StorageError):
        CALLS_AFTER_CLOSE[method](storage)


def test_closing_twice_is_harmless(storage: Storage) -> None:
    storage.close()
    storage.close()


# -- repos --------------------------------------------------------------------


def test_repos_keep_first_added_order_and_ignore_repeats(storage: Storage) -> None:
    for url in ["file:///b", "https://a.example/x.git#v1", "file:///b", "/c"]:
        storage.add_repo(url)

    assert storage.list_repos() == ["file:///b", "https://a.example/x.git#v1", "/c"]


# -- services -----------------------------------------------------------------


def test_a_created_service_comes_back_with_all_its_fields(storage: Storage) -> None:
    record = service("web", data={"n": [1, 2.5, None, "é"]}, state={"up": True})
    record.request_id = "req-1"

    storage.create_service(record)

    assert storage.list_services() == [record]


def test_services_are_listed_by_name(storage: Storage) -> None:
    for name in ["mail", "db", "web"]:
        storage.create_service(service(name))

    assert [s.name for s in storage.list_services()] == ["db", "mail", "web"]


def test_a_taken_name_raises_service_exists_and_keeps_the_first(
    storage: Storage,
) -> None:
    first = service("web")
    storage.create_service(first)

    with pytest.raises(errors.ServiceExists, match="web"):
        storage.create_service(service("web", data={"other": 1}))

    assert storage.list_services() == [first]


def test_a_reused_request_id_raises_service_exists(storage: Storage) -> None:
    storage.create_service(service("web", request_id="req-1"))

    with pytest.raises(errors.ServiceExists, match="req-1"):
        storage.create_service(service("db", request_id="req-1"))

    assert [s.name for s in storage.list_services()] == ["web"]


def test_services_without_request_id_do_not_collide(storage: Storage) -> None:
    storage.create_service(service("web"))
    storage.create_service(service("db"))

    assert len(storage.list_services()) == 2


def test_service_by_request_id_finds_only_that_service(storage: Storage) -> None:
    web = service("web", request_id="req-web")
    storage.create_service(web)
    storage.create_service(service("db"))

    assert storage.service_by_request_id("req-web") == web
    assert storage.service_by_request_id("req-other") is None
    assert storage.service_by_request_id("") is None


def test_save_service_replaces_data_and_state(storage: Storage) -> None:
    storage.create_service(service("web", data={"a": 1}, state={"s": 1}))

    storage.save_service("web", {"b": 2}, {"t": 2})

    [saved] = storage.list_services()
    assert (saved.data, saved.state) == ({"b": 2}, {"t": 2})


def test_save_service_of_an_unknown_service_raises_not_found(
    storage: Storage,
) -> None:
    with pytest.raises(errors.ServiceNotFound):
        storage.save_service("ghost", {}, {})


def test_delete_service_removes_it_and_all_its_tasks(storage: Storage) -> None:
    for name in ["web", "db"]:
        storage.create_service(service(name))
    web_tasks = add_tasks(storage, "web", 3)
    storage.finish_task(finished(web_tasks[0]))
    db_tasks = add_tasks(storage, "db", 1)

    assert storage.delete_service("web") is True

    assert [s.name for s in storage.list_services()] == ["db"]
    assert storage.list_tasks("web", 10) == []
    assert storage.get_task("web", web_tasks[0].id) is None
    assert ids(storage.unfinished_tasks()) == ids(db_tasks)


def test_delete_service_of_an_unknown_service_returns_false(
    storage: Storage,
) -> None:
    assert storage.delete_service("ghost") is False


def test_a_deleted_name_can_be_created_again_without_old_tasks(
    storage: Storage,
) -> None:
    storage.create_service(service("web"))
    add_tasks(storage, "web", 2)
    storage.delete_service("web")

    storage.create_service(service("web"))

    assert storage.list_tasks("web", 10) == []


# -- the task journal ---------------------------------------------------------


def test_add_task_assigns_increasing_seq_across_services(storage: Storage) -> None:
    for name in ["web", "db"]:
        storage.create_service(service(name))

    records = [task("web"), task("db"), task("web")]
    for record in records:
        storage.add_task(record)

    seqs = [record.seq for record in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] > 0


def test_a_journaled_task_comes_back_with_all_its_fields(storage: Storage) -> None:
    storage.create_service(service("web"))
    record = task(
        "web",
        args={"url": "https://x.example", "n": [1, {"k": None}]},
        priority=-5,
        deadline=1_800_000_000.5,
        call_chain=["robot-a/db", "robot-b/web"],
        request_id="req-7",
    )

    storage.add_task(record)

    assert storage.get_task("web", record.id) == record


def test_add_task_for_an_unknown_service_raises_not_found(storage: Storage) -> None:
    with pytest.raises(errors.ServiceNotFound):
        storage.add_task(task("ghost"))

    assert storage.unfinished_tasks() == []


def test_a_journaled_task_id_cannot_be_added_again(storage: Storage) -> None:
    for name in ["web", "db"]:
        storage.create_service(service(name))
    [record] = add_tasks(storage, "web", 1)

    with pytest.raises(errors.StorageError):
        storage.add_task(task("db", id=record.id))

    assert ids(storage.unfinished_tasks()) == [record.id]


def test_a_request_id_is_journaled_once_per_service(storage: Storage) -> None:
    storage.create_service(service("web"))
    first = task("web", request_id="req-1")
    storage.add_task(first)

    with pytest.raises(errors.StorageError):
        storage.add_task(task("web", request_id="req-1"))

    assert ids(storage.unfinished_tasks()) == [first.id]


def test_get_task_is_scoped_to_its_service(storage: Storage) -> None:
    for name in ["web", "db"]:
        storage.create_service(service(name))
    [record] = add_tasks(storage, "web", 1)

    assert storage.get_task("db", record.id) is None
    assert storage.get_task("web", "no-such-id") is None


def test_task_by_request_id_is_scoped_to_its_service(storage: Storage) -> None:
    for name in ["web", "db"]:
        storage.create_service(service(name))
    web_task = task("web", request_id="req-1")
    db_task = task("db", request_id="req-1")
    storage.add_task(web_task)
    storage.add_task(db_task)

    assert storage.task_by_request_id("web", "req-1") == web_task
    assert storage.task_by_request_id("db", "req-1") == db_task
    assert storage.task_by_request_id("web", "req-2") is None
    assert storage.task_by_request_id("web", "") is None


def test_start_task_marks_it_running_with_its_start_time(storage: Storage) -> None:
    storage.create_service(service("web"))
    [record] = add_tasks(storage, "web", 1)

    storage.start_task(record.id, 1_750_000_000.25)

    started = storage.get_task("web", record.id)
    assert started is not None
    assert (started.state, started.start_time) == (TaskState.RUNNING, 1_750_000_000.25)


def test_start_task_of_an_unknown_task_raises_not_found(storage: Storage) -> None:
    with pytest.raises(errors.TaskNotFound):
        storage.start_task("no-such-id", 1.0)


@pytest.mark.parametrize("state", [TaskState.OK, TaskState.ERROR, TaskState.CANCELLED])
def test_finish_task_writes_state_result_error_and_times(
    storage: Storage, state: TaskState
) -> None:
    storage.create_service(service("web"))
    [record] = add_tasks(storage, "web", 1)
    storage.start_task(record.id, 1.0)
    finished(record, state)
    if state is TaskState.ERROR:
        record.error = {"type": "ValueError", "message": "bad", "traceback": "..."}

    storage.finish_task(record)

    assert storage.get_task("web", record.id) == record
    assert storage.unfinished_tasks() == []


def test_finish_task_without_data_leaves_the_service_alone(storage: Storage) -> None:
    web = service("web", data={"a": 1}, state={"s": 1})
    storage.create_service(web)
    [record] = add_tasks(storage, "web", 1)

    storage.finish_task(finished(record))

    assert storage.list_services() == [web]


def test_finish_task_with_data_and_state_saves_the_service_too(
    storage: Storage,
) -> None:
    storage.create_service(service("web", data={"a": 1}, state={"s": 1}))
    [record] = add_tasks(storage, "web", 1)

    storage.finish_task(finished(record), data={"a": 2}, state={"s": 2})

    [saved] = storage.list_services()
    assert (saved.data, saved.state) == ({"a": 2}, {"s": 2})


def test_finish_task_with_only_state_keeps_the_data(storage: Storage) -> None:
    storage.create_service(service("web", data={"a": 1}, state={"s": 1}))
    [record] = add_tasks(storage, "web", 1)

    storage.finish_task(finished(record), state={"s": 2})

    [saved] = storage.list_services()
    assert (saved.data, saved.state) == ({"a": 1}, {"s": 2})


def test_finish_task_with_only_data_keeps_the_state(storage: Storage) -> None:
    storage.create_service(service("web", data={"a": 1}, state={"s": 1}))
    [record] = add_tasks(storage, "web", 1)

    storage.finish_task(finished(record), data={"a": 2})

    [saved] = storage.list_services()
    assert (saved.data, saved.state) == ({"a": 2}, {"s": 1})


def test_finish_task_keeps_the_fields_it_does_not_write(storage: Storage) -> None:
    storage.create_service(service("web"))
    [record] = add_tasks(storage, "web", 1)
    journaled = storage.get_task("web", record.id)
    changed = finished(task("web", id=record.id, action="other", args={}))

    storage.finish_task(changed)

    stored = storage.get_task("web", record.id)
    assert stored is not None and journaled is not None
    assert (stored.action, stored.args, stored.seq) == (
        journaled.action,
        journaled.args,
        journaled.seq,
    )
    assert (stored.state, stored.result, stored.end_time) == (
        changed.state,
        changed.result,
        changed.end_time,
    )


def test_finish_task_of_an_unknown_service_raises_not_found(
    storage: Storage,
) -> None:
    with pytest.raises(errors.ServiceNotFound):
        storage.finish_task(finished(task("ghost")), data={"a": 2})


def test_finish_task_of_another_services_task_raises_not_found(
    storage: Storage,
) -> None:
    for name in ["web", "db"]:
        storage.create_service(service(name))
    [record] = add_tasks(storage, "web", 1)
    record.service = "db"

    with pytest.raises(errors.TaskNotFound):
        storage.finish_task(finished(record))

    assert ids(storage.unfinished_tasks()) == [record.id]


def test_finish_task_of_an_unknown_task_writes_no_service_data(
    storage: Storage,
) -> None:
    storage.create_service(service("web", data={"a": 1}))
    stray = finished(task("web"))

    with pytest.raises(errors.TaskNotFound):
        storage.finish_task(stray, data={"a": 2}, state={"s": 2})

    [saved] = storage.list_services()
    assert (saved.data, saved.state) == ({"a": 1}, {})


def test_finish_task_refuses_a_state_that_is_not_final(storage: Storage) -> None:
    storage.create_service(service("web"))
    [record] = add_tasks(storage, "web", 1)
    record.state = TaskState.RUNNING

    with pytest.raises(ValueError, match="not final"):
        storage.finish_task(record, data={"a": 2})

    assert storage.unfinished_tasks()[0].state is TaskState.NEW
    assert storage.list_services()[0].data == service().data


def test_unfinished_tasks_are_new_and_running_ones_in_seq_order(
    storage: Storage,
) -> None:
    for name in ["web", "db"]:
        storage.create_service(service(name))
    records = [task("web"), task("db"), task("web"), task("db"), task("web")]
    for record in records:
        storage.add_task(record)
    storage.start_task(records[1].id, 5.0)
    storage.finish_task(finished(records[2]))
    storage.finish_task(finished(records[3], TaskState.CANCELLED))

    unfinished = storage.unfinished_tasks()

    assert ids(unfinished) == ids([records[0], records[1], records[4]])
    assert [t.state for t in unfinished] == [
        TaskState.NEW,
        TaskState.RUNNING,
        TaskState.NEW,
    ]


# -- history ------------------------------------------------------------------


def test_list_tasks_is_newest_first_and_pages_with_before_seq(
    storage: Storage,
) -> None:
    storage.create_service(service("web"))
    records = add_tasks(storage, "web", 7)
    for record in records[:4]:
        storage.finish_task(finished(record))

    pages = [storage.list_tasks("web", 3)]
    while pages[-1]:
        pages.append(storage.list_tasks("web", 3, before_seq=pages[-1][-1].seq))

    assert [len(page) for page in pages] == [3, 3, 1, 0]
    assert ids([t for page in pages for t in page]) == ids(records[::-1])


def test_list_tasks_with_a_limit_below_one_is_empty(storage: Storage) -> None:
    storage.create_service(service("web"))
    add_tasks(storage, "web", 2)

    assert storage.list_tasks("web", 0) == []
    assert storage.list_tasks("web", -1) == []


def test_list_tasks_shows_only_that_services_tasks(storage: Storage) -> None:
    for name in ["web", "db"]:
        storage.create_service(service(name))
    web_tasks = add_tasks(storage, "web", 2)
    add_tasks(storage, "db", 2)

    assert ids(storage.list_tasks("web", 10)) == ids(web_tasks[::-1])
    assert storage.list_tasks("ghost", 10) == []


def test_history_keeps_exactly_the_newest_finished_tasks_up_to_the_limit(
    open_storage: Opener,
) -> None:
    storage = open_storage(history_limit=3)
    storage.create_service(service("web"))
    records = add_tasks(storage, "web", 6)

    for record in records:
        storage.finish_task(finished(record))

    assert ids(storage.list_tasks("web", 10)) == ids(records[:2:-1])
    assert storage.get_task("web", records[0].id) is None


def test_trimming_never_drops_unfinished_tasks(open_storage: Opener) -> None:
    storage = open_storage(history_limit=2)
    storage.create_service(service("web"))
    records = add_tasks(storage, "web", 8)
    storage.start_task(records[1].id, 1.0)
    done = [r for i, r in enumerate(records) if i not in (0, 1)]

    for record in done:
        storage.finish_task(finished(record))

    kept = storage.list_tasks("web", 10)
    assert ids(kept) == ids([done[-1], done[-2], records[1], records[0]])
    assert ids(storage.unfinished_tasks()) == ids(records[:2])


def test_trimming_one_service_leaves_other_services_history_alone(
    open_storage: Opener,
) -> None:
    storage = open_storage(history_limit=2)
    for name in ["web", "db"]:
        storage.create_service(service(name))
    db_tasks = add_tasks(storage, "db", 2)
    for record in db_tasks:
        storage.finish_task(finished(record))

    for record in add_tasks(storage, "web", 5):
        storage.finish_task(finished(record))

    assert ids(storage.list_tasks("db", 10)) == ids(db_tasks[::-1])


def test_finishing_a_task_twice_counts_it_once_in_the_history(
    open_storage: Opener,
) -> None:
    storage = open_storage(history_limit=2)
    storage.create_service(service("web"))
    records = add_tasks(storage, "web", 3)
    for record in [records[0], records[1], records[1]]:
        storage.finish_task(finished(record))

    assert ids(storage.list_tasks("web", 10)) == ids(records[::-1])


def test_a_finished_task_started_again_leaves_the_history_count(
    open_storage: Opener,
) -> None:
    storage = open_storage(history_limit=2)
    storage.create_service(service("web"))
    records = add_tasks(storage, "web", 3)
    for record in records[:2]:
        storage.finish_task(finished(record))

    storage.start_task(records[0].id, 1.0)
    storage.finish_task(finished(records[2]))

    assert ids(storage.list_tasks("web", 10)) == ids(records[::-1])
    assert ids(storage.unfinished_tasks()) == [records[0].id]


def test_a_recreated_service_starts_its_history_afresh(open_storage: Opener) -> None:
    storage = open_storage(history_limit=2)
    storage.create_service(service("web"))
    for record in add_tasks(storage, "web", 2):
        storage.finish_task(finished(record))
    storage.delete_service("web")
    storage.create_service(service("web"))

    [record] = add_tasks(storage, "web", 1)
    storage.finish_task(finished(record))

    assert ids(storage.list_tasks("web", 10)) == [record.id]


def test_a_zero_history_limit_keeps_no_finished_task(open_storage: Opener) -> None:
    storage = open_storage(history_limit=0)
    storage.create_service(service("web"))
    records = add_tasks(storage, "web", 2)

    storage.finish_task(finished(records[0]))

    assert ids(storage.list_tasks("web", 10)) == [records[1].id]


# -- request ids --------------------------------------------------------------


def test_a_remembered_response_is_recalled_by_request_id_and_method(
    storage: Storage,
) -> None:
    storage.remember_request("req-1", "CreateService", b"\x00\x01first\xff")
    storage.remember_request("req-1", "ScheduleAction", b"other")

    assert storage.recall_request("req-1", "CreateService") == b"\x00\x01first\xff"
    assert storage.recall_request("req-1", "ScheduleAction") == b"other"
    assert storage.recall_request("req-1", "DeleteService") is None
    assert storage.recall_request("req-2", "CreateService") is None


def test_remembering_a_request_twice_keeps_the_first_response(
    storage: Storage,
) -> None:
    storage.remember_request("req-1", "CreateService", b"first")
    storage.remember_request("req-1", "CreateService", b"second")

    assert storage.recall_request("req-1", "CreateService") == b"first"
