"""How a Job or a TrainJob ended, read the way their controllers report it: their conditions
(both have Complete and Failed), and each pod's container state (start, finish, exit code,
termination message with the run summary: a TrainJob's rank 0 alone writes one)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langmerge.common.summary import RunSummary, parse_summary
from langmerge.operator.clock import parse_time

# A TrainJob's pods: the index of their Job in the JobSet, their index in that Job (rank)
RANK_LABELS = ("jobset.sigs.k8s.io/job-index", "batch.kubernetes.io/job-completion-index")


@dataclass(frozen=True)
class JobOutcome:
    succeeded: bool
    started: datetime | None
    finished: datetime | None
    container_seconds: float  # summed over every pod the Job ran (retries cost too)
    gpus: int
    summary: RunSummary | None
    reason: str

    @property
    def gpu_seconds(self) -> float:
        return self.container_seconds * max(self.gpus, 1)


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def progress_line(log: str | None) -> dict[str, Any] | None:
    """The trainer's last progress line ({"step", "totalSteps", "loss", "etaSeconds"}) in a
    log, or None."""
    for line in reversed((log or "").splitlines()):
        if line.startswith('{"step"'):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed.get("step"), int) and isinstance(parsed.get("totalSteps"), int):
                return dict(parsed)
    return None


def job_essentials(job: dict[str, Any]) -> dict[str, Any]:
    """The parts of a Job that the operator reads (these functions and the reconciler):
    metadata without managedFields, status, and each container's name and resources; what
    the operator's in-memory view holds of a Job, a tenth of it."""
    meta = {k: v for k, v in job["metadata"].items() if k != "managedFields"}
    containers = job["spec"]["template"]["spec"]["containers"]
    return {
        "apiVersion": job.get("apiVersion", "batch/v1"),
        "kind": job.get("kind", "Job"),
        "metadata": meta,
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": c["name"], "resources": c.get("resources") or {}}
                        for c in containers
                    ]
                }
            }
        },
        "status": job.get("status") or {},
    }


def trainjob_essentials(trainjob: dict[str, Any]) -> dict[str, Any]:
    """What the operator's view holds of a TrainJob: metadata without managedFields, status,
    and the size and resources of its nodes."""
    trainer = trainjob["spec"].get("trainer") or {}
    return {
        "apiVersion": trainjob["apiVersion"],
        "kind": trainjob["kind"],
        "metadata": {k: v for k, v in trainjob["metadata"].items() if k != "managedFields"},
        "spec": {
            "trainer": {
                "numNodes": trainer.get("numNodes", 1),
                "resourcesPerNode": trainer.get("resourcesPerNode") or {},
            }
        },
        "status": trainjob.get("status") or {},
    }


def is_trainjob(job: dict[str, Any]) -> bool:
    return job.get("kind") == "TrainJob"


def job_started(job: dict[str, Any]) -> bool:
    """Whether any pod of the Job (TrainJob) has started running. A Job's `active` also
    counts Pending pods (an unschedulable pod is active), so a running pod is one that is
    ready or has finished; a queued Job (Kueue keeps it suspended) has none."""
    status = job.get("status") or {}
    if is_trainjob(job):  # its JobSet's Jobs, as Kubeflow Trainer reports them
        counts = status.get("jobsStatus") or []
        return any(c.get("ready") or c.get("succeeded") or c.get("failed") for c in counts)
    return bool(status.get("ready") or status.get("succeeded") or status.get("failed"))


def reports_summary(pod: dict[str, Any]) -> bool:
    """Whether the pod is the one that writes the run's summary: a Job's only pod (retries
    included), or rank 0 of a TrainJob (the first pod of its JobSet's first Job)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key, "0") == "0" for key in RANK_LABELS)


def _rank(pod: dict[str, Any]) -> str:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return str(labels.get(RANK_LABELS[1], "?"))


def job_finished(job: dict[str, Any]) -> bool:
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def _pod_resources(job: dict[str, Any]) -> dict[str, Any]:
    """The requests and limits of each pod of the Job (TrainJob)."""
    if is_trainjob(job):
        return dict(job["spec"]["trainer"].get("resourcesPerNode") or {})
    containers = job["spec"]["template"]["spec"]["containers"]
    return dict(containers[0].get("resources") or {})


def job_gpus(job: dict[str, Any]) -> int:
    """GPUs of each pod."""
    return int((_pod_resources(job).get("limits") or {}).get("nvidia.com/gpu", 0))


def job_cpus(job: dict[str, Any]) -> float:
    """CPU cores each pod requests (for pricing CPU-only runs); 1 when unset."""
    value = str((_pod_resources(job).get("requests") or {}).get("cpu", "1"))
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def read_outcome(
    job: dict[str, Any], pods: list[dict[str, Any]], summary_model: type[RunSummary]
) -> JobOutcome | None:
    """The outcome of a finished Job, or None while it runs."""
    if not job_finished(job):
        return None
    succeeded = _condition(job, "Complete") is not None
    seconds, first, last, reported = 0.0, None, None, None
    latest_state: dict[str, Any] | None = None
    # Another rank's failure that ended first: what stopped a TrainJob's run (rank 0 is then
    # only stopped with the rest), as (end, rank, state)
    other_failure: tuple[datetime, str, dict[str, Any]] | None = None
    for pod in pods:
        # Every pod's time is billed; the summary comes from the reporting pod.
        reporting = reports_summary(pod)
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or (
                status.get("lastState") or {}
            ).get("terminated")
            if not terminated:
                continue
            start, end = (
                parse_time(terminated.get("startedAt")),
                parse_time(terminated.get("finishedAt")),
            )
            if start and end:
                seconds += max(0.0, (end - start).total_seconds())
                first = start if first is None or start < first else first
                last = end if last is None or end >= last else last
                if reporting and (reported is None or end >= reported):
                    reported, latest_state = end, terminated
                failed = terminated.get("exitCode") not in (None, 0)
                if not reporting and failed and (other_failure is None or end < other_failure[0]):
                    other_failure = (end, _rank(pod), terminated)
    summary = parse_summary((latest_state or {}).get("message"), summary_model)
    failed_condition = _condition(job, "Failed") or {}
    cause, rank = latest_state, ""
    if other_failure is not None and (reported is None or other_failure[0] <= reported):
        _, failed_rank, cause = other_failure
        rank = f"rank {failed_rank}: "
    if succeeded:
        reason = ""
    elif summary is not None and summary.reason:
        reason = summary.reason
    elif failed_condition.get("reason") == "DeadlineExceeded":
        detail = failed_condition.get("message", "the Job ran past activeDeadlineSeconds")
        reason = f"DeadlineExceeded: {detail}"
    elif cause is not None and cause.get("reason") not in (None, "Completed", "Error"):
        reason = f"{rank}{cause['reason']} (exit code {cause.get('exitCode')})"
    elif cause is not None:
        reason = f"{rank}exit code {cause.get('exitCode')}"
        message = (cause.get("message") or "").strip()
        if message:
            reason += f": {message.splitlines()[-1][:500]}"
    else:
        kind = failed_condition.get("reason", "Failed")
        reason = f"{kind}: {failed_condition.get('message', '')}".rstrip(": ")
    return JobOutcome(succeeded, first, last, seconds, job_gpus(job), summary, reason)
