"""Export and import of a robot's services as YAML: zrobot.transfer and `zrobot data`.

Stores are built offline with SqliteStorage, as export and import read them.
The command runs as a subprocess; real robots show that an imported data dir
brings its services back, and that a running robot's dir is refused.
"""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import pytest
import yaml

from zrobot import errors, transfer
from zrobot.cli import ExitCode
from zrobot.states import TaskState
from zrobot.storage import DataDirLock, ServiceRecord, SqliteStorage, TaskRecord
from zrobot.testing import RobotProcess

RECORDER_UID = "local/acme/kit/recorder/1.0.0"
SERVICES = {
    "alpha": (RECORDER_UID, {"url": "http://example.invalid", "tries": 3}, {}),
    "beta": (RECORDER_UID, {}, {"seen": ["one", "two"], "note": "ünïcode"}),
}
GOOD = {
    "name": "gamma",
    "template_uid": RECORDER_UID,
    "data": {"n": 1},
    "state": {"seen": []},
}


def fill(data_dir: pathlib.Path, services: dict[str, tuple[str, dict, dict]]) -> None:
    """Create a robot store in data_dir holding services (name -> uid, data, state)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    storage = SqliteStorage(data_dir / transfer.STORE_NAME)
    try:
        for name, (uid, data, state) in services.items():
            storage.create_service(ServiceRecord(name, uid, data, state, 1.0))
    finally:
        storage.close()


def stored(data_dir: pathlib.Path) -> dict[str, tuple[str, dict, dict]]:
    """The services of data_dir's store as name -> (uid, data, state)."""
    storage = SqliteStorage(data_dir / transfer.STORE_NAME)
    try:
        return {
            r.name: (r.template_uid, r.data, r.state) for r in storage.list_services()
        }
    finally:
        storage.close()


