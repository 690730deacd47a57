"""metav1.Condition bookkeeping shared by the operator and the local loop: both derive the
same conditions from the same plans."""

from __future__ import annotations

from datetime import UTC, datetime

from langmerge.operator.api.common import Condition, ConditionStatus, Phase
from langmerge.operator.planner import GATE_REFUSED, Action, MergePlan, TrainingPlan


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def set_condition(
    conditions: list[Condition], kind: str, value: bool, reason: str, message: str, generation: int
) -> list[Condition]:
    """conditions with `kind` set; lastTransitionTime moves only when the status flips."""
    status = ConditionStatus.TRUE if value else ConditionStatus.FALSE
    previous = next((c for c in conditions if c.type == kind), None)
    changed_at = previous.last_transition_time if previous and previous.status == status else now()
    updated = Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message[:4096],
        observed_generation=generation,
        last_transition_time=changed_at,
    )
    return [c for c in conditions if c.type != kind] + [updated]


def _serving(artifact_uri: str | None, up_to_date: bool) -> str:
    return f"; serving {artifact_uri} meanwhile" if artifact_uri and not up_to_date else ""


def phase_of(
    plan: TrainingPlan | MergePlan, running: Phase, pending: bool, blocked: str | None
) -> Phase:
    """The one-word summary of a plan's outcome; `running` is Training or Merging."""
    match plan.action:
        case Action.NONE:
            return Phase.READY
        case Action.RUN:
            if blocked is not None:
                return Phase.BLOCKED
            return Phase.QUEUED if pending else running
        case Action.WAIT:
            return Phase.PENDING
        case Action.SUSPENDED:
            return Phase.SUSPENDED
        case Action.BLOCKED:
            return Phase.BLOCKED
        case Action.FAILED:
            return Phase.BLOCKED if plan.reason == GATE_REFUSED else Phase.FAILED


def _not_ready_yet(
    plan: TrainingPlan | MergePlan, pending: bool, blocked: str | None
) -> tuple[str, str]:
    """The Ready condition's reason and message: why the object is not (yet) up to date."""
    if plan.action == Action.RUN and blocked is not None:
        return "BudgetExceeded", blocked
    if plan.action == Action.RUN and pending:
        return "JobPending", (
            f"Job {plan.job} has no running pod yet (scheduling, image pull or queue admission)"
        )
    return plan.reason, plan.message


def _budget_and_failure(
    conditions: list[Condition],
    failed: bool,
    reason: str,
    message: str,
    blocked: str | None,
    generation: int,
) -> list[Condition]:
    conditions = set_condition(
        conditions,
        "BudgetExceeded",
        blocked is not None,
        "BudgetExceeded" if blocked else "WithinBudget",
        blocked or "",
        generation,
    )
    return set_condition(
        conditions,
        "Failed",
        failed,
        reason if failed else "NoFailure",
        message if failed else "",
        generation,
    )


def adapter_conditions(
    current: list[Condition] | None,
    plan: TrainingPlan,
    artifact_uri: str | None,
    generation: int,
    blocked: str | None = None,
    pending: bool = False,
) -> list[Condition]:
    """Ready, Training, BudgetExceeded and Failed of a LanguageAdapter, from its plan."""
    up_to_date, running = plan.action == Action.NONE, plan.action == Action.RUN
    reason, message = _not_ready_yet(plan, pending, blocked)
    conditions = set_condition(
        current or [],
        "Ready",
        up_to_date,
        reason,
        message + _serving(artifact_uri, up_to_date),
        generation,
    )
    conditions = set_condition(
        conditions,
        "Training",
        running and blocked is None,
        "JobRunning" if running else "Idle",
        f"Job {plan.job}" if running else "",
        generation,
    )
    return _budget_and_failure(
        conditions, plan.action == Action.FAILED, plan.reason, plan.message, blocked, generation
    )


def merged_conditions(
    current: list[Condition] | None,
    plan: MergePlan,
    artifact_uri: str | None,
    generation: int,
    blocked: str | None = None,
    pending: bool = False,
) -> list[Condition]:
    """Ready, AdaptersReady, Merging, BudgetExceeded and Failed of a MergedModel."""
    up_to_date, running = plan.action == Action.NONE, plan.action == Action.RUN
    reason, message = _not_ready_yet(plan, pending, blocked)
    conditions = set_condition(
        current or [],
        "Ready",
        up_to_date,
        reason,
        message + _serving(artifact_uri, up_to_date),
        generation,
    )
    conditions = set_condition(
        conditions,
        "AdaptersReady",
        plan.adapters_ready,
        "AllAdaptersReady" if plan.adapters_ready else plan.reason,
        "" if plan.adapters_ready else plan.message,
        generation,
    )
    conditions = set_condition(
        conditions,
        "Merging",
        running and blocked is None,
        "JobRunning" if running else "Idle",
        f"Job {plan.job}" if running else "",
        generation,
    )
    failed = plan.action in (Action.FAILED, Action.BLOCKED)
    return _budget_and_failure(conditions, failed, plan.reason, plan.message, blocked, generation)
