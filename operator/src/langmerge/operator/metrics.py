"""Prometheus metrics of runs, updates and objects (prometheus-client, one process).

Labels are bounded by the number of custom resources (namespace, kind, name, task, language,
role, result); every series of a deleted object is removed. `kind` is the lower-case kind
(languageadapter, mergedmodel) everywhere. One unit per metric: GPU-seconds of GPU runs and
core-seconds of CPU-only runs are separate counters. The counters of an object start from its
status totals the first time this process sees it, so "all time" sums survive a restart."""

from __future__ import annotations

import contextlib
import platform
import threading
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from langmerge.operator.api.adapter import LanguageAdapter, LanguageAdapterStatus
from langmerge.operator.api.common import (
    ActiveJob,
    Condition,
    CustomResource,
    RunRecord,
    RunResult,
    Totals,
)
from langmerge.operator.api.merged import MergedModel, MergedModelStatus, UpdateRecord
from langmerge.operator.api.reasons import ConditionType
from langmerge.operator.conditions import is_true

OBJECT = ["namespace", "kind", "name", "task", "language"]


def _role(resource: LanguageAdapter | MergedModel) -> str:
    return "train" if isinstance(resource, LanguageAdapter) else "merge"


def _version() -> str:
    try:
        return version("langmerge-operator")
    except PackageNotFoundError:
        return "unknown"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.gpu_seconds = Counter(
            "langmerge_gpu_seconds_total",
            "GPU-seconds of finished runs that requested GPUs ((finish - start) x GPUs).",
            [*OBJECT, "role"],
            registry=r,
        )
        self.cpu_core_seconds = Counter(
            "langmerge_cpu_core_seconds_total",
            "Core-seconds of finished CPU-only runs ((finish - start) x requested cores).",
            [*OBJECT, "role"],
            registry=r,
        )
        self.cost = Counter(
            "langmerge_cost_usd_total",
            "Cost of finished runs in USD.",
            [*OBJECT, "role"],
            registry=r,
        )
        self.runs = Counter(
            "langmerge_runs_total",
            "Finished runs by result.",
            [*OBJECT, "role", "result"],
            registry=r,
        )
        self.search_candidates = Counter(
            "langmerge_search_candidates_total",
            "Candidates of merge searches, merged and scored on validation data, by result "
            "(scored or failed).",
            [*OBJECT, "result"],
            registry=r,
        )
        self.duration = Histogram(
            "langmerge_run_duration_seconds",
            "Wall time of finished runs.",
            ["namespace", "kind", "role"],
            registry=r,
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400),
        )
        self.in_flight = Gauge(
            "langmerge_runs_in_flight", "Jobs running now.", [*OBJECT, "role"], registry=r
        )
        self.queue_wait = Histogram(
            "langmerge_run_queue_wait_seconds",
            "From Job creation to container start.",
            ["namespace", "kind", "role"],
            registry=r,
            buckets=(5, 30, 60, 300, 900, 1800, 3600, 7200, 21600),
        )
        self.pending = Gauge(
            "langmerge_run_pending",
            "1 while the object's Job waits for a node or queue admission.",
            [*OBJECT, "role"],
            registry=r,
        )
        self.active_created = Gauge(
            "langmerge_active_run_created_timestamp_seconds",
            "Creation time of the object's running Job (0 when none).",
            [*OBJECT, "role"],
            registry=r,
        )
        self.ready = Gauge(
            "langmerge_ready", "1 when the object is up to date with its spec.", OBJECT, registry=r
        )
        self.update_cost = Gauge(
            "langmerge_update_cost_usd",
            "Cost of the last update (retraining and merge) in USD.",
            ["namespace", "name", "task"],
            registry=r,
        )
        self.update_gpu_seconds = Gauge(
            "langmerge_update_gpu_seconds",
            "GPU-seconds of the last update.",
            ["namespace", "name", "task"],
            registry=r,
        )
        self.update_estimate = Gauge(
            "langmerge_update_full_retrain_estimate_usd",
            "Estimated cost of retraining every language together.",
            ["namespace", "name", "task"],
            registry=r,
        )
        self.update_savings = Gauge(
            "langmerge_update_savings_ratio",
            "1 - update cost / full retrain estimate, for the last update.",
            ["namespace", "name", "task"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "langmerge_budget_remaining_usd",
            "Monthly budget left for a MergedModel and its adapters.",
            ["namespace", "name", "task"],
            registry=r,
        )
        self.budget_limit = Gauge(
            "langmerge_budget_limit_usd",
            "Monthly budget of a MergedModel and its adapters.",
            ["namespace", "name", "task"],
            registry=r,
        )
        self.price_table_valid = Gauge(
            "langmerge_price_table_valid",
            "0 while the mounted price table is invalid (the last good one is used).",
            registry=r,
        )
        self.price_table_valid.set(1)
        self.reconcile_errors = Counter(
            "langmerge_reconcile_errors_total", "Reconciles that raised.", ["kind"], registry=r
        )
        for resource in (LanguageAdapter, MergedModel):  # present at zero: rates start right
            self.reconcile_errors.labels(resource.KIND.lower())
        self.api_requests = Counter(
            "langmerge_api_requests_total",
            "Requests the reconciler sent to the Kubernetes API server (kopf's watches aside).",
            ["verb", "resource"],
            registry=r,
        )
        self.cached_objects = Gauge(
            "langmerge_cached_objects",
            "Objects held in the operator's in-memory view, by resource.",
            ["resource"],
            registry=r,
        )
        self.build_info = Gauge(
            "langmerge_build_info",
            "Always 1; the operator's version and Python in labels.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(_version(), platform.python_version()).set(1)
        self._seeded: set[tuple[str, str, str]] = set()
        self._series: dict[tuple[str, str, str], list[tuple[Any, tuple[str, ...]]]] = {}
        self._lock = threading.Lock()

    def count_request(self, verb: str, resource: str) -> None:
        self.api_requests.labels(verb, resource).inc()

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)

    @staticmethod
    def _object(resource: LanguageAdapter | MergedModel) -> tuple[str, ...]:
        language = resource.spec.language if isinstance(resource, LanguageAdapter) else ""
        return (
            resource.metadata.namespace,
            resource.KIND.lower(),
            resource.metadata.name,
            resource.spec.task,
            language,
        )

    def _track(self, resource: CustomResource, metric: Any, labels: tuple[str, ...]) -> None:
        key = (resource.KIND.lower(), resource.metadata.namespace, resource.metadata.name)
        with self._lock:
            series = self._series.setdefault(key, [])
            if (metric, labels) not in series:
                series.append((metric, labels))

    def seed(
        self, resource: LanguageAdapter | MergedModel, totals: Totals | None, gpus: int
    ) -> None:
        """Starts the object's run counters at its status totals, the first time this process
        sees it (call it before recording any run), so a restart does not reset "all time"
        sums. gpus: what the object requests (the totals do not say per run)."""
        key = (resource.KIND.lower(), resource.metadata.namespace, resource.metadata.name)
        with self._lock:
            if key in self._seeded:
                return
            self._seeded.add(key)
        if totals is None or totals.runs == 0:
            return
        results = {RunResult.SUCCEEDED: totals.succeeded, RunResult.FAILED: totals.failed}
        self._count(resource, gpus, totals.gpu_seconds, totals.cost_usd, results)

    def record_run(
        self,
        resource: LanguageAdapter | MergedModel,
        run: RunRecord,
        gpus: int,
        queued_at: datetime | None = None,
    ) -> None:
        """A finished run; gpus: what its Job requested (0: a CPU-only run)."""
        role = _role(resource)
        kind = resource.KIND.lower()
        if queued_at is not None and run.started_at is not None:
            self.queue_wait.labels(resource.metadata.namespace, kind, role).observe(
                max(0.0, (run.started_at - queued_at).total_seconds())
            )
        result = run.result or RunResult.FAILED
        self._count(resource, gpus, run.gpu_seconds or 0.0, run.cost_usd or 0.0, {result: 1})
        search = (run.summary or {}).get("search") or {}
        if isinstance(search.get("evaluated"), int) and isinstance(search.get("failed"), int):
            labels = self._object(resource)
            for outcome, count in (
                ("scored", search["evaluated"] - search["failed"]),
                ("failed", search["failed"]),
            ):
                self.search_candidates.labels(*labels, outcome).inc(count)
                self._track(resource, self.search_candidates, (*labels, outcome))
        if run.started_at and run.finished_at:
            self.duration.labels(resource.metadata.namespace, kind, role).observe(
                (run.finished_at - run.started_at).total_seconds()
            )

    def _count(
        self,
        resource: LanguageAdapter | MergedModel,
        gpus: int,
        seconds: float,
        cost_usd: float,
        runs: dict[RunResult, int],
    ) -> None:
        labels = (*self._object(resource), _role(resource))
        spent = self.gpu_seconds if gpus > 0 else self.cpu_core_seconds
        spent.labels(*labels).inc(seconds)
        self.cost.labels(*labels).inc(cost_usd)
        self._track(resource, spent, labels)
        self._track(resource, self.cost, labels)
        for result, count in runs.items():
            self.runs.labels(*labels, result.value).inc(count)
            self._track(resource, self.runs, (*labels, result.value))

    def observe_adapter(
        self, adapter: LanguageAdapter, status: LanguageAdapterStatus, pending: bool = False
    ) -> None:
        self._observe(adapter, "train", status.active_job, status.conditions, pending)

    def observe_merged(
        self, merged: MergedModel, status: MergedModelStatus, pending: bool = False
    ) -> None:
        self._observe(merged, "merge", status.active_job, status.conditions, pending)

    def _observe(
        self,
        resource: LanguageAdapter | MergedModel,
        role: str,
        active: ActiveJob | None,
        conditions: list[Condition] | None,
        pending: bool,
    ) -> None:
        labels = self._object(resource)
        ready = is_true(conditions, ConditionType.READY)
        self.ready.labels(*labels).set(1 if ready else 0)
        self.in_flight.labels(*labels, role).set(1 if active else 0)
        self.pending.labels(*labels, role).set(1 if active and pending else 0)
        created = active.created_at.timestamp() if active and active.created_at else 0
        self.active_created.labels(*labels, role).set(created)
        self._track(resource, self.ready, labels)
        for metric in (self.in_flight, self.pending, self.active_created):
            self._track(resource, metric, (*labels, role))

    def record_update(self, merged: MergedModel, update: UpdateRecord) -> None:
        labels = (merged.metadata.namespace, merged.metadata.name, merged.spec.task)
        self.update_cost.labels(*labels).set(update.cost_usd)
        self.update_gpu_seconds.labels(*labels).set(update.gpu_seconds)
        for metric, value in (
            (self.update_estimate, update.full_retrain_estimate_usd),
            (self.update_savings, update.savings_ratio),
        ):
            if value is not None:
                metric.labels(*labels).set(value)
                self._track(merged, metric, labels)
        self._track(merged, self.update_cost, labels)
        self._track(merged, self.update_gpu_seconds, labels)

    def record_budget(self, merged: MergedModel, remaining_usd: float, limit_usd: float) -> None:
        labels = (merged.metadata.namespace, merged.metadata.name, merged.spec.task)
        self.budget_remaining.labels(*labels).set(remaining_usd)
        self.budget_limit.labels(*labels).set(limit_usd)
        self._track(merged, self.budget_remaining, labels)
        self._track(merged, self.budget_limit, labels)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Removes every series of a deleted object."""
        with self._lock:
            series = self._series.pop((kind, namespace, name), [])
            self._seeded.discard((kind, namespace, name))
        for metric, labels in series:
            with contextlib.suppress(KeyError):  # never observed since the last restart
                metric.remove(*labels)
