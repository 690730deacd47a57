"""The cluster executor: reconciles LanguageAdapters and MergedModels by observing their Jobs,
planning (planner.py), acting (Jobs, reconcile_pass.py), recording (ledger.py) and reporting
(status, Events, metrics).

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
from datetime import datetime
from typing import NamedTuple, TypeVar, cast

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from langmerge.common.summary import MergeSummary, TrainingSummary
from langmerge.operator import budgets
from langmerge.operator.api.adapter import LanguageAdapter, LanguageAdapterStatus
from langmerge.operator.api.common import CustomResource, RunRecord
from langmerge.operator.api.merged import MergedModel, MergedModelStatus
from langmerge.operator.api.reasons import EventReason
from langmerge.operator.cache import Body
from langmerge.operator.clock import parse_time
from langmerge.operator.config import OperatorConfig
from langmerge.operator.cost import PriceBook
from langmerge.operator.jobs import GPU_TYPE, INPUTS_ANNOTATION, merge_job, training_job
from langmerge.operator.kube import Kube, merge_patch
from langmerge.operator.ledger import (
    Event,
    apply_merge_run,
    apply_progress,
    apply_training_run,
    progress_due,
    refuse_invalid,
    run_record,
    settle_adapter,
    settle_merged,
)
from langmerge.operator.metrics import Metrics
from langmerge.operator.outcome import JobOutcome, job_cpus
from langmerge.operator.planner import (
    Action,
    MergePlan,
    TrainingPlan,
    plan_merge,
    plan_training,
)
from langmerge.operator.reconcile_pass import Launch, ReconcilePass

log = logging.getLogger("langmerge.operator")
M = TypeVar("M", LanguageAdapter, MergedModel)
TRAINER_TESTED = "Kubeflow Trainer v2 (tested: v2.1.0, with JobSet v0.10.1)"
TRAINJOBS_DISABLED = (
    "this operator does not create TrainJobs: install "
    f"{TRAINER_TESTED} and set trainJobs.enabled=true in the langmerge chart, or set "
    "spec.resources.nodes to 1"
)
TRAINER_NOT_INSTALLED = (
    "the cluster serves no TrainJobs (trainer.kubeflow.org/v1alpha1): install "
    f"{TRAINER_TESTED}, or set spec.resources.nodes to 1"
)
ADAPTERS, MERGED = "languageadapters", "mergedmodels"


class Acted(NamedTuple):
    pending: bool = False  # the plan's Job has no running pod yet
    blocked: budgets.BudgetVerdict | None = None  # the budget that holds the run back
    refused: bool = False  # the API server refused the Job: a failed run, plan again


class Reconciler:
    def __init__(
        self, kube: Kube, config: OperatorConfig, prices: PriceBook, metrics: Metrics
    ) -> None:
        self.kube, self.config, self.prices, self.metrics = kube, config, prices, metrics
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._refused_versions: set[str] = set()  # invalid objects already warned about
        # (kind, namespace, name) -> (resourceVersion, the model or None when refused): a
        # stored object is validated once per version, not at every list of its namespace
        self._models: dict[tuple[str, str, str], tuple[str, CustomResource | None]] = {}

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[key]

    # --- entry points (handlers and the resync call these) ---------------------------------
    def reconcile_adapter(self, namespace: str, name: str) -> None:
        with self._lock(f"{ADAPTERS}/{namespace}/{name}"):
            valid = self._valid_body(ADAPTERS, namespace, name, LanguageAdapter)
            if valid is not None:
                self._adapter(*valid)

    def reconcile_merged(self, namespace: str, name: str) -> None:
        with self._lock(f"{MERGED}/{namespace}/{name}"):
            valid = self._valid_body(MERGED, namespace, name, MergedModel)
            if valid is not None:
                self._merged(*valid, self._selected(valid[1]))

    def reconcile_merged_after_adapters(self, namespace: str, changed: set[str]) -> None:
        """Reconciles the MergedModels of a namespace that select any of the changed adapters
        (all of them when one of those was deleted: its labels are gone with it)."""
        deleted = any(self.kube.get(ADAPTERS, namespace, name) is None for name in changed)
        for model in self._valid(MERGED, namespace, MergedModel):
            selected = self._selected(model)
            concerned = (
                deleted
                or not changed.isdisjoint(model.spec.adapters.names or [])
                or any(a.metadata.name in changed for a in selected)
            )
            if not concerned:
                continue
            with self._lock(f"{MERGED}/{namespace}/{model.metadata.name}"):
                fresh = self.kube.get(MERGED, namespace, model.metadata.name)
                if fresh is None:
                    continue
                parsed = self._parsed(MERGED, fresh, MergedModel)
                if parsed is not None:
                    self._merged(fresh, parsed, self._selected(parsed))

    def held_back_by_budget(self, namespace: str, merged_name: str) -> list[str]:
        """Adapters the MergedModel selects that a budget holds back, to retry when its budget
        changes; when it is gone (or unreadable), every held-back adapter of the namespace."""
        body = self.kube.get(MERGED, namespace, merged_name)
        model = self._parsed(MERGED, body, MergedModel) if body is not None else None
        if model is None:
            return budgets.held_back(self.kube.list_objects(ADAPTERS, namespace))
        return budgets.held_back(self._selected_bodies(model))

    # --- LanguageAdapter --------------------------------------------------------------------
    def _adapter(self, body: Body, adapter: LanguageAdapter) -> None:
        meta = adapter.metadata
        before = (adapter.status or LanguageAdapterStatus()).to_wire()
        status = LanguageAdapterStatus.model_validate(before)
        self.metrics.seed(adapter, status.totals, adapter.spec.resources.gpus)
        work = ReconcilePass(self.kube, meta.namespace)

        def plan() -> TrainingPlan:
            return plan_training(
                adapter.model_copy(update={"status": status}),
                self.config.trainer_image,
                self._multi_node_missing(),
            )

        wanted = plan()
        active = [status.active_job.name] if status.active_job else []
        for job, outcome in work.finished(
            [wanted.job, *active], status.recorded_jobs or [], TrainingSummary
        ):
            run = self._run_record(job, outcome, adapter.spec.resources.price_per_hour_usd)
            work.events += apply_training_run(status, run, wanted.fingerprint)
            self.metrics.record_run(adapter, run, outcome.gpus, _created(job))

        current = plan()
        acted = self._act(
            work,
            adapter,
            status,
            current,
            lambda: training_job(self.config, adapter, current),
            EventReason.TRAINING_STARTED,
        )
        if acted.refused:
            current = plan()
        if status.active_job is not None and not acted.pending and progress_due(status):
            apply_progress(status, work.progress(status.active_job.name))
        blocked = acted.blocked.message if acted.blocked else None
        settle_adapter(status, current, meta.generation, blocked, acted.pending)
        self.metrics.observe_adapter(adapter, status, acted.pending)
        if acted.blocked and acted.blocked.merged_model:
            self._refresh_budget(meta.namespace, acted.blocked.merged_model)
        self._write(ADAPTERS, body, before, status.to_wire(), work.events)

    def _multi_node_missing(self) -> str | None:
        """Why a training across pods (a TrainJob) cannot start here; None when it can."""
        if not self.config.train_jobs:
            return TRAINJOBS_DISABLED
        if self.kube.trainjobs_served is False:
            return TRAINER_NOT_INSTALLED
        return None

    # --- MergedModel ------------------------------------------------------------------------
    def _merged(self, body: Body, merged: MergedModel, adapters: list[LanguageAdapter]) -> None:
        meta = merged.metadata
        before = (merged.status or MergedModelStatus()).to_wire()
        status = MergedModelStatus.model_validate(before)
        self.metrics.seed(merged, status.totals, merged.spec.resources.gpus)
        work = ReconcilePass(self.kube, meta.namespace)

        def plan() -> MergePlan:
            current = merged.model_copy(update={"status": status})
            return plan_merge(
                current, adapters, self.config.trainer_image, self.config.merger_image
            )

        wanted = plan()
        candidates = ([wanted.job] if wanted.job else []) + (
            [status.active_job.name] if status.active_job else []
        )
        for job, outcome in work.finished(candidates, status.recorded_jobs or [], MergeSummary):
            run = self._run_record(job, outcome, merged.spec.resources.price_per_hour_usd)
            inputs: dict[str, str] = json.loads(job["metadata"]["annotations"][INPUTS_ANNOTATION])
            applied = apply_merge_run(status, run, inputs, adapters)
            work.events += applied.events
            self.metrics.record_run(merged, run, outcome.gpus, _created(job))
            if applied.update is not None:
                self.metrics.record_update(merged, applied.update)

        current = plan()
        acted = self._act(
            work,
            merged,
            status,
            current,
            lambda: merge_job(self.config, merged, current),
            EventReason.MERGE_STARTED,
            adapters,
        )
        if acted.refused:
            current = plan()
        self._count_budget(merged, status, adapters)
        blocked = acted.blocked.message if acted.blocked else None
        settle_merged(status, current, meta.generation, blocked, acted.pending)
        self.metrics.observe_merged(merged, status, acted.pending)
        self._write(MERGED, body, before, status.to_wire(), work.events)

    def _count_budget(
        self, merged: MergedModel, status: MergedModelStatus, adapters: list[LanguageAdapter]
    ) -> None:
        status.budget = budgets.budget_status(merged, status.totals, adapters)
        if status.budget is not None:
            self.metrics.record_budget(
                merged, status.budget.limit_usd - status.budget.spent_usd, status.budget.limit_usd
            )

    def _refresh_budget(self, namespace: str, name: str) -> None:
        """Brings a MergedModel's status.budget to the spend that a refusal of one of its
        adapters has just named, before the adapter says so. The model's own reconcile
        follows adapter changes in batches (AdapterChanges, a moment later), so without this
        the adapter's BudgetExceeded could name a spend the model's status does not show yet
        (an adapter's lock is held here: locks go adapter, then model, never the reverse)."""
        with self._lock(f"{MERGED}/{namespace}/{name}"):
            body = self.kube.get(MERGED, namespace, name)
            model = self._parsed(MERGED, body, MergedModel) if body is not None else None
            if body is None or model is None:
                return
            before = (model.status or MergedModelStatus()).to_wire()
            status = MergedModelStatus.model_validate(before)
            self._count_budget(model, status, self._selected(model))
            self._write(MERGED, body, before, status.to_wire(), [])

    # --- shared -----------------------------------------------------------------------------
    def _act(
        self,
        work: ReconcilePass,
        resource: LanguageAdapter | MergedModel,
        status: LanguageAdapterStatus | MergedModelStatus,
        plan: TrainingPlan | MergePlan,
        build: Callable[[], Body],
        started: EventReason,
        adapters: list[LanguageAdapter] | None = None,
    ) -> Acted:
        """Retires a Job the plan no longer wants and starts (or adopts) the one it does,
        unless a budget forbids a new run."""
        work.retire(status, plan)
        if plan.action != Action.RUN:
            return Acted()
        if work.job(plan.job) is None:
            blocked = self._budget_refusal(resource, status.last_run, adapters)
            if blocked is not None:
                work.events.append(Event("Warning", EventReason.BUDGET_EXCEEDED, blocked.message))
                return Acted(blocked=blocked)
        launch = work.start(status, plan, build, started)
        return Acted(pending=launch == Launch.QUEUED, refused=launch == Launch.REFUSED)

    def _budget_refusal(
        self,
        resource: LanguageAdapter | MergedModel,
        last_run: RunRecord | None,
        adapters: list[LanguageAdapter] | None,
    ) -> budgets.BudgetVerdict | None:
        namespace = resource.metadata.namespace
        models = self._valid(MERGED, namespace, MergedModel)
        limit = self.config.namespace_budget(namespace)
        if limit is None and not any(m.spec.budget for m in models):
            return None  # no budget applies: no need to list the adapters
        if adapters is None or limit is not None:  # a namespace budget counts every adapter
            adapters = self._valid(ADAPTERS, namespace, LanguageAdapter)
        return budgets.refusal(resource, last_run, models, adapters, limit)

    def _run_record(self, job: Body, outcome: JobOutcome, override: float | None) -> RunRecord:
        labels = job["metadata"]["labels"]
        gpus = outcome.gpus
        seconds = outcome.gpu_seconds if gpus else outcome.container_seconds * job_cpus(job)
        price = self.prices.table().price(labels.get(GPU_TYPE), gpus)
        self.metrics.price_table_valid.set(0 if self.prices.error else 1)
        if self.prices.error:
            log.warning("%s", self.prices.error)
        summary = outcome.summary
        succeeded = outcome.succeeded and summary is not None and summary.output is not None
        reason = outcome.reason
        if outcome.succeeded and not succeeded:
            reason = "the Job completed but its pod reported no summary (termination message)"
        return run_record(
            job["metadata"]["name"],
            labels["langmerge.io/fingerprint"],
            succeeded=succeeded,
            started_at=outcome.started,
            finished_at=outcome.finished,
            billed_seconds=seconds,
            price=price,
            price_override_usd=override,
            reason=reason if not succeeded else "",
            summary=summary,
        )

    def _write(
        self, plural: str, body: Body, before: Body, after: Body, events: list[Event]
    ) -> None:
        meta = body["metadata"]
        patch = merge_patch(before, after)
        if patch:
            self.kube.patch_status(plural, meta["namespace"], meta["name"], patch)
        for event in events:
            self.kube.event(body, body["kind"], event.type, event.reason, event.message)

    def _valid(self, plural: str, namespace: str, model: type[M]) -> list[M]:
        """The namespace's objects of a kind that the models accept. One the API server stored
        but the models refuse (written before a stricter CRD, say) is left out here, so it
        never blocks the others; its own reconcile marks it Failed (_refuse)."""
        valid = []
        for body in self.kube.list_objects(plural, namespace):
            parsed = self._parsed(plural, body, model)
            if parsed is not None:
                valid.append(parsed)
        return valid

    def _selected_bodies(self, merged: MergedModel) -> list[Body]:
        """The adapters (as stored) that the MergedModel's spec.adapters may select: those it
        names, or those carrying its selector's labels (from the cache's label index)."""
        namespace, selection = merged.metadata.namespace, merged.spec.adapters
        if selection.names is not None:
            found = (self.kube.get(ADAPTERS, namespace, name) for name in selection.names)
            return [body for body in found if body is not None]
        labels = (selection.selector.match_labels if selection.selector else None) or {}
        return self.kube.select_objects(ADAPTERS, namespace, labels)

    def _selected(self, merged: MergedModel) -> list[LanguageAdapter]:
        """The valid adapters among those the MergedModel selects."""
        parsed = (self._parsed(ADAPTERS, b, LanguageAdapter) for b in self._selected_bodies(merged))
        return [adapter for adapter in parsed if adapter is not None]

    def _parsed(self, plural: str, body: Body, model: type[M]) -> M | None:
        meta = body["metadata"]
        key, version = (plural, meta["namespace"], meta["name"]), meta.get("resourceVersion", "")
        held = self._models.get(key)
        if held is not None and held[0] == version and version:
            return cast(M | None, held[1])
        try:
            parsed: M | None = model.model_validate(body)
        except ValidationError:
            log.debug("skipping invalid %s %s/%s", plural, meta["namespace"], meta["name"])
            parsed = None
        self._models[key] = (version, parsed)
        return parsed

    def _valid_body(
        self, plural: str, namespace: str, name: str, model: type[M]
    ) -> tuple[Body, M] | None:
        """The object as stored and as the models read it, when they accept it; None when it
        is gone (its metrics are forgotten) or refused (marked Failed)."""
        body = self.kube.get(plural, namespace, name)
        if body is None:
            self.metrics.forget(model.KIND.lower(), namespace, name)
            self._models.pop((plural, namespace, name), None)
            return None
        parsed = self._parsed(plural, body, model)
        if parsed is None:
            try:
                model.model_validate(body)
            except ValidationError as error:
                self._refuse(plural, body, error)
            return None
        return body, parsed

    def _refuse(self, plural: str, body: Body, error: ValidationError) -> None:
        """Marks an object the models refuse Failed with reason InvalidSpec, on itself alone."""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        message = f"the spec cannot be processed: {problems}; fix it (kubectl edit)"
        before = body.get("status") or {}
        generation = int(body["metadata"].get("generation") or 0)
        after, events = refuse_invalid(before, generation, message)
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
                    EventReason.INVALID_SPEC,
                    message + "; the API server also refuses its status: recreate it",
                )


def _created(job: Body) -> datetime | None:
    return parse_time(job["metadata"].get("creationTimestamp"))
