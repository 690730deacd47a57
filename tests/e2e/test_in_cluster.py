"""The operator as users run it: the chart installed with helm on the e2e cluster, the
operator image in a pod under the restricted Pod Security Standard, talking to the API server
through the `kubernetes` Service with its ServiceAccount's token and the chart's RBAC; a real
Prometheus scrapes the pod behind the chart's metrics Service; the operator pod killed in the
middle of a training run is replaced and adopts the run; it merges the two adapters and, after
one language's update, retrains only that one; the chart's Job deadline kills a real pod.
Prints `RESULT name=value` lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.conftest import (
    PATIENCE_S,
    RELEASE,
    SYSTEM,
    adapter_condition,
    e2e_adapter,
    langmerge_release,
    operator_pods,
    provision_namespace,
    wait_ready,
)
from tests.support.control_plane import REPO
from tests.support.kube import api_client, eventually, until
from tests.support.objects import GROUP, VERSION, merged_manifest
from tests.support.prometheus import Prometheus, file_scrape
from tests.support.target import Target
from tests.support.volume import ArtifactVolume

NAMESPACE = "e2e-cluster"  # where the adapters live


def kubectl_apply(target: Target, manifest: dict[str, Any]) -> None:
    """`kubectl apply` of the manifest in NAMESPACE, as a user or a GitOps tool does."""
    target.kubectl("apply", f"--namespace={NAMESPACE}", "-f", "-", input=json.dumps(manifest))


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


@pytest.fixture(scope="module")
def volume(target: Target) -> ArtifactVolume:
    return provision_namespace(target, NAMESPACE)


@pytest.fixture(scope="module")
def installed(target: Target, volume: ArtifactVolume) -> Iterator[Target]:
    with langmerge_release(
        target,
        NAMESPACE,
        "--set=metrics.service.enabled=true",
        "--set=operator.resyncSeconds=5",  # the progress test reads status every few seconds
    ) as installed:
        yield installed


def metrics_endpoints(core: client.CoreV1Api) -> list[tuple[str, int]]:
    """What Prometheus's Kubernetes discovery finds for a ServiceMonitor: the pods behind
    the chart's metrics Service (its Endpoints, kept by the real endpoints controller) and
    their metrics port."""
    endpoints = core.read_namespaced_endpoints(f"{RELEASE}-langmerge-metrics", SYSTEM)
    return [
        (address.target_ref.name, port.port)
        for subset in endpoints.subsets or []
        for address in subset.addresses or []
        for port in subset.ports
        if port.name == "metrics"
    ]


@pytest.fixture(scope="module")
def prometheus(installed: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus scraping the operator pod's metrics port, reached by port-forward
    (pod addresses are not routable from outside every cluster), labelled with its pod."""
    folder = tmp_path_factory.mktemp("e2e-prometheus")
    core = client.CoreV1Api(api_client(installed.kubeconfig))
    ((pod, port),) = eventually(
        lambda: metrics_endpoints(core), timeout_s=120, what="the metrics Service's endpoints"
    )
    with installed.port_forward(SYSTEM, pod, port) as local_port:
        targets = folder / "targets.json"
        targets.write_text(
            json.dumps([{"targets": [f"127.0.0.1:{local_port}"], "labels": {"pod": pod}}])
        )
        server = Prometheus(folder, file_scrape(targets))
        try:
            eventually(server.ready, timeout_s=120, what="Prometheus ready")
            yield server
        finally:
            server.stop()


def test_the_operator_pod_trains_an_adapter_and_prometheus_scrapes_it(
    installed: Target, prometheus: Prometheus
) -> None:
    api = api_client(installed.kubeconfig)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    (operator,) = operator_pods(core)
    # The chart's pod runs as the unprivileged user with its ServiceAccount's token.
    assert operator.spec.service_account_name == f"{RELEASE}-langmerge"
    assert operator.spec.security_context.run_as_user == 10001
    started = time.monotonic()
    kubectl_apply(installed, e2e_adapter("de"))
    status = wait_ready(custom, NAMESPACE, "languageadapters", "sentiment-de", installed.tails())
    print(f"RESULT in_cluster_apply_to_adapter_ready_seconds={time.monotonic() - started:.1f}")
    assert status["lastRun"]["result"] == "Succeeded"
    (pod,) = core.list_namespaced_pod(
        NAMESPACE, label_selector="langmerge.io/name=sentiment-de"
    ).items
    assert pod.spec.containers[0].image_pull_policy == "Never"  # the chart's trainer.image

    query = f'langmerge_runs_total{{namespace="{NAMESPACE}",result="Succeeded"}}'

    def scraped() -> list[Any]:
        return list(prometheus.query(query)["data"]["result"])

    series = until(scraped, bool, timeout_s=120, what=f"{query} in Prometheus")
    assert series[0]["metric"]["pod"] == operator.metadata.name
    assert float(series[0]["value"][1]) == 1.0
    # Seconds and cost taken from the real pod's start and finish, as status records them.
    run = status["lastRun"]
    # A CPU-only run: its billed seconds are core-seconds, in their own metric.
    for metric, field in (("cpu_core_seconds", "gpuSeconds"), ("cost_usd", "costUsd")):
        selector = f'namespace="{NAMESPACE}",name="sentiment-de",role="train"'
        (sample,) = prometheus.query(f"langmerge_{metric}_total{{{selector}}}")["data"]["result"]
        assert float(sample["value"][1]) == pytest.approx(run[field], rel=1e-6), metric
    assert run["gpuSeconds"] > 0 and run["costUsd"] > 0


