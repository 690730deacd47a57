"""Training across pods with Kubeflow Trainer, as users run it: the JobSet and Kubeflow
Trainer controllers, built from the Go module proxy (hack/controllers.sh) and installed with
Trainer's own chart (JobSet as its subchart); langmerge's chart with trainJobs.enabled (its
ClusterTrainingRuntime for the trainer image, the operator's RBAC for TrainJobs). A
LanguageAdapter with spec.resources.nodes: 2, applied with kubectl, becomes one TrainJob whose
two pods, one per node rank, train one adapter data parallel over gloo, finding each other
through the cluster's DNS; rank 0 publishes the adapter and writes the summary; the adapter is
Ready, both pods are billed, and it equals one process's training with the same global batch
and seed. Prints `RESULT name=value` lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from safetensors.torch import load_file

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.jobs import training_args
from langmerge.trainer.cli import main as train_main
from tests.e2e.conftest import (
    PATIENCE_S,
    RELEASE,
    controller_chart,
    e2e_adapter,
    e2e_dataset,
    langmerge_release,
    provision_namespace,
    until_admitted,
    wait_ready,
)
from tests.support.adapters import worst_relative_error
from tests.support.containers import image
from tests.support.control_plane import REPO
from tests.support.kube import api_client
from tests.support.target import Target
from tests.support.volume import ArtifactVolume
from tests.trainer.test_data_parallel import assert_split

NAMESPACE = "e2e-trainjob"
SYSTEM = "kubeflow-system"
TRAINER = ("trainer.kubeflow.org", "v1alpha1")
CHART = str(REPO / "charts" / "langmerge")


def two_node_adapter() -> dict[str, Any]:
    """de on two pods (half a core each: two pods on a two-core node beside the controllers);
    LoRA dropout 0, so no per-rank masks, and fp32 (under bf16 each rank's smaller matmuls
    round differently, agreeing only to bf16's precision): one process must train the same
    adapter."""
    manifest = e2e_adapter("de", nodes=2, cpu="500m")
    manifest["spec"]["training"].update(maxSteps=12, learningRate=3e-3, precision="fp32")
    manifest["spec"]["lora"] = {"rank": 8, "dropout": 0}
    return manifest


def one_process(manifest: dict[str, Any], workdir: Path) -> Path:
    """The same spec's command line as the operator writes it, trained in this process on a
    local copy of the data and builtin:tiny (the claim holds the same model's files)."""
    body = {**manifest, "metadata": {**manifest["metadata"], "namespace": NAMESPACE}}
    spec = LanguageAdapter.model_validate(body).spec
    dataset = workdir / "de.jsonl"
    dataset.write_text(e2e_dataset("de"))
    local = {
        "--base-model": "builtin:tiny",
        "--dataset": str(dataset),
        "--output": str(workdir / "one"),
        "--checkpoint-dir": str(workdir / "checkpoints"),
    }
    args = training_args(spec, "out", "checkpoints", "f" * 20, None)
    for flag, value in local.items():
        args[args.index(flag) + 1] = value
    assert train_main([*args, "--summary-file", str(workdir / "summary.json")]) == 0
    return workdir / "one"


@pytest.fixture(scope="module")
def kubeflow_trainer(target: Target) -> Iterator[Target]:
    chart = controller_chart("kubeflow-trainer")
    controller_chart("jobset")
    values = []
    for name, prefix in (("kubeflow-trainer", "image"), ("jobset", "jobset.image")):
        target.load_image(name)
        repository, tag = image(name).rsplit(":", 1)
        if name == "kubeflow-trainer":  # this chart writes the image as registry/repository
            registry, _, repository = repository.partition("/")
            values.append(f"--set={prefix}.registry={registry}")
        values += [f"--set={prefix}.repository={repository}", f"--set={prefix}.tag={tag}"]
        values.append(f"--set={prefix}.pullPolicy=Never")
    started = time.monotonic()
    target.helm(
        "install", "trainer", chart, f"--namespace={SYSTEM}", "--create-namespace", *values,
        "--wait", f"--timeout={PATIENCE_S}s",
    )  # fmt: skip
    # The chart's ClusterTrainingRuntime, dry run through the webhooks, tells when they serve.
    runtime = target.helm(
        "template", RELEASE, CHART, "--set=trainJobs.enabled=true",
        "--show-only=templates/trainingruntime.yaml",
    ).stdout  # fmt: skip
    until_admitted(
        target, runtime, "Kubeflow Trainer's webhook to admit the runtime", "--dry-run=server"
    )
    print(f"RESULT kubeflow_trainer_install_to_ready_seconds={time.monotonic() - started:.1f}")
    try:
        yield target
    finally:
        target.helm("uninstall", "trainer", f"--namespace={SYSTEM}")
        target.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)


@pytest.fixture(scope="module")
def volume(kubeflow_trainer: Target) -> ArtifactVolume:
    return provision_namespace(kubeflow_trainer, NAMESPACE)


@pytest.fixture(scope="module")
def installed(kubeflow_trainer: Target, volume: ArtifactVolume) -> Iterator[Target]:
    with langmerge_release(kubeflow_trainer, NAMESPACE, "--set=trainJobs.enabled=true") as target:
        try:
            yield target
        finally:
            # Trainer keeps a finalizer on the runtime while TrainJobs use it: they go first,
            # with their adapters (while an adapter is there, its operator recreates them).
            for kind in ("languageadapters", "trainjobs"):
                target.kubectl("delete", kind, "--all", f"--namespace={NAMESPACE}", "--wait")


def _seconds(pod: Any) -> float:
    terminated = pod.status.container_statuses[0].state.terminated
    return float((terminated.finished_at - terminated.started_at).total_seconds())


def test_an_adapter_on_two_nodes_trains_as_one_trainjob_what_one_process_trains(
    installed: Target, volume: ArtifactVolume, tmp_path: Path
) -> None:
    api = api_client(installed.kubeconfig)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    manifest = two_node_adapter()
    started = time.monotonic()
    installed.kubectl("apply", f"--namespace={NAMESPACE}", "-f", "-", input=json.dumps(manifest))
    status = wait_ready(custom, NAMESPACE, "languageadapters", "sentiment-de", installed.tails())
    print(f"RESULT trainjob_adapter_apply_to_ready_seconds={time.monotonic() - started:.1f}")
    run = status["lastRun"]
    trainjob = custom.get_namespaced_custom_object(*TRAINER, NAMESPACE, "trainjobs", run["job"])
    assert trainjob["spec"]["trainer"]["numNodes"] == 2
    assert [c["type"] for c in trainjob["status"]["conditions"] if c["status"] == "True"][
        -1
    ] == "Complete"

    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector=f"jobset.sigs.k8s.io/jobset-name={run['job']}"
    ).items
    by_rank = {int(p.metadata.labels["batch.kubernetes.io/job-completion-index"]): p for p in pods}
    assert sorted(by_rank) == [0, 1], [p.metadata.name for p in pods]
    assert all(p.metadata.labels["langmerge.io/name"] == "sentiment-de" for p in pods)
    messages = [by_rank[r].status.container_statuses[0].state.terminated.message for r in (0, 1)]
    assert '"result":"Succeeded"' in messages[0] and '"deviceCount":2' in messages[0]
    assert not messages[1]  # rank 1 trains; rank 0 alone reports
    logs = [core.read_namespaced_pod_log(by_rank[r].metadata.name, NAMESPACE) for r in (0, 1)]
    assert_split([line for log in logs for line in log.splitlines()])
    # Both pods billed: half a core each for as long as each ran.
    billed = sum(_seconds(p) for p in pods) * 0.5
    print(f"RESULT trainjob_billed_core_seconds={run['gpuSeconds']:.1f}")
    assert run["gpuSeconds"] == pytest.approx(billed, abs=1.0)

    single = load_file(str(one_process(manifest, tmp_path) / "adapter_model.safetensors"))
    fetched = volume.fetch(status["artifact"]["uri"], tmp_path / "pods")
    split = load_file(str(fetched / "adapter_model.safetensors"))
    worst = worst_relative_error(split, single)
    print(f"RESULT trainjob_vs_one_process_worst_relative_error={worst:.2e}")
    assert worst < 1e-4
