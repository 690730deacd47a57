"""metav1.Condition bookkeeping shared by the operator and the local loop: both derive the
same conditions from the same plans."""

from __future__ import annotations

from langmerge.operator.api.common import Condition, ConditionStatus, Phase
from langmerge.operator.api.reasons import ConditionType, Reason
from langmerge.operator.clock import now
from langmerge.operator.planner import Action, MergePlan, TrainingPlan


def condition_of(conditions: list[Condition] | None, kind: str) -> Condition | None:
    """The condition of that type, if the object has one."""
    return next((c for c in conditions or [] if c.type == kind), None)


def is_true(conditions: list[Condition] | None, kind: str) -> bool:
    found = condition_of(conditions, kind)
    return found is not None and found.status == ConditionStatus.TRUE


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
            return Phase.BLOCKED if plan.reason == Reason.GATE_REFUSED else Phase.FAILED


def _not_ready_yet(
    plan: TrainingPlan | MergePlan, pending: bool, blocked: str | None
) -> tuple[str, str]:
    """The Ready condition's reason and message: why the object is not (yet) up to date."""
    if plan.action == Action.RUN and blocked is not None:
        return Reason.BUDGET_EXCEEDED, blocked
    if plan.action == Action.RUN and pending:
        return Reason.JOB_PENDING, (
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
        ConditionType.BUDGET_EXCEEDED,
        blocked is not None,
        Reason.BUDGET_EXCEEDED if blocked else Reason.WITHIN_BUDGET,
        blocked or "",
        generation,
    )
    return set_condition(
        conditions,
        ConditionType.FAILED,
        failed,
        reason if failed else Reason.NO_FAILURE,
        message if failed else "",
        generation,
    )


def _ready(
    current: list[Condition] | None,
    plan: TrainingPlan | MergePlan,
    artifact_uri: str | None,
    generation: int,
    blocked: str | None,
    pending: bool,
) -> list[Condition]:
    up_to_date = plan.action == Action.NONE
    reason, message = _not_ready_yet(plan, pending, blocked)
    return set_condition(
        current or [],
        ConditionType.READY,
        up_to_date,
        reason,
        message + _serving(artifact_uri, up_to_date),
        generation,
    )


def _running(
    conditions: list[Condition],
    kind: ConditionType,
    plan: TrainingPlan | MergePlan,
    blocked: str | None,
    pending: bool,
    generation: int,
) -> list[Condition]:
    """Training or Merging: True while a pod of the plan's Job runs; False (reason JobPending)
    while the Job waits for a node or queue admission, and while a budget holds it back."""
    wanted = plan.action == Action.RUN and blocked is None
    if wanted and pending:
        reason = Reason.JOB_PENDING
    elif wanted:
        reason = Reason.JOB_RUNNING
    else:
        reason = Reason.IDLE
    return set_condition(
        conditions,
        kind,
        wanted and not pending,
        reason,
        f"Job {plan.job}" if wanted else "",
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
    conditions = _ready(current, plan, artifact_uri, generation, blocked, pending)
    conditions = _running(conditions, ConditionType.TRAINING, plan, blocked, pending, generation)
    failed = plan.action == Action.FAILED
    return _budget_and_failure(conditions, failed, plan.reason, plan.message, blocked, generation)


def merged_conditions(
    current: list[Condition] | None,
    plan: MergePlan,
    artifact_uri: str | None,
    generation: int,
    blocked: str | None = None,
    pending: bool = False,
) -> list[Condition]:
    """Ready, AdaptersReady, Merging, BudgetExceeded and Failed of a MergedModel."""
    conditions = _ready(current, plan, artifact_uri, generation, blocked, pending)
    conditions = set_condition(
        conditions,
        ConditionType.ADAPTERS_READY,
        plan.adapters_ready,
        Reason.ALL_ADAPTERS_READY if plan.adapters_ready else plan.reason,
        "" if plan.adapters_ready else plan.message,
        generation,
    )
    conditions = _running(conditions, ConditionType.MERGING, plan, blocked, pending, generation)
    failed = plan.action in (Action.FAILED, Action.BLOCKED)
    return _budget_and_failure(conditions, failed, plan.reason, plan.message, blocked, generation)
