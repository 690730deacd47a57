"""Faults and security against the real API server: a Job deleted by hand, the API server
restarting mid-flow, pods under the restricted Pod Security Standard, secrets never leaked."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually
from tests.support.objects import adapter_manifest
from tests.support.operator import OperatorProcess, finish_job, success_summary

PLANTED = "planted-secret-value-0d9f3c"


@pytest.fixture
def api(control_plane: ControlPlane) -> client.ApiClient:
    # A client per test: one test restarts the API server, and pooled keep-alive connections
    # to the old process would fail the next POST (which urllib3 does not retry).
    control_plane.install_crds()
    return api_client(control_plane.kubeconfig)


def _cluster(api: client.ApiClient, labels: dict[str, str] | None = None) -> Cluster:
    namespace = f"fault-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(
        {"metadata": {"name": namespace, "labels": labels or {}}}
    )
    return Cluster(api, namespace)


@pytest.fixture
def operator(
    control_plane: ControlPlane, api: client.ApiClient, tmp_path: Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        control_plane,
        tmp_path,
        env={
            "LANGMERGE_STORAGE": "s3",
            "LANGMERGE_ARTIFACT_S3": "s3://models/langmerge",
            "LANGMERGE_S3_SECRET": "langmerge-s3",
        },
    ).start()
    yield process
    process.stop()


def test_a_job_deleted_by_hand_is_recreated_and_the_adapter_recovers(
    api: client.ApiClient, operator: OperatorProcess
) -> None:
    cluster = _cluster(api)
    cluster.apply(adapter_manifest("de"))
    job = cluster.job("sentiment-de")
    uid = cluster.batch.read_namespaced_job(job, cluster.ns).metadata.uid
    cluster.batch.delete_namespaced_job(job, cluster.ns, propagation_policy="Background")
    eventually(
        lambda: [j.metadata.uid for j in cluster.jobs("sentiment-de")] not in ([], [uid]),
        what="the Job to be created again",
    )
    cluster.train("sentiment-de")
    cluster.wait_condition("LanguageAdapter", "sentiment-de", "Ready")


def test_the_operator_carries_on_after_the_api_server_restarts(
    control_plane: ControlPlane, api: client.ApiClient, operator: OperatorProcess
) -> None:
    cluster = _cluster(api)
    cluster.apply(adapter_manifest("fr"))
    job = cluster.job("sentiment-fr")
    control_plane.restart_apiserver()
    cluster = Cluster(api_client(control_plane.kubeconfig), cluster.ns)  # fresh connections
    finish_job(cluster.api, cluster.ns, job, summary=success_summary(f"/artifacts/{job}"))
    cluster.wait_condition("LanguageAdapter", "sentiment-fr", "Ready", timeout_s=60)
    assert operator.process is not None and operator.process.poll() is None


def test_job_pods_are_admitted_under_the_restricted_pod_security_standard(
    api: client.ApiClient, operator: OperatorProcess
) -> None:
    cluster = _cluster(
        api,
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    )
    cluster.apply(adapter_manifest("ja", resources={"gpus": 1, "gpuType": "nvidia-h100-80gb"}))
    job = cluster.batch.read_namespaced_job(cluster.job("sentiment-ja"), cluster.ns)
    template = client.ApiClient().sanitize_for_serialization(job.spec.template)
    # Create the pod the Job controller would; the PodSecurity admission plugin judges it.
    pod = {
        "metadata": {"generateName": "sentiment-ja-", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    created = cluster.core.create_namespaced_pod(cluster.ns, pod)
    assert created.metadata.name.startswith("sentiment-ja-")
    insecure = json.loads(json.dumps(pod))
    insecure["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(client.exceptions.ApiException) as refused:
        cluster.core.create_namespaced_pod(cluster.ns, insecure)
    assert "restricted" in refused.value.body  # the namespace really enforces it


def test_credentials_never_reach_logs_status_or_jobs(
    api: client.ApiClient, operator: OperatorProcess
) -> None:
    cluster = _cluster(api)
    cluster.core.create_namespaced_secret(
        cluster.ns,
        {
            "metadata": {"name": "langmerge-s3"},
            "stringData": {"AWS_ACCESS_KEY_ID": "AKIA-test", "AWS_SECRET_ACCESS_KEY": PLANTED},
        },
    )
    cluster.apply(adapter_manifest("zh"))
    job = cluster.job("sentiment-zh")
    finish_job(
        api,
        cluster.ns,
        job,
        succeed=False,
        summary={"result": "Failed", "reason": "s3 access denied"},
    )
    cluster.wait_condition("LanguageAdapter", "sentiment-zh", "Failed")
    spec = cluster.batch.read_namespaced_job(job, cluster.ns).spec.template.spec.containers[0]
    assert spec.env_from[0].secret_ref.name == "langmerge-s3"  # by reference, never by value
    everything = [
        operator.tail(10_000),
        json.dumps(cluster.get("LanguageAdapter", "sentiment-zh")),
        json.dumps(
            client.ApiClient().sanitize_for_serialization(
                cluster.batch.read_namespaced_job(job, cluster.ns)
            )
        ),
        json.dumps([e.message for e in cluster.core.list_namespaced_event(cluster.ns).items]),
    ]
    assert not any(PLANTED in text for text in everything)