def test_the_operator_pod_killed_during_a_run_is_replaced_and_adopts_the_run(
    installed: Target,
) -> None:
    api = api_client(installed.kubeconfig)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    batch = client.BatchV1Api(api)
    body = e2e_adapter("fr")
    body["spec"]["training"]["epochs"] = 30  # long enough to outlive the operator pod
    kubectl_apply(installed, body)
    selector = "langmerge.io/name=sentiment-fr"

    def training() -> list[Any]:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        return [p for p in pods if p.status.phase == "Running"]

    until(training, lambda pods: len(pods) == 1, timeout_s=PATIENCE_S, what="the training pod")
    (old,) = operator_pods(core)
    core.delete_namespaced_pod(old.metadata.name, SYSTEM, grace_period_seconds=0)
    replaced = until(
        lambda: [p for p in operator_pods(core) if p.metadata.name != old.metadata.name],
        lambda pods: len(pods) == 1 and _ready(pods[0]),
        timeout_s=PATIENCE_S,
        what=f"a new operator pod\n{installed.tails()}",
    )
    assert replaced[0].metadata.name != old.metadata.name
    status = wait_ready(custom, NAMESPACE, "languageadapters", "sentiment-fr", installed.tails())
    jobs = batch.list_namespaced_job(NAMESPACE, label_selector=selector).items
    assert len(jobs) == 1  # adopted, not started again
    assert status["totals"]["runs"] == 1 and status["totals"]["succeeded"] == 1


def test_the_operator_pod_merges_and_an_update_retrains_only_that_language(
    installed: Target, volume: ArtifactVolume, tmp_path: Path
) -> None:
    """After the two tests above: a MergedModel of de and fr runs as a real merge pod; the
    artifact on the claim loads with peft; a new dataset revision for de runs one training
    pod and one merge pod, and the update's cost is below a full retrain's."""
    api = api_client(installed.kubeconfig)
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    merged = merged_manifest(
        adapters={"names": ["sentiment-de", "sentiment-fr"]},
        resources={"gpus": 0, "cpu": 1, "memory": "3Gi"},
    )
    merged["spec"]["baseModel"] = {"name": "builtin:tiny", "uri": "/artifacts/models/tiny"}
    started = time.monotonic()
    kubectl_apply(installed, merged)
    status = wait_ready(custom, NAMESPACE, "mergedmodels", "sentiment", installed.tails())
    print(f"RESULT in_cluster_apply_to_merged_ready_seconds={time.monotonic() - started:.1f}")

    from peft import PeftModel  # the merged adapter on the claim loads with peft
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(volume.fetch("/artifacts/models/tiny", tmp_path))
    output = volume.fetch(status["artifact"]["uri"], tmp_path)
    assert isinstance(PeftModel.from_pretrained(base, output), PeftModel)

    def jobs() -> list[str]:
        return sorted(j.metadata.name for j in batch.list_namespaced_job(NAMESPACE).items)

    before = jobs()
    started = time.monotonic()
    updated = e2e_adapter("de")
    updated["spec"]["dataset"]["revision"] = "v2"
    kubectl_apply(installed, updated)  # the edited manifest, as a user or Argo CD applies it
    update = until(
        lambda: custom.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "mergedmodels", "sentiment"
        )["status"].get("lastUpdate"),
        lambda u: u is not None and u.get("trigger") != "initial merge",
        timeout_s=PATIENCE_S,
        what=f"the update's merge\n{installed.tails()}",
    )
    print(f"RESULT update_to_merged_ready_seconds={time.monotonic() - started:.1f}")
    assert update["retrainedAdapters"] == ["sentiment-de"]
    new_jobs = sorted(set(jobs()) - set(before))  # one training pod, then one merge pod
    assert [j.rsplit("-", 1)[0] for j in new_jobs] == ["sentiment-de-train", "sentiment-merge"]
    assert update["costUsd"] > 0 and update["fullRetrainEstimateUsd"] > update["costUsd"]


def test_the_charts_job_deadline_kills_a_real_pod(installed: Target) -> None:
    """helm upgrade with jobs.activeDeadlineSeconds=60 (the schema's least): a run longer than
    that is killed by the Job controller and the adapter's Failed condition says why."""
    installed.helm(
        "upgrade", RELEASE, str(REPO / "charts" / "langmerge"), f"--namespace={SYSTEM}",
        "--reuse-values", "--set=jobs.activeDeadlineSeconds=60",
        "--wait", f"--timeout={PATIENCE_S}s",
    )  # fmt: skip
    api = api_client(installed.kubeconfig)
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    body = e2e_adapter("de")
    body["metadata"]["name"] = "sentiment-slow"
    body["spec"]["training"]["maxSteps"] = 1_000_000  # hours, far beyond a minute
    kubectl_apply(installed, body)

    # While it runs, status shows the trainer's progress, read from the real pod's log (the
    # chart's role grants pods/log).
    progress = until(
        lambda: (
            custom.get_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-slow"
            ).get("status")
            or {}
        ).get("progress"),
        lambda p: bool(p) and p["step"] > 0,
        timeout_s=PATIENCE_S,
        what=f"status.progress\n{installed.tails()}",
    )
    assert progress["totalSteps"] == 1_000_000 and progress["etaSeconds"] > 0, progress
    condition = until(
        lambda: adapter_condition(custom, NAMESPACE, "sentiment-slow", "Failed"),
        bool,
        timeout_s=PATIENCE_S,
        what=f"Failed\n{installed.tails()}",
    )
    assert condition is not None and "DeadlineExceeded" in condition["message"], condition
    status = custom.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "languageadapters", "sentiment-slow"
    )["status"]
    assert "progress" not in status  # nothing runs any more
    (job,) = batch.list_namespaced_job(
        NAMESPACE, label_selector="langmerge.io/name=sentiment-slow"
    ).items
    assert job.spec.active_deadline_seconds == 60
