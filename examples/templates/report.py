"""The `folder_report` template: a consumer that fans work out to producers.

Self-contained on purpose: a robot imports each module of a template repo on
its own, so this module shares no helper with its siblings.
"""

from __future__ import annotations

import hashlib
import pathlib
import time
from typing import Any

from zrobot.template import Template

MAX_FILES = 1000


class FolderReport(Template):
    """Summarize the text files of a folder with the help of two producers.

    Data: `hasher`, the name of a `file_hasher` service; `counter`, the
    name of a `word_counter` service; `robot`, the peer robot both live on,
    or null when they live on this robot; `root`, the folder to report on;
    `timeout_s`, how long one summary may wait on the producers (default
    60). The producers must see the same files under their own `root`:
    paths are sent to them relative to it.

    State: `last_summary`, the totals of the latest summary.
    """

    version = "1.0.0"
    data_defaults = {"robot": None, "timeout_s": 60.0}

    def validate(self) -> None:
        """Refuse missing producer names, a bad robot or timeout, a missing root."""
        for key in ("hasher", "counter"):
            if not isinstance(self.data.get(key), str) or not self.data[key]:
                raise TypeError(f"data {key!r} must be a non-empty service name")
        robot = self.data["robot"]
        if robot is not None and (not isinstance(robot, str) or not robot):
            raise TypeError("data 'robot' must be a peer robot name or null")
        _check_timeout(self.data["timeout_s"])
        _check_root(self.data.get("root"))

    def summarize(self, pattern: str = "*.txt") -> dict[str, Any]:
        """Hash and count every file under root that matches a glob pattern.

        Args: `pattern`, a `pathlib` glob relative to root (`**` spans
        directories), at most 1000 matching files.

        Schedules `hash_file` on the hasher and `count_file` on the counter
        for every file before waiting on any of them, so the producers work
        while this service waits; blocks this service's greenlet (only) for
        at most `timeout_s` in all.

        Returns `{"pattern": pattern, "files": [{"path", "sha256", "words",
        "lines", "size"}, ...] sorted by path, "totals": {"files", "words",
        "lines", "size"}, "combined_sha256": sha256 of the sorted per-file
        digests joined by newlines}`. Raises ValueError for a bad pattern;
        a producer's failure or a timeout fails the summary with the zrobot
        error the wait raised.
        """
        paths = _matching_files(pathlib.Path(self.data["root"]).resolve(), pattern)
        hash_tasks, count_tasks = self._schedule(paths)
        deadline = time.monotonic() + float(self.data["timeout_s"])
        files = [
            _file_entry(path, _wait(hashed, deadline), _wait(counted, deadline))
            for path, hashed, counted in zip(
                paths, hash_tasks, count_tasks, strict=True
            )
        ]
        summary = _combine(pattern, files)
        self.state["last_summary"] = {
            **summary["totals"],
            "combined_sha256": summary["combined_sha256"],
        }
        return summary

    def _schedule(self, paths: list[str]) -> tuple[list[Any], list[Any]]:
        """Put one hash_file and one count_file task per path; returns at once."""
        robot = self.data["robot"]
        hasher = self.api.services.get(self.data["hasher"], robot=robot)
        counter = self.api.services.get(self.data["counter"], robot=robot)
        hash_tasks = [
            hasher.schedule_action("hash_file", {"path": path}) for path in paths
        ]
        count_tasks = [
            counter.schedule_action("count_file", {"path": path}) for path in paths
        ]
        return hash_tasks, count_tasks


def _check_timeout(timeout_s: Any) -> None:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        raise TypeError("data 'timeout_s' must be a number of seconds")
    if timeout_s <= 0:
        raise ValueError(f"data 'timeout_s' must be positive, got {timeout_s}")


def _check_root(root: Any) -> None:
    if not isinstance(root, str) or not root:
        raise TypeError("data 'root' must be a non-empty string (a directory)")
    if not pathlib.Path(root).is_dir():
        raise ValueError(f"data 'root' {root!r} is not an existing directory")


def _matching_files(root: pathlib.Path, pattern: str) -> list[str]:
    """Return sorted relative paths of the files inside root matching pattern."""
    pure = pathlib.PurePath(pattern)
    if not pattern or pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"pattern {pattern!r} must be relative to root, without '..'")
    found: list[str] = []
    for match in root.glob(pattern):
        resolved = match.resolve()
        if resolved.is_file() and resolved.is_relative_to(root):
            found.append(match.relative_to(root).as_posix())
        if len(found) > MAX_FILES:
            raise ValueError(f"pattern {pattern!r} matches more than {MAX_FILES} files")
    return sorted(found)


def _wait(task: Any, deadline: float) -> Any:
    """Block this greenlet until task ends or the deadline passes."""
    return task.wait(max(deadline - time.monotonic(), 0.0))


def _file_entry(
    path: str, hashed: dict[str, Any], counted: dict[str, Any]
) -> dict[str, Any]:
    return {
        "path": path,
        "sha256": hashed["digest"],
        "words": counted["words"],
        "lines": counted["lines"],
        "size": hashed["size"],
    }


def _combine(pattern: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    digests = sorted(entry["sha256"] for entry in files)
    combined = hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest()
    totals = {
        "files": len(files),
        "words": sum(entry["words"] for entry in files),
        "lines": sum(entry["lines"] for entry in files),
        "size": sum(entry["size"] for entry in files),
    }
    return {
        "pattern": pattern,
        "files": files,
        "totals": totals,
        "combined_sha256": combined,
    }
