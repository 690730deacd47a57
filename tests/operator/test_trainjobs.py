"""Trainings across pods against the real API server with Kubeflow Trainer's real CRDs (its
controllers are not here: the tests play their part, tests/support/trainjobs.py; the e2e runs
the real ones). An adapter with spec.resources.nodes > 1 waits, saying what to install, until
the API server serves TrainJobs; then the operator creates one TrainJob on the chart's
runtime, adopts it after a restart, reads the summary of rank 0 and bills every pod."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.conftest import require
from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually
from tests.support.objects import adapter_manifest
from tests.support.operator import OperatorProcess, success_summary
from tests.support.trainjobs import (
    TRAINER,
    finish_trainjob,
    install_trainer_crds,
    start_trainjob,
    trainer_crds,
)

RUNTIME = "lm-langmerge-torch"


@pytest.fixture(scope="module")
def plane(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """A control plane of its own: Trainer's CRDs arrive during the first test."""
    try:
        trainer_crds()
    except (FileNotFoundError, OSError) as error:
        require(False, f"Kubeflow Trainer's CRDs: {error}")
    with ControlPlane(tmp_path_factory.mktemp("trainjob-plane"), control_plane.binaries) as plane:
        plane.install_crds()
        yield plane


@pytest.fixture(scope="module")
def operator(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    process = OperatorProcess(
        plane,
        tmp_path_factory.mktemp("operator"),
        env={
            "LANGMERGE_TRAIN_JOBS": "true",
            "LANGMERGE_TRAINING_RUNTIME": RUNTIME,
            "LANGMERGE_RESYNC_SECONDS": "2",  # Trainer installed later: the resync finds it
        },
    ).start()
    yield process
    process.stop()


@pytest.fixture
def cluster(plane: ControlPlane, operator: OperatorProcess) -> Cluster:
    api = api_client(plane.kubeconfig)
    namespace = f"tj-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    return Cluster(api, namespace)


def two_nodes(language: str = "de", **spec: Any) -> dict[str, Any]:
    resources = {"nodes": 2, "gpus": 1, "gpuType": "nvidia-a100-80gb", "queueName": "gpu"}
    return adapter_manifest(language, **{"resources": resources, **spec})


def trainjobs(cluster: Cluster) -> list[dict[str, Any]]:
    items = client.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        *TRAINER, cluster.ns, "trainjobs"
    )["items"]
    return [t for t in items if not t["metadata"].get("deletionTimestamp")]


def generation_seen(cluster: Cluster, name: str) -> int | None:
    """The adapter's status.observedGeneration; None while it has no status (an operator
    killed between creating the TrainJob and writing status, say)."""
    status = cluster.get("LanguageAdapter", name).get("status") or {}
    return status.get("observedGeneration")


def one_trainjob(cluster: Cluster) -> dict[str, Any]:
    (found,) = eventually(lambda: trainjobs(cluster), what="the adapter's TrainJob")
    return found


