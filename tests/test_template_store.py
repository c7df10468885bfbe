"""The template store: repo URLs, checkouts of local git repos, loading.

Every repo is built in tmp_path with zrobot.testing; nothing touches the
network but a silent server on 127.0.0.1 that the timeout tests start.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import gevent
import gevent.event
import git as gitpython
import pytest

from zrobot.errors import (
    AmbiguousTemplate,
    InvalidRepoUrl,
    RepoCloneFailed,
    RepoRefNotFound,
    TemplateNotFound,
)
from zrobot.templates import (
    RepoUrl,
    TemplateStore,
    checkout,
    checkout_path,
)
from zrobot.templates import repo as repo_module
from zrobot.templates.repo import SCRATCH_PREFIX, head_commit
from zrobot.testing import commit_files, git

MakeRepo = Callable[..., pathlib.Path]


def template(cls: str, version: str, body: str = "", name: str = "") -> str:
    """Source of a module defining one template class."""
    lines = [
        "from zrobot.template import Template, action",
        "",
        f"class {cls}(Template):",
        f'    """The {cls} template."""',
        "",
        f"    version = {version!r}",
    ]
    if name:
        lines.append(f"    template_name = {name!r}")
    lines.append(textwrap.indent(textwrap.dedent(body), "    ") if body else "")
    return "\n".join(lines) + "\n"


def tree(root: pathlib.Path) -> list[str]:
    """Everything under root, relative, except git's own files."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if ".git" not in path.parts and "__pycache__" not in path.parts
    )


@pytest.fixture
def repos_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "repos"


@pytest.fixture
def store(repos_dir: pathlib.Path) -> TemplateStore:
    return TemplateStore(repos_dir)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Port of a server on 127.0.0.1 that takes connections and never answers.

    The kernel completes the handshakes into the listen backlog, so a client
    is connected and then waits for a reply that never comes.
    """
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server.getsockname()[1]


@pytest.fixture
def git_processes(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[str]]:
    """Every process gitpython starts from now on, in order; sets git_started."""
    started: list[subprocess.Popen[str]] = []
    popen = gitpython.cmd.safer_popen

    def record(*args: object, **kwargs: object) -> subprocess.Popen[str]:
        proc = popen(*args, **kwargs)
        started.append(proc)
        git_started.set()
        return proc

    git_started.clear()
    monkeypatch.setattr(gitpython.cmd, "safer_popen", record)
    return started


git_started = gevent.event.Event()


def assert_gone(procs: list[subprocess.Popen[str]]) -> None:
    """Each process has exited and been reaped, and nothing of its group runs."""
    for proc in procs:
        assert proc.returncode is not None
        with pytest.raises(ProcessLookupError):
            os.kill(proc.pid, 0)
    groups = {proc.pid for proc in procs}
    for _ in range(100):  # a killed helper may take a moment to exit
        left = [pid for pid, group in running_groups() if group in groups]
        if not left:
            return
        gevent.sleep(0.02)
    raise AssertionError(f"processes {left} of git's group still run")


def running_groups() -> list[tuple[int, int]]:
    """(pid, process group) of every live (not zombie) process, from /proc."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process exited meanwhile
        if fields[0] != "Z":
            found.append((int(stat.parent.name), int(fields[2])))
    return found


@pytest.fixture
def tagged_repo(git_repo: MakeRepo) -> pathlib.Path:
    """acme/templates: tag v1 and branch dev at 1.0.0, main at 2.0.0."""
    repo = git_repo("acme/templates", {"web.py": template("WebCheck", "1.0.0")})
    git(repo, "tag", "v1")
    git(repo, "branch", "dev")
    commit_files(repo, {"web.py": template("WebCheck", "2.0.0")}, "2.0.0")
    return repo


