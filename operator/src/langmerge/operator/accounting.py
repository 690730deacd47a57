"""The arithmetic of runs and updates, shared by the cluster and the local loop so both report
the same numbers for the same runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langmerge.operator.api.adapter import LanguageAdapter, LanguageAdapterStatus, RunRecord
from langmerge.operator.api.common import RunResult, Totals
from langmerge.operator.api.merged import (
    EvaluationResult,
    GateResult,
    MergedModel,
    MergedModelStatus,
    UpdateRecord,
)
from langmerge.operator.planner import retrained_since, selects


def period_of(moment: datetime | None) -> str:
    """The budget month (UTC) a run is counted in."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m")


def record_totals(totals: Totals | None, run: RunRecord) -> Totals:
    totals = totals or Totals()
    period = period_of(run.finished_at)
    month = totals.month_cost_usd if totals.period == period else 0.0
    return Totals(
        runs=totals.runs + 1,
        succeeded=totals.succeeded + (run.result == RunResult.SUCCEEDED),
        failed=totals.failed + (run.result == RunResult.FAILED),
        gpu_seconds=round(totals.gpu_seconds + (run.gpu_seconds or 0.0), 3),
        cost_usd=round(totals.cost_usd + (run.cost_usd or 0.0), 6),
        period=period,
        month_cost_usd=round(month + (run.cost_usd or 0.0), 6),
    )


def month_cost(totals: Totals | None, period: str) -> float:
    return totals.month_cost_usd if totals and totals.period == period else 0.0


@dataclass(frozen=True)
class BudgetVerdict:
    allowed: bool
    spent_usd: float
    limit_usd: float
    owner: str  # what the budget belongs to, for messages
    message: str


def budget_verdict(
    merged_models: list[MergedModel],
    adapters: list[LanguageAdapter],
    run_for: LanguageAdapter | MergedModel,
    estimate_usd: float,
    namespace_limit_usd: float | None,
    period: str,
) -> BudgetVerdict | None:
    """Whether a run of `run_for` may start: every budget that covers it (each MergedModel
    that selects it, or the MergedModel itself, and the namespace's) must have room for the
    run's estimated cost (the object's last run). None when no budget applies."""
    spend = {
        a.metadata.name: month_cost(a.status.totals if a.status else None, period) for a in adapters
    }
    checks: list[tuple[str, float, float]] = []
    for model in merged_models:
        if model.spec.budget is None:
            continue
        covers = (
            model.metadata.name == run_for.metadata.name
            if isinstance(run_for, MergedModel)
            else selects(model, run_for)
        )
        if covers:
            spent = month_cost(model.status.totals if model.status else None, period) + sum(
                spend[a.metadata.name] for a in adapters if selects(model, a)
            )
            checks.append(
                (
                    f"MergedModel {model.metadata.namespace}/{model.metadata.name}",
                    spent,
                    model.spec.budget.monthly_usd,
                )
            )
    if namespace_limit_usd is not None:
        spent = sum(spend.values()) + sum(
            month_cost(m.status.totals if m.status else None, period) for m in merged_models
        )
        checks.append((f"namespace {run_for.metadata.namespace}", spent, namespace_limit_usd))
    if not checks:
        return None
    for owner, spent, limit in checks:
        if spent + estimate_usd > limit:
            return BudgetVerdict(
                False,
                spent,
                limit,
                owner,
                (
                    f"{owner} has spent ${spent:.2f} of its ${limit:.2f} budget for {period}; "
                    f"this run (about ${estimate_usd:.2f}) would exceed it; "
                    "raise the budget or wait for next month"
                ),
            )
    owner, spent, limit = min(checks, key=lambda c: c[2] - c[1])
    return BudgetVerdict(
        True, spent, limit, owner, f"{owner}: ${spent:.2f} of ${limit:.2f} spent in {period}"
    )


RECORDED_JOBS = 20  # how many finished Jobs status remembers, so none counts twice
HISTORY = 20  # update records kept in status.updateHistory


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
