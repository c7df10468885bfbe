"""The `archiver` template: deterministic archives of a folder's files.

Self-contained on purpose: a robot imports each module of a template repo on
its own, so this module shares no helper with its siblings.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pathlib
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from typing import IO, Any, cast

import gevent

from zrobot.template import Template

CHUNK_BYTES = 1 << 20
MAX_MEMBERS = 10_000
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# 1980-01-01, the earliest time a zip entry can hold; used for every member.
FIXED_MTIME = 315532800
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)


class Archiver(Template):
    """Pack files under `data["root"]` into archives written to `data["out_dir"]`.

    Data: `root`, an existing directory the sources are relative to;
    `out_dir`, where archives go (created on first use; files inside it are
    never packed, so it may lie under root).

    Archives are deterministic: members sorted by path, every mtime set to
    1980-01-01, owner 0/0 without names, modes 0644 or 0755, so the same
    files give the same bytes. An archive is written to a temporary file in
    out_dir and renamed into place, so a crash never leaves half an archive
    under the final name and packing again is always safe.
    """

    version = "1.0.0"

    def validate(self) -> None:
        """Refuse a missing `root` or an `out_dir` that is not a directory."""
        root, out_dir = self.data.get("root"), self.data.get("out_dir")
        if not isinstance(root, str) or not root:
            raise TypeError("data 'root' must be a non-empty string (a directory)")
        if not pathlib.Path(root).is_dir():
            raise ValueError(f"data 'root' {root!r} is not an existing directory")
        if not isinstance(out_dir, str) or not out_dir:
            raise TypeError("data 'out_dir' must be a non-empty string (a directory)")
        if pathlib.Path(out_dir).exists() and not pathlib.Path(out_dir).is_dir():
            raise ValueError(
                f"data 'out_dir' {out_dir!r} exists and is not a directory"
            )

    def pack(self, src: str, name: str, format: str = "tar.gz") -> dict[str, Any]:
        """Pack a file or a directory tree into one archive.

        Args: `src`, a file or directory relative to root ("." for all of
        root); `name`, a plain file name for the archive (letters, digits,
        `.`, `_`, `-`), to which `.tar`, `.tar.gz` or `.zip` is appended
        unless it already ends so; `format`, one of "tar", "tar.gz", "zip".

        Members are the regular files under src, named relative to src
        (a single file keeps its own name); empty directories are left out.

        Returns `{"archive": absolute path, "size": bytes, "members": n,
        "sha256": hex digest of the archive}`. Raises ValueError for a bad
        name or format or a src outside root, FileNotFoundError for a
        missing src.
        """
        writer = _writer(format)
        out_dir = pathlib.Path(self.data["out_dir"]).resolve()
        target = out_dir / _archive_name(name, format)
        members = _members(pathlib.Path(self.data["root"]).resolve(), src, out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, lambda stream: writer(stream, members))
        return {
            "archive": str(target),
            "size": target.stat().st_size,
            "members": len(members),
            "sha256": _sha256(target),
        }


Members = list[tuple[str, pathlib.Path]]


def _archive_name(name: str, format: str) -> str:
    if not NAME.fullmatch(name) or name.strip(".") == "":
        raise ValueError(
            f"archive name {name!r} must be a plain file name: letters, digits, "
            "'.', '_', '-', at most 128 characters, no path separators"
        )
    suffix = "." + format
    return name if name.endswith(suffix) else name + suffix


def _members(root: pathlib.Path, src: str, out_dir: pathlib.Path) -> Members:
    """Return sorted (archive name, file) pairs of the regular files under src."""
    if not src or ".." in pathlib.PurePath(src).parts:
        raise ValueError(f"src {src!r} must name a path inside root, without '..'")
    base = (root / src).resolve()
    if not base.is_relative_to(root):
        raise ValueError(f"src {src!r} leads outside root {str(root)!r}")
    if not base.exists():
        raise FileNotFoundError(
            f"no file or directory {src!r} under root {str(root)!r}"
        )
    if base.is_file():
        return [(base.name, base)]
    found: Members = []
    for path in base.rglob("*"):
        resolved = path.resolve()
        if resolved.is_relative_to(out_dir) or not resolved.is_relative_to(root):
            continue
        if resolved.is_file():
            found.append((path.relative_to(base).as_posix(), resolved))
        if len(found) > MAX_MEMBERS:
            raise ValueError(f"src {src!r} holds more than {MAX_MEMBERS} files")
    return sorted(found)


def _mode(path: pathlib.Path) -> int:
    return 0o755 if path.stat().st_mode & 0o111 else 0o644


def _write_tar(stream: IO[bytes], members: Members) -> None:
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for arcname, path in members:
            info = tarfile.TarInfo(arcname)
            info.size, info.mode = path.stat().st_size, _mode(path)
            info.mtime = FIXED_MTIME
            with path.open("rb") as source:
                tar.addfile(info, source)
            gevent.sleep(0)  # a cooperative yield between members


def _write_tar_gz(stream: IO[bytes], members: Members) -> None:
    # GzipFile's header holds a file name and an mtime: both fixed here.
    with gzip.GzipFile(filename="", mode="wb", fileobj=stream, mtime=0) as packed:
        _write_tar(cast(IO[bytes], packed), members)


def _write_zip(stream: IO[bytes], members: Members) -> None:
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arcname, path in members:
            info = zipfile.ZipInfo(arcname, date_time=FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = path.stat().st_size  # lets zipfile pick zip64 if needed
            info.external_attr = (0o100000 | _mode(path)) << 16
            with path.open("rb") as source, archive.open(info, "w") as entry:
                while chunk := source.read(CHUNK_BYTES):
                    entry.write(chunk)
            gevent.sleep(0)  # a cooperative yield between members


Writer = Callable[[IO[bytes], Members], None]
WRITERS: dict[str, Writer] = {
    "tar": _write_tar,
    "tar.gz": _write_tar_gz,
    "zip": _write_zip,
}


def _writer(format: str) -> Writer:
    if format not in WRITERS:
        raise ValueError(f"unknown format {format!r}; choose one of: tar, tar.gz, zip")
    return WRITERS[format]


def _write_atomically(target: pathlib.Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temporary file next to target, then rename it over target."""
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        # BaseException too: a killed greenlet must not leave the temp file.
        os.unlink(temp_name)
        raise


def _sha256(target: pathlib.Path) -> str:
    hasher = hashlib.sha256()
    with target.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()