# Repo URLs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url", "ref", "host", "owner", "repo"),
    [
        (
            "https://github.com/acme/templates",
            "https://github.com/acme/templates",
            "",
            "github.com",
            "acme",
            "templates",
        ),
        (
            "https://GitHub.com/acme/templates.git#v1.2.0",
            "https://GitHub.com/acme/templates.git",
            "v1.2.0",
            "github.com",
            "acme",
            "templates",
        ),
        (
            "http://git.example.org:8080/acme/templates/",
            "http://git.example.org:8080/acme/templates/",
            "",
            "git.example.org",
            "acme",
            "templates",
        ),
        (
            "git@github.com:acme/templates.git#feature/x",
            "git@github.com:acme/templates.git",
            "feature/x",
            "github.com",
            "acme",
            "templates",
        ),
        (
            "ssh://git@host:2222/group/sub/templates.git",
            "ssh://git@host:2222/group/sub/templates.git",
            "",
            "host",
            "sub",
            "templates",
        ),
        (
            "git://host/acme/templates",
            "git://host/acme/templates",
            "",
            "host",
            "acme",
            "templates",
        ),
        (
            "file:///srv/git/acme/templates.git#main",
            "file:///srv/git/acme/templates.git",
            "main",
            "local",
            "acme",
            "templates",
        ),
        (
            "/srv/git/acme/templates",
            "/srv/git/acme/templates",
            "",
            "local",
            "acme",
            "templates",
        ),
        (
            "  /srv/git/acme/templates.git#dev  ",
            "/srv/git/acme/templates.git",
            "dev",
            "local",
            "acme",
            "templates",
        ),
    ],
)
def test_a_repo_url_is_split_into_url_ref_host_owner_and_repo(
    text: str, url: str, ref: str, host: str, owner: str, repo: str
) -> None:
    parsed = RepoUrl.parse(text)
    assert (parsed.url, parsed.ref, parsed.host, parsed.owner, parsed.repo) == (
        url,
        ref,
        host,
        owner,
        repo,
    )


def test_a_relative_path_is_made_absolute(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    parsed = RepoUrl.parse("acme/templates#v1")
    assert parsed.url == str(tmp_path / "acme" / "templates")
    assert (parsed.host, parsed.owner, parsed.repo, parsed.ref) == (
        "local",
        "acme",
        "templates",
        "v1",
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("ftp://host/acme/templates", "scheme 'ftp'"),
        ("svn+ssh://host/acme/templates", "scheme 'svn+ssh'"),
        ("ext::sh -c touch% /tmp/pwned", "remote helpers"),
        ("http://", "no valid host"),
        ("https:///acme/templates", "no valid host"),
        ("http://host", "owner/repo"),
        ("https://host/templates", "owner/repo"),
        ("git@host:templates.git", "owner/repo"),
        ("https://host/acme/templates#", "nothing follows '#'"),
        ("/srv/acme/templates#", "nothing follows '#'"),
        ("https://host/acme/templates#-upload-pack=x", "not a valid branch"),
        ("https://host/acme/templates#a..b", "not a valid branch"),
        ("https://host/acme/templates#a b", "not a valid branch"),
        ("https://host/acme/templates#x.lock", "not a valid branch"),
        ("https://host/acme/re\npo", "control characters"),
        ("/srv/acme/tem\x00plates", "control characters"),
        ("https://host/acme/templates?x=1", "query string"),
        ("https://host/acme /templates", "spaces"),
        ("https://host/../templates", "'..'"),
        ("https://-oProxyCommand=x/acme/templates", "no valid host"),
        ("https://host:port/acme/templates", "not a valid URL"),
        ("file://otherhost/srv/acme/templates", "absolute path"),
        ("/templates", "parent directory"),
    ],
)
def test_a_bad_repo_url_is_refused_saying_what_is_accepted(text: str, why: str) -> None:
    with pytest.raises(InvalidRepoUrl) as caught:
        RepoUrl.parse(text)
    assert why in caught.value.message
    assert "expected a git URL" in caught.value.message
    assert "\n" not in caught.value.message


def test_credentials_are_hidden_in_str_but_kept_in_text() -> None:
    token = RepoUrl.parse("https://s3cret@host/acme/templates#v1")
    password = RepoUrl.parse("ssh://git:s3cret@host/acme/templates")
    assert "s3cret" not in str(token) and "s3cret" not in str(password)
    assert str(password).startswith("ssh://git:***@")
    assert "s3cret" not in repr(token)
    assert token.text == "https://s3cret@host/acme/templates#v1"


