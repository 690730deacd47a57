"""What a finished run changes, kept once for both executors.

The cluster reconciler (runs as Jobs) and the local loop (runs as subprocesses) observe their
runs differently, but apply them the same way: a finished run becomes a RunRecord, the record
is counted into status (last run, totals, the recorded-Jobs window), a good artifact replaces
the served one, a merge adds its update record, and the conditions and phase are settled from
the plan. Pure: a status in, the same status changed and the Events to post out; no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError

from langmerge.common.summary import RunSummary
from langmerge.operator.accounting import record_totals, update_record
from langmerge.operator.api.adapter import (
    AdapterArtifact,
    LanguageAdapter,
    LanguageAdapterStatus,
    TrainingProgress,
)
from langmerge.operator.api.common import Condition, Phase, RunRecord, RunResult
from langmerge.operator.api.merged import (
    EvaluationResult,
    GateResult,
    MergedArtifact,
    MergedModelStatus,
    SearchCandidate,
    SearchResult,
    UpdateRecord,
)
from langmerge.operator.api.reasons import ConditionType, EventReason, Reason
from langmerge.operator.clock import now
from langmerge.operator.conditions import (
    adapter_conditions,
    merged_conditions,
    phase_of,
    set_condition,
)
from langmerge.operator.cost import Price, cost_usd
from langmerge.operator.planner import MergePlan, TrainingPlan

RECORDED_JOBS = 20  # how many finished Jobs status remembers, so none counts twice
HISTORY = 20  # update records kept in status.updateHistory


class Event(NamedTuple):
    """A core/v1 Event to post on the object (kubectl describe); the local loop prints it."""

    type: Literal["Normal", "Warning"]
    reason: EventReason
    message: str


def run_record(
    job: str,
    fingerprint: str,
    *,
    succeeded: bool,
    started_at: datetime | None,
    finished_at: datetime | None,
    billed_seconds: float,
    price: Price,
    price_override_usd: float | None,
    reason: str,
    summary: RunSummary | None,
) -> RunRecord:
    """One finished run as status records it. billed_seconds: GPU-seconds, or core-seconds
    for a CPU run (priced per core-hour)."""
    return RunRecord(
        job=job,
        fingerprint=fingerprint,
        result=RunResult.SUCCEEDED if succeeded else RunResult.FAILED,
        started_at=started_at,
        finished_at=finished_at,
        gpu_seconds=round(billed_seconds, 3),
        cost_usd=round(cost_usd(billed_seconds, price, price_override_usd), 6),
        reason=reason or None,
        summary=summary.model_dump(mode="json", exclude_none=True) if summary else None,
    )


def record_finished(status: LanguageAdapterStatus | MergedModelStatus, run: RunRecord) -> None:
    """Counts a finished run once: last run, totals, the recorded-Jobs window, no active Job."""
    status.last_run = run
    status.totals = record_totals(status.totals, run)
    status.recorded_jobs = [*(status.recorded_jobs or []), run.job][-RECORDED_JOBS:]
    if status.active_job and status.active_job.name == run.job:
        status.active_job = None


def _output(run: RunRecord) -> dict[str, Any]:
    return (run.summary or {}).get("output") or {}


def apply_training_run(
    status: LanguageAdapterStatus, run: RunRecord, wanted_fingerprint: str
) -> list[Event]:
    """A finished training run: counted, and its adapter served when it trained the spec
    that is wanted now (a run for an older spec is counted, never served)."""
    record_finished(status, run)
    if run.result == RunResult.FAILED:
        return [Event("Warning", EventReason.TRAINING_FAILED, f"Job {run.job}: {run.reason}")]
    if run.fingerprint != wanted_fingerprint:
        return []
    output = _output(run)
    status.artifact = AdapterArtifact(
        uri=output["uri"],
        sha256=output["sha256"],
        fingerprint=run.fingerprint,
        trained_at=run.finished_at,
    )
    message = f"Job {run.job} trained {output['uri']}"
    return [Event("Normal", EventReason.TRAINING_SUCCEEDED, message)]


PROGRESS_REFRESH_SECONDS = 10  # at most one progress write per running adapter this often


def progress_due(status: LanguageAdapterStatus) -> bool:
    """Whether a run's progress may be refreshed now: a run is active and the last progress
    is at least PROGRESS_REFRESH_SECONDS old. Ask before reading a log: the reconcile our own
    status write causes then neither reads a log nor writes, so no loop of writes."""
    if status.active_job is None:
        return False
    current = status.progress
    return (
        current is None
        or current.observed_at is None
        or (now() - current.observed_at).total_seconds() >= PROGRESS_REFRESH_SECONDS
    )


def apply_progress(status: LanguageAdapterStatus, line: dict[str, Any] | None) -> None:
    """The running training's progress from the trainer's last progress line, when it is due
    (progress_due) and the step moved."""
    if line is None or not progress_due(status):
        return
    if status.progress is not None and status.progress.step == line["step"]:
        return
    eta = line.get("etaSeconds")
    loss = line.get("loss")
    status.progress = TrainingProgress(
        step=line["step"],
        total_steps=line["totalSteps"],
        loss=float(loss) if loss is not None else None,
        eta_seconds=max(float(eta), 0.0) if eta is not None else None,
        observed_at=now(),
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


def search_result(summary: dict[str, Any] | None) -> SearchResult | None:
    """The merger's search (winner, counts, best candidates), from its run summary; None when
    the merge ran none or its record cannot be read."""
    search = (summary or {}).get("search")
    if not search:
        return None
    fields = ("index", "method", "density", "lambda", "weights", "seed", "score")
    try:
        return SearchResult(
            metric=search["metric"],
            aggregate=search["aggregate"],
            evaluated=search["evaluated"],
            failed=search["failed"],
            winner=SearchCandidate.model_validate(
                {k: v for k, v in search["winner"].items() if k in fields}
            ),
            why=search.get("why"),
            best=[
                SearchCandidate.model_validate({k: v for k, v in row.items() if k in fields})
                for row in search.get("best") or []
            ],
        )
    except (KeyError, TypeError, ValidationError):
        return None


class MergeApplied(NamedTuple):
    events: list[Event]
    update: UpdateRecord | None  # the update the merge completed (None when it failed)


def apply_merge_run(
    status: MergedModelStatus,
    run: RunRecord,
    inputs: dict[str, str],
    adapters: list[LanguageAdapter],
    combined_cost_usd: float | None = None,
) -> MergeApplied:
    """A finished merge: counted, its evaluation kept, and when it succeeded its artifact
    served and the update it completes recorded (what it cost against retraining every
    language). inputs: adapter name -> the fingerprint it merged; combined_cost_usd: a
    measured combined training on the same data, where one exists."""
    status.evaluation = evaluation_result(run.summary) or status.evaluation
    record_finished(status, run)
    if run.result == RunResult.SUCCEEDED:  # what the served artifact won (a refusal has none)
        status.search = search_result(run.summary)
    if run.result != RunResult.SUCCEEDED:
        return MergeApplied(
            [Event("Warning", EventReason.MERGE_FAILED, f"Job {run.job}: {run.reason}")], None
        )
    previous = status.artifact.adapter_fingerprints if status.artifact else None
    update = update_record(previous, inputs, adapters, run, combined_cost_usd)
    output = _output(run)
    status.artifact = MergedArtifact(
        uri=output["uri"],
        sha256=output["sha256"],
        fingerprint=run.fingerprint,
        adapter_fingerprints=inputs,
        merged_at=run.finished_at,
    )
    status.last_update = update
    status.update_history = [*(status.update_history or []), update][-HISTORY:]
    message = f"Job {run.job} merged {len(inputs)} adapters ({update.trigger})"
    return MergeApplied([Event("Normal", EventReason.MERGE_SUCCEEDED, message)], update)


def settle_adapter(
    status: LanguageAdapterStatus,
    plan: TrainingPlan,
    generation: int,
    blocked: str | None = None,
    pending: bool = False,
) -> None:
    """Conditions, phase, fingerprint and observedGeneration for the plan as it now stands.
    blocked: why a budget holds the run back; pending: its Job has no running pod yet."""
    artifact = status.artifact.uri if status.artifact else None
    status.conditions = adapter_conditions(
        status.conditions, plan, artifact, generation, blocked, pending
    )
    status.phase = phase_of(plan, Phase.TRAINING, pending, blocked)
    status.fingerprint = plan.fingerprint
    status.observed_generation = generation
    if status.active_job is None or pending:
        status.progress = None  # nothing runs: no progress to show


def settle_merged(
    status: MergedModelStatus,
    plan: MergePlan,
    generation: int,
    blocked: str | None = None,
    pending: bool = False,
) -> None:
    """As settle_adapter, for a MergedModel; a plan without a fingerprint (its inputs are not
    ready) keeps the last one."""
    artifact = status.artifact.uri if status.artifact else None
    status.conditions = merged_conditions(
        status.conditions, plan, artifact, generation, blocked, pending
    )
    status.phase = phase_of(plan, Phase.MERGING, pending, blocked)
    if plan.fingerprint:
        status.fingerprint = plan.fingerprint
    status.observed_generation = generation


def refuse_invalid(
    stored: dict[str, Any], generation: int, message: str
) -> tuple[dict[str, Any], list[Event]]:
    """The status of an object the API server stored but the models refuse (written before a
    stricter CRD, say): Failed and not Ready with reason InvalidSpec, the rest of its status
    kept as stored (it may not parse either). The Event is posted once per message."""
    try:
        current = [Condition.model_validate(c) for c in stored.get("conditions") or []]
    except ValidationError:
        current = []
    invalid = Reason.INVALID_SPEC
    conditions = set_condition(current, ConditionType.FAILED, True, invalid, message, generation)
    conditions = set_condition(conditions, ConditionType.READY, False, invalid, message, generation)
    after = {
        **stored,
        "observedGeneration": generation,
        "conditions": [c.to_wire() for c in conditions],
        "phase": Phase.FAILED.value,
    }
    already = any(
        c.get("type") == ConditionType.FAILED
        and c.get("reason") == invalid
        and c.get("message") == message
        for c in stored.get("conditions") or []
    )
    return after, [] if already else [Event("Warning", EventReason.INVALID_SPEC, message)]
