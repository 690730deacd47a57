"""metav1.Condition bookkeeping shared by the operator and the local loop."""

from __future__ import annotations

from datetime import UTC, datetime

from langmerge.operator.api.common import Condition, ConditionStatus


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
