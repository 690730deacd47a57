"""End to end on a real single node (tests/support/node.py): the operator creates Jobs, the
real Job controller makes pods, the scheduler places them, the kubelet runs the trainer image
under containerd + runc, and the operator reads the real pod's termination message and times.
Prints `RESULT name=value` lines."""

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
from tests.support.kube import api_client, until
from tests.support.node import Node, missing_for_node
from tests.support.objects import GROUP, VERSION, adapter_manifest, merged_manifest
from tests.support.operator import OperatorProcess

NAMESPACE = "e2e"
FS_GROUP = 10001
QUICKSTART = REPO / "examples" / "quickstart" / "datasets" / "sentiment"
# Real pods on a busy 2-core machine: image start, torch import, training.
PATIENCE_S = 900


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    missing = missing_for_node() + missing_tools()
    require(not missing, f"the single-node cluster needs {', '.join(missing)}")
    build_images()
    plane = ControlPlane(tmp_path_factory.mktemp("e2e-plane")).start()
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


@pytest.fixture(scope="module")
def artifacts(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static PersistentVolume on a host folder, bound to the chart's default claim. A
    hostPath volume ignores fsGroup, so the folder is made group-writable for the pods' group,
    as an administrator provisioning such a volume would."""
    root = tmp_path_factory.mktemp("e2e-artifacts")
    (root / "datasets").mkdir()
    for language in ("de", "fr"):
        lines = (QUICKSTART / f"{language}-train.jsonl").read_text().splitlines()[:32]
        (root / "datasets" / f"{language}.jsonl").write_text("\n".join(lines) + "\n")
    shutil.copytree(builtin.path(), root / "models" / "tiny")
    for path in [root, *root.rglob("*")]:
        shutil.chown(path, group=FS_GROUP)
        path.chmod(0o2775 if path.is_dir() else 0o664)
    plane = node.plane
    plane.kubectl("create", "namespace", NAMESPACE)
    # Every pod here must pass the restricted Pod Security Standard, enforced by the API server.
    plane.kubectl("label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=restricted")
    manifest = f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: langmerge-e2e-artifacts}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteMany]
  storageClassName: ""
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {root}, type: Directory}}
  claimRef: {{namespace: {NAMESPACE}, name: langmerge-artifacts}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: langmerge-artifacts, namespace: {NAMESPACE}}}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  volumeName: langmerge-e2e-artifacts
  resources: {{requests: {{storage: 1Gi}}}}
"""
    plane.kubectl("apply", "-f", "-", input=manifest)
    return root


@pytest.fixture(scope="module")
def operator(
    node: Node, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    node.plane.install_crds()
    process = OperatorProcess(
        node.plane,
        tmp_path_factory.mktemp("e2e-operator"),
        env={
            "LANGMERGE_TRAINER_IMAGE": "localhost/langmerge-trainer:dev",
            "LANGMERGE_MERGER_IMAGE": "localhost/langmerge-merger:dev",
        },
        namespaces=[NAMESPACE],
    ).start()
    yield process
    process.stop()


def _adapter(language: str, **resources: Any) -> dict[str, Any]:
    return adapter_manifest(
        language,
        baseModel={"name": "builtin:tiny", "uri": "/artifacts/models/tiny"},
        dataset={"uri": f"/artifacts/datasets/{language}.jsonl"},
        resources={"gpus": 0, "cpu": 1, "memory": "3Gi", **resources},
        training={"epochs": 1, "batchSize": 8, "maxSeqLength": 64},
    )


def _condition(custom: client.CustomObjectsApi, name: str, kind: str) -> dict[str, Any] | None:
    body = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "languageadapters", name)
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition["type"] == kind and condition["status"] == "True":
            return dict(condition)
    return None


def _wait_ready(custom: client.CustomObjectsApi, plural: str, name: str, what: str) -> None:
    def settled() -> dict[str, Any] | None:
        body = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)
        status = body.get("status") or {}
        fresh = status.get("observedGeneration") == body["metadata"]["generation"]
        return status if fresh and status.get("phase") in ("Ready", "Failed", "Blocked") else None

    status = until(settled, lambda s: s is not None, timeout_s=PATIENCE_S, what=what)
    assert status is not None and status["phase"] == "Ready", status


