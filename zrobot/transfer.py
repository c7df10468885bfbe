"""Moving services between robots, or into git: YAML out of and into a data dir.

Export and import work offline on a robot's data dir. They take the
data-dir lock first, so they refuse at once while a robot (or another
export or import) holds the dir, then open its SQLite store directly.

A service travels as one YAML mapping with exactly the keys `name`,
`template_uid`, `data` and `state`. A directory holds one file per service,
`<name>.yaml`; a stream (`-` on the command line) holds one YAML document
per service. Task journals, history, creation times and request ids stay
behind: they belong to the robot, not to the service's definition.

Import checks every document before it writes anything. Everything here
runs in the calling greenlet and blocks it for local file and SQLite I/O.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import pathlib
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TextIO

import yaml

from zrobot import errors
from zrobot.errors import Code
from zrobot.robot import validate_name
from zrobot.storage import DataDirLock, ServiceRecord, SqliteStorage, Storage
from zrobot.storage.sqlite import STORE_NAME
from zrobot.values import json_problem

log = logging.getLogger(__name__)

SERVICE_KEYS = ("data", "name", "state", "template_uid")
UID_SEGMENTS = 5
SUFFIX = ".yaml"
STREAM = "-"


class TransferError(errors.ServiceError):
    """An export or import that could not be done.

    These errors never cross the wire; only the CLI reports them.
    """

    code, reason = Code.UNKNOWN, "TRANSFER_FAILED"


class InvalidDocument(TransferError):
    """A document to import is not a valid service; nothing was written."""

    code, reason = Code.INVALID_ARGUMENT, "DOCUMENT_INVALID"


class PathNotFound(TransferError):
    """The data dir has no store, or the import source does not exist."""

    code, reason = Code.NOT_FOUND, "PATH_NOT_FOUND"


@dataclasses.dataclass(frozen=True)
class Document:
    """One parsed YAML document and where it came from (for messages)."""

    source: str
    content: Any


# -- the data dir -------------------------------------------------------------


def lock_data_dir(data_dir: pathlib.Path, create: bool = False) -> DataDirLock:
    """Take a robot's data-dir lock at once and return it; release it after use.

    With create, a missing data dir is made (a fresh robot); without it,
    PathNotFound when the dir has no store. Does not block: raises
    DataDirInUse, naming the holder's PID, while a robot holds the dir.
    """
    data_dir = pathlib.Path(data_dir)
    if create:
        with _os_errors(f"cannot create the data dir {data_dir}"):
            data_dir.mkdir(parents=True, exist_ok=True)
    elif not (data_dir / STORE_NAME).is_file():
        raise PathNotFound(
            f"no robot store in {data_dir} ({STORE_NAME} is missing); "
            "give the data dir of a robot that has run",
            metadata={"data_dir": str(data_dir)},
        )
    lock = DataDirLock(data_dir)
    lock.acquire()
    return lock


@contextlib.contextmanager
def open_store(data_dir: pathlib.Path) -> Iterator[Storage]:
    """Yield the data dir's SQLite store (made if missing), closed after.

    Take lock_data_dir first. Raises the StorageError subclasses of
    SqliteStorage; blocks for its integrity check.
    """
    storage = SqliteStorage(pathlib.Path(data_dir) / STORE_NAME)
    try:
        yield storage
    finally:
        storage.close()


# -- export -------------------------------------------------------------------


def export_services(storage: Storage) -> list[dict[str, Any]]:
    """Return every service of the store as a document, ordered by name."""
    return [_document_of(record) for record in storage.list_services()]


def export_data_dir(data_dir: pathlib.Path, dest: str, stdout: TextIO) -> list[str]:
    """Export a robot's services to the directory dest, or to stdout for `-`.

    Returns the names exported. A directory is created when missing; files
    of services it already holds are overwritten, other files are left
    alone. Raises what open_store raises, and TransferError when dest
    cannot be written.
    """
    with lock_data_dir(data_dir), open_store(data_dir) as storage:
        docs = export_services(storage)
    if dest == STREAM:
        write_stream(docs, stdout)
    else:
        write_directory(docs, pathlib.Path(dest))
    log.info("exported %d services of %s to %s", len(docs), data_dir, dest)
    return [doc["name"] for doc in docs]


def write_stream(docs: Sequence[Mapping[str, Any]], stream: TextIO) -> None:
    """Write docs as one YAML stream, one document each, keys sorted."""
    stream.write(_dump_all(docs))
    stream.flush()


def write_directory(
    docs: Sequence[Mapping[str, Any]], folder: pathlib.Path
) -> list[pathlib.Path]:
    """Write each doc to folder/<name>.yaml; return the paths written.

    Each file is replaced atomically, so a crash leaves the old or the new
    file, never half of one. Raises TransferError when folder or a file
    cannot be written.
    """
    with _os_errors(f"cannot write to {folder}"):
        folder.mkdir(parents=True, exist_ok=True)
        return [_write_file(folder, doc) for doc in docs]


# TODO(transfer): export leaves files of services deleted since the last
# export in the directory; remove them once a dir can be marked as ours.
def _write_file(folder: pathlib.Path, doc: Mapping[str, Any]) -> pathlib.Path:
    validate_name(doc["name"])  # never a path outside folder
    target = folder / f"{doc['name']}{SUFFIX}"
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{doc['name']}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(_dump(doc))
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return target


def _document_of(record: ServiceRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "template_uid": record.template_uid,
        "data": record.data,
        "state": record.state,
    }


def _dump(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(
        dict(doc), sort_keys=True, default_flow_style=False, allow_unicode=True
    )


def _dump_all(docs: Sequence[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all(
        [dict(doc) for doc in docs],
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=True,
    )


# -- import -------------------------------------------------------------------


def import_data_dir(
    data_dir: pathlib.Path, src: str, stdin: TextIO, replace: bool = False
) -> list[str]:
    """Import services from the directory src, or from stdin for `-`.

    Locks the data dir first (creating a fresh one if needed), then reads
    and checks every document, and only then opens the store and writes,
    so bad input leaves the store as it was. Returns the names imported.
    Raises DataDirInUse, PathNotFound, InvalidDocument, ServiceExists (see
    import_services) and StorageError subclasses.
    """
    with lock_data_dir(data_dir, create=True):
        docs = read_source(src, stdin)
        check_documents(docs)
        with open_store(data_dir) as storage:
            names = import_services(storage, docs, replace)
    log.info("imported %d services from %s into %s", len(names), src, data_dir)
    return names


def import_services(
    storage: Storage, docs: Sequence[Document], replace: bool = False
) -> list[str]:
    """Create a service in the store for every document; return their names.

    Checks everything before the first write: InvalidDocument (naming the
    document and the field) when any document is bad or two share a name,
    ServiceExists when a service of that name is stored and replace is
    false. A replaced service is deleted with its task journal and history
    and created again from its document.
    """
    records = check_documents(docs)
    stored = {record.name for record in storage.list_services()}
    taken = sorted(name for name in records if name in stored)
    if taken and not replace:
        raise errors.ServiceExists(
            f"the data dir already has services {', '.join(map(repr, taken))}; "
            "delete them first or import with --replace",
            metadata={"services": ",".join(taken)},
        )
    for name, record in records.items():
        if name in stored:
            storage.delete_service(name)
        storage.create_service(record)
    return list(records)


def read_source(src: str, stdin: TextIO) -> list[Document]:
    """Parse the documents of the directory src, or of stdin for `-`."""
    return read_stream(stdin) if src == STREAM else read_directory(pathlib.Path(src))


def read_directory(folder: pathlib.Path) -> list[Document]:
    """Parse every folder/*.yaml file, in name order; other files are ignored.

    Raises PathNotFound when folder is not a directory, InvalidDocument when
    a file cannot be read or parsed or holds other than one document.
    """
    if not folder.is_dir():
        raise PathNotFound(
            f"{folder} is not a directory; give a directory of <name>{SUFFIX} "
            "files or - for standard input",
            metadata={"path": str(folder)},
        )
    return [_read_file(path) for path in sorted(folder.glob(f"*{SUFFIX}"))]


def read_stream(stream: TextIO, label: str = "<stdin>") -> list[Document]:
    """Parse a YAML stream of documents; InvalidDocument if it cannot be."""
    text = _read_text(stream.read, label)
    with _yaml_errors(label):
        found = list(yaml.safe_load_all(text))
    return [Document(f"{label} document {n}", doc) for n, doc in enumerate(found, 1)]


def _read_file(path: pathlib.Path) -> Document:
    text = _read_text(lambda: path.read_text(encoding="utf-8"), str(path))
    with _yaml_errors(str(path)):
        found = list(yaml.safe_load_all(text))
    if len(found) != 1:
        raise InvalidDocument(
            f"{path} holds {len(found)} YAML documents; a file holds one service",
            metadata={"source": str(path)},
        )
    return Document(str(path), found[0])


def _read_text(read: Callable[[], str], label: str) -> str:
    try:
        text = read()
    except OSError as exc:
        raise InvalidDocument(f"cannot read {label}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidDocument(f"{label} is not UTF-8 text ({exc.reason})") from exc
    return text


@contextlib.contextmanager
def _yaml_errors(label: str) -> Iterator[None]:
    """Turn a YAML parse error into InvalidDocument, on one line."""
    try:
        yield
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InvalidDocument(
            f"{label}{where}: {problem}", metadata={"source": label}
        ) from exc


@contextlib.contextmanager
def _os_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise TransferError(f"{doing}: {exc.strerror}{where}") from exc


# -- checking documents -------------------------------------------------------


# A problem is (field, sentence); the sentence starts with the field's name.
Problem = tuple[str, str]


def check_documents(docs: Sequence[Document]) -> dict[str, ServiceRecord]:
    """Check every document; return a service record per name, in order.

    Raises InvalidDocument naming the first bad document and field, with
    every problem found as its violations. No I/O.
    """
    problems: list[tuple[str, Problem]] = []
    records: dict[str, ServiceRecord] = {}
    for doc in docs:
        found = _problems(doc.content) or _duplicate(doc.content["name"], records)
        problems += [(doc.source, problem) for problem in found]
        if not found:
            records[doc.content["name"]] = _record_of(doc.content)
    if problems:
        _refuse(problems)
    return records


def _refuse(problems: list[tuple[str, Problem]]) -> None:
    """Raise InvalidDocument for the first problem; all of them as violations."""
    source, (_, text) = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    raise InvalidDocument(
        f"{source}: {text}; nothing was imported{more}",
        metadata={"source": source},
        violations=[(f"{where}: {field}", what) for where, (field, what) in problems],
    )


def _duplicate(name: str, records: Mapping[str, Any]) -> list[Problem]:
    if name in records:
        return [("name", f"name {name!r} is taken by an earlier document")]
    return []


def _problems(content: Any) -> list[Problem]:
    """Return every problem of one document, in a stable order."""
    if not isinstance(content, dict):
        return [("document", f"the document is {_kind(content)}, {_EXPECTED}")]
    # Unknown fields first: a misspelt field is the likely cause of a missing one.
    found = [
        (str(key), f"{key} is not a service field ({_EXPECTED})")
        for key in content
        if key not in SERVICE_KEYS
    ]
    found += [(key, f"{key} is missing") for key in SERVICE_KEYS if key not in content]
    for key, check in _CHECKS.items():
        problem = check(key, content[key]) if key in content else None
        if problem:
            found.append((key, problem))
    return found


def _name_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{key} must be a string, not {_kind(value)}"
    try:
        validate_name(value)
    except errors.InvalidName as exc:
        rule = exc.violations[0][1] if exc.violations else exc.message
        return f"{key} {value[:140]!r} is not valid: use {rule}"
    return None


def _uid_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{key} must be a string, not {_kind(value)}"
    parts = value.split("/")
    if len(parts) != UID_SEGMENTS or not all(parts):
        return f"{key} {value!r} is not of the form host/owner/repo/name/version"
    return None


def _mapping_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"{key} must be a mapping, not {_kind(value)}"
    problem = _json_problem(value, key)
    if problem is None and (wire := json_problem(value)):
        problem = f"{key}: {wire}"
    return problem


def _json_problem(value: Any, path: str) -> str | None:
    """Describe the first part of value that JSON cannot hold, or None."""
    if isinstance(value, dict):
        return _first(_json_key_problem(k, v, path) for k, v in value.items())
    if isinstance(value, list):
        return _first(_json_problem(v, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path} is {value}, which JSON cannot hold"
    if value is None or isinstance(value, str | int | float):
        return None
    return f"{path} is {_kind(value)}, not a JSON value (quote it)"


def _json_key_problem(key: Any, value: Any, path: str) -> str | None:
    if not isinstance(key, str):
        return f"{path} has the key {key!r}, which must be a string (quote it)"
    return _json_problem(value, f"{path}.{key}")


def _first(problems: Iterable[str | None]) -> str | None:
    return next((problem for problem in problems if problem), None)


_CHECKS = {
    "name": _name_problem,
    "template_uid": _uid_problem,
    "data": _mapping_problem,
    "state": _mapping_problem,
}
_EXPECTED = f"expected a mapping with the keys {', '.join(SERVICE_KEYS)}"


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _record_of(content: Mapping[str, Any]) -> ServiceRecord:
    return ServiceRecord(
        name=content["name"],
        template_uid=content["template_uid"],
        data=dict(content["data"]),
        state=dict(content["state"]),
        create_time=time.time(),
    )
