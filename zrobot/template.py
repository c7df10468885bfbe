"""Template base class, the `action` decorator and action signatures.

A template is a subclass of `Template` in a template repo. Every public
method it defines (name without a leading `_`, not inherited from
`Template`) is an *action* a task can run. Arguments are JSON values; an
action's type hints (str, int, float, bool, list, dict, Optional[...]) are
checked before a task is queued.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from zrobot.errors import InvalidAction, InvalidArguments

F = TypeVar("F", bound=Callable[..., Any])

_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One argument of an action; `type` is a JSON type name or "any"."""

    name: str
    required: bool
    type: str = "any"
    nullable: bool = True


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """What the robot knows of an action before it runs it."""

    name: str
    doc: str
    parameters: tuple[Parameter, ...]
    repeat_safe: bool = True
    accepts_any: bool = False

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Check args against the signature and return them normalised.

        Integral numbers become int where the action wants an integer and
        int becomes float where it wants a number. Raises InvalidArguments
        listing every problem at once. Never blocks.
        """
        known = {p.name: p for p in self.parameters}
        problems: list[tuple[str, str]] = []
        out: dict[str, Any] = {}
        for key, value in args.items():
            param = known.get(key)
            if param is None:
                if not self.accepts_any:
                    problems.append((key, f"{self.name}() takes no argument {key!r}"))
                else:
                    out[key] = value
                continue
            converted, problem = _check_type(param, value)
            if problem:
                problems.append((key, problem))
            out[key] = converted
        for param in self.parameters:
            if param.required and param.name not in args:
                problems.append((param.name, "required argument is missing"))
        if problems:
            detail = "; ".join(f"{field}: {text}" for field, text in problems)
            raise InvalidArguments(
                f"bad arguments for action {self.name!r}: {detail}",
                metadata={"action": self.name},
                violations=problems,
            )
        return out


@typing.overload
def action(func: F, *, repeat_safe: bool = True) -> F: ...


@typing.overload
def action(func: None = None, *, repeat_safe: bool = True) -> Callable[[F], F]: ...


def action(func: F | None = None, *, repeat_safe: bool = True) -> F | Callable[[F], F]:
    """Mark a method as an action; `repeat_safe=False` forbids a re-run.

    Plain public methods are actions already; the decorator only adds
    options. A task of a not-repeat-safe action that was running when the
    robot died ends in ERROR (TASK_INTERRUPTED) instead of running again.
    """

    def mark(f: F) -> F:
        f.__zrobot_repeat_safe__ = repeat_safe  # type: ignore[attr-defined]
        return f

    return mark(func) if func is not None else mark


class Template:
    """Base class of every template; one instance per service.

    Attributes a service sees at run time: `name` (the service name),
    `data` (validated user input), `state` (what the service reports,
    saved after every task) and `api` (reaches other services, local or
    remote). Actions run one at a time in the service's own greenlet, so a
    template never needs a lock for its own attributes. An action may block
    on gevent-aware I/O; CPU-heavy loops stall every service of the robot.

    Class attributes: `version` (required, e.g. "1.2.0"), `template_name`
    (defaults to the class name in snake_case), `data_defaults`.
    """

    version: ClassVar[str] = ""
    template_name: ClassVar[str] = ""
    data_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        state: Mapping[str, Any] | None = None,
        api: Any = None,
    ) -> None:
        self.name = name
        self.data: dict[str, Any] = {**self.data_defaults, **(data or {})}
        self.state: dict[str, Any] = dict(state or {})
        self.api = api

    def validate(self) -> None:
        """Hook: raise ValueError or TypeError to refuse `self.data`.

        Runs once when the service is created, in the caller's greenlet.
        """


def template_name_of(cls: type[Template]) -> str:
    """Return the template's name: `template_name`, else snake_case class name."""
    if cls.__dict__.get("template_name"):
        return cls.template_name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


def actions_of(cls: type[Template]) -> dict[str, ActionSpec]:
    """Return the actions of a template class by name, sorted by name."""
    reserved = set(dir(Template))
    found: dict[str, ActionSpec] = {}
    for name in sorted(dir(cls)):
        if name.startswith("_") or name in reserved:
            continue
        member = inspect.getattr_static(cls, name)
        if isinstance(member, (staticmethod, classmethod, property)):
            continue
        if inspect.isfunction(member):
            found[name] = _spec_of(name, member)
    return found


def resolve_action(
    cls: type[Template],
    name: str,
    actions: Mapping[str, ActionSpec] | None = None,
) -> ActionSpec:
    """Return the ActionSpec for name, or raise InvalidAction naming the choices.

    Pass `actions` (from actions_of, computed once per class) on hot paths;
    without it the class is inspected again.
    """
    if actions is None:
        actions = actions_of(cls)
    if name.startswith("_"):
        raise InvalidAction(
            f"action {name!r} is private: names starting with '_' are never actions",
            metadata={"action": name},
        )
    if name not in actions:
        choices = ", ".join(actions) or "none"
        raise InvalidAction(
            f"template {template_name_of(cls)!r} has no action {name!r}; "
            f"actions: {choices}",
            metadata={"action": name},
        )
    return actions[name]


def _spec_of(name: str, func: Callable[..., Any]) -> ActionSpec:
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable hints just mean "any"
        hints = {}
    params: list[Parameter] = []
    accepts_any = False
    for param in list(signature.parameters.values())[1:]:
        if param.kind is param.VAR_KEYWORD:
            accepts_any = True
            continue
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            continue
        json_type, nullable = _json_type(hints.get(param.name, Any))
        params.append(
            Parameter(
                name=param.name,
                required=param.default is param.empty,
                type=json_type,
                nullable=nullable or param.default is None,
            )
        )
    return ActionSpec(
        name=name,
        doc=inspect.getdoc(func) or "",
        parameters=tuple(params),
        repeat_safe=getattr(func, "__zrobot_repeat_safe__", True),
        accepts_any=accepts_any,
    )


def _json_type(hint: Any) -> tuple[str, bool]:
    """Map a type hint to (JSON type name, accepts None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(hint))
        if len(members) == 1:
            return _json_type(members[0])[0], nullable
        return "any", True
    base = origin or hint
    if base in _JSON_TYPES:
        return _JSON_TYPES[base], False
    return "any", True


def _check_type(param: Parameter, value: Any) -> tuple[Any, str]:
    """Return (converted value, problem text or "")."""
    if value is None:
        return (
            value,
            "" if param.nullable or param.type == "any" else "must not be null",
        )
    kind = param.type
    if kind == "any":
        return value, ""
    if kind == "integer":
        if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
            return int(value), ""
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value), ""
        ok = isinstance(value, float)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "array":
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, dict)
    if ok:
        return value, ""
    return value, f"expected {kind}, got {_json_name(value)}"


def _json_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    for py_type, name in _JSON_TYPES.items():
        if isinstance(value, py_type):
            return name
    return type(value).__name__
