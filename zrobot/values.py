"""JSON values as zrobot carries them: args, data, state and results.

On the wire they are google.protobuf.Struct/Value: numbers are doubles (so
an integer beyond 2**53 cannot cross intact), strings must be valid UTF-8,
protobuf refuses to nest deeper than 100 messages (a JSON level takes two),
and a message is at most 16 MiB. Values are checked where they enter the
robot (an action's result and the state it leaves, a service's data, an
import) so that nothing stored can break a later read.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_EXACT_INT = 2**53
MAX_DEPTH = 32
MAX_VALUE_BYTES = 4 * 1024 * 1024


def json_problem(value: Any) -> str:
    """Return why value cannot travel as a JSON value, or "" when it can.

    Walks the value once and encodes it once; blocks for nothing else.
    """
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return str(exc)
    if len(encoded) > MAX_VALUE_BYTES:
        return (
            f"it is {len(encoded)} bytes as JSON, over the limit of "
            f"{MAX_VALUE_BYTES}; keep large data in files and pass their paths"
        )
    return _walk(value, 0)


def _walk(value: Any, depth: int) -> str:
    if depth > MAX_DEPTH:
        return f"it nests deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return _int_problem(value)
    if isinstance(value, float):
        return "" if math.isfinite(value) else f"{value} is not a JSON number"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _text_problem(key) or _walk(item, depth + 1)
            if problem:
                return problem
        return ""
    for item in value:
        problem = _walk(item, depth + 1)
        if problem:
            return problem
    return ""


def _int_problem(value: int) -> str:
    if abs(value) <= MAX_EXACT_INT:
        return ""
    return (
        f"integer {str(value)[:24]}... is beyond +-2**53 and would lose "
        "precision as a JSON number; send it as a string"
    )


def _text_problem(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"text {text[:20]!r} is not valid UTF-8 ({exc.reason})"
    return ""


def ensure_json(value: Any, what: str) -> Any:
    """Return value, or raise TypeError saying what is wrong with `what`."""
    problem = json_problem(value)
    if problem:
        raise TypeError(f"{what} is not a JSON value zrobot can carry: {problem}")
    return value
