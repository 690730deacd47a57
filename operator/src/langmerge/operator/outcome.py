"""How a Job ended, read the way its controllers report it: Job conditions, and each pod's
container state (start, finish, exit code, termination message with the run summary)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langmerge.common.summary import RunSummary, parse_summary
from langmerge.operator.clock import parse_time


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


def job_finished(job: dict[str, Any]) -> bool:
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def job_gpus(job: dict[str, Any]) -> int:
    containers = job["spec"]["template"]["spec"]["containers"]
    limits = (containers[0].get("resources") or {}).get("limits") or {}
    return int(limits.get("nvidia.com/gpu", 0))


def job_cpus(job: dict[str, Any]) -> float:
    """CPU cores requested (for pricing CPU-only runs); 1 when unset."""
    containers = job["spec"]["template"]["spec"]["containers"]
    value = str(((containers[0].get("resources") or {}).get("requests") or {}).get("cpu", "1"))
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def read_outcome(
    job: dict[str, Any], pods: list[dict[str, Any]], summary_model: type[RunSummary]
) -> JobOutcome | None:
    """The outcome of a finished Job, or None while it runs."""
    if not job_finished(job):
        return None
    succeeded = _condition(job, "Complete") is not None
    seconds, first, last = 0.0, None, None
    latest_state: dict[str, Any] | None = None
    for pod in pods:
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
                if last is None or end >= last:
                    last, latest_state = end, terminated
    summary = parse_summary((latest_state or {}).get("message"), summary_model)
    failed_condition = _condition(job, "Failed") or {}
    if succeeded:
        reason = ""
    elif summary is not None and summary.reason:
        reason = summary.reason
    elif failed_condition.get("reason") == "DeadlineExceeded":
        detail = failed_condition.get("message", "the Job ran past activeDeadlineSeconds")
        reason = f"DeadlineExceeded: {detail}"
    elif latest_state is not None and latest_state.get("reason") not in (
        None,
        "Completed",
        "Error",
    ):
        reason = f"{latest_state['reason']} (exit code {latest_state.get('exitCode')})"
    elif latest_state is not None:
        reason = f"exit code {latest_state.get('exitCode')}"
        message = (latest_state.get("message") or "").strip()
        if message:
            reason += f": {message.splitlines()[-1][:500]}"
    else:
        kind = failed_condition.get("reason", "Failed")
        reason = f"{kind}: {failed_condition.get('message', '')}".rstrip(": ")
    return JobOutcome(succeeded, first, last, seconds, job_gpus(job), summary, reason)
