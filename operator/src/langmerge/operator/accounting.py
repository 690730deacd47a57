"""The arithmetic of runs and updates, shared by the cluster and the local loop so both report
the same numbers for the same runs."""

from __future__ import annotations

from typing import Any

from langmerge.operator.api.adapter import LanguageAdapter, LanguageAdapterStatus, RunRecord
from langmerge.operator.api.common import RunResult, Totals
from langmerge.operator.api.merged import (
    EvaluationResult,
    GateResult,
    MergedModelStatus,
    UpdateRecord,
)
from langmerge.operator.planner import retrained_since


def record_totals(totals: Totals | None, run: RunRecord) -> Totals:
    totals = totals or Totals()
    return Totals(
        runs=totals.runs + 1,
        succeeded=totals.succeeded + (run.result == RunResult.SUCCEEDED),
        failed=totals.failed + (run.result == RunResult.FAILED),
        gpu_seconds=round(totals.gpu_seconds + (run.gpu_seconds or 0.0), 3),
        cost_usd=round(totals.cost_usd + (run.cost_usd or 0.0), 6),
    )


RECORDED_JOBS = 20  # how many finished Jobs status remembers, so none counts twice


def record_finished(
    status: LanguageAdapterStatus | MergedModelStatus, job: str, run: RunRecord
) -> None:
    """Counts a finished run once: last run, totals, the recorded-Jobs window, no active Job."""
    status.last_run = run
    status.totals = record_totals(status.totals, run)
    status.recorded_jobs = [*(status.recorded_jobs or []), job][-RECORDED_JOBS:]
    if status.active_job and status.active_job.name == job:
        status.active_job = None


def update_record(
    previous: dict[str, str] | None,
    inputs: dict[str, str],
    adapters: list[LanguageAdapter],
    merge_run: RunRecord,
    combined_cost_usd: float | None = None,
) -> UpdateRecord:
    """What this update cost (retrained adapters + the merge) against retraining every
    language together (estimated from the adapters' measured training runs).

    previous: adapter name -> fingerprint of the last merged artifact (None before the first);
    inputs: the same for this merge; combined_cost_usd: a measured run of the combined model on
    the same data, preferred to the estimate from the adapters' runs where one exists."""
    retrained = retrained_since(previous, inputs)
    runs = {
        a.metadata.name: a.status.last_run
        for a in adapters
        if a.status
        and a.status.last_run
        and a.status.last_run.fingerprint == inputs.get(a.metadata.name)
    }
    train_seconds = sum(runs[n].gpu_seconds or 0.0 for n in retrained if n in runs)
    train_cost = sum(runs[n].cost_usd or 0.0 for n in retrained if n in runs)
    full_estimate: float | None = (
        sum(r.cost_usd or 0.0 for r in runs.values()) if len(runs) == len(inputs) else None
    )
    if combined_cost_usd is not None:
        full_estimate = combined_cost_usd
    cost = train_cost + (merge_run.cost_usd or 0.0)
    if previous is None:
        trigger = "initial merge"
    elif retrained:
        trigger = "adapters: " + ", ".join(retrained)
    else:
        trigger = "merge settings"
    savings = 1 - cost / full_estimate if full_estimate else None
    return UpdateRecord(
        trigger=trigger,
        retrained_adapters=retrained,
        gpu_seconds=round(train_seconds + (merge_run.gpu_seconds or 0.0), 3),
        cost_usd=round(cost, 6),
        full_retrain_estimate_usd=round(full_estimate, 6) if full_estimate is not None else None,
        savings_ratio=round(savings, 4) if savings is not None else None,
        finished_at=merge_run.finished_at,
    )


def evaluation_result(summary: dict[str, Any] | None) -> EvaluationResult | None:
    """The merger's per-language evaluation and gate verdict, from its run summary."""
    evaluation = (summary or {}).get("evaluation")
    if not evaluation:
        return None
    gate = evaluation.get("gate") or {}
    return EvaluationResult(
        per_language=evaluation.get("perLanguage"),
        gate=GateResult(passed=bool(gate.get("passed", True)), reason=gate.get("reason")),
    )
