"""Test helpers shipped with zrobot: git repos in temp dirs, robot processes.

Loaded as a pytest plugin by the project's tests (and usable by anyone
testing their own templates). Everything here cleans up what it starts.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from zrobot.client import Client
    from zrobot.robot import Robot

GIT_ENV = {
    "GIT_AUTHOR_NAME": "zrobot tests",
    "GIT_AUTHOR_EMAIL": "tests@zrobot.invalid",
    "GIT_COMMITTER_NAME": "zrobot tests",
    "GIT_COMMITTER_EMAIL": "tests@zrobot.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_SYSTEM": "/dev/null",
}


def git(repo: pathlib.Path, *args: str) -> str:
    """Run git in repo with a fixed identity; return stdout. Blocks (gevent-aware)."""
    done = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def commit_files(
    repo: pathlib.Path, files: Mapping[str, str], message: str = "update"
) -> str:
    """Write files (path -> text) into repo, commit them, return the commit sha.

    Creates the repo on first use, on branch main.
    """
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q")
    for rel, text in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def git_repo(tmp_path: pathlib.Path) -> Callable[..., pathlib.Path]:
    """Factory: git_repo("owner/name", {"t.py": "..."}) -> path of a new repo.

    The repo lives under tmp_path/"git"/owner/name, so its UID part is
    local/owner/name.
    """

    def make(slug: str, files: Mapping[str, str]) -> pathlib.Path:
        repo = tmp_path / "git" / slug
        commit_files(repo, files, "initial templates")
        return repo

    return make


class RobotProcess:
    """A real robot process (`python -m zrobot server start`) on loopback.

    The first start binds a free port; restarts reuse it, so peers that
    know the address find the robot again. Its log goes to `log_path`.
    """

    def __init__(
        self,
        data_dir: pathlib.Path,
        repos: Sequence[str] = (),
        peers: Mapping[str, str] | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.repos = list(repos)
        self.peers = dict(peers or {})
        self.extra = list(extra)
        self.address = "127.0.0.1:0"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[str] | None = None

    def command(self) -> list[str]:
        """The command line that starts this robot."""
        cmd = [
            sys.executable,
            "-m",
            "zrobot",
            "server",
            "start",
            "--listen",
            self.address,
            "--data-dir",
            str(self.data_dir),
        ]
        for url in self.repos:
            cmd += ["--template-repo", url]
        for name, address in self.peers.items():
            cmd += ["--peer", f"{name}={address}"]
        return cmd + self.extra

    def start(self, timeout_s: float = 60.0) -> str:
        """Start and block until it serves; return its address.

        Raises RuntimeError with the log's tail if it exits or is not
        serving within timeout_s.
        """
        import gevent

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        line = ""
        with gevent.Timeout(timeout_s, False):
            line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("zrobot serving on "):
            self.kill()
            raise RuntimeError(f"robot did not start: {line!r}\n{self.log_tail()}")
        self.address = line.split()[-1]
        return self.address

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the robot's log, for failure messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the process (a crash) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM the process and wait for it to exit; return its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=timeout_s)
        if self.proc.stdout:
            self.proc.stdout.close()
        return code

    def client(self, timeout_s: float = 30.0) -> Client:
        """A new client of this robot (close it, or use it as a context)."""
        from zrobot.client import Client

        return Client(self.address, timeout_s=timeout_s)


@pytest.fixture
def robot_process(
    tmp_path: pathlib.Path,
) -> Iterator[Callable[..., RobotProcess]]:
    """Factory of started RobotProcess objects, all killed at teardown."""
    started: list[RobotProcess] = []

    def make(name: str = "robot", **kwargs: Any) -> RobotProcess:
        robot = RobotProcess(tmp_path / name, **kwargs)
        started.append(robot)
        robot.start()
        return robot

    yield make
    for robot in started:
        robot.kill()
        if robot.proc is not None and robot.proc.stdout:
            robot.proc.stdout.close()


@pytest.fixture
def robot(tmp_path: pathlib.Path) -> Iterator[Callable[..., Robot]]:
    """Factory of in-process robots on a free loopback port, stopped at teardown."""
    from zrobot.robot import Robot, RobotConfig

    started: list[Robot] = []

    def make(name: str = "robot", **kwargs: Any) -> Robot:
        config = RobotConfig(data_dir=tmp_path / name, listen="127.0.0.1:0", **kwargs)
        bot = Robot(config)
        bot.start()
        started.append(bot)
        return bot

    yield make
    for bot in started:
        bot.stop(grace_s=0)
