"""Storage backends behind one interface; SQLite is the embedded default."""

from zrobot.storage.base import (
    DEFAULT_HISTORY_LIMIT,
    ServiceRecord,
    Storage,
    TaskRecord,
)

__all__ = ["DEFAULT_HISTORY_LIMIT", "ServiceRecord", "Storage", "TaskRecord"]
