"""One real single-node cluster for every e2e module (tests/support/node.py), and the
namespaces they work in: each labelled with the restricted Pod Security Standard, with the
chart's default claim bound to a host folder that holds the datasets and builtin:tiny."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from langmerge.common import builtin
from tests.conftest import require
from tests.support.containers import build_images, missing_tools
from tests.support.control_plane import REPO, ControlPlane
from tests.support.kube import until
from tests.support.node import API_ADDRESS, Node, missing_for_node
from tests.support.objects import GROUP, VERSION, adapter_manifest

FS_GROUP = 10001
QUICKSTART = REPO / "examples" / "quickstart" / "datasets" / "sentiment"
# Real pods on a busy 2-core machine: image start, torch import, training.
PATIENCE_S = 900


@pytest.fixture(scope="package")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    missing = missing_for_node() + missing_tools()
    require(not missing, f"the single-node cluster needs {', '.join(missing)}")
    build_images()
    plane = ControlPlane(tmp_path_factory.mktemp("e2e-plane"), pod_address=API_ADDRESS).start()
    started = time.monotonic()
    node = Node(plane, tmp_path_factory.mktemp("e2e-node"))
    try:
        node.start()
        print(f"RESULT cluster_start_seconds={time.monotonic() - started:.1f}")
        loaded = time.monotonic()
        node.load_image("trainer")
        node.load_image("merger")
        print(f"RESULT image_load_seconds={time.monotonic() - loaded:.1f}")
        yield node
    finally:
        node.stop()
        plane.stop()


@pytest.fixture(scope="package")
def artifact_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host folder with two languages' data and builtin:tiny. A hostPath volume ignores
    fsGroup, so the folder is made group-writable for the pods' group, as an administrator
    provisioning such a volume would."""
    root = tmp_path_factory.mktemp("e2e-artifacts")
    (root / "datasets").mkdir()
    for language in ("de", "fr"):
        lines = (QUICKSTART / f"{language}-train.jsonl").read_text().splitlines()[:32]
        (root / "datasets" / f"{language}.jsonl").write_text("\n".join(lines) + "\n")
    shutil.copytree(builtin.path(), root / "models" / "tiny")
    for path in [root, *root.rglob("*")]:
        shutil.chown(path, group=FS_GROUP)
        path.chmod(0o2775 if path.is_dir() else 0o664)
    return root


def provision_namespace(plane: ControlPlane, namespace: str, root: Path) -> None:
    """The namespace (restricted Pod Security Standard, enforced by the API server) and a
    static PersistentVolume on root bound to the chart's default claim there."""
    plane.kubectl("create", "namespace", namespace)
    plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    manifest = f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: langmerge-{namespace}-artifacts}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteMany]
  storageClassName: ""
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {root}, type: Directory}}
  claimRef: {{namespace: {namespace}, name: langmerge-artifacts}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: langmerge-artifacts, namespace: {namespace}}}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  volumeName: langmerge-{namespace}-artifacts
  resources: {{requests: {{storage: 1Gi}}}}
"""
    plane.kubectl("apply", "-f", "-", input=manifest)


def e2e_adapter(language: str, **resources: Any) -> dict[str, Any]:
    """A one-epoch adapter on the volume's data and builtin:tiny, one CPU and 3 GiB."""
    return adapter_manifest(
        language,
        baseModel={"name": "builtin:tiny", "uri": "/artifacts/models/tiny"},
        dataset={"uri": f"/artifacts/datasets/{language}.jsonl"},
        resources={"gpus": 0, "cpu": 1, "memory": "3Gi", **resources},
        training={"epochs": 1, "batchSize": 8, "maxSeqLength": 64},
    )


def wait_ready(
    custom: client.CustomObjectsApi, namespace: str, plural: str, name: str, what: str
) -> dict[str, Any]:
    """Waits until the object's status is settled for its generation; asserts Ready."""

    def settled() -> dict[str, Any] | None:
        body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        status = body.get("status") or {}
        fresh = status.get("observedGeneration") == body["metadata"]["generation"]
        return status if fresh and status.get("phase") in ("Ready", "Failed", "Blocked") else None

    status = until(settled, lambda s: s is not None, timeout_s=PATIENCE_S, what=what)
    assert status is not None and status["phase"] == "Ready", status
    return status


def adapter_condition(
    custom: client.CustomObjectsApi, namespace: str, name: str, kind: str
) -> dict[str, Any] | None:
    """The adapter's condition of this type when it is True, else None."""
    body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "languageadapters", name)
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition["type"] == kind and condition["status"] == "True":
            return dict(condition)
    return None
