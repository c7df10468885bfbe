"""How store records map to SQLite rows and back.

Private to `zrobot.storage.sqlite`. Columns are named as the record fields;
the JSON columns hold compact JSON text, and a task's state its enum value.
Pure functions: nothing here touches the database or blocks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from zrobot.states import TaskState
from zrobot.storage.base import ServiceRecord, TaskRecord

_SERVICE_FIELDS = "name template_uid data state create_time request_id".split()
_SERVICE_JSON = frozenset({"data", "state"})
_TASK_FIELDS = (
    "id service action args priority state result error create_time start_time "
    "end_time deadline call_chain request_id"
).split()
_TASK_JSON = frozenset({"args", "result", "error", "call_chain"})
_FINISH_FIELDS = "state result error start_time end_time id service".split()

SERVICE_COLUMNS = ", ".join(_SERVICE_FIELDS)
"""The services columns, in `service_values` order."""

TASK_COLUMNS = ", ".join(("seq", *_TASK_FIELDS))
"""The tasks columns: seq, then the others in `task_values` order."""


def service_values(record: ServiceRecord) -> tuple[Any, ...]:
    """The values of a service's row, in SERVICE_COLUMNS order."""
    return _values(record, _SERVICE_FIELDS, _SERVICE_JSON)


def task_values(record: TaskRecord) -> tuple[Any, ...]:
    """The values of a new task's row, in TASK_COLUMNS order without seq."""
    return _values(record, _TASK_FIELDS, _TASK_JSON)


def finish_values(record: TaskRecord) -> tuple[Any, ...]:
    """state, result, error, start_time, end_time, id, service of a task."""
    return _values(record, _FINISH_FIELDS, _TASK_JSON)


def service_record(row: sqlite3.Row) -> ServiceRecord:
    """The record of a row selected with SERVICE_COLUMNS."""
    return ServiceRecord(**_fields(row, _SERVICE_JSON))


def task_record(row: sqlite3.Row) -> TaskRecord:
    """The record of a row selected with TASK_COLUMNS."""
    fields = _fields(row, _TASK_JSON)
    return TaskRecord(**{**fields, "state": TaskState(fields["state"])})


def dump(value: Any) -> str | None:
    """JSON text of a value (None stays NULL); TypeError if JSON cannot hold it."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _values(
    record: Any, columns: Sequence[str], json_columns: frozenset[str]
) -> tuple[Any, ...]:
    return tuple(_column(getattr(record, c), c in json_columns) for c in columns)


def _column(value: Any, is_json: bool) -> Any:
    if is_json:
        return dump(value)
    return value.value if isinstance(value, TaskState) else value


def _fields(row: sqlite3.Row, json_columns: frozenset[str]) -> dict[str, Any]:
    """A row as record fields, JSON columns parsed."""
    return {
        column: json.loads(row[column])
        if column in json_columns and row[column] is not None
        else row[column]
        for column in row.keys()
    }