def test_nodes_above_one_wait_for_trainer_then_run_as_one_trainjob(
    plane: ControlPlane, cluster: Cluster
) -> None:
    cluster.apply(two_nodes())
    eventually(
        lambda: (
            (cluster.condition("LanguageAdapter", "sentiment-de", "Ready") or {}).get("reason")
            == "TrainerNotInstalled"
        ),
        what="the adapter to say Kubeflow Trainer is missing",
    )
    ready = cluster.condition("LanguageAdapter", "sentiment-de", "Ready") or {}
    assert "spec.resources.nodes is 2" in ready["message"], ready
    assert "install Kubeflow Trainer v2" in ready["message"], ready
    assert cluster.get("LanguageAdapter", "sentiment-de")["status"]["phase"] == "Blocked"
    assert cluster.jobs("sentiment-de") == []  # no single-pod Job instead

    install_trainer_crds(plane.kubectl)  # the resync notices; no restart
    trainjob = one_trainjob(cluster)
    meta, spec = trainjob["metadata"], trainjob["spec"]
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == (
        "LanguageAdapter",
        "sentiment-de",
        True,
    )
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "gpu"
    assert meta["labels"]["langmerge.io/role"] == "train"
    assert spec["runtimeRef"] == {
        "name": RUNTIME,
        "kind": "ClusterTrainingRuntime",
        "apiGroup": "trainer.kubeflow.org",
    }
    trainer = spec["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 1)
    assert trainer["image"] == "registry.test/trainer:1"
    assert trainer["command"] == ["torchrun", "-m", "langmerge.trainer.cli"]
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--checkpoint-dir" in trainer["args"]
    (override,) = spec["podTemplateOverrides"]
    assert override["targetJobs"] == [{"name": "node"}]
    assert override["metadata"]["labels"]["langmerge.io/name"] == "sentiment-de"
    assert {v["name"] for v in override["spec"]["volumes"]} >= {"artifacts", "tmp", "cache"}
    assert cluster.jobs("sentiment-de") == []

    # Queued while no pod runs (Kueue or the scheduler holds it); Training once one does.
    eventually(
        lambda: (
            (cluster.condition("LanguageAdapter", "sentiment-de", "Training") or {}).get("reason")
            == "JobPending"
        ),
        what="Training=False with reason JobPending",
    )
    start_trainjob(cluster.api, cluster.ns, meta["name"])
    cluster.wait_condition("LanguageAdapter", "sentiment-de", "Training")

    uri = f"/artifacts/{cluster.ns}/sentiment-de/{meta['name']}"
    finish_trainjob(
        cluster.api, cluster.ns, meta["name"], summary=success_summary(uri), seconds=1800
    )
    cluster.wait_condition("LanguageAdapter", "sentiment-de", "Ready")
    status = cluster.get("LanguageAdapter", "sentiment-de")["status"]
    assert status["artifact"]["uri"] == uri  # rank 0's summary
    assert status["lastRun"]["job"] == meta["name"]
    assert status["lastRun"]["gpuSeconds"] == pytest.approx(2 * 1800)  # both pods billed
    assert status["totals"]["runs"] == 1


def test_a_restarted_operator_adopts_its_trainjob_and_a_new_spec_replaces_it(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.apply(two_nodes("fr"))
    first = one_trainjob(cluster)["metadata"]["name"]
    operator.kill()
    operator.start()
    cluster.apply(two_nodes("fr", resources={"nodes": 2, "gpus": 1, "queueName": "gpu"}))
    # Resources never retrain: the same TrainJob goes on, adopted, never twinned.
    eventually(
        lambda: generation_seen(cluster, "sentiment-fr") == 2,
        what="the operator to see the new generation",
    )
    assert [t["metadata"]["name"] for t in trainjobs(cluster)] == [first]

    cluster.apply(two_nodes("fr", revision="v2"))  # new data: a new fingerprint
    second = eventually(
        lambda: [n for t in trainjobs(cluster) if (n := t["metadata"]["name"]) != first],
        what="the new fingerprint's TrainJob",
    )
    eventually(
        lambda: first not in [t["metadata"]["name"] for t in trainjobs(cluster)],
        what="the superseded TrainJob to be deleted",
    )
    (name,) = second
    finish_trainjob(
        cluster.api, cluster.ns, name, summary=success_summary(f"/artifacts/{name}"), seconds=60
    )
    cluster.wait_condition("LanguageAdapter", "sentiment-fr", "Ready")
    status = cluster.get("LanguageAdapter", "sentiment-fr")["status"]
    assert status["totals"]["runs"] == 1 and status["lastRun"]["job"] == name


def test_the_operators_view_holds_its_trainjobs_and_no_list_failed(
    operator: OperatorProcess,
) -> None:
    """Listing TrainJobs before Trainer's CRDs existed (404) was no error."""

    def held() -> list[str]:  # once its startup has listed them
        lines = operator.metrics().splitlines()
        return [
            line
            for line in lines
            if line.startswith("langmerge_cached_objects")
            and 'resource="trainjobs"' in line
            and float(line.split()[-1]) >= 1
        ]

    eventually(held, timeout_s=60, what="TrainJobs in the operator's view")
    assert "Traceback" not in operator.log.read_text(), operator.tail(100)
