"""The `file_hasher` template: digests of files under one directory.

Self-contained on purpose: a robot imports each module of a template repo on
its own, so this module shares no helper with its siblings.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any

import gevent

from zrobot.template import Template

CHUNK_BYTES = 1 << 20
MAX_TREE_FILES = 10_000

# shake_* digests have no fixed length, so hexdigest() needs one: left out.
ALGORITHMS = tuple(
    sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake_"))
)


class FileHasher(Template):
    """Hash files found under the directory `data["root"]`.

    Data: `root`, the directory every path is relative to; it must exist
    when the service is created. Paths that leave `root` (`..`, absolute
    paths elsewhere, symlinks pointing out) are refused.

    Files are read in 1 MiB chunks and the service yields to the other
    services of its robot between chunks, so a large file does not stall
    them; hashing is still CPU work done in the robot's process.
    """

    version = "1.0.0"
    template_name = "file_hasher"

    def validate(self) -> None:
        """Refuse a `root` that is not an existing directory."""
        _check_root(self.data.get("root"))

    def hash_file(self, path: str, algorithm: str = "sha256") -> dict[str, Any]:
        """Hash one file.

        Args: `path`, the file relative to root (an absolute path is
        accepted if it lies inside root); `algorithm`, a name from
        `hashlib.algorithms_guaranteed` except shake_128/shake_256.

        Returns `{"path": relative path with symlinks resolved,
        "algorithm": name, "digest": hex digest, "size": bytes read}`.
        Raises ValueError for an unknown algorithm or a path outside root,
        FileNotFoundError for a missing file.
        """
        name = _algorithm(algorithm)
        root = _root(self.data)
        target = _file_under(root, path)
        digest, size = _digest(target, name)
        return {
            "path": target.relative_to(root).as_posix(),
            "algorithm": name,
            "digest": digest,
            "size": size,
        }

    def hash_tree(self, pattern: str = "**/*") -> dict[str, Any]:
        """Hash with sha256 every file under root that matches a glob pattern.

        Args: `pattern`, a `pathlib` glob relative to root (`**` spans
        directories); directories and files outside root are skipped.

        Returns `{"files": {relative path: hex digest}, "count": n}`, paths
        sorted. Raises ValueError for a pattern that leaves root or matches
        more than 10 000 files.
        """
        root = _root(self.data)
        files = {
            rel: _digest(root / rel, "sha256")[0]
            for rel in _matching_files(root, pattern)
        }
        return {"files": files, "count": len(files)}


def _check_root(root: Any) -> None:
    if not isinstance(root, str) or not root:
        raise TypeError("data 'root' must be a non-empty string (a directory)")
    if not pathlib.Path(root).is_dir():
        raise ValueError(f"data 'root' {root!r} is not an existing directory")


def _root(data: dict[str, Any]) -> pathlib.Path:
    return pathlib.Path(data["root"]).resolve()


def _algorithm(name: str) -> str:
    lowered = name.lower()
    if lowered not in ALGORITHMS:
        choices = ", ".join(ALGORITHMS)
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {choices}")
    return lowered


def _file_under(root: pathlib.Path, path: str) -> pathlib.Path:
    """Return the resolved file `path` names under root, or raise."""
    if not path or ".." in pathlib.PurePath(path).parts:
        raise ValueError(f"path {path!r} must name a file inside root, without '..'")
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"path {path!r} leads outside root {str(root)!r}")
    if not target.exists():
        raise FileNotFoundError(f"no file {path!r} under root {str(root)!r}")
    if not target.is_file():
        raise ValueError(f"path {path!r} is not a regular file")
    return target


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
        if len(found) > MAX_TREE_FILES:
            raise ValueError(
                f"pattern {pattern!r} matches more than {MAX_TREE_FILES} files"
            )
    return sorted(found)


def _digest(target: pathlib.Path, algorithm: str) -> tuple[str, int]:
    """Return (hex digest, size) of a file read in chunks; yields between them."""
    hasher = hashlib.new(algorithm)
    size = 0
    with target.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            hasher.update(chunk)
            size += len(chunk)
            gevent.sleep(0)  # a cooperative yield: other services run meanwhile
    return hasher.hexdigest(), size
