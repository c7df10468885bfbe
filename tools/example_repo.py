"""Publish examples/templates as a git repo a robot can clone (used by `make run`).

Usage: python tools/example_repo.py DEST

Copies examples/templates into DEST and commits it on branch main with a
fixed identity, then prints DEST's absolute path. DEST is created if
missing; if it is already a git repo its work tree is made an exact copy of
examples/templates again, and a commit is added only when something
changed. A DEST that exists, is not empty and is not a git repo is refused
(exit code 2), so the tool never overwrites unrelated files.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

SOURCE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "templates"
SKIPPED = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git"}
EXIT_USAGE = 2
USAGE = "usage: python tools/example_repo.py DEST"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "zrobot examples",
    "GIT_AUTHOR_EMAIL": "examples@zrobot.invalid",
    "GIT_COMMITTER_NAME": "zrobot examples",
    "GIT_COMMITTER_EMAIL": "examples@zrobot.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


class NotARepo(Exception):
    """DEST holds files but is not a git repo; the tool leaves it alone."""


def git(repo: pathlib.Path, *args: str) -> str:
    """Run git in repo with a fixed identity and no user config; return stdout."""
    done = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def source_files(source: pathlib.Path) -> list[pathlib.Path]:
    """Return the files of source to publish, relative to it, sorted."""
    return sorted(
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file()
        and not SKIPPED.intersection(path.relative_to(source).parts)
        and path.suffix != ".pyc"
    )


def prepare(dest: pathlib.Path) -> None:
    """Create dest as an empty git repo unless it is one already."""
    if (dest / ".git").is_dir():
        return
    if dest.exists() and any(dest.iterdir()):
        raise NotARepo(f"{dest} exists, is not empty and is not a git repo")
    dest.mkdir(parents=True, exist_ok=True)
    git(dest, "init", "-q")


def mirror(source: pathlib.Path, dest: pathlib.Path) -> None:
    """Make dest's work tree (all but .git) an exact copy of source's files."""
    wanted = set(source_files(source))
    for path in sorted(dest.rglob("*"), reverse=True):
        rel = path.relative_to(dest)
        if rel.parts[0] == ".git" or rel in wanted:
            continue
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink()
    for rel in wanted:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, dest / rel)


def commit(dest: pathlib.Path) -> bool:
    """Commit every change in dest; return False when there was nothing to commit."""
    git(dest, "add", "-A")
    if not git(dest, "status", "--porcelain"):
        return False
    git(dest, "commit", "-q", "-m", "Publish the example templates")
    return True


def main(argv: list[str]) -> int:
    """Publish the templates into argv[0]; return the process exit code."""
    if len(argv) != 1:
        print(USAGE, file=sys.stderr)
        return EXIT_USAGE
    dest = pathlib.Path(argv[0]).resolve()
    try:
        prepare(dest)
    except NotARepo as err:
        print(f"example_repo: {err}", file=sys.stderr)
        return EXIT_USAGE
    mirror(SOURCE, dest)
    commit(dest)
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
