"""End to end with the operator running on the host (as `langmerge operator` runs outside a
cluster) against the e2e cluster (conftest.py): the operator creates Jobs, the real Job
controller makes pods, the scheduler places them, the kubelet runs the trainer image, and the
operator reads the real pod's termination message and times. Real faults: a memory limit too
small, a pod deleted by hand. The merge and the update run in test_in_cluster.py, driven by
the operator's own pod. Prints `RESULT name=value` lines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.conftest import (
    PATIENCE_S,
    adapter_condition,
    e2e_adapter,
    host_operator,
    provision_namespace,
    wait_ready,
)
from tests.support.kube import api_client, until
from tests.support.objects import GROUP, VERSION
from tests.support.operator import OperatorProcess
from tests.support.target import POD_USER, Target
from tests.support.volume import ArtifactVolume

NAMESPACE = "e2e"


@pytest.fixture(scope="module")
def volume(target: Target) -> ArtifactVolume:
    return provision_namespace(target, NAMESPACE)


@pytest.fixture(scope="module")
def operator(
    target: Target, volume: ArtifactVolume, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with host_operator(target, NAMESPACE, tmp_path_factory.mktemp("e2e-operator")) as process:
        yield process


def test_training_jobs_run_as_real_pods_and_the_adapters_become_ready(
    target: Target, volume: ArtifactVolume, operator: OperatorProcess
) -> None:
    api = api_client(target.kubeconfig)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    started = time.monotonic()
    for language in ("de", "fr"):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "languageadapters", e2e_adapter(language)
        )
    for language in ("de", "fr"):
        wait_ready(custom, NAMESPACE, "languageadapters", f"sentiment-{language}", target.tails())
    print(f"RESULT apply_to_adapters_ready_seconds={time.monotonic() - started:.1f}")
    status = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-de"
    )["status"]
    run = status["lastRun"]
    assert run["result"] == "Succeeded"
    # The times come from the real container's start and finish, as the kubelet reported them.
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={run['job']}").items
    assert len(pods) == 1 and pods[0].spec.node_name  # placed by the scheduler
    # ServiceAccount admission is on here: it would mount a token unless the Job says no.
    assert not [v for v in pods[0].spec.volumes if v.name.startswith("kube-api-access")]
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert terminated.reason == "Completed" and '"result":"Succeeded"' in terminated.message
    assert run["startedAt"] == terminated.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    config = f"{status['artifact']['uri']}/adapter_config.json"
    assert volume.is_file(config)
    assert volume.owner(config) == POD_USER  # written by the pod's user through the claim


def test_a_memory_limit_too_small_fails_the_adapter_with_oomkilled(
    target: Target, operator: OperatorProcess
) -> None:
    api = api_client(target.kubeconfig)
    custom = client.CustomObjectsApi(api)
    oom = e2e_adapter("ja", memory="64Mi")
    oom["spec"]["dataset"]["uri"] = "/artifacts/datasets/de.jsonl"
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "languageadapters", oom)
    failed = until(
        lambda: adapter_condition(custom, NAMESPACE, "sentiment-ja", "Failed"),
        lambda c: c is not None,
        timeout_s=PATIENCE_S,
        what=f"sentiment-ja Failed\n{target.tails()}",
    )
    assert failed is not None and "OOMKilled" in failed["message"], failed


def test_a_training_pod_deleted_by_hand_is_replaced_and_the_run_counted_once(
    target: Target, operator: OperatorProcess
) -> None:
    api = api_client(target.kubeconfig)
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
    wait_ready(custom, NAMESPACE, "languageadapters", "sentiment-en", target.tails())
    status = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-en"
    )["status"]
    assert status["totals"]["runs"] == 1 and status["totals"]["succeeded"] == 1
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    assert first.metadata.name not in {p.metadata.name for p in pods}  # the Job made another
