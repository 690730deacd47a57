"""kopf handlers, kept thin: every decision is in planner.py, every action in reconcile.py.

Events of LanguageAdapters, MergedModels and langmerge's Jobs each reconcile the object
concerned; a resync loop reconciles everything periodically, so a missed event or a failed
reconcile (an API server restart, say) heals by itself. Every event's object goes into the
in-memory view (cache.py) first, so reconciles read memory, not the API server; the resync
re-lists it. No handler keeps state in memory that a restart would lose: it lives in status
and in the Jobs."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client, config

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.common import GROUP, VERSION
from langmerge.operator.api.merged import MergedModel
from langmerge.operator.cache import ObjectCache
from langmerge.operator.config import OperatorConfig
from langmerge.operator.cost import PriceBook
from langmerge.operator.jobs import MANAGED_BY, TRAINER_GROUP, TRAINER_VERSION
from langmerge.operator.kube import JOBS, TRAINJOBS, Kube
from langmerge.operator.metrics import Metrics
from langmerge.operator.outcome import is_trainjob, job_essentials, trainjob_essentials
from langmerge.operator.reconcile import ADAPTERS, MERGED, Reconciler

log = logging.getLogger("langmerge.operator")
# the metrics' kind label: the lower-case kind, as in every other langmerge metric
KIND_OF = {ADAPTERS: LanguageAdapter.KIND.lower(), MERGED: MergedModel.KIND.lower()}


def _api() -> client.ApiClient:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()  # type: ignore[no-untyped-call, no-any-return]


def operator_memo(namespaces: list[str], operator_config: OperatorConfig) -> kopf.Memo:
    """What the handlers share, through kopf's memo: the namespaces the operator was given
    (none: the whole cluster; everything it reads or writes stays inside them, the periodic
    resync included) and its configuration (read once, before kopf starts); startup adds the
    metrics, the reconciler, the adapter-change batcher and the stop signal of its threads."""
    return kopf.Memo(namespaces=tuple(namespaces), config=operator_config)


def _safely(rec: Reconciler, plural: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:
        rec.metrics.reconcile_errors.labels(KIND_OF[plural]).inc()
        log.exception("reconcile of a %s failed; the next event or resync retries", KIND_OF[plural])


def _relist(
    kube: Kube, namespaces: tuple[str, ...], trainjobs: bool
) -> dict[str, list[tuple[str, str]]]:
    """Every object the operator reconciles, listed from the API server into the cache:
    (namespace, name) by kind; with its Jobs, and its TrainJobs when it creates them."""
    listed: dict[str, list[tuple[str, str]]] = {ADAPTERS: [], MERGED: []}
    for namespace in namespaces or (None,):
        for plural in listed:
            listed[plural] += kube.relist(plural, namespace)
        kube.relist_jobs(namespace)
        if trainjobs:
            kube.relist_trainjobs(namespace)
    return listed


def _resync(
    rec: Reconciler, namespaces: tuple[str, ...], stop: threading.Event, interval: float
) -> None:
    passes = 0
    while not stop.wait(interval):
        try:
            listed = _relist(rec.kube, namespaces, rec.config.train_jobs)
        except Exception:
            for kind in KIND_OF.values():
                rec.metrics.reconcile_errors.labels(kind).inc()
            log.warning("resync could not list the objects; retrying at the next resync")
            continue
        for plural, reconcile in (
            (ADAPTERS, rec.reconcile_adapter),
            (MERGED, rec.reconcile_merged),
        ):
            for namespace, name in listed[plural]:
                _safely(rec, plural, partial(reconcile, namespace, name))
        passes += 1
        log.info(
            "resync pass %d: %d objects in %s",
            passes,
            sum(len(items) for items in listed.values()),
            ", ".join(namespaces) or "all namespaces",
        )


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # our own Events say what happened
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.execution.max_workers = 8
    # The CRDs exist before the operator starts (the chart installs them first), so kopf need
    # not watch CustomResourceDefinitions or Namespaces: no RBAC for them.
    settings.scanning.disabled = True
    operator_config: OperatorConfig = memo.config
    prices = PriceBook(Path(operator_config.price_table) if operator_config.price_table else None)
    if "metrics" not in memo:  # served once, also while the listing below is retried
        memo.metrics = Metrics()
        memo.metrics.serve(operator_config.metrics_port)
    metrics: Metrics = memo.metrics
    cache = ObjectCache(trim={JOBS: job_essentials, TRAINJOBS: trainjob_essentials})
    kube = Kube(_api(), cache, on_request=metrics.count_request)
    try:
        # Before kopf starts watching (startup handlers run first), so every reconcile finds
        # the view filled; kopf retries this handler until the API server answers.
        _relist(kube, memo.namespaces, operator_config.train_jobs)
    except Exception as error:
        raise kopf.TemporaryError(f"could not list the objects: {error}", delay=5) from error
    for plural in (ADAPTERS, MERGED, JOBS, TRAINJOBS):
        metrics.cached_objects.labels(plural).set_function(partial(cache.size, plural))
    rec = memo.reconciler = Reconciler(kube, operator_config, prices, metrics)
    stop = memo.stop = threading.Event()
    threading.Thread(
        target=_resync,
        args=(rec, memo.namespaces, stop, operator_config.resync_seconds),
        name="resync",
        daemon=True,
    ).start()
    changes = memo.changes = AdapterChanges(rec)
    threading.Thread(target=changes.run, args=(stop,), name="adapter-changes", daemon=True).start()
    log.info(
        "langmerge operator started: trainer %s, merger %s, storage %s",
        operator_config.trainer_image,
        operator_config.merger_image,
        operator_config.storage,
    )


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if "stop" in memo:
        memo.stop.set()


class AdapterChanges:
    """Adapter events, coalesced: a burst of them (a GitOps sync of 200 adapters, the status
    patches that follow) reconciles each concerned MergedModel once per batch, not once per
    event, so the merges never starve the adapters' own reconciles."""

    def __init__(self, rec: Reconciler, settle_seconds: float = 0.3) -> None:
        self.rec = rec
        self.settle = settle_seconds
        self.pending: defaultdict[str, set[str]] = defaultdict(set)
        self.lock = threading.Lock()
        self.wake = threading.Event()

    def add(self, namespace: str, adapter: str) -> None:
        with self.lock:
            self.pending[namespace].add(adapter)
        self.wake.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.wake.wait(timeout=1.0):
                continue
            time.sleep(self.settle)  # let the burst arrive
            with self.lock:
                batch, self.pending = self.pending, defaultdict(set)
                self.wake.clear()
            for namespace, changed in batch.items():
                _safely(
                    self.rec,
                    MERGED,
                    partial(self.rec.reconcile_merged_after_adapters, namespace, changed),
                )


