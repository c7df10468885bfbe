"""The committed zrobot.v1 code matches what protos/ generates, and the
contract follows the conventions DESIGN.md sets."""

from __future__ import annotations

import importlib.util
import pathlib

from google.api import annotations_pb2

from zrobot.v1 import robot_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _protogen():
    spec = importlib.util.spec_from_file_location(
        "protogen", ROOT / "tools/protogen.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path):
    protogen = _protogen()
    protogen.generate(tmp_path)
    fresh = protogen.generated_files(tmp_path)
    committed = protogen.generated_files(ROOT)
    assert sorted(fresh) == sorted(committed), "run `make proto` and commit"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], f"stale generated files {stale}: run `make proto` and commit"


def test_every_method_has_an_http_annotation_and_standard_message_names():
    service = robot_pb2.DESCRIPTOR.services_by_name["Robot"]
    assert len(service.methods) >= 12
    for method in service.methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        assert rule.WhichOneof("pattern"), f"{method.name} has no google.api.http"
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"


def test_list_methods_page_and_mutating_methods_take_a_request_id():
    service = robot_pb2.DESCRIPTOR.services_by_name["Robot"]
    for method in service.methods:
        fields = method.input_type.fields_by_name
        if method.name.startswith("List"):
            assert {"page_size", "page_token"} <= set(fields), method.name
            assert "next_page_token" in method.output_type.fields_by_name
        if method.name.startswith(("Create", "Delete", "Schedule", "Cancel", "Add")):
            assert "request_id" in fields, method.name


def test_enums_start_with_an_unspecified_zero():
    for enum in robot_pb2.DESCRIPTOR.enum_types_by_name.values():
        assert enum.values[0].number == 0
        assert enum.values[0].name.endswith("_UNSPECIFIED")
