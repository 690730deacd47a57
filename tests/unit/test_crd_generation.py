"""The CRD YAML is generated from the models and never edited by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.crd import custom_resource_definition, stale_crds, write_crds
from langmerge.operator.api.merged import MergedModel
from tests.conftest import REPO


def test_crds_folder_matches_the_models() -> None:
    assert stale_crds(REPO / "crds") == [], "crds/ is stale: run `make crds`"


def test_stale_detection_notices_a_hand_edit(tmp_path: Path) -> None:
    written = write_crds(tmp_path)
    written[0].write_text(written[0].read_text().replace("LoRA rank r.", "rank"))
    assert stale_crds(tmp_path) == [str(written[0])]


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_schemas_are_structural_and_every_spec_field_is_described() -> None:
    for model in (LanguageAdapter, MergedModel):
        schema = custom_resource_definition(model)["spec"]["versions"][0]["schema"][
            "openAPIV3Schema"
        ]
        for path, node in _walk(schema):
            assert "$ref" not in node and "title" not in node, path
            assert node.get("default", 0) is not None, f"{path}: null default"
            if "anyOf" in node:
                assert node.get("x-kubernetes-int-or-string"), (
                    f"{path}: anyOf only for int-or-string"
                )
            else:
                assert "type" in node, f"{model.KIND}{path}: no type (not structural)"
            under_spec = path.startswith(".spec") or path.startswith(".status")
            if under_spec and not path.endswith("[]") and not path.endswith("{}"):
                assert node.get("description"), f"{model.KIND}{path} has no description"


def test_status_declares_what_the_operator_writes() -> None:
    schema = custom_resource_definition(MergedModel)["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ]
    status = schema["properties"]["status"]["properties"]
    for field in (
        "observedGeneration",
        "conditions",
        "artifact",
        "lastRun",
        "lastUpdate",
        "totals",
    ):
        assert field in status
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {
        "type",
        "status",
        "lastTransitionTime",
        "reason",
    }
