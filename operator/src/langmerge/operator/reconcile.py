"""Reconciling LanguageAdapters and MergedModels: observe, plan (planner.py), act (Jobs),
report (status, conditions, Events, metrics).

Level-based and idempotent, so any event, a resync or a restart can call it at any time:
Jobs are found by their fingerprint-derived names (adopted, never twinned), each finished
Job is counted once (status.recordedJobs), and only status is ever written (never spec).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from langmerge.operator.accounting import (
    HISTORY,
    budget_verdict,
    evaluation_result,
    month_cost,
    period_of,
    record_finished,
    update_record,
)
from langmerge.operator.api.adapter import (
    AdapterArtifact,
    LanguageAdapter,
    LanguageAdapterStatus,
    RunRecord,
)
from langmerge.operator.api.common import ActiveJob, Condition, Phase, RunResult
from langmerge.operator.api.merged import (
    BudgetStatus,
    MergedArtifact,
    MergedModel,
    MergedModelStatus,
)
from langmerge.operator.conditions import (
    adapter_conditions,
    merged_conditions,
    now,
    phase_of,
    set_condition,
)
from langmerge.operator.config import OperatorConfig
from langmerge.operator.cost import PriceBook, cost_usd
from langmerge.operator.jobs import GPU_TYPE, INPUTS_ANNOTATION, merge_job, training_job
from langmerge.operator.kube import Body, JobRefusedError, Kube, parse_time
from langmerge.operator.metrics import Metrics
from langmerge.operator.outcome import JobOutcome, job_cpus, job_finished, read_outcome
from langmerge.operator.planner import (
    INVALID_JOB,
    Action,
    MergePlan,
    TrainingPlan,
    invalid_job_reason,
    plan_merge,
    plan_training,
    selects,
)
from langmerge.operator.summaries import MergeSummary, RunSummary, TrainingSummary

log = logging.getLogger("langmerge.operator")
M = TypeVar("M", LanguageAdapter, MergedModel)
INVALID_SPEC = "InvalidSpec"  # stored by the API server, refused by the models
ADAPTERS, MERGED = "languageadapters", "mergedmodels"


def _started(job: Body) -> bool:
    """Whether any pod of the Job has started running. `active` also counts Pending pods (an
    unschedulable pod is active), so a running pod is one that is ready or has finished; a
    queued Job (Kueue keeps it suspended) has none."""
    status = job.get("status") or {}
    return bool(status.get("ready") or status.get("succeeded") or status.get("failed"))


def merge_patch(before: Body, after: Body) -> Body:
    """The JSON merge patch (RFC 7386) turning before into after: removed keys become null,
    nested objects are diffed recursively, lists and scalars are replaced."""
    patch: Body = {key: None for key in before if key not in after}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = merge_patch(old, value)
            if nested:
                patch[key] = nested
        elif value != old:
            patch[key] = value
    return patch


class Reconciler:
    def __init__(
        self, kube: Kube, config: OperatorConfig, prices: PriceBook, metrics: Metrics
    ) -> None:
        self.kube, self.config, self.prices, self.metrics = kube, config, prices, metrics
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._refused_versions: set[str] = set()  # invalid objects already warned about

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[key]

    # --- shared ---------------------------------------------------------------------------
    def _run_record(self, job: Body, outcome: JobOutcome, override: float | None) -> RunRecord:
        labels = job["metadata"]["labels"]
        gpus = outcome.gpus
        seconds = outcome.gpu_seconds if gpus else outcome.container_seconds * job_cpus(job)
        price = self.prices.table().price(job["metadata"]["labels"].get(GPU_TYPE), gpus)
        self.metrics.price_table_valid.set(0 if self.prices.error else 1)
        if self.prices.error:
            log.warning("%s", self.prices.error)
        summary = outcome.summary
        succeeded = outcome.succeeded and summary is not None and summary.output is not None
        reason = (
            outcome.reason
            if not outcome.succeeded
            else (
                ""
                if succeeded
                else "the Job completed but its pod reported no summary (termination message)"
            )
        )
        return RunRecord(
            job=job["metadata"]["name"],
            fingerprint=labels["langmerge.io/fingerprint"],
            result=RunResult.SUCCEEDED if succeeded else RunResult.FAILED,
            started_at=outcome.started,
            finished_at=outcome.finished,
            gpu_seconds=round(seconds, 3),
            cost_usd=round(cost_usd(seconds, price, override), 6),
            reason=reason or None,
            summary=summary.model_dump(exclude_none=True) if summary is not None else None,
        )

    def _finished_run(
        self,
        namespace: str,
        name: str,
        recorded: list[str],
        model: type[RunSummary],
        override: float | None,
        seen: dict[str, Body | None],
    ) -> tuple[Body, RunRecord] | None:
        """The run of a Job that finished and is not counted yet. Jobs fetched are kept in
        `seen`, so one reconcile reads each Job once."""
        if name in recorded:
            return None
        job = seen[name] = self.kube.get_job(namespace, name)
        if job is None or not job_finished(job):
            return None
        outcome = read_outcome(job, self.kube.job_pods(namespace, name), model)
        assert outcome is not None
        return job, self._run_record(job, outcome, override)

    def _write(
        self, plural: str, body: Body, before: Body, after: Body, events: list[tuple[str, str, str]]
    ) -> None:
        meta = body["metadata"]
        patch = merge_patch(before, after)
        if patch:
            self.kube.patch_status(plural, meta["namespace"], meta["name"], patch)
        for event_type, reason, message in events:
            self.kube.event(body, body["kind"], event_type, reason, message)

    def _valid(self, plural: str, namespace: str, model: type[M]) -> list[M]:
        """The namespace's objects of a kind that the models accept. One the API server stored
        but the models refuse (written before a stricter CRD, say) is left out here, so it
        never blocks the others; its own reconcile marks it Failed (_refuse)."""
        valid = []
        for body in self.kube.list_objects(plural, namespace):
            try:
                valid.append(model.model_validate(body))
            except ValidationError:
                log.debug("skipping invalid %s %s/%s", plural, namespace, body["metadata"]["name"])
        return valid

    def _refuse(self, plural: str, body: Body, error: ValidationError) -> None:
        """Marks an object the models refuse Failed with reason InvalidSpec, on itself alone."""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        message = f"the spec cannot be processed: {problems}; fix it (kubectl edit)"
        generation = int(body["metadata"].get("generation") or 0)
        before = body.get("status") or {}
        try:
            current = [Condition.model_validate(c) for c in before.get("conditions") or []]
        except ValidationError:
            current = []
        conditions = set_condition(current, "Failed", True, INVALID_SPEC, message, generation)
        conditions = set_condition(conditions, "Ready", False, INVALID_SPEC, message, generation)
        after = {
            **before,
            "observedGeneration": generation,
            "conditions": [c.to_wire() for c in conditions],
            "phase": Phase.FAILED.value,
        }
        already = any(
            c.get("type") == "Failed"
            and c.get("reason") == INVALID_SPEC
            and c.get("message") == message
            for c in before.get("conditions") or []
        )
        events = [] if already else [("Warning", INVALID_SPEC, message)]
        try:
            self._write(plural, body, before, after, events)
        except ApiException as refused:
            if refused.status != 422:
                raise
            # Its status cannot be written either (the CRD's rules cover the whole object):
            # the Event is all it can get, once per version of the object.
            meta = body["metadata"]
            version = f"{plural}/{meta['namespace']}/{meta['name']}@{meta.get('resourceVersion')}"
            if version not in self._refused_versions:
                self._refused_versions.add(version)
                log.warning("%s %s/%s: %s", plural, meta["namespace"], meta["name"], message)
                self.kube.event(
                    body,
                    body["kind"],
                    "Warning",
                    INVALID_SPEC,
                    message + "; the API server also refuses its status: recreate it",
                )

    # --- LanguageAdapter --------------------------------------------------------------------
    def adapter(self, namespace: str, name: str) -> None:
        with self._lock(f"{ADAPTERS}/{namespace}/{name}"):
            body = self.kube.get(ADAPTERS, namespace, name)
            if body is None:
                self.metrics.forget("languageadapter", namespace, name)
                return
            try:
                LanguageAdapter.model_validate(body)
            except ValidationError as error:
                self._refuse(ADAPTERS, body, error)
                return
            self._adapter(body)

    def _adapter(self, body: Body) -> None:
        adapter = LanguageAdapter.model_validate(body)
        meta, spec = adapter.metadata, adapter.spec
        before = (adapter.status or LanguageAdapterStatus()).to_wire()
        status = LanguageAdapterStatus.model_validate(before)
        events: list[tuple[str, str, str]] = []
        seen: dict[str, Body | None] = {}
        plan = plan_training(adapter, self.config.trainer_image)
        candidates = [plan.job] + ([status.active_job.name] if status.active_job else [])
        for job_name in dict.fromkeys(candidates):
            found = self._finished_run(
                meta.namespace,
                job_name,
                status.recorded_jobs or [],
                TrainingSummary,
                spec.resources.price_per_hour_usd,
                seen,
            )
            if found is None:
                continue
            job, run = found
            record_finished(status, job_name, run)
            self.metrics.record_run(
                adapter, "train", run, parse_time(job["metadata"].get("creationTimestamp"))
            )
            if run.result == RunResult.SUCCEEDED and run.fingerprint == plan.fingerprint:
                output = (run.summary or {}).get("output") or {}
                status.artifact = AdapterArtifact(
                    uri=output["uri"],
                    sha256=output["sha256"],
                    fingerprint=run.fingerprint,
                    trained_at=run.finished_at,
                )
                events.append(
                    ("Normal", "TrainingSucceeded", f"Job {job_name} trained {output['uri']}")
                )
            elif run.result == RunResult.FAILED:
                events.append(("Warning", "TrainingFailed", f"Job {job_name}: {run.reason}"))

        plan = plan_training(
            adapter.model_copy(update={"status": status}), self.config.trainer_image
        )
        if status.active_job and status.active_job.name != plan.job:
            self._retire(meta.namespace, status.active_job.name, plan, events)
            status.active_job = None
        pending, blocked = False, None
        if plan.action == Action.RUN:
            pending, blocked = self._start_job(
                meta.namespace,
                plan.job,
                plan.fingerprint,
                status,
                lambda: training_job(self.config, adapter, plan),
                lambda: self._over_budget(meta.namespace, adapter, status.last_run),
                "TrainingStarted",
                events,
                seen,
            )
            if not pending and blocked is None and status.active_job is None:  # refused
                plan = plan_training(
                    adapter.model_copy(update={"status": status}), self.config.trainer_image
                )
        status.fingerprint = plan.fingerprint
        status.observed_generation = meta.generation
        status.conditions = adapter_conditions(
            status.conditions,
            plan,
            status.artifact.uri if status.artifact else None,
            meta.generation,
            blocked,
            pending,
        )
        status.phase = phase_of(plan, Phase.TRAINING, pending, blocked)
        self.metrics.observe_adapter(adapter, status, pending)
        self._write(ADAPTERS, body, before, status.to_wire(), events)

    def budget_blocked(self, namespace: str) -> list[str]:
        """Adapters of the namespace held back by a budget (to retry when a budget changes)."""
        return [
            a["metadata"]["name"]
            for a in self.kube.list_objects(ADAPTERS, namespace)
            if any(
                c.get("type") == "BudgetExceeded" and c.get("status") == "True"
                for c in (a.get("status") or {}).get("conditions") or []
            )
        ]

    def _over_budget(
        self,
        namespace: str,
        resource: LanguageAdapter | MergedModel,
        last_run: RunRecord | None,
        adapters: list[LanguageAdapter] | None = None,
    ) -> str | None:
        """Why a new run may not start (a budget it would exceed), or None."""
        models = self._valid(MERGED, namespace, MergedModel)
        limit = self.config.namespace_budget(namespace)
        if limit is None and not any(m.spec.budget for m in models):
            return None
        if adapters is None:
            adapters = self._valid(ADAPTERS, namespace, LanguageAdapter)
        estimate = (last_run.cost_usd or 0.0) if last_run else 0.0
        verdict = budget_verdict(models, adapters, resource, estimate, limit, period_of(None))
        return None if verdict is None or verdict.allowed else verdict.message

    def _start_job(
        self,
        namespace: str,
        name: str,
        fingerprint: str,
        status: LanguageAdapterStatus | MergedModelStatus,
        build: Callable[[], Body],
        over_budget: Callable[[], str | None],
        started: str,
        events: list[tuple[str, str, str]],
        seen: dict[str, Body | None],
    ) -> tuple[bool, str | None]:
        """Creates the plan's Job, or adopts it when it exists (never a twin), unless a budget
        forbids a new run. Returns whether it waits to start and why it was held back."""
        existing = seen[name] if name in seen else self.kube.get_job(namespace, name)
        blocked = None
        if existing is None:
            blocked = over_budget()
            if blocked is not None:
                events.append(("Warning", "BudgetExceeded", blocked))
            else:
                try:
                    if self.kube.create_job(build()):
                        events.append(("Normal", started, f"created Job {name}"))
                except JobRefusedError as refused:
                    # Recorded as this fingerprint's failed run: the planner retries only
                    # after the spec changes, so no loop of refused creations.
                    reason = invalid_job_reason(str(refused))
                    status.last_run = RunRecord(
                        job=name,
                        fingerprint=fingerprint,
                        result=RunResult.FAILED,
                        finished_at=now(),
                        reason=reason,
                    )
                    events.append(("Warning", INVALID_JOB, reason))
                    return False, None
        if status.active_job is None and blocked is None:
            status.active_job = ActiveJob(name=name, fingerprint=fingerprint, created_at=now())
        return existing is None or not _started(existing), blocked

    def _retire(
        self,
        namespace: str,
        job_name: str,
        plan: TrainingPlan | MergePlan,
        events: list[tuple[str, str, str]],
    ) -> None:
        """A Job for a fingerprint the plan no longer asks for: stop it (saves GPU time). The
        Event says why: a newer fingerprint replaces it, or its inputs are gone or unusable."""
        job = self.kube.get_job(namespace, job_name)
        if job is None or job_finished(job):
            return
        self.kube.delete_job(namespace, job_name)
        if plan.job:
            why = f"the spec or its inputs changed; fingerprint {plan.fingerprint} replaces it"
            events.append(("Normal", "Superseded", f"deleted Job {job_name}: {why}"))
        else:
            events.append(("Warning", "Stopped", f"deleted Job {job_name}: {plan.message}"))

    # --- MergedModel ------------------------------------------------------------------------
    def merged(self, namespace: str, name: str) -> None:
        with self._lock(f"{MERGED}/{namespace}/{name}"):
            body = self.kube.get(MERGED, namespace, name)
            if body is None:
                self.metrics.forget("mergedmodel", namespace, name)
                return
            try:
                MergedModel.model_validate(body)
            except ValidationError as error:
                self._refuse(MERGED, body, error)
                return
            self._merged(body, self._valid(ADAPTERS, namespace, LanguageAdapter))

    def merged_after_adapters(self, namespace: str, changed: set[str]) -> None:
        """Reconciles the MergedModels of a namespace that select any of the changed adapters
        (or named them, if they were deleted), listing the namespace once for all of them."""
        adapters = self._valid(ADAPTERS, namespace, LanguageAdapter)
        present = {a.metadata.name: a for a in adapters}
        for model in self._valid(MERGED, namespace, MergedModel):
            names = set(model.spec.adapters.names or [])
            concerned = any(
                (name in present and selects(model, present[name]))
                or name in names
                or name not in present
                for name in changed
            )
            if not concerned:
                continue
            with self._lock(f"{MERGED}/{namespace}/{model.metadata.name}"):
                fresh = self.kube.get(MERGED, namespace, model.metadata.name)
                if fresh is not None:
                    self._merged(fresh, adapters)

    def _merged(self, body: Body, adapters: list[LanguageAdapter]) -> None:
        merged = MergedModel.model_validate(body)
        meta, spec = merged.metadata, merged.spec
        before = (merged.status or MergedModelStatus()).to_wire()
        status = MergedModelStatus.model_validate(before)
        events: list[tuple[str, str, str]] = []
        seen: dict[str, Body | None] = {}
        plan = plan_merge(merged, adapters, self.config.trainer_image, self.config.merger_image)
        candidates = ([plan.job] if plan.job else []) + (
            [status.active_job.name] if status.active_job else []
        )
        for job_name in dict.fromkeys(candidates):
            found = self._finished_run(
                meta.namespace,
                job_name,
                status.recorded_jobs or [],
                MergeSummary,
                spec.resources.price_per_hour_usd,
                seen,
            )
            if found is None:
                continue
            job, run = found
            record_finished(status, job_name, run)
            self.metrics.record_run(
                merged, "merge", run, parse_time(job["metadata"].get("creationTimestamp"))
            )
            status.evaluation = evaluation_result(run.summary) or status.evaluation
            if run.result == RunResult.SUCCEEDED:
                inputs: dict[str, str] = json.loads(
                    job["metadata"]["annotations"][INPUTS_ANNOTATION]
                )
                update = update_record(
                    status.artifact.adapter_fingerprints if status.artifact else None,
                    inputs,
                    adapters,
                    run,
                )
                output = (run.summary or {}).get("output") or {}
                status.artifact = MergedArtifact(
                    uri=output["uri"],
                    sha256=output["sha256"],
                    fingerprint=run.fingerprint,
                    adapter_fingerprints=inputs,
                    merged_at=run.finished_at,
                )
                status.last_update = update
                status.update_history = [*(status.update_history or []), update][-HISTORY:]
                self.metrics.record_update(merged, update)
                events.append(
                    (
                        "Normal",
                        "MergeSucceeded",
                        f"Job {job_name} merged {len(inputs)} adapters ({update.trigger})",
                    )
                )
            else:
                events.append(("Warning", "MergeFailed", f"Job {job_name}: {run.reason}"))

        plan = plan_merge(
            merged.model_copy(update={"status": status}),
            adapters,
            self.config.trainer_image,
            self.config.merger_image,
        )
        if status.active_job and status.active_job.name != plan.job:
            self._retire(meta.namespace, status.active_job.name, plan, events)
            status.active_job = None
        pending, blocked = False, None
        if plan.action == Action.RUN:
            pending, blocked = self._start_job(
                meta.namespace,
                plan.job,
                plan.fingerprint,
                status,
                lambda: merge_job(self.config, merged, plan),
                lambda: self._over_budget(meta.namespace, merged, status.last_run, adapters),
                "MergeStarted",
                events,
                seen,
            )
            if not pending and blocked is None and status.active_job is None:  # refused
                plan = plan_merge(
                    merged.model_copy(update={"status": status}),
                    adapters,
                    self.config.trainer_image,
                    self.config.merger_image,
                )
        if plan.fingerprint:
            status.fingerprint = plan.fingerprint
        status.observed_generation = meta.generation
        if spec.budget is not None:
            period = period_of(None)
            spent = month_cost(status.totals, period) + sum(
                month_cost(a.status.totals if a.status else None, period)
                for a in adapters
                if selects(merged, a)
            )
            status.budget = BudgetStatus(
                period=period, spent_usd=round(spent, 6), limit_usd=spec.budget.monthly_usd
            )
            self.metrics.record_budget(
                merged, spec.budget.monthly_usd - spent, spec.budget.monthly_usd
            )
        status.conditions = merged_conditions(
            status.conditions,
            plan,
            status.artifact.uri if status.artifact else None,
            meta.generation,
            blocked,
            pending,
        )
        status.phase = phase_of(plan, Phase.MERGING, pending, blocked)
        self.metrics.observe_merged(merged, status, pending)
        self._write(MERGED, body, before, status.to_wire(), events)
