"""An object the API server stored but the operator's models refuse (written under an older,
laxer CRD before an upgrade) is marked Failed on its own and blocks nothing else in its
namespace. Before the fix, one adapter named `h.fr` left every MergedModel of its namespace
without status until it was deleted."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml
from kubernetes import client

from tests.conftest import REPO
from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually
from tests.support.objects import adapter_manifest, merged_manifest
from tests.support.operator import OperatorProcess

PATIENCE_S = 300  # waits for events, never for a fixed time; generous for a busy machine


def _older_crds(folder: Path) -> Path:
    """Today's CRDs without the root rule on metadata.name: what a cluster had before."""
    folder.mkdir()
    for source in (REPO / "crds").glob("*.yaml"):
        crd = yaml.safe_load(source.read_text())
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].pop("x-kubernetes-validations")
        (folder / source.name).write_text(yaml.safe_dump(crd))
    return folder


def test_an_invalid_stored_object_fails_alone_and_blocks_nothing(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    api = api_client(control_plane.kubeconfig)
    namespace = f"odd-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    cluster = Cluster(api, namespace)
    control_plane.install_crds(_older_crds(tmp_path / "older-crds"))
    try:
        cluster.apply(adapter_manifest("fr", name="h.fr"))  # the older CRD lets it in
    finally:
        control_plane.install_crds()  # the upgrade: today's CRDs again
    cluster.apply(adapter_manifest("de"))
    cluster.apply(merged_manifest(adapters={"names": ["sentiment-de"]}))
    operator = OperatorProcess(control_plane, tmp_path, namespaces=[namespace]).start()
    try:
        # The CRD's rules cover the whole object, so h.fr's status cannot be written either:
        # it gets a Warning Event that names the field and says what to do, once.
        core = client.CoreV1Api(api)

        def refusals() -> list[client.CoreV1Event]:
            return [
                e
                for e in core.list_namespaced_event(namespace).items
                if e.reason == "InvalidSpec" and e.involved_object.name == "h.fr"
            ]

        eventually(refusals, timeout_s=PATIENCE_S, what="a Warning Event on h.fr")
        assert "metadata.name" in refusals()[0].message and "recreate it" in refusals()[0].message
        # the others go on: the valid adapter gets its Job, the MergedModel its status
        eventually(
            lambda: cluster.jobs("sentiment-de"),
            timeout_s=PATIENCE_S,
            what="sentiment-de's training Job despite h.fr",
        )
        cluster.wait_condition(
            "MergedModel", "sentiment", "AdaptersReady", status="False", timeout_s=PATIENCE_S
        )
        assert "Traceback" not in operator.log.read_text(errors="replace")
        assert len(refusals()) == 1 and (refusals()[0].count or 1) == 1  # once, not per resync
    finally:
        operator.stop()
