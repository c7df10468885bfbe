"""The Template base class: names, actions, signatures and argument checks."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from zrobot.errors import InvalidAction, InvalidArguments
from zrobot.template import (
    ActionSpec,
    Parameter,
    Template,
    action,
    actions_of,
    resolve_action,
    template_name_of,
)


class WebCheck(Template):
    version = "1.0.0"
    data_defaults = {"retries": 3}

    def check(self, url: str, timeout_s: float = 5.0) -> bool:
        """Fetch url and say whether it answered."""
        return True

    @action(repeat_safe=False)
    def deploy(
        self,
        count: int,
        tags: list[str],
        extra: Optional[dict] = None,  # noqa: UP045
    ) -> None:
        """Deploy count copies."""

    @action
    def plain(self, anything, maybe: int | None):  # type: ignore[no-untyped-def]
        """An action whose first argument has no type hint."""

    def configure(self, name: str, **options: Any) -> None:
        pass

    def validate(self) -> None:
        pass

    def _private(self) -> None:
        pass

    @staticmethod
    def helper() -> None:
        pass

    @classmethod
    def build(cls) -> None:
        pass

    @property
    def ready(self) -> bool:
        return True


class ExtendedCheck(WebCheck):
    template_name = "extended"

    def extra_step(self, flag: bool) -> None:
        pass


def spec(name: str) -> ActionSpec:
    return actions_of(WebCheck)[name]


# Names and instances -------------------------------------------------------


def test_a_template_is_named_by_its_class_in_snake_case() -> None:
    assert template_name_of(WebCheck) == "web_check"


def test_template_name_overrides_the_class_name_but_is_not_inherited() -> None:
    class Child(ExtendedCheck):
        pass

    assert template_name_of(ExtendedCheck) == "extended"
    assert template_name_of(Child) == "child"


def test_a_service_instance_merges_data_over_the_defaults() -> None:
    service = WebCheck("svc", {"url": "http://x"}, {"up": True})
    assert service.name == "svc"
    assert service.data == {"retries": 3, "url": "http://x"}
    assert service.state == {"up": True}
    assert WebCheck("other").data == {"retries": 3}
    assert WebCheck.data_defaults == {"retries": 3}


# actions_of ----------------------------------------------------------------


def test_actions_are_the_public_methods_sorted_by_name() -> None:
    assert list(actions_of(WebCheck)) == ["check", "configure", "deploy", "plain"]


def test_private_static_class_methods_and_properties_are_not_actions() -> None:
    actions = actions_of(WebCheck)
    for name in ("_private", "helper", "build", "ready"):
        assert name not in actions


def test_methods_of_the_template_base_are_not_actions_even_when_overridden() -> None:
    assert "validate" not in actions_of(WebCheck)
    assert actions_of(Template) == {}


def test_a_subclass_inherits_the_actions_of_its_parent() -> None:
    assert list(actions_of(ExtendedCheck)) == [
        "check",
        "configure",
        "deploy",
        "extra_step",
        "plain",
    ]


def test_an_action_spec_describes_the_signature_without_self() -> None:
    assert spec("check") == ActionSpec(
        name="check",
        doc="Fetch url and say whether it answered.",
        parameters=(
            Parameter("url", required=True, type="string", nullable=False),
            Parameter("timeout_s", required=False, type="number", nullable=False),
        ),
    )


def test_hints_map_to_json_types_and_optional_means_nullable() -> None:
    deploy = {p.name: p for p in spec("deploy").parameters}
    assert (deploy["count"].type, deploy["count"].nullable) == ("integer", False)
    assert deploy["tags"].type == "array"
    assert (deploy["extra"].type, deploy["extra"].nullable) == ("object", True)
    plain = {p.name: p for p in spec("plain").parameters}
    assert (plain["anything"].type, plain["anything"].nullable) == ("any", True)
    assert (plain["maybe"].type, plain["maybe"].nullable) == ("integer", True)


def test_repeat_safe_defaults_to_true_and_the_decorator_can_turn_it_off() -> None:
    assert spec("check").repeat_safe is True
    assert spec("plain").repeat_safe is True
    assert spec("deploy").repeat_safe is False


def test_keyword_catch_all_makes_an_action_accept_any_argument() -> None:
    assert spec("configure").accepts_any is True
    assert spec("check").accepts_any is False
    assert [p.name for p in spec("configure").parameters] == ["name"]


def test_unresolvable_hints_count_as_any() -> None:
    class Odd(Template):
        def run(self, thing: int) -> None:
            pass

    Odd.run.__annotations__["thing"] = "NoSuchType"

    [param] = actions_of(Odd)["run"].parameters
    assert (param.type, param.nullable) == ("any", True)


# ActionSpec.validate ---------------------------------------------------------


def test_valid_arguments_come_back_unchanged() -> None:
    args = {"url": "http://x", "timeout_s": 1.5}
    assert spec("check").validate(args) == args


def test_a_missing_required_argument_is_refused() -> None:
    with pytest.raises(InvalidArguments) as caught:
        spec("check").validate({})
    assert caught.value.violations == [("url", "required argument is missing")]
    assert caught.value.metadata == {"action": "check"}


def test_an_unknown_argument_is_refused() -> None:
    with pytest.raises(InvalidArguments, match="takes no argument 'verbose'"):
        spec("check").validate({"url": "u", "verbose": True})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidArguments) as caught:
        spec("deploy").validate({"count": "two", "bogus": 1})
    assert sorted(field for field, _ in caught.value.violations) == [
        "bogus",
        "count",
        "tags",
    ]
    assert "expected integer, got string" in caught.value.message


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"count": 1.5, "tags": []}, "expected integer, got number"),
        ({"count": True, "tags": []}, "expected integer, got boolean"),
        ({"count": 1, "tags": "a,b"}, "expected array, got string"),
        ({"count": 1, "tags": [], "extra": []}, "expected object, got array"),
        ({"count": None, "tags": []}, "must not be null"),
    ],
)
def test_a_wrongly_typed_argument_is_refused(
    args: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidArguments, match=problem):
        spec("deploy").validate(args)


def test_a_string_argument_refuses_a_number_and_a_boolean_refuses_an_int() -> None:
    with pytest.raises(InvalidArguments, match="expected string, got integer"):
        spec("check").validate({"url": 3})
    with pytest.raises(InvalidArguments, match="expected boolean, got integer"):
        actions_of(ExtendedCheck)["extra_step"].validate({"flag": 1})


def test_an_integral_float_becomes_an_int_and_an_int_becomes_a_float() -> None:
    deploy = spec("deploy").validate({"count": 2.0, "tags": []})
    assert deploy["count"] == 2 and type(deploy["count"]) is int
    check = spec("check").validate({"url": "u", "timeout_s": 3})
    assert check["timeout_s"] == 3.0 and type(check["timeout_s"]) is float


def test_optional_arguments_accept_null_and_may_be_left_out() -> None:
    assert spec("deploy").validate({"count": 1, "tags": [], "extra": None}) == {
        "count": 1,
        "tags": [],
        "extra": None,
    }
    assert spec("plain").validate({"anything": None, "maybe": None}) == {
        "anything": None,
        "maybe": None,
    }
    assert spec("deploy").validate({"count": 1, "tags": ["a"]}) == {
        "count": 1,
        "tags": ["a"],
    }


def test_untyped_arguments_accept_any_json_value() -> None:
    for value in (1, "s", [1], {"a": 1}, True, 2.5):
        args = {"anything": value, "maybe": 1}
        assert spec("plain").validate(args) == args


def test_keyword_catch_all_passes_unknown_arguments_and_checks_known_ones() -> None:
    configure = spec("configure")
    assert configure.validate({"name": "n", "color": "red"}) == {
        "name": "n",
        "color": "red",
    }
    with pytest.raises(InvalidArguments, match="name: expected string"):
        configure.validate({"name": 1, "color": "red"})
    with pytest.raises(InvalidArguments, match="name: required argument"):
        configure.validate({"color": "red"})


# resolve_action --------------------------------------------------------------


def test_resolve_action_returns_the_spec_of_a_known_action() -> None:
    assert resolve_action(WebCheck, "check") == spec("check")


def test_resolving_an_unknown_action_names_the_choices() -> None:
    with pytest.raises(InvalidAction) as caught:
        resolve_action(WebCheck, "launch")
    assert caught.value.message == (
        "template 'web_check' has no action 'launch'; "
        "actions: check, configure, deploy, plain"
    )
    assert caught.value.metadata == {"action": "launch"}


@pytest.mark.parametrize("name", ["_private", "__init__", "_nothing"])
def test_resolving_a_private_name_is_refused_as_private(name: str) -> None:
    with pytest.raises(InvalidAction, match="is private"):
        resolve_action(WebCheck, name)


@pytest.mark.parametrize("name", ["validate", "helper", "ready"])
def test_resolving_a_method_that_is_not_an_action_is_refused(name: str) -> None:
    with pytest.raises(InvalidAction, match="has no action"):
        resolve_action(WebCheck, name)


def test_a_template_without_actions_says_so() -> None:
    class Empty(Template):
        pass

    with pytest.raises(InvalidAction, match="actions: none$"):
        resolve_action(Empty, "run")
