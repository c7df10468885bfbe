"""The example template repo: each template on real files, and its publishing tool.

Modules are imported by file path, as a robot would find them in a clone.
The FolderReport tests stand a small synchronous fake in for `api` (the real
mesh between services is tested elsewhere); everything else is the real
template working on files in tmp_path.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import inspect
import io
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile
from types import ModuleType
from typing import Any

import pytest

from zrobot.errors import ActionFailed
from zrobot.template import Template, actions_of, template_name_of
from zrobot.testing import git

PROJECT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATES = PROJECT / "examples" / "templates"
TOOL = PROJECT / "tools" / "example_repo.py"
MODULES = ("file_hash", "word_count", "archive", "report")

TEXT_A = "The quick brown fox.\nThe lazy dog.\n"
TEXT_B = "Don't panic, don't.\n"


def load(name: str, folder: pathlib.Path = TEMPLATES) -> ModuleType:
    """Import one template module from its file, under a name of its own."""
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", folder / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


file_hash = load("file_hash")
word_count = load("word_count")
archive = load("archive")
report = load("report")


def templates_in(module: ModuleType) -> list[type[Template]]:
    """Return the Template subclasses a module defines itself, as a robot would."""
    return [
        member
        for member in vars(module).values()
        if inspect.isclass(member)
        and issubclass(member, Template)
        and member.__module__ == module.__name__
    ]


@pytest.fixture
def docs(tmp_path: pathlib.Path) -> pathlib.Path:
    """A folder with two text files, one of them in a sub-folder."""
    root = tmp_path / "docs"
    (root / "notes").mkdir(parents=True)
    (root / "a.txt").write_text(TEXT_A)
    (root / "notes" / "b.txt").write_text(TEXT_B)
    return root


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the repo as a whole ---------------------------------------------------


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("file_hash", "file_hasher"),
        ("word_count", "word_counter"),
        ("archive", "archiver"),
        ("report", "folder_report"),
    ],
)
def test_each_module_defines_one_versioned_template(module: str, expected: str):
    (cls,) = templates_in(load(module))
    assert template_name_of(cls) == expected
    assert cls.version == "1.0.0"
    assert inspect.getdoc(cls)


@pytest.mark.parametrize("module", MODULES)
def test_every_action_is_documented_and_fully_typed(module: str):
    (cls,) = templates_in(load(module))
    actions = actions_of(cls)
    assert actions
    for name, spec in actions.items():
        assert spec.doc, f"{name} has no docstring"
        assert all(p.type != "any" for p in spec.parameters), name


@pytest.mark.parametrize("module", MODULES)
def test_validate_refuses_a_missing_root(tmp_path: pathlib.Path, module: str):
    (cls,) = templates_in(load(module))
    data = {
        "root": str(tmp_path / "nowhere"),
        "out_dir": str(tmp_path / "out"),
        "hasher": "hasher",
        "counter": "counter",
    }
    with pytest.raises(ValueError, match="not an existing directory"):
        cls("svc", data).validate()


@pytest.mark.parametrize("module", MODULES)
def test_validate_refuses_a_root_that_is_a_file(tmp_path: pathlib.Path, module: str):
    (cls,) = templates_in(load(module))
    (tmp_path / "file").write_text("x")
    data = {
        "root": str(tmp_path / "file"),
        "out_dir": str(tmp_path / "out"),
        "hasher": "hasher",
        "counter": "counter",
    }
    with pytest.raises(ValueError, match="not an existing directory"):
        cls("svc", data).validate()


@pytest.mark.parametrize("module", MODULES)
def test_validate_refuses_a_root_that_is_not_a_string(module: str):
    (cls,) = templates_in(load(module))
    data = {"root": 42, "out_dir": "out", "hasher": "h", "counter": "c"}
    with pytest.raises(TypeError, match="root"):
        cls("svc", data).validate()


# --- file_hasher -----------------------------------------------------------


def hasher(root: pathlib.Path) -> Any:
    service = file_hash.FileHasher("hasher", {"root": str(root)})
    service.validate()
    return service


def test_hash_file_returns_the_sha256_digest_and_size(docs: pathlib.Path):
    result = hasher(docs).hash_file("a.txt")
    assert result == {
        "path": "a.txt",
        "algorithm": "sha256",
        "digest": sha256(TEXT_A.encode()),
        "size": len(TEXT_A),
    }


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA512", "sha3_256", "blake2b"])
def test_hash_file_uses_the_algorithm_asked_for(docs: pathlib.Path, algorithm: str):
    result = hasher(docs).hash_file("notes/b.txt", algorithm)
    expected = hashlib.new(algorithm.lower(), TEXT_B.encode()).hexdigest()
    assert (result["algorithm"], result["digest"]) == (algorithm.lower(), expected)


def test_hash_file_reads_a_file_larger_than_one_chunk(docs: pathlib.Path):
    data = os.urandom(file_hash.CHUNK_BYTES * 2 + 12345)
    (docs / "big.bin").write_bytes(data)
    result = hasher(docs).hash_file("big.bin")
    assert (result["digest"], result["size"]) == (sha256(data), len(data))


def test_hash_file_accepts_an_absolute_path_inside_root(docs: pathlib.Path):
    result = hasher(docs).hash_file(str(docs / "notes" / "b.txt"))
    assert result["path"] == "notes/b.txt"


def test_hash_file_refuses_an_unknown_algorithm_listing_the_choices(
    docs: pathlib.Path,
):
    with pytest.raises(ValueError, match="unknown algorithm 'crc32'") as caught:
        hasher(docs).hash_file("a.txt", "crc32")
    assert "sha256" in str(caught.value) and "md5" in str(caught.value)


@pytest.mark.parametrize("path", ["../secret.txt", "notes/../../secret.txt", ".."])
def test_hash_file_refuses_a_path_with_dot_dot(docs: pathlib.Path, path: str):
    (docs.parent / "secret.txt").write_text("secret")
    with pytest.raises(ValueError, match="'..'"):
        hasher(docs).hash_file(path)


def test_hash_file_refuses_an_absolute_path_outside_root(docs: pathlib.Path):
    outside = docs.parent / "secret.txt"
    outside.write_text("secret")
    with pytest.raises(ValueError, match="outside root"):
        hasher(docs).hash_file(str(outside))


def test_hash_file_refuses_a_symlink_that_points_outside_root(docs: pathlib.Path):
    (docs.parent / "secret.txt").write_text("secret")
    (docs / "link.txt").symlink_to(docs.parent / "secret.txt")
    with pytest.raises(ValueError, match="outside root"):
        hasher(docs).hash_file("link.txt")


def test_hash_file_reports_a_missing_file_as_not_found(docs: pathlib.Path):
    with pytest.raises(FileNotFoundError, match="no file 'gone.txt'"):
        hasher(docs).hash_file("gone.txt")


def test_hash_file_refuses_a_directory(docs: pathlib.Path):
    with pytest.raises(ValueError, match="not a regular file"):
        hasher(docs).hash_file("notes")


def test_hash_tree_hashes_every_file_sorted_by_path(docs: pathlib.Path):
    (docs / "empty").mkdir()
    result = hasher(docs).hash_tree()
    assert result == {
        "files": {
            "a.txt": sha256(TEXT_A.encode()),
            "notes/b.txt": sha256(TEXT_B.encode()),
        },
        "count": 2,
    }
    assert list(result["files"]) == sorted(result["files"])


def test_hash_tree_keeps_only_files_matching_the_pattern(docs: pathlib.Path):
    (docs / "c.md").write_text("# title\n")
    assert list(hasher(docs).hash_tree("*.md")["files"]) == ["c.md"]


def test_hash_tree_skips_symlinks_that_point_outside_root(docs: pathlib.Path):
    (docs.parent / "secret.txt").write_text("secret")
    (docs / "link.txt").symlink_to(docs.parent / "secret.txt")
    assert "link.txt" not in hasher(docs).hash_tree()["files"]


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", ""])
def test_hash_tree_refuses_a_pattern_that_leaves_root(docs: pathlib.Path, pattern: str):
    with pytest.raises(ValueError, match="must be relative to root"):
        hasher(docs).hash_tree(pattern)


# --- word_counter ----------------------------------------------------------


def counter(root: pathlib.Path) -> Any:
    service = word_count.WordCounter("counter", {"root": str(root)})
    service.validate()
    return service


def test_count_file_counts_lines_words_and_characters(docs: pathlib.Path):
    result = counter(docs).count_file("a.txt")
    assert result == {"path": "a.txt", "lines": 2, "words": 7, "chars": len(TEXT_A)}


def test_count_file_counts_a_last_line_without_newline(docs: pathlib.Path):
    (docs / "c.txt").write_text("one two\nthree", encoding="utf-8")
    result = counter(docs).count_file("c.txt")
    assert (result["lines"], result["words"], result["chars"]) == (2, 3, 13)


def test_count_file_counts_characters_not_bytes(docs: pathlib.Path):
    (docs / "c.txt").write_text("héllo wörld\n", encoding="utf-8")
    result = counter(docs).count_file("c.txt")
    assert (result["words"], result["chars"]) == (2, 12)


def test_count_file_refuses_a_file_that_is_not_utf8(docs: pathlib.Path):
    (docs / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text"):
        counter(docs).count_file("latin1.txt")


def test_count_file_reports_a_missing_file_as_not_found(docs: pathlib.Path):
    with pytest.raises(FileNotFoundError, match="no file 'gone.txt'"):
        counter(docs).count_file("gone.txt")


def test_count_file_refuses_a_path_that_escapes_root(docs: pathlib.Path):
    with pytest.raises(ValueError, match="'..'"):
        counter(docs).count_file("../docs/a.txt")


def test_top_words_ranks_by_count_then_alphabetically(docs: pathlib.Path):
    (docs / "c.txt").write_text("b a c b\nA c d B\n")
    assert counter(docs).top_words("c.txt", 3) == [["b", 3], ["a", 2], ["c", 2]]


def test_top_words_keeps_apostrophes_inside_words_only(docs: pathlib.Path):
    (docs / "c.txt").write_text("'Quoted' DON'T don’t rock'n'roll snake_case 42\n")
    words = dict(counter(docs).top_words("c.txt", 10))
    assert words == {
        "quoted": 1,
        "don't": 1,
        "don’t": 1,
        "rock'n'roll": 1,
        "snake": 1,
        "case": 1,
        "42": 1,
    }


def test_top_words_defaults_to_ten_words(docs: pathlib.Path):
    (docs / "c.txt").write_text(" ".join(f"w{i}" for i in range(20)))
    assert len(counter(docs).top_words("c.txt")) == 10


@pytest.mark.parametrize("top", [0, -1, 1001, True])
def test_top_words_refuses_a_top_outside_1_to_1000(docs: pathlib.Path, top: Any):
    with pytest.raises(ValueError, match="top must be an integer from 1 to 1000"):
        counter(docs).top_words("a.txt", top)


def test_word_counter_state_counts_the_files_it_read(docs: pathlib.Path):
    service = counter(docs)
    service.count_file("a.txt")
    service.top_words("notes/b.txt")
    with pytest.raises(FileNotFoundError):
        service.count_file("gone.txt")
    assert service.state == {"files_counted": 2}


# --- archiver --------------------------------------------------------------


def archiver(root: pathlib.Path, out_dir: pathlib.Path) -> Any:
    service = archive.Archiver("archiver", {"root": str(root), "out_dir": str(out_dir)})
    service.validate()
    return service


def test_pack_writes_a_tar_gz_of_the_sorted_files_with_fixed_metadata(
    docs: pathlib.Path, tmp_path: pathlib.Path
):
    result = archiver(docs, tmp_path / "out").pack(".", "docs")
    path = tmp_path / "out" / "docs.tar.gz"
    assert result == {
        "archive": str(path),
        "size": path.stat().st_size,
        "members": 2,
        "sha256": sha256(path.read_bytes()),
    }
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["a.txt", "notes/b.txt"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {
            (archive.FIXED_MTIME, 0, 0, "", 0o644)
        }
        member = tar.extractfile("notes/b.txt")
        assert member is not None and member.read() == TEXT_B.encode()


def test_pack_gives_the_same_bytes_for_the_same_files(
    docs: pathlib.Path, tmp_path: pathlib.Path
):
    service = archiver(docs, tmp_path / "out")
    first = service.pack(".", "docs")
    os.utime(docs / "a.txt", (1_000_000, 1_000_000))
    second = service.pack(".", "docs")
    assert first == second


def test_pack_gives_other_bytes_when_a_file_changes(
    docs: pathlib.Path, tmp_path: pathlib.Path
):
    service = archiver(docs, tmp_path / "out")
    first = service.pack(".", "docs")
    (docs / "a.txt").write_text(TEXT_A + "more\n")
    assert service.pack(".", "docs")["sha256"] != first["sha256"]


def test_pack_leaves_out_the_out_dir_when_it_lies_under_root(docs: pathlib.Path):
    service = archiver(docs, docs / "dist")
    service.pack(".", "docs")
    result = service.pack(".", "docs")
    assert result["members"] == 2


def test_pack_writes_a_zip_with_fixed_dates(docs: pathlib.Path, tmp_path: pathlib.Path):
    result = archiver(docs, tmp_path / "out").pack("notes", "notes", "zip")
    with zipfile.ZipFile(result["archive"]) as packed:
        assert [(i.filename, i.date_time) for i in packed.infolist()] == [
            ("b.txt", archive.FIXED_DATE_TIME)
        ]
        assert packed.read("b.txt") == TEXT_B.encode()


def test_pack_writes_a_plain_tar_of_a_single_file(
    docs: pathlib.Path, tmp_path: pathlib.Path
):
    result = archiver(docs, tmp_path / "out").pack("notes/b.txt", "b.tar", "tar")
    assert result["archive"] == str(tmp_path / "out" / "b.tar")
    with tarfile.open(result["archive"], "r:") as tar:
        assert tar.getnames() == ["b.txt"]


def test_pack_keeps_a_fixed_gzip_header(docs: pathlib.Path, tmp_path: pathlib.Path):
    result = archiver(docs, tmp_path / "out").pack(".", "docs")
    with gzip.open(result["archive"]) as packed:
        packed.read()
        assert packed.mtime == 0


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../docs", "a/b", ".hidden", "x" * 200]
)
def test_pack_refuses_an_archive_name_that_is_not_a_plain_file_name(
    docs: pathlib.Path, tmp_path: pathlib.Path, name: str
):
    with pytest.raises(ValueError, match="must be a plain file name"):
        archiver(docs, tmp_path / "out").pack(".", name)


def test_pack_refuses_an_unknown_format(docs: pathlib.Path, tmp_path: pathlib.Path):
    with pytest.raises(ValueError, match="unknown format '7z'"):
        archiver(docs, tmp_path / "out").pack(".", "docs", "7z")


def test_pack_refuses_a_src_that_escapes_root(
    docs: pathlib.Path, tmp_path: pathlib.Path
):
    with pytest.raises(ValueError, match="'..'"):
        archiver(docs, tmp_path / "out").pack("..", "up")


def test_pack_reports_a_missing_src_as_not_found(
    docs: pathlib.Path, tmp_path: pathlib.Path
):
    with pytest.raises(FileNotFoundError, match="'gone'"):
        archiver(docs, tmp_path / "out").pack("gone", "gone")


def test_pack_leaves_no_half_archive_when_writing_fails(
    docs: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
):
    service = archiver(docs, tmp_path / "out")
    before = service.pack(".", "docs")

    def fail_midway(stream: io.BufferedWriter, members: Any) -> None:
        stream.write(b"half an archive")
        raise OSError("disk full")

    monkeypatch.setitem(archive.WRITERS, "tar.gz", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        service.pack(".", "docs")
    assert os.listdir(tmp_path / "out") == ["docs.tar.gz"]
    assert sha256((tmp_path / "out" / "docs.tar.gz").read_bytes()) == before["sha256"]


def test_archiver_validate_refuses_an_out_dir_that_is_a_file(
    docs: pathlib.Path, tmp_path: pathlib.Path
):
    (tmp_path / "out").write_text("x")
    with pytest.raises(ValueError, match="'out_dir'"):
        archiver(docs, tmp_path / "out")


# --- folder_report, with a synchronous stand-in for the mesh ----------------


class FakeTask:
    """A finished task: wait() logs the call and returns or raises at once."""

    def __init__(self, log: list[tuple[Any, ...]], key: str, outcome: Any) -> None:
        self.log, self.key, self.outcome = log, key, outcome

    def wait(self, timeout_s: float) -> Any:
        self.log.append(("wait", self.key, timeout_s))
        if isinstance(self.outcome, Exception):
            raise ActionFailed(str(self.outcome)) from self.outcome
        return self.outcome


class FakeProxy:
    """Runs an action of a real template instance as soon as it is scheduled."""

    def __init__(self, service: Template, log: list[tuple[Any, ...]]) -> None:
        self.service, self.log = service, log

    def schedule_action(
        self, action: str, args: dict[str, Any], priority: int = 0
    ) -> FakeTask:
        key = f"{self.service.name}.{action}({args['path']})"
        self.log.append(("schedule", key))
        try:
            outcome = getattr(self.service, action)(**args)
        except (ValueError, OSError) as err:
            outcome = err
        return FakeTask(self.log, key, outcome)


class FakeServices:
    """`api.services` of a robot that holds the given services."""

    def __init__(self, *services: Template) -> None:
        self.by_name = {service.name: service for service in services}
        self.log: list[tuple[Any, ...]] = []

    def get(self, name: str, robot: str | None = None) -> FakeProxy:
        self.log.append(("get", name, robot))
        return FakeProxy(self.by_name[name], self.log)


class FakeApi:
    def __init__(self, *services: Template) -> None:
        self.services = FakeServices(*services)


def folder_report(root: pathlib.Path, api: FakeApi, **data: Any) -> Any:
    data = {"hasher": "hasher", "counter": "counter", "root": str(root), **data}
    service = report.FolderReport("report", data, api=api)
    service.validate()
    return service


def test_summarize_combines_the_producers_results_per_file(docs: pathlib.Path):
    api = FakeApi(hasher(docs), counter(docs))
    result = folder_report(docs, api).summarize("**/*.txt")
    digests = [sha256(TEXT_A.encode()), sha256(TEXT_B.encode())]
    assert result["pattern"] == "**/*.txt"
    assert result["files"] == [
        {"path": "a.txt", "sha256": digests[0], "words": 7, "lines": 2, "size": 35},
        {
            "path": "notes/b.txt",
            "sha256": digests[1],
            "words": 3,
            "lines": 1,
            "size": 20,
        },
    ]
    assert result["totals"] == {"files": 2, "words": 10, "lines": 3, "size": 55}
    combined = sha256("\n".join(sorted(digests)).encode())
    assert result["combined_sha256"] == combined


def test_summarize_schedules_every_task_before_waiting_on_any(docs: pathlib.Path):
    api = FakeApi(hasher(docs), counter(docs))
    folder_report(docs, api).summarize("**/*.txt")
    kinds = [entry[0] for entry in api.services.log if entry[0] != "get"]
    assert kinds == ["schedule"] * 4 + ["wait"] * 4
    scheduled = {entry[1] for entry in api.services.log if entry[0] == "schedule"}
    assert scheduled == {
        "hasher.hash_file(a.txt)",
        "hasher.hash_file(notes/b.txt)",
        "counter.count_file(a.txt)",
        "counter.count_file(notes/b.txt)",
    }


def test_summarize_asks_the_producers_on_the_configured_robot(docs: pathlib.Path):
    api = FakeApi(hasher(docs), counter(docs))
    folder_report(docs, api, robot="peer").summarize()
    gets = [entry for entry in api.services.log if entry[0] == "get"]
    assert gets == [("get", "hasher", "peer"), ("get", "counter", "peer")]


def test_summarize_waits_no_longer_than_its_timeout_in_all(docs: pathlib.Path):
    api = FakeApi(hasher(docs), counter(docs))
    folder_report(docs, api, timeout_s=5).summarize("**/*.txt")
    budgets = [entry[2] for entry in api.services.log if entry[0] == "wait"]
    assert all(0 < budget <= 5 for budget in budgets)
    assert budgets == sorted(budgets, reverse=True)


def test_summarize_reports_the_totals_in_its_state(docs: pathlib.Path):
    api = FakeApi(hasher(docs), counter(docs))
    service = folder_report(docs, api)
    result = service.summarize()
    assert service.state["last_summary"] == {
        **result["totals"],
        "combined_sha256": result["combined_sha256"],
    }
    assert result["totals"]["files"] == 1


def test_summarize_of_no_files_is_an_empty_summary(docs: pathlib.Path):
    api = FakeApi(hasher(docs), counter(docs))
    result = folder_report(docs, api).summarize("*.none")
    assert result["files"] == [] and result["totals"]["files"] == 0
    assert result["combined_sha256"] == sha256(b"")


def test_summarize_fails_with_the_error_of_a_failing_producer(docs: pathlib.Path):
    (docs / "latin1.txt").write_bytes(b"caf\xe9\n")
    api = FakeApi(hasher(docs), counter(docs))
    with pytest.raises(ActionFailed, match="not UTF-8 text"):
        folder_report(docs, api).summarize()


def test_summarize_refuses_a_pattern_that_leaves_root(docs: pathlib.Path):
    api = FakeApi(hasher(docs), counter(docs))
    with pytest.raises(ValueError, match="must be relative to root"):
        folder_report(docs, api).summarize("../*.txt")
    assert api.services.log == []


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"hasher": ""}, TypeError),
        ({"counter": None}, TypeError),
        ({"robot": 7}, TypeError),
        ({"timeout_s": "soon"}, TypeError),
        ({"timeout_s": 0}, ValueError),
    ],
)
def test_folder_report_validate_refuses_bad_data(
    docs: pathlib.Path, data: dict[str, Any], error: type[Exception]
):
    with pytest.raises(error):
        folder_report(docs, FakeApi(), **data)


# --- tools/example_repo.py -------------------------------------------------


def publish(dest: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run the tool as `make run` does; blocks until it exits."""
    return subprocess.run(
        [sys.executable, str(TOOL), str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def commits(repo: pathlib.Path) -> list[str]:
    return git(repo, "log", "--format=%H").split()


def test_example_repo_publishes_the_templates_as_a_git_repo(tmp_path: pathlib.Path):
    dest = tmp_path / "repo"
    done = publish(dest)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest)
    assert git(dest, "branch", "--show-current").strip() == "main"
    assert git(dest, "ls-files").split() == [
        "README.md",
        "archive.py",
        "file_hash.py",
        "report.py",
        "word_count.py",
    ]
    assert len(commits(dest)) == 1


def test_example_repo_published_modules_load_as_templates(tmp_path: pathlib.Path):
    dest = tmp_path / "repo"
    assert publish(dest).returncode == 0
    names = {
        template_name_of(cls)
        for module in MODULES
        for cls in templates_in(load(module, dest))
    }
    assert names == {"file_hasher", "word_counter", "archiver", "folder_report"}


def test_example_repo_run_twice_adds_no_second_commit(tmp_path: pathlib.Path):
    dest = tmp_path / "repo"
    assert publish(dest).returncode == 0
    first = commits(dest)
    done = publish(dest)
    assert done.returncode == 0, done.stderr
    assert commits(dest) == first
    assert git(dest, "status", "--porcelain") == ""


def test_example_repo_restores_a_changed_copy_in_a_second_commit(
    tmp_path: pathlib.Path,
):
    dest = tmp_path / "repo"
    assert publish(dest).returncode == 0
    (dest / "report.py").write_text("broken\n")
    (dest / "stray.py").write_text("stray\n")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "tamper")
    assert publish(dest).returncode == 0
    assert len(commits(dest)) == 3
    assert not (dest / "stray.py").exists()
    assert (dest / "report.py").read_text() == (TEMPLATES / "report.py").read_text()
    assert git(dest, "status", "--porcelain") == ""


def test_example_repo_refuses_a_folder_that_is_not_a_git_repo(tmp_path: pathlib.Path):
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    done = publish(dest)
    assert done.returncode == 2
    assert "not a git repo" in done.stderr
    assert os.listdir(dest) == ["keep.txt"]
