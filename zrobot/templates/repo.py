"""Template repos: parsing repo URLs and keeping a local checkout of each.

A repo URL is a git URL (https, ssh, `git@host:owner/repo.git`, `file://`)
or a local path, optionally followed by `#branch-or-tag`. `checkout` clones
it with gitpython under `repos_dir/<host>/<owner>/<repo>[@<ref>]`, or
fetches and updates the clone already there. git runs as child processes,
which gevent makes cooperative: a clone blocks only the calling greenlet.
Every git command that talks to the remote is bounded by `GIT_TIMEOUT_S`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.parse

import git

from zrobot.errors import InvalidRepoUrl, RepoCloneFailed, RepoRefNotFound

log = logging.getLogger(__name__)

LOCAL_HOST = "local"
SCRATCH_PREFIX = ".clone-"

# Bounds on git talking to a remote. The overall bound is what holds for every
# transport (git:// and a silent ssh server have no stall detection of their
# own): on expiry the git process group is killed. The stall limits make http(s)
# and ssh give up sooner and on their own, with git's reason. Template repos
# are small, so 120 s is generous; tests lower GIT_TIMEOUT_S.
GIT_TIMEOUT_S = 120.0
GIT_STALL_S = 30
_REAP_TIMEOUT_S = 5.0

_SCHEMES = frozenset({"https", "http", "ssh", "git", "file"})
_HELPER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCP = re.compile(
    r"(?P<user>[A-Za-z0-9_][A-Za-z0-9._~-]*)@(?P<host>[^:/\s]+):(?P<path>.+)"
)
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]*")
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*")
_UNSAFE_DIR_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_HTTP_USER = re.compile(r"(?i)(https?://)[^/@\s]+@")
_PASSWORD = re.compile(r"(//[^/:@\s]*):[^/@\s]*@")
_MAX_SHOWN = 200
_ACCEPTED = (
    "expected a git URL (https://host/owner/repo.git, git@host:owner/repo.git, "
    "ssh://host/owner/repo.git, file:///path/to/repo) or a local path, "
    "optionally followed by #branch-or-tag"
)


@dataclasses.dataclass(frozen=True)
class RepoUrl:
    """A template repo location, parsed; build it with `RepoUrl.parse`.

    `url` is what git clones (a local path is made absolute), `ref` the
    branch or tag after '#' ("" for the remote's default branch). `host`,
    `owner` and `repo` name the repo in template UIDs; local paths and
    `file://` URLs have host "local". `str()` hides credentials; `text` is
    the full form to store and parse again.
    """

    url: str
    ref: str
    host: str
    owner: str
    repo: str

    @classmethod
    def parse(cls, text: str) -> RepoUrl:
        """Parse a user's repo string. Runs no git; only resolves a local path.

        Raises InvalidRepoUrl, saying what is accepted, for empty input,
        control characters, unsupported schemes, URLs without owner/repo in
        their path and empty or malformed refs.
        """
        if not isinstance(text, str) or not text.strip():
            raise _invalid(str(text), "it is empty")
        if _CONTROL.search(text):
            raise _invalid(text, "it contains control characters")
        location, hash_sign, ref = text.strip().partition("#")
        if _HELPER.match(location):
            raise _invalid(text, "git remote helpers (<transport>::) are not supported")
        if hash_sign:
            _check_ref(text, ref)
        if "://" in location:
            return _parse_url(text, location, ref)
        scp = _SCP.fullmatch(location)
        if scp:
            host = _check_host(text, scp.group("host").lower())
            owner, repo = _owner_and_repo(text, scp.group("path"))
            return cls(location, ref, host, owner, repo)
        return _parse_path(text, location, ref)

    @property
    def text(self) -> str:
        """The URL with its `#ref`, credentials included: what to store."""
        return f"{self.url}#{self.ref}" if self.ref else self.url

    @property
    def slug(self) -> str:
        """`host/owner/repo`, the repo part of a template UID."""
        return f"{self.host}/{self.owner}/{self.repo}"

    def __str__(self) -> str:
        return _redact(self.text)

    def __repr__(self) -> str:
        return f"RepoUrl({str(self)!r})"


def checkout_path(repo_url: RepoUrl, repos_dir: pathlib.Path) -> pathlib.Path:
    """Return where `checkout` keeps repo_url: repos_dir/host/owner/repo[@ref].

    A ref is made safe for a directory name; when that changes it, a short
    hash of the ref keeps two refs apart. Never blocks.
    """
    name = repo_url.repo
    if repo_url.ref:
        safe = _UNSAFE_DIR_CHARS.sub("_", repo_url.ref)
        if safe != repo_url.ref:
            digest = hashlib.sha1(repo_url.ref.encode(), usedforsecurity=False)
            safe += "-" + digest.hexdigest()[:8]
        name += "@" + safe
    return repos_dir / repo_url.host / repo_url.owner / name


def checkout(repo_url: RepoUrl, repos_dir: pathlib.Path) -> pathlib.Path:
    """Clone repo_url, or update the clone already there; return its path.

    Blocks the calling greenlet while git runs, each git command that talks
    to the remote for at most GIT_TIMEOUT_S seconds. A new clone is made in
    a scratch directory and moved into place only once it is on the right
    ref, so a failure or a timeout leaves nothing behind; a failed update
    leaves the previous checkout as it was. Not safe to run twice at once
    for the same repo and ref.

    Raises RepoCloneFailed (git could not clone or fetch, or timed out; the
    message names the repo and the reason) and RepoRefNotFound (no such
    branch or tag).
    """
    target = checkout_path(repo_url, repos_dir)
    try:
        if target.exists():
            _update(repo_url, target)
        else:
            _clone(repo_url, target, repos_dir)
    except git.GitError as exc:
        raise _git_failed(repo_url, "check out", exc) from exc
    except OSError as exc:
        raise RepoCloneFailed(
            f"could not write the checkout of {repo_url} at {target}: {exc}",
            metadata={"repo": str(repo_url)},
        ) from exc
    return target


def head_commit(path: pathlib.Path) -> str:
    """Return the commit sha checked out at path. Blocks briefly (reads git)."""
    with git.Repo(path) as repo:
        return repo.head.commit.hexsha


def remove_scratch_dirs(repos_dir: pathlib.Path) -> None:
    """Delete clones left half-done by a process killed mid-clone.

    Call only when no checkout into repos_dir is running. Blocks on disk I/O.
    """
    for scratch in repos_dir.glob(SCRATCH_PREFIX + "*"):
        log.info("removing unfinished clone %s", scratch)
        shutil.rmtree(scratch, ignore_errors=True)


def _clone(repo_url: RepoUrl, target: pathlib.Path, repos_dir: pathlib.Path) -> None:
    repos_dir.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=repos_dir))
    try:
        try:
            git.Git.check_unsafe_protocols(repo_url.url)
            cmd = git.Git(repos_dir)
            cmd.update_environment(**_git_env())
            _run_remote(cmd, "clone", "--", repo_url.url, str(scratch))
            repo = git.Repo(scratch)
        except git.GitError as exc:
            raise _git_failed(repo_url, "clone", exc) from exc
        with repo:
            _switch(repo_url, repo)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch.rename(target)
    finally:
        # Also on GreenletExit: a killed clone must not leave a directory.
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    log.info("cloned %s into %s", repo_url, target)


def _update(repo_url: RepoUrl, target: pathlib.Path) -> None:
    try:
        repo = git.Repo(target)
    except git.GitError as exc:
        raise RepoCloneFailed(
            f"{target} exists but is not a git checkout; remove it and retry",
            metadata={"repo": str(repo_url)},
        ) from exc
    with repo:
        repo.git.update_environment(**_git_env())
        _fetch(repo_url, repo)
        _switch(repo_url, repo)
    log.info("updated %s at %s", repo_url, target)


def _fetch(repo_url: RepoUrl, repo: git.Repo) -> None:
    """Fetch branches and tags from repo_url into the checkout's origin."""
    previous = repo.git.remote("get-url", "origin")
    try:
        if previous != repo_url.url:
            repo.git.remote("set-url", "origin", repo_url.url)
        fetch = ("fetch", "--prune", "--prune-tags", "--tags", "--force", "origin")
        _run_remote(repo.git, *fetch)
        if not repo_url.ref:
            _run_remote(repo.git, "remote", "set-head", "origin", "--auto")
    except git.GitError as exc:
        if previous != repo_url.url:
            repo.git.remote("set-url", "origin", previous)
        raise _git_failed(repo_url, "pull", exc) from exc


def _switch(repo_url: RepoUrl, repo: git.Repo) -> None:
    """Check out the ref (or the default branch) exactly as the remote has it."""
    ref = repo_url.ref or _default_branch(repo_url, repo)
    if _exists(repo, f"refs/remotes/origin/{ref}"):
        repo.git.checkout("--force", "-B", ref, f"refs/remotes/origin/{ref}", "--")
    elif _exists(repo, f"refs/tags/{ref}"):
        repo.git.checkout("--force", "--detach", f"refs/tags/{ref}", "--")
    else:
        raise RepoRefNotFound(
            f"repo {repo_url} has no branch or tag {ref!r}",
            metadata={"repo": str(repo_url), "ref": ref},
        )
    # Removes stale __pycache__ too: a .pyc is trusted on mtime (seconds) and
    # size, which an update within the same second can leave unchanged.
    repo.git.clean("-ffdxq")


def _default_branch(repo_url: RepoUrl, repo: git.Repo) -> str:
    try:
        head = repo.git.symbolic_ref("--short", "refs/remotes/origin/HEAD")
    except git.GitCommandError as exc:
        raise RepoCloneFailed(
            f"repo {repo_url} has no default branch; is it empty?",
            metadata={"repo": str(repo_url)},
        ) from exc
    return head.removeprefix("origin/")


def _exists(repo: git.Repo, ref: str) -> bool:
    try:
        repo.git.rev_parse("--verify", "--quiet", ref + "^{commit}")
    except git.GitCommandError:
        return False
    return True


def _run_remote(cmd: git.Git, *args: str) -> None:
    """Run a git command that talks to the remote, for at most GIT_TIMEOUT_S.

    git starts in a session of its own, so its process group is git and the
    helpers it starts (git-remote-https, ssh); on timeout, or when the calling
    greenlet is killed, that group is killed by its id, git's own PID. Waits
    with Popen.communicate(timeout=...): cooperative under gevent, no threads.
    Raises git.GitCommandError, saying "timed out" on timeout.
    """
    command = [str(cmd.GIT_PYTHON_GIT_EXECUTABLE), *args]
    # Keep the wrapper referenced: dropping it terminates the process.
    handle = cmd.execute(
        command, as_process=True, universal_newlines=True, start_new_session=True
    )
    proc = handle.proc
    assert proc is not None  # set until the wrapper terminates it
    try:
        _, stderr = proc.communicate(timeout=GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        reason = f"timed out after {GIT_TIMEOUT_S:g} s; the server did not answer"
        raise git.GitCommandError(command, "timeout", reason) from None
    finally:
        if proc.returncode is None:
            _kill_group(proc)
    if proc.returncode:
        raise git.GitCommandError(command, proc.returncode, stderr)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the process group proc leads (proc and its children) and reap proc."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group has already gone
    try:
        proc.communicate(timeout=_REAP_TIMEOUT_S)  # also closes the pipes
    except subprocess.TimeoutExpired:
        # A child that left the group still holds a pipe; git itself is dead.
        log.warning("git %d was killed but a child keeps its pipes open", proc.pid)


def _git_env() -> dict[str, str]:
    """Environment for git: never wait for a password or a silent server.

    A GIT_SSH_COMMAND of the user's is kept as it is (it may not be ssh, and
    GIT_TIMEOUT_S still bounds it).
    """
    ssh = (
        "ssh -o BatchMode=yes"
        f" -o ConnectTimeout={GIT_STALL_S}"
        f" -o ServerAliveInterval={GIT_STALL_S // 2} -o ServerAliveCountMax=2"
    )
    return {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", ssh),
        # curl aborts a transfer that moves under 1 byte/s for GIT_STALL_S.
        "GIT_HTTP_LOW_SPEED_LIMIT": "1",
        "GIT_HTTP_LOW_SPEED_TIME": str(GIT_STALL_S),
    }


def _git_failed(repo_url: RepoUrl, verb: str, exc: git.GitError) -> RepoCloneFailed:
    return RepoCloneFailed(
        f"could not {verb} {repo_url}: {_git_reason(repo_url, exc)}",
        metadata={"repo": str(repo_url)},
    )


def _git_reason(repo_url: RepoUrl, exc: git.GitError) -> str:
    """git's own one-line reason (the last fatal/error line), credentials hidden."""
    if isinstance(exc, git.CommandError) and exc.stderr:
        text = exc.stderr.strip().removeprefix("stderr: '").removesuffix("'")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
        reason = (fatal or lines or ["git failed"])[-1]
    else:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    reason = reason.replace(repo_url.url, _redact(repo_url.url))
    return _redact(reason)[:_MAX_SHOWN]


def _parse_url(text: str, location: str, ref: str) -> RepoUrl:
    try:
        parts = urllib.parse.urlsplit(location)
        hostname, _ = parts.hostname, parts.port
    except ValueError as exc:
        raise _invalid(text, f"it is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise _invalid(text, f"scheme {parts.scheme!r} is not supported")
    if parts.query:
        raise _invalid(text, "a repo URL has no query string")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _invalid(text, "a file:// URL needs an absolute path (file:///...)")
        local = _parse_path(text, urllib.parse.unquote(parts.path), ref)
        return dataclasses.replace(local, url=location)
    if any(char.isspace() for char in location):
        raise _invalid(text, "a URL cannot contain spaces")
    host = _check_host(text, hostname or "")
    owner, repo = _owner_and_repo(text, parts.path)
    return RepoUrl(location, ref, host, owner, repo)


def _parse_path(text: str, location: str, ref: str) -> RepoUrl:
    if not location:
        raise _invalid(text, "the path is empty")
    path = pathlib.Path(location).expanduser().resolve()
    if not path.parent.name:
        raise _invalid(text, "a local repo needs a parent directory (the owner)")
    repo = _check_segment(text, path.name.removesuffix(".git"))
    return RepoUrl(str(path), ref, LOCAL_HOST, path.parent.name, repo)


def _owner_and_repo(text: str, path: str) -> tuple[str, str]:
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) < 2:
        raise _invalid(text, "the URL path needs at least owner/repo")
    owner = _check_segment(text, segments[-2])
    return owner, _check_segment(text, segments[-1].removesuffix(".git"))


def _check_segment(text: str, segment: str) -> str:
    if segment in ("", ".", ".."):
        raise _invalid(text, f"{segment!r} cannot name an owner or a repo")
    return segment


def _check_host(text: str, host: str) -> str:
    if not _HOST.fullmatch(host):
        raise _invalid(text, "the URL has no valid host")
    return host


def _check_ref(text: str, ref: str) -> None:
    if not ref:
        raise _invalid(text, "nothing follows '#'; give a branch or tag or drop '#'")
    bad = (
        not _REF.fullmatch(ref)
        or ".." in ref
        or "//" in ref
        or "/." in ref
        or ref.endswith(("/", ".", ".lock"))
    )
    if bad:
        raise _invalid(text, f"{ref!r} is not a valid branch or tag name")


def _invalid(text: str, why: str) -> InvalidRepoUrl:
    shown = _redact(text)
    if len(shown) > _MAX_SHOWN:
        shown = shown[:_MAX_SHOWN] + "..."
    return InvalidRepoUrl(
        f"invalid template repo {shown!r}: {why}; {_ACCEPTED}",
        metadata={"repo": shown},
    )


def _redact(text: str) -> str:
    """Hide passwords and http(s) user names (often tokens): never log a secret."""
    return _PASSWORD.sub(r"\1:***@", _HTTP_USER.sub(r"\1***@", text))
