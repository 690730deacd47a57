"""Upgrading the CRDs the way README says (Helm installs crds/ once and never upgrades them):
`kubectl apply --server-side --force-conflicts -f crds/` over CRDs that Helm created, with
objects and their status already stored. Nothing stored is lost, the new schema is served,
the current models read every stored object and the operator's status writes are accepted.

crds-previous/ holds the CRDs of the last landed version before this one (commit b2a06e4)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from langmerge.operator.api.adapter import LanguageAdapter, LanguageAdapterStatus
from langmerge.operator.api.merged import MergedModel, MergedModelStatus
from tests.conftest import REPO
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client
from tests.support.objects import GROUP, VERSION, adapter_manifest, merged_manifest

PREVIOUS = Path(__file__).parent / "crds-previous"
ADAPTER_STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "phase": "Ready",
    "fingerprint": "f" * 20,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "UpToDate",
            "message": "the adapter matches its spec",
            "lastTransitionTime": "2026-11-01T00:00:00Z",
            "observedGeneration": 1,
        }
    ],
    "artifact": {"uri": "/artifacts/de", "sha256": "a" * 64, "fingerprint": "f" * 20},
    "lastRun": {
        "job": "sentiment-de-train-fff",
        "fingerprint": "f" * 20,
        "result": "Succeeded",
        "gpuSeconds": 3600.0,
        "costUsd": 4.1,
        "summary": {"result": "Succeeded", "trainSeconds": 3500.0},
    },
    "totals": {"runs": 1, "succeeded": 1, "failed": 0, "gpuSeconds": 3600.0, "costUsd": 4.1},
    "recordedJobs": ["sentiment-de-train-fff"],
}
MERGED_STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "phase": "Ready",
    "lastUpdate": {
        "trigger": "initial merge",
        "retrainedAdapters": ["sentiment-de"],
        "gpuSeconds": 3700.0,
        "costUsd": 4.2,
    },
    "updateHistory": [
        {"trigger": "initial merge", "retrainedAdapters": ["sentiment-de"], "costUsd": 4.2}
    ],
    "totals": {"runs": 1, "succeeded": 1, "failed": 0, "gpuSeconds": 100.0, "costUsd": 0.1},
}


@pytest.fixture
def plane(control_plane: ControlPlane, tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane of its own (the shared one keeps serving the current CRDs), from the
    same binaries."""
    with ControlPlane(tmp_path / "plane", control_plane.binaries) as plane:
        yield plane


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def assert_kept(before: Any, after: Any, schema: dict[str, Any], path: str = "") -> None:
    """after holds everything before held, unchanged; what it holds besides is the new
    schema's default for that field (the API server defaults fields a newer CRD adds)."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        assert after == before, path
        return
    properties = schema.get("properties") or {}
    for key, value in after.items():
        field = properties.get(key, {})
        if key in before:
            assert_kept(before[key], value, field, f"{path}.{key}")
        else:
            assert "default" in field and value == field["default"], f"{path}.{key} added"
    assert set(before) <= set(after), f"{path}: lost {set(before) - set(after)}"


def test_server_side_apply_upgrades_the_crds_and_keeps_every_stored_object(
    plane: ControlPlane,
) -> None:
    plane.kubectl("create", "-f", str(PREVIOUS))  # as `helm install` creates them
    plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    api = api_client(plane.kubeconfig)
    custom = client.CustomObjectsApi(api)
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "nlp"}})
    stored = {}
    for plural, body, status in (
        ("languageadapters", adapter_manifest("de"), ADAPTER_STATUS),
        ("mergedmodels", merged_manifest(adapters={"names": ["sentiment-de"]}), MERGED_STATUS),
    ):
        custom.create_namespaced_custom_object(GROUP, VERSION, "nlp", plural, body)
        name = body["metadata"]["name"]
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "nlp", plural, name, {"status": copy.deepcopy(status)}
        )
        stored[plural] = custom.get_namespaced_custom_object(GROUP, VERSION, "nlp", plural, name)

    upgraded = plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")
    )
    assert "serverside-applied" in upgraded.stdout, upgraded.stdout
    plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    extensions = client.ApiextensionsV1Api(api)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        wanted = yaml.safe_load(path.read_text())
        served = extensions.read_custom_resource_definition(wanted["metadata"]["name"])
        served_schema = api.sanitize_for_serialization(served)["spec"]["versions"][0]["schema"]
        assert served_schema["openAPIV3Schema"] == _schema(wanted), path.name

    for plural, model, status_model in (
        ("languageadapters", LanguageAdapter, LanguageAdapterStatus),
        ("mergedmodels", MergedModel, MergedModelStatus),
    ):
        before = stored[plural]
        name = before["metadata"]["name"]
        after = custom.get_namespaced_custom_object(GROUP, VERSION, "nlp", plural, name)
        schema = _schema(yaml.safe_load((REPO / "crds" / f"{GROUP}_{plural}.yaml").read_text()))
        assert_kept(before["spec"], after["spec"], schema["properties"]["spec"], "spec")
        assert after["status"] == before["status"]
        parsed = model.model_validate(after)  # the current models read what was stored
        assert parsed.status is not None
        rewritten = status_model.model_validate(after["status"]).to_wire()
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "nlp", plural, name, {"status": rewritten}
        )  # the operator's next status write is accepted by the new schema