def test_training_jobs_run_as_real_pods_and_the_adapters_become_ready(
    node: Node, artifacts: Path, operator: OperatorProcess
) -> None:
    api = api_client(node.plane.kubeconfig)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    started = time.monotonic()
    for language in ("de", "fr"):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "languageadapters", _adapter(language)
        )
    for language in ("de", "fr"):
        _wait_ready(custom, "languageadapters", f"sentiment-{language}", node.tails())
    print(f"RESULT apply_to_adapters_ready_seconds={time.monotonic() - started:.1f}")
    status = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-de"
    )["status"]
    run = status["lastRun"]
    assert run["result"] == "Succeeded"
    # The times come from the real container's start and finish, as the kubelet reported them.
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={run['job']}").items
    assert len(pods) == 1 and pods[0].spec.node_name == "langmerge-e2e"
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert terminated.reason == "Completed" and '"result":"Succeeded"' in terminated.message
    assert run["startedAt"] == terminated.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    output = artifacts / Path(status["artifact"]["uri"]).relative_to("/artifacts")
    assert (output / "adapter_config.json").is_file()
    assert output.stat().st_uid == 10001  # written by the pod's user through the volume


def test_a_merge_job_runs_as_a_real_pod_and_an_update_retrains_one_adapter(
    node: Node, artifacts: Path, operator: OperatorProcess
) -> None:
    api = api_client(node.plane.kubeconfig)
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    merged = merged_manifest(
        adapters={"names": ["sentiment-de", "sentiment-fr"]},
        resources={"gpus": 0, "cpu": 1, "memory": "3Gi"},
    )
    merged["spec"]["baseModel"] = {"name": "builtin:tiny", "uri": "/artifacts/models/tiny"}
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "mergedmodels", merged)
    _wait_ready(custom, "mergedmodels", "sentiment", node.tails())
    status = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "mergedmodels", "sentiment"
    )["status"]
    output = artifacts / Path(status["artifact"]["uri"]).relative_to("/artifacts")

    from peft import PeftModel  # the merged adapter on the volume loads with peft
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(artifacts / "models" / "tiny")
    assert isinstance(PeftModel.from_pretrained(base, output), PeftModel)

    def jobs() -> list[str]:
        return sorted(j.metadata.name for j in batch.list_namespaced_job(NAMESPACE).items)

    before = jobs()
    started = time.monotonic()
    updated = _adapter("de")
    updated["spec"]["dataset"]["revision"] = "v2"
    current = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-de"
    )
    updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    custom.replace_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-de", updated
    )
    update = until(
        lambda: custom.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "mergedmodels", "sentiment"
        )["status"].get("lastUpdate"),
        lambda u: u is not None and u.get("trigger") != "initial merge",
        timeout_s=PATIENCE_S,
        what=f"the update's merge\n{node.tails()}",
    )
    print(f"RESULT update_to_merged_ready_seconds={time.monotonic() - started:.1f}")
    assert update["retrainedAdapters"] == ["sentiment-de"]
    new_jobs = sorted(set(jobs()) - set(before))  # one training pod, then one merge pod
    assert [j.rsplit("-", 1)[0] for j in new_jobs] == ["sentiment-de-train", "sentiment-merge"]
    assert update["costUsd"] > 0 and update["fullRetrainEstimateUsd"] > update["costUsd"]


def test_a_memory_limit_too_small_fails_the_adapter_with_oomkilled(
    node: Node, operator: OperatorProcess
) -> None:
    api = api_client(node.plane.kubeconfig)
    custom = client.CustomObjectsApi(api)
    oom = _adapter("ja", memory="64Mi")
    oom["spec"]["dataset"]["uri"] = "/artifacts/datasets/de.jsonl"
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "languageadapters", oom)
    failed = until(
        lambda: _condition(custom, "sentiment-ja", "Failed"),
        lambda c: c is not None,
        timeout_s=PATIENCE_S,
        what=f"sentiment-ja Failed\n{node.tails()}",
    )
    assert failed is not None and "OOMKilled" in failed["message"], failed


def test_a_training_pod_deleted_by_hand_is_replaced_and_the_run_counted_once(
    node: Node, operator: OperatorProcess
) -> None:
    api = api_client(node.plane.kubeconfig)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    body = _adapter("en")
    body["spec"]["dataset"]["uri"] = "/artifacts/datasets/de.jsonl"
    body["spec"]["training"]["epochs"] = 40  # long enough to be deleted while it runs
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "languageadapters", body)
    selector = "langmerge.io/name=sentiment-en"

    def running() -> list[Any]:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        return [p for p in pods if p.status.phase == "Running"]

    first = until(running, lambda pods: len(pods) == 1, timeout_s=PATIENCE_S, what="the pod")[0]
    core.delete_namespaced_pod(first.metadata.name, NAMESPACE, grace_period_seconds=0)
    _wait_ready(custom, "languageadapters", "sentiment-en", node.tails())
    status = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-en"
    )["status"]
    assert status["totals"]["runs"] == 1 and status["totals"]["succeeded"] == 1
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    assert first.metadata.name not in {p.metadata.name for p in pods}  # the Job made another
