"""One reconcile of one object, as the cluster executes it: the Jobs (or TrainJobs) it reads
(each once), the runs that finished since the last pass, starting the plan's Job (or adopting
it) and retiring one the plan no longer wants, and the Events it will post."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from langmerge.common.summary import RunSummary
from langmerge.operator.api.adapter import LanguageAdapterStatus
from langmerge.operator.api.common import ActiveJob, RunRecord, RunResult
from langmerge.operator.api.merged import MergedModelStatus
from langmerge.operator.api.reasons import EventReason
from langmerge.operator.cache import Body
from langmerge.operator.clock import now
from langmerge.operator.kube import JobRefusedError, Kube
from langmerge.operator.ledger import Event
from langmerge.operator.outcome import (
    JobOutcome,
    job_finished,
    job_started,
    progress_line,
    read_outcome,
    reports_summary,
)
from langmerge.operator.planner import MergePlan, TrainingPlan, invalid_job_reason


class Launch(Enum):
    QUEUED = "queued"  # the Job exists, no pod of it runs yet (scheduling, image pull, Kueue)
    RUNNING = "running"
    REFUSED = "refused"  # the API server refused the Job as invalid: a failed run


@dataclass
class ReconcilePass:
    kube: Kube
    namespace: str
    events: list[Event] = field(default_factory=list)
    # the Jobs as this pass first saw them: one consistent view for the whole pass, even if
    # a watch event updates the operator's view meanwhile
    _jobs: dict[str, Body | None] = field(default_factory=dict)

    def job(self, name: str) -> Body | None:
        if name not in self._jobs:
            self._jobs[name] = self.kube.get_job(self.namespace, name)
        return self._jobs[name]

    def finished(
        self, names: list[str], recorded: list[str], summary_model: type[RunSummary]
    ) -> Iterator[tuple[Body, JobOutcome]]:
        """The Jobs among names that finished and are not counted yet, with their outcome."""
        for name in dict.fromkeys(names):
            if name in recorded:
                continue
            job = self.job(name)
            if job is None or not job_finished(job):
                continue
            outcome = read_outcome(job, self.kube.job_pods(job), summary_model)
            assert outcome is not None
            yield job, outcome

    def progress(self, job_name: str) -> dict[str, Any] | None:
        """The trainer's last progress line in the log of the Job's running pod (a TrainJob's
        rank 0: the others print none), if any."""
        job = self.job(job_name)
        for pod in self.kube.job_pods(job) if job is not None else []:
            running = (pod.get("status") or {}).get("phase") == "Running"
            if running and reports_summary(pod):
                log = self.kube.pod_log_tail(self.namespace, pod["metadata"]["name"], 20)
                return progress_line(log)
        return None

    def start(
        self,
        status: LanguageAdapterStatus | MergedModelStatus,
        plan: TrainingPlan | MergePlan,
        build: Callable[[], Body],
        started: EventReason,
    ) -> Launch:
        """Creates the plan's Job, or adopts it when it exists (never a twin), and marks it
        the active one."""
        existing = self.job(plan.job)
        if existing is None:
            try:
                if self.kube.create_job(build()):
                    self.events.append(Event("Normal", started, f"created Job {plan.job}"))
            except JobRefusedError as refused:
                # Recorded as this fingerprint's failed run: the planner retries only after
                # the spec changes, so no loop of refused creations.
                reason = invalid_job_reason(str(refused))
                status.last_run = RunRecord(
                    job=plan.job,
                    fingerprint=plan.fingerprint,
                    result=RunResult.FAILED,
                    finished_at=now(),
                    reason=reason,
                )
                self.events.append(Event("Warning", EventReason.INVALID_JOB, reason))
                return Launch.REFUSED
        if status.active_job is None:
            status.active_job = ActiveJob(
                name=plan.job, fingerprint=plan.fingerprint, created_at=now()
            )
        return Launch.RUNNING if existing is not None and job_started(existing) else Launch.QUEUED

    def retire(
        self, status: LanguageAdapterStatus | MergedModelStatus, plan: TrainingPlan | MergePlan
    ) -> None:
        """The active Job runs for a fingerprint the plan no longer asks for: stop it (saves
        GPU time). The Event says why: a newer fingerprint replaces it, or its inputs are gone
        or unusable."""
        if status.active_job is None or status.active_job.name == plan.job:
            return
        name, status.active_job = status.active_job.name, None
        job = self.kube.get_job(self.namespace, name)
        if job is None or job_finished(job):
            return
        self.kube.delete_job(job)
        if plan.job:
            why = f"the spec or its inputs changed; fingerprint {plan.fingerprint} replaces it"
            self.events.append(
                Event("Normal", EventReason.SUPERSEDED, f"deleted Job {name}: {why}")
            )
        else:
            self.events.append(
                Event("Warning", EventReason.STOPPED, f"deleted Job {name}: {plan.message}")
            )
