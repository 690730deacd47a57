"""The cluster every e2e module runs against (tests/support/target.py): this machine's real
single node (tests/support/node.py), or a user's own scratch cluster when
LANGMERGE_E2E_KUBECONFIG names one; and the namespaces the modules work in, each under the
restricted Pod Security Standard, with the chart's default claim holding two languages' data
and builtin:tiny, put there through a pod (tests/support/volume.py)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from langmerge.common import builtin
from tests.conftest import require
from tests.support.containers import build_images, image, missing_tools
from tests.support.control_plane import REPO, ControlPlane, find_binaries
from tests.support.kube import api_client, eventually, until
from tests.support.node import API_ADDRESS, Node, missing_for_node
from tests.support.objects import GROUP, VERSION, adapter_manifest
from tests.support.operator import OperatorProcess
from tests.support.target import KUBECONFIG_ENV, ExternalTarget, NodeTarget, Target
from tests.support.volume import ArtifactVolume

QUICKSTART = REPO / "examples" / "quickstart" / "datasets" / "sentiment"
# Real pods on a busy 2-core machine: image start, torch import, training.
PATIENCE_S = 900


@pytest.fixture(scope="package")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The images built (hack/images.sh) and made available to the cluster's nodes."""
    external = os.environ.get(KUBECONFIG_ENV)
    missing = missing_tools() + ([] if external else missing_for_node())
    require(not missing, f"the e2e cluster needs {', '.join(missing)}")
    build_images()
    workdir = tmp_path_factory.mktemp("e2e-target")
    if external:
        yield from _loaded(ExternalTarget(Path(external), find_binaries(), workdir))
        return
    plane = ControlPlane(tmp_path_factory.mktemp("e2e-plane"), pod_address=API_ADDRESS).start()
    started = time.monotonic()
    node = Node(plane, tmp_path_factory.mktemp("e2e-node"))
    try:
        node.start()
        print(f"RESULT cluster_start_seconds={time.monotonic() - started:.1f}")
        yield from _loaded(NodeTarget(node, workdir))
    finally:
        node.stop()
        plane.stop()


def _loaded(target: Target) -> Iterator[Target]:
    try:
        started = time.monotonic()
        target.load_image("trainer")
        target.load_image("merger")
        print(f"RESULT image_load_seconds={time.monotonic() - started:.1f}")
        yield target
    finally:
        target.close()


def e2e_dataset(language: str) -> str:
    """The first 32 lines of the quickstart's training data for the language."""
    lines = (QUICKSTART / f"{language}-train.jsonl").read_text().splitlines()[:32]
    return "\n".join(lines) + "\n"


def provision_namespace(target: Target, namespace: str) -> ArtifactVolume:
    """The namespace and its artifacts claim, holding datasets/{de,fr}.jsonl (32 lines each
    of the quickstart's) and models/tiny (builtin:tiny)."""
    target.create_namespace(namespace)
    volume = ArtifactVolume(target, namespace).start(timeout_s=PATIENCE_S)
    with tempfile.TemporaryDirectory() as staging:
        datasets = Path(staging) / "datasets"
        datasets.mkdir()
        for language in ("de", "fr"):
            (datasets / f"{language}.jsonl").write_text(e2e_dataset(language))
        volume.put(datasets, "datasets")
    volume.put(builtin.path(), "models/tiny")
    return volume


def controller_chart(name: str) -> str:
    """Builds a controller and its image (hack/controllers.sh); the folder of its chart."""
    built = subprocess.run(
        ["bash", str(REPO / "hack" / "controllers.sh"), name],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return built.stdout.strip().splitlines()[-1].removeprefix("CHART=")


def until_admitted(target: Target, manifest: str, what: str, *flags: str) -> None:
    """Applies the manifest (with flags such as --dry-run=server) until the admission
    webhooks accept it: ready controller pods do not mean served webhooks (each controller
    injects its own certificate after it starts)."""
    until(
        lambda: target.kubectl("apply", *flags, "-f", "-", input=manifest, check=False),
        lambda done: done.returncode == 0,
        timeout_s=PATIENCE_S,
        what=what,
    )


@contextmanager
def host_operator(target: Target, namespace: str, workdir: Path) -> Iterator[OperatorProcess]:
    """`langmerge operator` on the host for one namespace, with the CRDs installed and the
    built images for its Jobs; stopped on leaving."""
    target.install_crds()
    process = OperatorProcess(
        target,
        workdir,
        env={
            "LANGMERGE_TRAINER_IMAGE": image("trainer"),
            "LANGMERGE_MERGER_IMAGE": image("merger"),
        },
        namespaces=[namespace],
    )
    try:
        yield process.start()
    finally:
        process.stop()


SYSTEM = "langmerge-system"  # where the chart installs the operator
RELEASE = "lm"
OPERATOR_LABELS = "app.kubernetes.io/name=langmerge,app.kubernetes.io/instance=lm"


def operator_pods(core: client.CoreV1Api) -> list[Any]:
    return [
        p
        for p in core.list_namespaced_pod(SYSTEM, label_selector=OPERATOR_LABELS).items
        if p.metadata.deletion_timestamp is None
    ]


@contextmanager
def langmerge_release(target: Target, namespace: str, *values: str) -> Iterator[Target]:
    """helm install of charts/langmerge with the locally built images, watching namespace;
    uninstalled on leaving, so that no two operators ever watch one namespace."""
    target.create_namespace(SYSTEM)
    target.load_image("operator")
    started = time.monotonic()
    target.helm(
        "install", RELEASE, str(REPO / "charts" / "langmerge"),
        f"--namespace={SYSTEM}",
        *(
            f"--set={role}.image.{key}={value}"
            for role in ("operator", "trainer", "merger")
            for key, value in zip(("repository", "tag"), image(role).rsplit(":", 1), strict=True)
        ),
        *(f"--set={role}.image.pullPolicy=Never" for role in ("operator", "trainer", "merger")),
        "--set=operator.rbac.clusterWide=false",
        f"--set=operator.rbac.namespaces={{{namespace}}}",
        *values,
        "--wait", f"--timeout={PATIENCE_S}s",
    )  # fmt: skip
    print(f"RESULT helm_install_to_operator_ready_seconds={time.monotonic() - started:.1f}")
    try:
        yield target
    finally:
        target.helm("uninstall", RELEASE, f"--namespace={SYSTEM}", "--wait")
        core = client.CoreV1Api(api_client(target.kubeconfig))
        eventually(lambda: not operator_pods(core), timeout_s=PATIENCE_S, what="operator gone")


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
