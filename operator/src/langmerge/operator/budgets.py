"""Budgets: monthly USD limits on a MergedModel (covering it and the adapters it selects) and
on a namespace (the operator's configuration). A run that would exceed any budget covering it
does not start; the object says why (condition BudgetExceeded) until the budget or the month
changes. Pure functions of the objects; the reconciler lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langmerge.operator.accounting import month_cost, period_of
from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.common import RunRecord, Totals
from langmerge.operator.api.merged import BudgetStatus, MergedModel
from langmerge.operator.api.reasons import ConditionType
from langmerge.operator.planner import selects


@dataclass(frozen=True)
class BudgetVerdict:
    allowed: bool
    spent_usd: float
    limit_usd: float
    owner: str  # what the budget belongs to, for messages
    message: str
    merged_model: str | None = None  # the MergedModel whose budget this is; None: namespace


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
    checks: list[tuple[str, float, float, str | None]] = []
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
                    model.metadata.name,
                )
            )
    if namespace_limit_usd is not None:
        spent = sum(spend.values()) + sum(
            month_cost(m.status.totals if m.status else None, period) for m in merged_models
        )
        checks.append((f"namespace {run_for.metadata.namespace}", spent, namespace_limit_usd, None))
    if not checks:
        return None
    for owner, spent, limit, model_name in checks:
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
                model_name,
            )
    owner, spent, limit, model_name = min(checks, key=lambda c: c[2] - c[1])
    return BudgetVerdict(
        True,
        spent,
        limit,
        owner,
        f"{owner}: ${spent:.2f} of ${limit:.2f} spent in {period}",
        model_name,
    )


def refusal(
    run_for: LanguageAdapter | MergedModel,
    last_run: RunRecord | None,
    merged_models: list[MergedModel],
    adapters: list[LanguageAdapter],
    namespace_limit_usd: float | None,
) -> BudgetVerdict | None:
    """The budget a new run of run_for would exceed (its message says why the run may not
    start), or None. The run's cost is estimated by the object's last run."""
    estimate = (last_run.cost_usd or 0.0) if last_run else 0.0
    verdict = budget_verdict(
        merged_models, adapters, run_for, estimate, namespace_limit_usd, period_of(None)
    )
    return None if verdict is None or verdict.allowed else verdict


def budget_status(
    merged: MergedModel, merges: Totals | None, adapters: list[LanguageAdapter]
) -> BudgetStatus | None:
    """This month's spending against the MergedModel's own budget (None without one): its
    merges (merges: its totals, as now counted) and the training of every adapter it
    selects."""
    if merged.spec.budget is None:
        return None
    period = period_of(None)
    spent = month_cost(merges, period) + sum(
        month_cost(a.status.totals if a.status else None, period)
        for a in adapters
        if selects(merged, a)
    )
    return BudgetStatus(
        period=period, spent_usd=round(spent, 6), limit_usd=merged.spec.budget.monthly_usd
    )


def held_back(adapters: list[dict[str, Any]]) -> list[str]:
    """The adapters (as stored) that a budget holds back: to look at again when a budget
    changes."""
    return [
        a["metadata"]["name"]
        for a in adapters
        if any(
            c.get("type") == ConditionType.BUDGET_EXCEEDED and c.get("status") == "True"
            for c in (a.get("status") or {}).get("conditions") or []
        )
    ]
