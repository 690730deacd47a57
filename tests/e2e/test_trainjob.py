"""Training across pods with Kubeflow Trainer: the JobSet and Kubeflow Trainer controllers,
built from the Go module proxy (hack/controllers.sh) and installed with Trainer's own chart
(JobSet as its subchart); a ClusterTrainingRuntime for the trainer image (the torch policy:
torchrun started with the rendezvous the runtime provides) and a TrainJob of two nodes. Two
pods, one per node rank, train one adapter data parallel over gloo, finding each other
through the cluster's DNS; rank 0 publishes the adapter and writes the summary; the adapter
equals one process's training with the same global batch and seed. (The operator does not
create TrainJobs yet: this is the path it will take.) Prints `RESULT name=value` lines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from kubernetes import client
from safetensors.torch import load_file

from tests.e2e.conftest import PATIENCE_S, controller_chart, e2e_dataset, provision_namespace
from tests.support.containers import image
from tests.support.kube import api_client, until
from tests.support.target import POD_USER, Target
from tests.support.volume import ArtifactVolume
from tests.trainer.test_data_parallel import assert_split
from tests.trainer.test_train_cli import train

NAMESPACE = "e2e-trainjob"
SYSTEM = "kubeflow-system"
TRAINER = ("trainer.kubeflow.org", "v1alpha1")
RUNTIME = f"""
apiVersion: trainer.kubeflow.org/v1alpha1
kind: ClusterTrainingRuntime
metadata:
  name: langmerge-e2e-torch
  labels: {{trainer.kubeflow.org/framework: torch}}
spec:
  mlPolicy:
    numNodes: 1
    torch: {{numProcPerNode: 1}}
  template:
    spec:
      replicatedJobs:
      - name: node
        template:
          metadata:
            labels: {{trainer.kubeflow.org/trainjob-ancestor-step: trainer}}
          spec:
            template:
              spec:
                automountServiceAccountToken: false
                securityContext:
                  runAsNonRoot: true
                  runAsUser: {POD_USER}
                  runAsGroup: {POD_USER}
                  fsGroup: {POD_USER}
                  seccompProfile: {{type: RuntimeDefault}}
                containers:
                - name: node
                  image: {image("trainer")}
                  imagePullPolicy: Never
                  securityContext:
                    allowPrivilegeEscalation: false
                    capabilities: {{drop: [ALL]}}
                  volumeMounts: [{{name: artifacts, mountPath: /artifacts}}]
                volumes:
                - name: artifacts
                  persistentVolumeClaim: {{claimName: langmerge-artifacts}}
"""
INPUTS = [
    "--base-model", "/artifacts/models/tiny", "--task", "sentiment",
    "--dataset", "/artifacts/datasets/de.jsonl",
]  # fmt: skip
# The one-process run below uses the same settings; LoRA dropout 0: no per-rank masks.
SETTINGS = [
    "--language", "de", "--batch-size", "8", "--max-steps", "12", "--learning-rate", "3e-3",
    "--lora-rank", "8", "--lora-dropout", "0",
]  # fmt: skip


def trainjob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "/".join(TRAINER),
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "runtimeRef": {"name": "langmerge-e2e-torch"},
            "trainer": {
                "numNodes": 2,
                "command": ["torchrun", "-m", "langmerge.trainer.cli"],
                "args": [*INPUTS, *SETTINGS, "--output", f"/artifacts/out/{name}"],
                # Two pods on a two-core node beside the controllers.
                "resourcesPerNode": {
                    "requests": {"cpu": "500m", "memory": "1Gi"},
                    "limits": {"memory": "3Gi"},
                },
            },
        },
    }


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
    # Ready pods do not mean served webhooks (each controller injects its own certificate).
    until(
        lambda: target.kubectl("apply", "-f", "-", input=RUNTIME, check=False),
        lambda done: done.returncode == 0,
        timeout_s=PATIENCE_S,
        what="Kubeflow Trainer's webhook to admit the ClusterTrainingRuntime",
    )
    print(f"RESULT kubeflow_trainer_install_to_ready_seconds={time.monotonic() - started:.1f}")
    try:
        yield target
    finally:
        # The runtime keeps a finalizer while TrainJobs use it: they go first.
        target.kubectl("delete", "trainjobs", "--all", f"--namespace={NAMESPACE}", check=False)
        target.kubectl("delete", "clustertrainingruntime", "langmerge-e2e-torch", check=False)
        target.helm("uninstall", "trainer", f"--namespace={SYSTEM}")
        target.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)


@pytest.fixture(scope="module")
def volume(kubeflow_trainer: Target) -> ArtifactVolume:
    return provision_namespace(kubeflow_trainer, NAMESPACE)


def test_a_two_node_trainjob_trains_what_one_process_trains(
    kubeflow_trainer: Target, volume: ArtifactVolume, tmp_path: Path
) -> None:
    api = api_client(kubeflow_trainer.kubeconfig)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    started = time.monotonic()
    custom.create_namespaced_custom_object(*TRAINER, NAMESPACE, "trainjobs", trainjob("dp"))

    def finished() -> list[dict[str, Any]]:
        body = custom.get_namespaced_custom_object(*TRAINER, NAMESPACE, "trainjobs", "dp")
        conditions = (body.get("status") or {}).get("conditions") or []
        ended = ("Complete", "Failed")
        return [c for c in conditions if c["type"] in ended and c["status"] == "True"]

    (outcome,) = until(finished, bool, timeout_s=PATIENCE_S, what=kubeflow_trainer.tails())
    print(f"RESULT trainjob_two_nodes_apply_to_complete_seconds={time.monotonic() - started:.1f}")
    assert outcome["type"] == "Complete", outcome

    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector="jobset.sigs.k8s.io/jobset-name=dp"
    ).items
    by_rank = {int(p.metadata.labels["batch.kubernetes.io/job-completion-index"]): p for p in pods}
    assert sorted(by_rank) == [0, 1], [p.metadata.name for p in pods]
    messages = [by_rank[r].status.container_statuses[0].state.terminated.message for r in (0, 1)]
    assert '"result":"Succeeded"' in messages[0] and '"deviceCount":2' in messages[0]
    assert not messages[1]  # rank 1 trains; rank 0 alone reports
    logs = [core.read_namespaced_pod_log(by_rank[r].metadata.name, NAMESPACE) for r in (0, 1)]
    assert_split([line for log in logs for line in log.splitlines()])

    local = tmp_path / "de.jsonl"
    local.write_text(e2e_dataset("de"))
    train(tmp_path, "--dataset", str(local), *SETTINGS, "--output", str(tmp_path / "one"))
    single = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))
    fetched = volume.fetch("/artifacts/out/dp", tmp_path / "pods")
    split = load_file(str(fetched / "adapter_model.safetensors"))
    assert single.keys() == split.keys()
    worst = max(float((split[k] - single[k]).norm() / single[k].norm()) for k in single)
    print(f"RESULT trainjob_vs_one_process_worst_relative_error={worst:.2e}")
    for key in single:  # the same update, up to float summation order
        torch.testing.assert_close(split[key], single[key], rtol=1e-4, atol=1e-6)
