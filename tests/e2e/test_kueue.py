"""Queueing through a real Kueue: its controller built from the Go module proxy
(hack/controllers.sh) and deployed with the module's own chart (webhooks, certificates, RBAC), a
ClusterQueue whose quota admits one training at a time, a LocalQueue in the namespace. Five
adapters name the queue: Kueue holds their Jobs suspended while the adapters say Queued, and
admits them one after another; all succeed; the queue time is reported
(langmerge_run_queue_wait_seconds) and never billed. The operator never touches `suspend`.
Prints `RESULT name=value` lines."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import (
    PATIENCE_S,
    controller_chart,
    e2e_adapter,
    host_operator,
    provision_namespace,
    until_admitted,
    wait_ready,
)
from tests.support.containers import image
from tests.support.kube import api_client, eventually
from tests.support.objects import GROUP, VERSION
from tests.support.operator import OperatorProcess
from tests.support.target import Target
from tests.support.volume import ArtifactVolume

NAMESPACE = "e2e-kueue"
SYSTEM = "kueue-system"
QUEUE = "training"
AGGREGATED = ("kueue-batch-admin-role", "kueue-batch-user-role")
LANGUAGES = ("de", "fr", "es", "it", "nl")
CLUSTER_QUEUE = """
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: langmerge-e2e}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: langmerge-e2e}
spec:
  namespaceSelector: {}
  resourceGroups:
  - coveredResources: [cpu, memory]
    flavors:
    - name: langmerge-e2e
      resources:  # one training of 1 CPU and 3Gi at a time
      - {name: cpu, nominalQuota: "1"}
      - {name: memory, nominalQuota: 4Gi}
"""
LOCAL_QUEUE = f"""
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {{name: {QUEUE}, namespace: {NAMESPACE}}}
spec: {{clusterQueue: langmerge-e2e}}
"""


def _stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def kueue(target: Target) -> Iterator[Target]:
    chart = controller_chart("kueue")
    target.load_image("kueue")
    repository, tag = image("kueue").rsplit(":", 1)
    started = time.monotonic()
    manager = "--set=controllerManager.manager.image"
    target.helm(
        "install", "kueue", chart, f"--namespace={SYSTEM}", "--create-namespace",
        f"{manager}.repository={repository}", f"{manager}.tag={tag}",
        f"{manager}.pullPolicy=Never", "--wait", f"--timeout={PATIENCE_S}s",
    )  # fmt: skip
    # Kueue's webhooks (pods' among them) answer once the ClusterQueue passes them.
    until_admitted(target, CLUSTER_QUEUE, "Kueue's webhooks to admit the ClusterQueue")
    print(f"RESULT kueue_install_to_ready_seconds={time.monotonic() - started:.1f}")
    try:
        yield target
    finally:
        target.helm("uninstall", "kueue", f"--namespace={SYSTEM}")
        # The chart's two aggregated ClusterRoles come back once deleted (the aggregation
        # controller applies their rules server-side), without their aggregation rule.
        target.kubectl("delete", "clusterrole", *AGGREGATED, "--ignore-not-found")
        target.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)


@pytest.fixture(scope="module")
def volume(kueue: Target) -> ArtifactVolume:
    volume = provision_namespace(kueue, NAMESPACE)
    kueue.apply(LOCAL_QUEUE)
    return volume


@pytest.fixture(scope="module")
def operator(
    kueue: Target, volume: ArtifactVolume, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with host_operator(kueue, NAMESPACE, tmp_path_factory.mktemp("e2e-kueue-operator")) as process:
        yield process


def _samples(metrics: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == name
    ]


def _queue_wait(metrics: str) -> tuple[float, float]:
    """langmerge_run_queue_wait_seconds of the namespace's training runs: (count, sum)."""
    prefix = "langmerge_run_queue_wait_seconds"
    ours = {"namespace": NAMESPACE, "role": "train"}
    count, total = (
        sum(
            v
            for labels, v in _samples(metrics, f"{prefix}_{part}")
            if ours.items() <= labels.items()
        )
        for part in ("count", "sum")
    )
    return count, total


def test_five_adapters_queue_and_kueue_admits_them_one_at_a_time(
    kueue: Target, volume: ArtifactVolume, operator: OperatorProcess
) -> None:
    api = api_client(kueue.kubeconfig)
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    started = time.monotonic()
    for language in LANGUAGES:
        body = e2e_adapter(language, queueName=QUEUE)
        body["spec"]["dataset"]["uri"] = "/artifacts/datasets/de.jsonl"
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "languageadapters", body)

    # While Kueue holds them: Jobs suspended by Kueue's webhook, their adapters Queued.
    held: set[str] = set()

    def watch_queue() -> bool:
        jobs = batch.list_namespaced_job(NAMESPACE).items
        phases = {
            item["metadata"]["name"]: (item.get("status") or {}).get("phase")
            for item in custom.list_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "languageadapters"
            )["items"]
        }
        for job in jobs:
            owner = job.metadata.labels["langmerge.io/name"]
            if job.spec.suspend and phases.get(owner) == "Queued":
                held.add(owner)
        return all(phase == "Ready" for phase in phases.values()) and len(phases) == 5

    eventually(watch_queue, timeout_s=PATIENCE_S, interval_s=0.5, what="five adapters Ready")
    print(f"RESULT kueue_five_adapters_ready_seconds={time.monotonic() - started:.1f}")
    assert len(held) >= 3, f"adapters seen Queued behind a suspended Job: {sorted(held)}"

    runs = []
    for language in LANGUAGES:
        status = wait_ready(
            custom, NAMESPACE, "languageadapters", f"sentiment-{language}", kueue.tails()
        )
        runs.append(status["lastRun"])
        job = batch.read_namespaced_job(status["lastRun"]["job"], NAMESPACE)
        assert job.metadata.labels["kueue.x-k8s.io/queue-name"] == QUEUE
        assert job.spec.suspend is False  # admitted: Kueue released it
    # One at a time: each run starts after the one before it finished.
    runs.sort(key=lambda run: run["startedAt"])
    for before, after in itertools.pairwise(runs):
        assert _stamp(after["startedAt"]) >= _stamp(before["finishedAt"]), (before, after)
    # Queue time is reported and not billed: the billed core-seconds are the run's own.
    metrics = operator.metrics()
    # The operator only ever created the Jobs: Kueue suspended and released them.
    job_writes = [
        labels["verb"]
        for labels, value in _samples(metrics, "langmerge_api_requests_total")
        if labels["resource"] == "jobs" and labels["verb"] != "list" and value > 0
    ]
    assert job_writes == ["create"], job_writes
    count, waited = _queue_wait(metrics)
    assert count == 5 and waited > 0, (count, waited)
    for run in runs:
        ran = (_stamp(run["finishedAt"]) - _stamp(run["startedAt"])).total_seconds()
        assert run["gpuSeconds"] <= ran + 1.0, run  # 1 CPU: core-seconds = seconds run
    last = runs[-1]
    print(f"RESULT kueue_queue_wait_seconds_total={waited:.1f}")
    print(f"RESULT kueue_last_run_billed_core_seconds={last['gpuSeconds']:.1f}")