def _observe(rec: Reconciler, kind: str, event: Mapping[str, Any]) -> None:
    """Puts the event's object into the in-memory view (or takes it out)."""
    cache, body = rec.kube.cache, event["object"]
    if event.get("type") == "DELETED":
        cache.forget(kind, body)
    else:
        cache.observe(kind, body)


@kopf.on.event(GROUP, VERSION, ADAPTERS)
def adapter_event(
    name: str, namespace: str | None, event: Mapping[str, Any], memo: kopf.Memo, **_: Any
) -> None:
    assert namespace is not None  # namespaced resource
    rec: Reconciler = memo.reconciler
    _observe(rec, ADAPTERS, event)
    _safely(rec, ADAPTERS, partial(rec.reconcile_adapter, namespace, name))
    memo.changes.add(namespace, name)


@kopf.on.event(GROUP, VERSION, MERGED)
def merged_event(
    name: str, namespace: str | None, event: Mapping[str, Any], memo: kopf.Memo, **_: Any
) -> None:
    assert namespace is not None
    rec: Reconciler = memo.reconciler
    _observe(rec, MERGED, event)
    _safely(rec, MERGED, partial(rec.reconcile_merged, namespace, name))
    _safely(rec, ADAPTERS, partial(_retry_budget_blocked, rec, namespace, name))


def _retry_budget_blocked(rec: Reconciler, namespace: str, merged: str) -> None:
    """A MergedModel changed (its budget, say): adapters it held back get another look."""
    for adapter in rec.held_back_by_budget(namespace, merged):
        _safely(rec, ADAPTERS, partial(rec.reconcile_adapter, namespace, adapter))


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED_BY)
def job_event(
    labels: Mapping[str, str],
    namespace: str | None,
    event: Mapping[str, Any],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    rec: Reconciler = memo.reconciler
    _observe(rec, TRAINJOBS if is_trainjob(event["object"]) else JOBS, event)
    owner, kind = labels.get("langmerge.io/name"), labels.get("langmerge.io/kind")
    if not owner or namespace is None:
        return
    if kind == "languageadapter":
        _safely(rec, ADAPTERS, partial(rec.reconcile_adapter, namespace, owner))
    elif kind == "mergedmodel":
        _safely(rec, MERGED, partial(rec.reconcile_merged, namespace, owner))


def watch_trainjobs() -> None:
    """Reconciles on events of langmerge's TrainJobs too. Called before kopf starts when the
    operator creates TrainJobs, and only then: the chart grants it TrainJobs only then."""
    kopf.on.event(TRAINER_GROUP, TRAINER_VERSION, TRAINJOBS, labels=MANAGED_BY)(job_event)
