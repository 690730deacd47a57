"""End to end on a real single node (tests/support/node.py): the operator creates Jobs, the
real Job controller makes pods, the scheduler places them, the kubelet runs the trainer image
under containerd + runc, and the operator reads the real pod's termination message and times.
Prints `RESULT name=value` lines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.conftest import (
    PATIENCE_S,
    adapter_condition,
    e2e_adapter,
    provision_namespace,
    wait_ready,
)
from tests.support.kube import api_client, until
from tests.support.node import Node
from tests.support.objects import GROUP, VERSION, merged_manifest
from tests.support.operator import OperatorProcess

NAMESPACE = "e2e"


@pytest.fixture(scope="module")
def artifacts(node: Node, artifact_root: Path) -> Path:
    provision_namespace(node.plane, NAMESPACE, artifact_root)
    return artifact_root


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


def test_training_jobs_run_as_real_pods_and_the_adapters_become_ready(
    node: Node, artifacts: Path, operator: OperatorProcess
) -> None:
    api = api_client(node.plane.kubeconfig)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    started = time.monotonic()
    for language in ("de", "fr"):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "languageadapters", e2e_adapter(language)
        )
    for language in ("de", "fr"):
        wait_ready(custom, NAMESPACE, "languageadapters", f"sentiment-{language}", node.tails())
    print(f"RESULT apply_to_adapters_ready_seconds={time.monotonic() - started:.1f}")
    status = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-de"
    )["status"]
    run = status["lastRun"]
    assert run["result"] == "Succeeded"
    # The times come from the real container's start and finish, as the kubelet reported them.
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={run['job']}").items
    assert len(pods) == 1 and pods[0].spec.node_name == "langmerge-e2e"
    # ServiceAccount admission is on here: it would mount a token unless the Job says no.
    assert not [v for v in pods[0].spec.volumes if v.name.startswith("kube-api-access")]
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
    wait_ready(custom, NAMESPACE, "mergedmodels", "sentiment", node.tails())
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
    updated = e2e_adapter("de")
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
    oom = e2e_adapter("ja", memory="64Mi")
    oom["spec"]["dataset"]["uri"] = "/artifacts/datasets/de.jsonl"
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "languageadapters", oom)
    failed = until(
        lambda: adapter_condition(custom, NAMESPACE, "sentiment-ja", "Failed"),
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
    body = e2e_adapter("en")
    body["spec"]["dataset"]["uri"] = "/artifacts/datasets/de.jsonl"
    body["spec"]["training"]["epochs"] = 40  # long enough to be deleted while it runs
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "languageadapters", body)
    selector = "langmerge.io/name=sentiment-en"

    def running() -> list[Any]:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        return [p for p in pods if p.status.phase == "Running"]

    first = until(running, lambda pods: len(pods) == 1, timeout_s=PATIENCE_S, what="the pod")[0]
    core.delete_namespaced_pod(first.metadata.name, NAMESPACE, grace_period_seconds=0)
    wait_ready(custom, NAMESPACE, "languageadapters", "sentiment-en", node.tails())
    status = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-en"
    )["status"]
    assert status["totals"]["runs"] == 1 and status["totals"]["succeeded"] == 1
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    assert first.metadata.name not in {p.metadata.name for p in pods}  # the Job made another
