"""The arithmetic of runs and updates (totals per month, what an update cost against
retraining every language), shared by the cluster and the local loop so both report the same
numbers for the same runs."""

from __future__ import annotations

from datetime import UTC, datetime

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.common import RunRecord, RunResult, Totals
from langmerge.operator.api.merged import UpdateRecord
from langmerge.operator.planner import retrained_since


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
