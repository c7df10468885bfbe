"""Storage backends behind one interface; SQLite is the embedded default."""

from zrobot.storage.base import (
    DEFAULT_HISTORY_LIMIT,
    ServiceRecord,
    Storage,
    TaskRecord,
)
from zrobot.storage.lock import DataDirLock
from zrobot.storage.sqlite import SCHEMA_VERSION, SqliteStorage

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "SCHEMA_VERSION",
    "DataDirLock",
    "ServiceRecord",
    "SqliteStorage",
    "Storage",
    "TaskRecord",
]
