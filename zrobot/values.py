"""JSON values as zrobot carries them: args, data, state and results.

On the wire they are google.protobuf.Struct/Value, whose numbers are
doubles, so an integer beyond 2**53 cannot cross it intact. Values are
checked where they enter the robot (an action's result and the state it
leaves, a service's data) so that nothing stored can break a later read.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_EXACT_INT = 2**53


def json_problem(value: Any) -> str:
    """Return why value cannot travel as a JSON value, or "" when it can.

    Walks the value once; never blocks beyond that walk.
    """
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return _number_problem(value)


def _number_problem(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return ""
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INT:
            return (
                f"integer {str(value)[:24]}... is beyond +-2**53 and would lose "
                "precision as a JSON number; send it as a string"
            )
        return ""
    if isinstance(value, float):
        return "" if math.isfinite(value) else f"{value} is not a JSON number"
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        problem = _number_problem(item)
        if problem:
            return problem
    return ""


def ensure_json(value: Any, what: str) -> Any:
    """Return value, or raise TypeError saying what is wrong with `what`."""
    problem = json_problem(value)
    if problem:
        raise TypeError(f"{what} is not a JSON value zrobot can carry: {problem}")
    return value