def test_an_invalid_url_error_does_not_show_a_password() -> None:
    with pytest.raises(InvalidRepoUrl) as caught:
        RepoUrl.parse("ftp://user:s3cret@host/acme/templates")
    assert "s3cret" not in caught.value.message


def test_checkout_paths_keep_refs_apart_even_when_sanitised(
    repos_dir: pathlib.Path,
) -> None:
    def path(text: str) -> pathlib.Path:
        return checkout_path(RepoUrl.parse(text), repos_dir)

    plain = path("https://host/acme/templates")
    assert plain == repos_dir / "host" / "acme" / "templates"
    assert path("https://host/acme/templates#v1").name == "templates@v1"
    slashed = path("https://host/acme/templates#feature/x").name
    assert slashed.startswith("templates@feature_x-")
    assert slashed != path("https://host/acme/templates#feature_x").name


# Checkouts ---------------------------------------------------------------


def test_a_local_repo_is_cloned_under_host_owner_repo(
    tagged_repo: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    path = checkout(RepoUrl.parse(str(tagged_repo)), repos_dir)
    assert path == repos_dir / "local" / "acme" / "templates"
    assert "2.0.0" in (path / "web.py").read_text()
    assert head_commit(path) == git(tagged_repo, "rev-parse", "HEAD").strip()
    assert tree(repos_dir) == [
        "local",
        "local/acme",
        "local/acme/templates",
        "local/acme/templates/web.py",
    ]


def test_a_file_url_is_cloned_like_a_path(
    tagged_repo: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    path = checkout(RepoUrl.parse(f"file://{tagged_repo}"), repos_dir)
    assert path == repos_dir / "local" / "acme" / "templates"
    assert "2.0.0" in (path / "web.py").read_text()


def test_a_branch_ref_checks_out_that_branch(
    tagged_repo: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    path = checkout(RepoUrl.parse(f"{tagged_repo}#dev"), repos_dir)
    assert path.name == "templates@dev"
    assert "1.0.0" in (path / "web.py").read_text()
    assert git(path, "branch", "--show-current").strip() == "dev"


def test_a_tag_ref_checks_out_that_tag(
    tagged_repo: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    path = checkout(RepoUrl.parse(f"{tagged_repo}#v1"), repos_dir)
    assert path.name == "templates@v1"
    assert head_commit(path) == git(tagged_repo, "rev-parse", "v1^{commit}").strip()


def test_no_ref_checks_out_the_remote_default_branch(
    git_repo: MakeRepo, repos_dir: pathlib.Path
) -> None:
    source = git_repo("acme/templates", {"which.txt": "main"})
    git(source, "checkout", "-q", "-b", "trunk")
    commit_files(source, {"which.txt": "trunk"})
    path = checkout(RepoUrl.parse(str(source)), repos_dir)
    assert (path / "which.txt").read_text() == "trunk"


def test_a_missing_ref_fails_and_leaves_no_directory(
    tagged_repo: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    with pytest.raises(RepoRefNotFound, match="'nope'"):
        checkout(RepoUrl.parse(f"{tagged_repo}#nope"), repos_dir)
    assert tree(repos_dir) == []


def test_a_path_that_does_not_exist_fails_in_one_line_and_leaves_no_directory(
    tmp_path: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    missing = tmp_path / "git" / "acme" / "missing"
    with pytest.raises(RepoCloneFailed) as caught:
        checkout(RepoUrl.parse(str(missing)), repos_dir)
    message = caught.value.message
    assert message.startswith(f"could not clone {missing}: ")
    assert "does not exist" in message and "\n" not in message
    assert tree(repos_dir) == []


def test_a_directory_that_is_not_a_repo_fails_and_leaves_no_directory(
    tmp_path: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    plain = tmp_path / "plain" / "acme" / "templates"
    plain.mkdir(parents=True)
    with pytest.raises(RepoCloneFailed, match="could not clone"):
        checkout(RepoUrl.parse(str(plain)), repos_dir)
    assert tree(repos_dir) == []


def test_an_update_resets_a_branch_to_the_remote_even_after_a_rewrite(
    tagged_repo: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    url = RepoUrl.parse(str(tagged_repo))
    path = checkout(url, repos_dir)
    (path / "web.py").write_text("local edit")
    (path / "stray.py").write_text("untracked")
    git(tagged_repo, "reset", "-q", "--hard", "v1")
    rewritten = commit_files(tagged_repo, {"web.py": "rewritten"}, "rewrite")

    assert checkout(url, repos_dir) == path
    assert head_commit(path) == rewritten
    assert (path / "web.py").read_text() == "rewritten"
    assert not (path / "stray.py").exists()


def test_an_update_of_a_tag_follows_a_moved_tag(
    tagged_repo: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    url = RepoUrl.parse(f"{tagged_repo}#v1")
    path = checkout(url, repos_dir)
    git(tagged_repo, "tag", "-f", "v1", "main")
    checkout(url, repos_dir)
    assert head_commit(path) == git(tagged_repo, "rev-parse", "main").strip()


def test_a_failed_pull_keeps_the_previous_checkout(
    tagged_repo: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    url = RepoUrl.parse(str(tagged_repo))
    path = checkout(url, repos_dir)
    before = head_commit(path)
    tagged_repo.rename(tagged_repo.with_name("moved"))

    with pytest.raises(RepoCloneFailed, match=r"^could not pull .*: fatal: "):
        checkout(url, repos_dir)
    assert head_commit(path) == before
    assert "2.0.0" in (path / "web.py").read_text()


def test_a_deleted_branch_fails_the_update_and_keeps_the_checkout(
    tagged_repo: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    url = RepoUrl.parse(f"{tagged_repo}#dev")
    path = checkout(url, repos_dir)
    git(tagged_repo, "branch", "-q", "-D", "dev")
    with pytest.raises(RepoRefNotFound, match="'dev'"):
        checkout(url, repos_dir)
    assert "1.0.0" in (path / "web.py").read_text()


def test_an_empty_repo_fails_to_clone_and_leaves_no_directory(
    tmp_path: pathlib.Path, repos_dir: pathlib.Path
) -> None:
    empty = tmp_path / "git" / "acme" / "empty"
    empty.mkdir(parents=True)
    git(empty, "init", "-q")
    with pytest.raises(RepoCloneFailed, match="no default branch"):
        checkout(RepoUrl.parse(str(empty)), repos_dir)
    assert tree(repos_dir) == []


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_a_clone_from_a_silent_server_times_out_and_leaves_nothing(
    silent_server: int,
    git_processes: list[subprocess.Popen[str]],
    repos_dir: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
) -> None:
    monkeypatch.setattr(repo_module, "GIT_TIMEOUT_S", 1.5, raising=False)
    url = RepoUrl.parse(f"{scheme}://127.0.0.1:{silent_server}/acme/templates")
    with gevent.Timeout(20):  # the test's own bound, far above the 1.5 s
        with pytest.raises(RepoCloneFailed) as caught:
            checkout(url, repos_dir)
    assert caught.value.message == (
        f"could not clone {url}: timed out after 1.5 s; the server did not answer"
    )
    assert tree(repos_dir) == []
    assert git_processes
    assert_gone(git_processes)


def test_a_pull_from_a_silent_server_times_out_and_keeps_the_checkout(
    tagged_repo: pathlib.Path,
    silent_server: int,
    git_processes: list[subprocess.Popen[str]],
    repos_dir: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(repo_module, "GIT_TIMEOUT_S", 1.5, raising=False)
    url = RepoUrl.parse(f"git://127.0.0.1:{silent_server}/acme/templates")
    path = checkout_path(url, repos_dir)
    path.parent.mkdir(parents=True)
    git(path.parent, "clone", "-q", str(tagged_repo), str(path))
    before = head_commit(path)

    with gevent.Timeout(20):
        with pytest.raises(RepoCloneFailed, match=r"^could not pull .*: timed out"):
            checkout(url, repos_dir)
    assert head_commit(path) == before
    assert "2.0.0" in (path / "web.py").read_text()
    assert git(path, "remote", "get-url", "origin").strip() == str(tagged_repo)
    assert_gone(git_processes)


def test_killing_the_greenlet_during_a_clone_kills_git_and_leaves_nothing(
    silent_server: int,
    git_processes: list[subprocess.Popen[str]],
    repos_dir: pathlib.Path,
) -> None:
    url = RepoUrl.parse(f"git://127.0.0.1:{silent_server}/acme/templates")
    cloning = gevent.spawn(checkout, url, repos_dir)
    assert git_started.wait(timeout=10)
    cloning.kill(timeout=10)
    assert cloning.dead and isinstance(cloning.value, gevent.GreenletExit)
    assert tree(repos_dir) == []
    assert_gone(git_processes)


def test_a_new_store_removes_clones_left_by_a_killed_process(
    repos_dir: pathlib.Path,
) -> None:
    leftover = repos_dir / f"{SCRATCH_PREFIX}abc" / ".git"
    leftover.mkdir(parents=True)
    TemplateStore(repos_dir)
    assert tree(repos_dir) == []


# Loading templates -------------------------------------------------------


def test_every_template_class_of_a_repo_is_loaded_with_its_actions(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    body = """
    def check(self, url: str, retries: int = 3) -> bool:
        \"\"\"Check url.\"\"\"
        return True

    def _helper(self) -> None:
        pass
    """
    repo = git_repo(
        "acme/templates",
        {
            "web.py": template("WebCheck", "1.2.0", body),
            "db.py": template("Database", "0.1.0", name="postgres"),
        },
    )
    loaded = store.add_repo(str(repo))

    assert loaded.errors == []
    assert [info.uid for info in store.list()] == [
        "local/acme/templates/postgres/0.1.0",
        "local/acme/templates/web_check/1.2.0",
    ]
    web = store.get("web_check")
    assert (web.name, web.version, web.repo) == ("web_check", "1.2.0", str(repo))
    assert web.doc == "The WebCheck template."
    assert list(web.actions) == ["check"]
    assert web.actions["check"].doc == "Check url."
    assert web.cls.__name__ == "WebCheck"
    assert web.cls("svc").name == "svc"
    assert store.repos() == [str(repo)]


def test_a_package_and_relative_imports_between_modules_load(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo(
        "acme/templates",
        {
            "helpers.py": "GREETING = 'hello'\n",
            "greeter.py": template("Greeter", "1.0.0")
            + "from .helpers import GREETING\n",
            "pkg/__init__.py": "from .impl import Packaged\n",
            "pkg/impl.py": template("Packaged", "3.0.0"),
        },
    )
    loaded = store.add_repo(str(repo))
    assert loaded.errors == []
    assert sorted(info.name for info in loaded.templates) == ["greeter", "packaged"]
    module = sys.modules[store.get("greeter").cls.__module__]
    assert module.GREETING == "hello"


def test_private_test_tooling_and_hidden_files_are_not_loaded(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    boom = "raise RuntimeError('must not be imported')\n"
    repo = git_repo(
        "acme/templates",
        {
            "web.py": template("WebCheck", "1.0.0"),
            "_private.py": boom,
            "test_web.py": boom,
            "testing.py": boom,
            "setup.py": boom,
            "conftest.py": boom,
            "tests/__init__.py": boom,
            "_pkg/__init__.py": boom,
            ".hidden/__init__.py": boom,
            "not-a-module.py": boom,
            "notes.txt": boom,
            "scripts/run.py": boom,
        },
    )
    loaded = store.add_repo(str(repo))
    assert loaded.errors == []
    assert [info.name for info in loaded.templates] == ["web_check"]


def test_only_classes_defined_in_a_module_count_and_each_once(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo(
        "acme/templates",
        {
            "web.py": template("WebCheck", "1.0.0"),
            "more.py": "from zrobot.template import Template\n"
            "from .web import WebCheck\n"
            "Alias = WebCheck\n"
            "class _Base(Template):\n    pass\n",
        },
    )
    loaded = store.add_repo(str(repo))
    assert loaded.errors == []
    assert [info.uid for info in loaded.templates] == [
        "local/acme/templates/web_check/1.0.0"
    ]


def test_a_syntax_error_is_reported_by_path_and_line_while_others_load(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo(
        "acme/templates",
        {"web.py": template("WebCheck", "1.0.0"), "broken.py": "x = 1\ndef (:\n"},
    )
    loaded = store.add_repo(str(repo))
    assert [info.name for info in loaded.templates] == ["web_check"]
    [error] = loaded.errors
    assert (error.repo, error.path) == (str(repo), "broken.py")
    assert error.error.startswith("SyntaxError: ")
    assert error.error.endswith("(line 2)")


def test_a_module_raising_at_import_is_reported_in_one_line(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo(
        "acme/templates",
        {
            "web.py": template("WebCheck", "1.0.0"),
            "raises.py": "import os\n\nraise RuntimeError('boom\\nsecond line')\n",
            "missing.py": "import zrobot_no_such_module\n",
            "exits.py": "import sys\nsys.exit(3)\n",
            "pkg/__init__.py": "from . import bad\n",
            "pkg/bad.py": "x = 1\nx.nope\n",
        },
    )
    loaded = store.add_repo(str(repo))
    assert [info.name for info in loaded.templates] == ["web_check"]
    assert {error.path: error.error for error in loaded.errors} == {
        "raises.py": "RuntimeError: boom (line 3)",
        "missing.py": "ModuleNotFoundError: No module named "
        "'zrobot_no_such_module' (line 1)",
        "exits.py": "SystemExit: 3 (line 2)",
        "pkg/__init__.py": "AttributeError: 'int' object has no attribute "
        "'nope' (pkg/bad.py:2)",
    }


def test_a_module_raising_keyboard_interrupt_or_any_base_exception_is_an_error(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo(
        "acme/templates",
        {
            "web.py": template("WebCheck", "1.0.0"),
            "interrupts.py": "raise KeyboardInterrupt('stop')\n",
            "halts.py": "class Halt(BaseException):\n    pass\n\nraise Halt\n",
        },
    )
    loaded = store.add_repo(str(repo))
    assert [info.name for info in loaded.templates] == ["web_check"]
    assert {error.path: error.error for error in loaded.errors} == {
        "interrupts.py": "KeyboardInterrupt: stop (line 1)",
        "halts.py": "Halt (line 4)",
    }


def test_a_greenlet_exit_during_an_import_is_never_swallowed(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo(
        "acme/templates",
        {"exits.py": "import gevent\n\nraise gevent.GreenletExit\n"},
    )
    with pytest.raises(gevent.GreenletExit):
        store.add_repo(str(repo))
    assert store.repos() == []


def test_a_class_with_a_bad_version_or_name_is_an_error_and_others_load(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo(
        "acme/templates",
        {
            "web.py": template("WebCheck", "1.0.0"),
            "bad.py": template("NoVersion", "")
            + "\n"
            + template("Latest", "latest").split("\n", 1)[1]
            + "\n"
            + template("Slashed", "1.0.0", name="a/b").split("\n", 1)[1],
        },
    )
    loaded = store.add_repo(str(repo))
    assert [info.name for info in loaded.templates] == ["web_check"]
    errors = sorted(error.error for error in loaded.errors)
    assert [error.path for error in loaded.errors] == ["bad.py"] * 3
    assert errors[0].startswith("class Latest: ValueError: invalid version 'latest'")
    assert errors[1].startswith("class NoVersion: ValueError: invalid version ''")
    assert errors[2].startswith("class Slashed: ValueError: template name 'a/b'")


def test_the_same_uid_twice_in_one_repo_is_an_error(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo(
        "acme/templates",
        {
            "one.py": template("WebCheck", "1.0.0"),
            "two.py": template("WebCheck", "1.0.0"),
        },
    )
    loaded = store.add_repo(str(repo))
    assert len(loaded.templates) == 1
    [error] = loaded.errors
    assert error.path == "two.py" and "defined twice" in error.error


def test_a_short_name_picks_the_highest_version_across_refs(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo("acme/templates", {"web.py": template("WebCheck", "0.9.0")})
    git(repo, "tag", "v0.9")
    commit_files(repo, {"web.py": template("WebCheck", "0.10.0")})
    git(repo, "tag", "v0.10")
    commit_files(repo, {"web.py": template("WebCheck", "0.11.0-rc1")})

    for ref in ("v0.10", "v0.9", "main"):
        store.add_repo(f"{repo}#{ref}")

    assert [info.version for info in store.list()] == ["0.10.0", "0.11.0-rc1", "0.9.0"]
    for short in ("web_check", "templates/web_check", "local/acme/templates/web_check"):
        assert store.get(short).version == "0.11.0-rc1"
    assert store.get("local/acme/templates/web_check/0.9.0").repo == f"{repo}#v0.9"


def test_a_name_in_two_repos_is_ambiguous_and_lists_the_candidates(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    acme = git_repo("acme/templates", {"web.py": template("WebCheck", "1.0.0")})
    other = git_repo("other/templates", {"web.py": template("WebCheck", "2.0.0")})
    store.add_repo(str(acme))
    store.add_repo(str(other))

    for ref in ("web_check", "templates/web_check"):
        with pytest.raises(AmbiguousTemplate) as caught:
            store.get(ref)
        assert "local/acme/templates/web_check/1.0.0" in caught.value.message
        assert "local/other/templates/web_check/2.0.0" in caught.value.message
    assert store.get("acme/templates/web_check").version == "1.0.0"


def test_two_repos_with_the_same_module_names_do_not_collide(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    acme = git_repo("acme/a", {"web.py": template("Alpha", "1.0.0")})
    other = git_repo("other/b", {"web.py": template("Beta", "1.0.0")})
    store.add_repo(str(acme))
    store.add_repo(str(other))
    alpha, beta = store.get("alpha").cls, store.get("beta").cls
    assert alpha.__module__ != beta.__module__
    assert [info.name for info in store.list()] == ["alpha", "beta"]


@pytest.mark.parametrize(
    "ref",
    [
        "nothing",
        "other/web_check",
        "local/acme/templates/web_check/9.9.9",
        "",
        "web_check/",
        "a/b/c/d/e/f",
    ],
)
def test_an_unknown_template_is_not_found_and_the_known_names_are_listed(
    git_repo: MakeRepo, store: TemplateStore, ref: str
) -> None:
    repo = git_repo("acme/templates", {"web.py": template("WebCheck", "1.0.0")})
    store.add_repo(str(repo))
    with pytest.raises(TemplateNotFound, match="known templates: web_check$"):
        store.get(ref)


def test_the_not_found_message_is_bounded_and_says_when_nothing_is_loaded(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    with pytest.raises(TemplateNotFound, match="no templates are loaded"):
        store.get("web_check")
    classes = "".join(template(f"T{n:02}", "1.0.0") for n in range(25))
    store.add_repo(str(git_repo("acme/many", {"many.py": classes})))
    with pytest.raises(TemplateNotFound, match=r"t19 \(and 5 more\)$"):
        store.get("web_check")


def test_a_pull_loads_the_new_version_and_drops_the_old_one(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    body = "def answer(self) -> int:\n    return {}\n"
    repo = git_repo(
        "acme/templates",
        {"web.py": template("WebCheck", "1.0.0", body.format(1))},
    )
    old = store.add_repo(str(repo)).templates[0]
    commit_files(repo, {"web.py": template("WebCheck", "1.1.0", body.format(2))})

    new = store.add_repo(str(repo)).templates[0]
    assert [info.uid for info in store.list()] == [
        "local/acme/templates/web_check/1.1.0"
    ]
    assert getattr(new.cls("svc"), "answer")() == 2  # noqa: B009
    assert getattr(old.cls("svc"), "answer")() == 1  # noqa: B009
    assert old.cls.__module__ not in sys.modules


def test_a_pull_within_the_same_second_and_size_still_loads_new_code(
    git_repo: MakeRepo, store: TemplateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A .pyc is trusted on its source's mtime in whole seconds and its size.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    repo = git_repo("acme/templates", {"web.py": template("WebCheck", "1.0.0")})
    store.add_repo(str(repo))
    commit_files(repo, {"web.py": template("WebCheck", "1.0.1")})
    assert store.add_repo(str(repo)).templates[0].version == "1.0.1"


def test_re_adding_a_repo_replaces_its_templates(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo(
        "acme/templates",
        {"web.py": template("WebCheck", "1.0.0"), "db.py": template("Db", "1.0.0")},
    )
    store.add_repo(str(repo))
    git(repo, "rm", "-q", "db.py")
    commit_files(repo, {}, "drop db")
    store.add_repo(str(repo))
    assert [info.name for info in store.list()] == ["web_check"]
    with pytest.raises(TemplateNotFound):
        store.get("db")


def test_a_failed_pull_keeps_the_loaded_templates(
    git_repo: MakeRepo, store: TemplateStore
) -> None:
    repo = git_repo("acme/templates", {"web.py": template("WebCheck", "1.0.0")})
    store.add_repo(str(repo))
    repo.rename(repo.with_name("gone"))
    with pytest.raises(RepoCloneFailed):
        store.add_repo(str(repo))
    assert store.get("web_check").version == "1.0.0"
    assert store.repos() == [str(repo)]


def test_a_bad_url_or_missing_ref_loads_nothing(
    tagged_repo: pathlib.Path, store: TemplateStore
) -> None:
    with pytest.raises(InvalidRepoUrl):
        store.add_repo("ftp://host/acme/templates")
    with pytest.raises(RepoRefNotFound):
        store.add_repo(f"{tagged_repo}#nope")
    assert store.list() == [] and store.repos() == []


def test_two_greenlets_adding_one_repo_both_succeed(
    tagged_repo: pathlib.Path, store: TemplateStore
) -> None:
    adds = [gevent.spawn(store.add_repo, str(tagged_repo)) for _ in range(2)]
    gevent.joinall(adds, timeout=30, raise_error=True)
    assert [add.value.templates[0].version for add in adds] == ["2.0.0", "2.0.0"]
    assert [info.version for info in store.list()] == ["2.0.0"]


def test_a_second_repo_with_the_same_owner_and_name_replaces_the_first(
    tmp_path: pathlib.Path, store: TemplateStore
) -> None:
    first = tmp_path / "one" / "acme" / "templates"
    second = tmp_path / "two" / "acme" / "templates"
    commit_files(first, {"web.py": template("WebCheck", "1.0.0")})
    commit_files(second, {"db.py": template("Db", "1.0.0")})
    store.add_repo(str(first))
    store.add_repo(str(second))
    assert [info.uid for info in store.list()] == ["local/acme/templates/db/1.0.0"]
    assert store.repos() == [str(second)]


def test_a_module_that_waits_forever_at_import_is_a_load_error(
    tmp_path, git_repo, monkeypatch
):
    from zrobot.templates import store as store_module

    monkeypatch.setattr(store_module, "IMPORT_TIMEOUT_S", 0.3)
    repo = git_repo(
        "acme/stuck",
        {
            "a_stuck.py": "import gevent\ngevent.sleep(3600)\n",
            "b_fine.py": (
                "from zrobot import Template\n\n\n"
                "class Fine(Template):\n    version = '1.0.0'\n"
            ),
        },
    )
    loaded = store_module.TemplateStore(tmp_path / "repos").add_repo(str(repo))
    assert [t.name for t in loaded.templates] == ["fine"]
    (error,) = loaded.errors
    assert error.path == "a_stuck.py"
    assert "did not finish within 0.3 s" in error.error