def zrobot(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m zrobot ARGS`; blocks until it exits."""
    return subprocess.run(
        [sys.executable, "-m", "zrobot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(done: subprocess.CompletedProcess[str], code: ExitCode) -> str:
    """Assert the command exited with code and said why in one stderr line."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("zrobot: "), done.stderr
    return lines[0]


@pytest.fixture
def source(tmp_path: pathlib.Path) -> pathlib.Path:
    """A stopped robot's data dir holding SERVICES."""
    fill(tmp_path / "source", SERVICES)
    return tmp_path / "source"


# -- the library ----------------------------------------------------------------


def test_export_gives_every_service_by_name_with_only_its_fields(source):
    with transfer.lock_data_dir(source), transfer.open_store(source) as storage:
        docs = transfer.export_services(storage)
    assert [doc["name"] for doc in docs] == ["alpha", "beta"]
    assert all(sorted(doc) == list(transfer.SERVICE_KEYS) for doc in docs)
    assert docs[1]["state"] == SERVICES["beta"][2]


def test_a_directory_holds_one_sorted_yaml_file_per_service(source, tmp_path):
    dest = tmp_path / "out" / "services"
    names = transfer.export_data_dir(source, str(dest), io.StringIO())
    assert names == ["alpha", "beta"]
    assert sorted(p.name for p in dest.iterdir()) == ["alpha.yaml", "beta.yaml"]
    text = (dest / "beta.yaml").read_text(encoding="utf-8")
    keys = [line.split(":")[0] for line in text.splitlines() if line[0] != " "]
    assert keys == ["data", "name", "state", "template_uid"]
    assert "ünïcode" in text
    assert yaml.safe_load(text)["state"] == SERVICES["beta"][2]


def test_a_directory_round_trip_brings_every_service_back(source, tmp_path):
    transfer.export_data_dir(source, str(tmp_path / "dump"), io.StringIO())
    transfer.import_data_dir(tmp_path / "target", str(tmp_path / "dump"), io.StringIO())
    assert stored(tmp_path / "target") == SERVICES


def test_a_stream_round_trip_brings_every_service_back(source, tmp_path):
    stream = io.StringIO()
    transfer.export_data_dir(source, "-", stream)
    assert [d["name"] for d in yaml.safe_load_all(stream.getvalue())] == [
        "alpha",
        "beta",
    ]
    names = transfer.import_data_dir(
        tmp_path / "target", "-", io.StringIO(stream.getvalue())
    )
    assert names == ["alpha", "beta"]
    assert stored(tmp_path / "target") == SERVICES


def test_export_of_an_empty_store_writes_an_empty_stream(tmp_path):
    fill(tmp_path / "empty", {})
    stream = io.StringIO()
    assert transfer.export_data_dir(tmp_path / "empty", "-", stream) == []
    assert list(yaml.safe_load_all(stream.getvalue())) == []


def test_re_export_overwrites_files_and_leaves_other_files_alone(source, tmp_path):
    dest = tmp_path / "repo"
    dest.mkdir()
    (dest / "README.md").write_text("services of the robot\n")
    (dest / "alpha.yaml").write_text("old: content\n")
    transfer.export_data_dir(source, str(dest), io.StringIO())
    assert (dest / "README.md").read_text() == "services of the robot\n"
    assert yaml.safe_load((dest / "alpha.yaml").read_text())["name"] == "alpha"
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


def test_import_refuses_a_stored_name_and_writes_nothing(source):
    docs = [transfer.Document("new", GOOD), transfer.Document("old", dict(GOOD))]
    docs[1].content["name"] = "alpha"
    with transfer.lock_data_dir(source), transfer.open_store(source) as storage:
        with pytest.raises(errors.ServiceExists, match="'alpha'.*--replace"):
            transfer.import_services(storage, docs)
    assert stored(source) == SERVICES


def test_replace_makes_the_stored_service_what_the_document_says(source):
    doc = {**GOOD, "name": "alpha", "template_uid": "h/o/r/other/2.0.0"}
    with transfer.lock_data_dir(source), transfer.open_store(source) as storage:
        storage.add_task(_task("alpha"))
        transfer.import_services(storage, [transfer.Document("d", doc)], replace=True)
        assert storage.list_tasks("alpha", 10) == []
    after = stored(source)
    assert after["alpha"] == ("h/o/r/other/2.0.0", {"n": 1}, {"seen": []})
    assert after["beta"] == SERVICES["beta"]


def _task(service: str) -> TaskRecord:
    return TaskRecord("t1", service, "echo", {}, 0, TaskState.NEW, 1.0)


GOOD_YAML = yaml.safe_dump(GOOD)

BAD_FILES = {
    "a missing field": ("name: x\ntemplate_uid: a/b/c/d/e\ndata: {}\n", "state"),
    "an unknown field": (GOOD_YAML.replace("state:", "sate:"), "sate"),
    "an invalid name": (GOOD_YAML.replace("gamma", "'no/slash'"), "name"),
    "a name not a string": (GOOD_YAML.replace("gamma", "42"), "name"),
    "a short uid": (GOOD_YAML.replace(RECORDER_UID, "a/b/c/d"), "template_uid"),
    "an empty uid part": (GOOD_YAML.replace(RECORDER_UID, "a//c/d/e"), "template_uid"),
    "data not a mapping": (GOOD_YAML.replace("n: 1", "- 1"), "data"),
    "state a string": (GOOD_YAML.replace("seen: []", "x"), "state"),
    "a date in data": (GOOD_YAML.replace("n: 1", "n: 2024-01-31"), "data.n"),
    "a number as a key": (GOOD_YAML.replace("n: 1", "1: one"), "data"),
    "a NaN in data": (GOOD_YAML.replace("n: 1", "n: .nan"), "data.n"),
    "a list document": ("- name: gamma\n", "document"),
    "an empty file": ("", "0 YAML documents"),
    "two documents": (f"---\n{GOOD_YAML}---\n{GOOD_YAML}", "2 YAML documents"),
    "broken YAML": ("name: [gamma\n", "line"),
    "a name used twice": (GOOD_YAML, "taken by an earlier document"),
}


@pytest.mark.parametrize(("text", "says"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_document_imports_nothing_and_names_file_and_field(
    source, tmp_path, text, says
):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a-good.yaml").write_text(GOOD_YAML)
    (folder / "b-bad.yaml").write_text(text)
    with pytest.raises(transfer.InvalidDocument) as caught:
        transfer.import_data_dir(source, str(folder), io.StringIO(), replace=True)
    assert str(folder / "b-bad.yaml") in caught.value.message
    assert says in caught.value.message
    assert "\n" not in caught.value.message
    assert stored(source) == SERVICES


def test_a_bad_document_in_a_stream_is_named_by_its_number(source):
    stream = io.StringIO(yaml.safe_dump_all([GOOD, {**GOOD, "name": "delta", "x": 1}]))
    with pytest.raises(transfer.InvalidDocument, match="<stdin> document 2: x is"):
        transfer.import_data_dir(source, "-", stream)
    assert stored(source) == SERVICES


def test_every_problem_is_listed_as_a_violation():
    doc = transfer.Document("doc", {"name": "bad name", "data": [], "state": {}})
    with pytest.raises(transfer.InvalidDocument, match="more problems") as caught:
        transfer.check_documents([doc])
    fields = [field for field, _ in caught.value.violations]
    assert fields == ["doc: template_uid", "doc: name", "doc: data"]


def test_files_other_than_yaml_are_ignored(tmp_path):
    (tmp_path / "notes.txt").write_text("not a service")
    (tmp_path / "gamma.yaml").write_text(GOOD_YAML)
    docs = transfer.read_directory(tmp_path)
    assert [doc.content["name"] for doc in docs] == ["gamma"]


def test_a_missing_source_directory_is_path_not_found(source, tmp_path):
    with pytest.raises(transfer.PathNotFound, match="is not a directory"):
        transfer.import_data_dir(source, str(tmp_path / "nowhere"), io.StringIO())


def test_export_of_a_dir_without_a_store_creates_nothing(tmp_path):
    with pytest.raises(transfer.PathNotFound, match="no robot store"):
        transfer.export_data_dir(tmp_path / "nothing", "-", io.StringIO())
    assert not (tmp_path / "nothing").exists()


def test_a_held_data_dir_is_refused_at_once(source):
    with DataDirLock(source):
        with pytest.raises(errors.DataDirInUse, match=f"PID {os.getpid()}"):
            transfer.export_data_dir(source, "-", io.StringIO())
        with pytest.raises(errors.DataDirInUse):
            transfer.import_data_dir(source, "-", io.StringIO(GOOD_YAML))
    assert stored(source) == SERVICES


# -- the command ----------------------------------------------------------------


def test_the_command_round_trips_through_a_directory(source, tmp_path):
    dest, target = tmp_path / "dump", tmp_path / "target"
    exported = zrobot("data", "export", str(dest), "--data-dir", str(source))
    assert exported.returncode == ExitCode.OK, exported.stderr
    assert exported.stdout.strip() == f"exported 2 services to {dest}"
    imported = zrobot("data", "import", str(dest), "--data-dir", str(target))
    assert imported.returncode == ExitCode.OK, imported.stderr
    assert imported.stdout.strip() == f"imported 2 services into {target}"
    assert stored(target) == SERVICES


def test_the_command_round_trips_through_stdout_and_stdin(source, tmp_path):
    exported = zrobot("data", "export", "-", "--data-dir", str(source))
    assert exported.returncode == ExitCode.OK, exported.stderr
    assert len(list(yaml.safe_load_all(exported.stdout))) == 2
    target = tmp_path / "target"
    imported = zrobot(
        "data", "import", "-", "--data-dir", str(target), stdin=exported.stdout
    )
    assert imported.returncode == ExitCode.OK, imported.stderr
    assert stored(target) == SERVICES


def test_the_command_replaces_only_when_asked(source):
    doc = yaml.safe_dump({**GOOD, "name": "alpha"})
    refused = zrobot("data", "import", "-", "--data-dir", str(source), stdin=doc)
    assert "--replace" in one_line(refused, ExitCode.CONFLICT)
    assert stored(source) == SERVICES
    args = ["data", "import", "-", "--data-dir", str(source), "--replace"]
    replaced = zrobot(*args, stdin=doc)
    assert replaced.returncode == ExitCode.OK, replaced.stderr
    assert stored(source)["alpha"] == (RECORDER_UID, {"n": 1}, {"seen": []})


def test_the_command_reports_a_bad_document_as_usage(source):
    doc = yaml.safe_dump({**GOOD, "data": [1]})
    done = zrobot("data", "import", "-", "--data-dir", str(source), stdin=doc)
    line = one_line(done, ExitCode.USAGE)
    assert "<stdin> document 1: data must be a mapping" in line
    assert stored(source) == SERVICES


def test_the_command_reports_a_missing_store_as_not_found(tmp_path):
    done = zrobot("data", "export", "-", "--data-dir", str(tmp_path / "none"))
    assert "no robot store" in one_line(done, ExitCode.NOT_FOUND)
    assert done.stdout == ""


# -- with real robots ---------------------------------------------------------------


def test_services_move_from_one_real_robot_to_another(
    robot_process: Callable[..., RobotProcess], kit_repo: str, tmp_path: pathlib.Path
):
    first = robot_process("a", repos=[kit_repo])
    with first.client() as client:
        client.services.create("recorder", "alpha", {"k": "v"})
        beta = client.services.create("recorder", "beta")
        assert beta.schedule_action("record", {"label": "earlier"}).wait(30) == 1
    assert first.stop() == 0

    exported = zrobot("data", "export", "-", "--data-dir", str(first.data_dir))
    assert exported.returncode == ExitCode.OK, exported.stderr
    args = ["data", "import", "-", "--data-dir", str(tmp_path / "b")]
    imported = zrobot(*args, stdin=exported.stdout)
    assert imported.returncode == ExitCode.OK, imported.stderr

    second = robot_process("b", repos=[kit_repo])
    with second.client() as client:
        records = {r.name: r for r in client.services.list()}
        assert sorted(records) == ["alpha", "beta"]
        assert records["alpha"].data == {"k": "v"}
        assert records["beta"].state == {"seen": ["earlier"]}
        task = client.services.get("beta").schedule_action("record", {"label": "now"})
        assert task.wait(30) == 2
        assert client.services.get("beta").record.state == {"seen": ["earlier", "now"]}


def test_a_running_robot_makes_export_and_import_fail_at_once(
    robot_process: Callable[..., RobotProcess], kit_repo: str, tmp_path: pathlib.Path
):
    robot = robot_process("held", repos=[kit_repo])
    with robot.client() as client:
        client.services.create("recorder", "kept", {"n": 1})
    assert robot.proc is not None
    held = str(robot.data_dir)

    dest = tmp_path / "dump"
    exported = zrobot("data", "export", str(dest), "--data-dir", held)
    line = one_line(exported, ExitCode.CONFLICT)
    assert f"PID {robot.proc.pid}" in line and "DATA_DIR_IN_USE" in line
    assert not dest.exists()
    imported = zrobot("data", "import", "-", "--data-dir", held, stdin=GOOD_YAML)
    assert f"PID {robot.proc.pid}" in one_line(imported, ExitCode.CONFLICT)

    assert robot.stop() == 0
    assert list(stored(robot.data_dir)) == ["kept"]
