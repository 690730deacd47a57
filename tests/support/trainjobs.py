"""Kubeflow Trainer's API on the bare API server: its real CRDs, from the Go module at the
version hack/versions.env pins, and playing its controllers' part for a TrainJob the operator
created: one pod per node (JobSet's labels, rank 0 writing the summary) that terminates, and
the TrainJob's status with Trainer's conditions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support.control_plane import pinned
from tests.support.kube import until
from tests.support.operator import stamp, terminated_pod

TRAINER = ("trainer.kubeflow.org", "v1alpha1")
TRAINER_CRDS = (
    "trainjobs.trainer.kubeflow.org",
    "clustertrainingruntimes.trainer.kubeflow.org",
    "trainingruntimes.trainer.kubeflow.org",
)


@cache
def trainer_crds() -> Path:
    """The folder of Kubeflow Trainer's CRDs in its Go module (downloaded once by Go)."""
    if shutil.which("go") is None:
        raise FileNotFoundError("Go is not installed: it fetches Kubeflow Trainer's CRDs")
    module = f"github.com/kubeflow/trainer/v2@{pinned('KUBEFLOW_TRAINER_VERSION')}"
    found = subprocess.run(
        ["go", "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    )
    return Path(json.loads(found.stdout)["Dir"]) / "manifests" / "base" / "crds"


def install_trainer_crds(kubectl: Any) -> None:
    """Applies Trainer's CRDs (not its controller) and waits until they are served."""
    for path in sorted(trainer_crds().glob("trainer.kubeflow.org_*.yaml")):
        kubectl("apply", "--server-side", "-f", str(path))
    # (kubectl wait fails at once while a CRD has no status yet: polled instead)
    until(
        lambda: kubectl(
            "wait", "--for=condition=Established", *(f"crd/{name}" for name in TRAINER_CRDS),
            "--timeout=10s", check=False,
        ),
        lambda waited: waited.returncode == 0,
        timeout_s=120,
        what="Kubeflow Trainer's CRDs to be served",
    )  # fmt: skip


def uninstall_trainer_crds(kubectl: Any) -> None:
    kubectl("delete", "crd", *TRAINER_CRDS, "--ignore-not-found", "--wait=true")


def job_status(**counts: int) -> dict[str, Any]:
    """A replicated Job's counts in TrainJob status (every count is required)."""
    zero = dict.fromkeys(("ready", "succeeded", "failed", "active", "suspended"), 0)
    return {"name": "node", **zero, **counts}


def finish_trainjob(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    summary: dict[str, Any] | None = None,
    succeed: bool = True,
    seconds: float = 3600,
) -> None:
    """Ends the TrainJob as JobSet, the Job controller, the kubelet and Trainer report it:
    each node's pod (labelled with its Job's index and its rank) terminated after `seconds`,
    rank 0 with the summary as its termination message, and the TrainJob Complete (or
    Failed)."""
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    body = custom.get_namespaced_custom_object(*TRAINER, namespace, "trainjobs", name)
    nodes = int(body["spec"]["trainer"].get("numNodes", 1))
    override = next(iter(body["spec"].get("podTemplateOverrides") or []), {})
    labels = (override.get("metadata") or {}).get("labels") or {}
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(seconds=seconds)
    for rank in range(nodes):
        rank_labels = {
            **labels,
            "jobset.sigs.k8s.io/jobset-name": name,
            "jobset.sigs.k8s.io/replicatedjob-name": "node",
            "jobset.sigs.k8s.io/job-index": "0",
            "batch.kubernetes.io/job-completion-index": str(rank),
        }
        terminated: dict[str, Any] = {
            "exitCode": 0 if succeed else 1,
            "reason": "Completed" if succeed else "Error",
            "startedAt": stamp(start),
            "finishedAt": stamp(end),
        }
        if rank == 0 and summary is not None:
            terminated["message"] = json.dumps(summary)
        terminated_pod(core, namespace, f"{name}-node-0-{rank}", rank_labels, "node", terminated)
    ended = "Complete" if succeed else "Failed"
    condition = {
        "type": ended,
        "status": "True",
        "reason": "JobSetCompleted" if succeed else "JobSetFailed",
        "message": "jobset completed" if succeed else "jobset failed",
        "lastTransitionTime": stamp(end),
    }
    counts = {"succeeded": nodes, "failed": 0} if succeed else {"succeeded": 0, "failed": 1}
    custom.patch_namespaced_custom_object_status(
        *TRAINER,
        namespace,
        "trainjobs",
        name,
        {
            "status": {
                "conditions": [condition],
                "jobsStatus": [job_status(**counts)],
            }
        },
    )


def start_trainjob(api: client.ApiClient, namespace: str, name: str) -> None:
    """Its pods run: the TrainJob's JobSet reports its Job ready."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        *TRAINER,
        namespace,
        "trainjobs",
        name,
        {"status": {"jobsStatus": [job_status(ready=1, active=1)]}},
    )
