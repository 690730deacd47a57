"""What must run now: a pure function of the desired specs and the observed status.

Used by both executors: the kopf operator (runs the plan as Jobs) and the local runner
(runs it as subprocesses). No Kubernetes, no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.common import RunResult
from langmerge.operator.api.merged import MergedModel
from langmerge.operator.api.reasons import Reason
from langmerge.operator.fingerprint import (
    adapter_fingerprint,
    job_name,
    merge_fingerprint,
    trainjob_name,
)


class Action(StrEnum):
    NONE = "None"  # up to date
    RUN = "Run"  # create (or adopt) the Job for this fingerprint
    WAIT = "Wait"  # inputs not ready yet
    SUSPENDED = "Suspended"
    FAILED = "Failed"  # the run for this fingerprint failed; a spec change retries
    BLOCKED = "Blocked"  # inputs can never merge as they are (incompatible, missing)


@dataclass(frozen=True)
class TrainingPlan:
    action: Action
    fingerprint: str
    job: str
    reason: str
    message: str = ""


def invalid_job_reason(api_message: str) -> str:
    """A Job the API server refused as invalid: the spec (or the operator's configuration)
    can never make a valid Job as it is, so the run fails at once with the API's message."""
    return f"{Reason.INVALID_JOB}: the API server refused the Job: {api_message[:3500]}"


# A merge that worked but failed its evaluation gate: the merger's summary reason starts with
# this (tests/test_summary_contract.py holds both ends to it).
GATE_REASON_PREFIX = "evaluation gate:"


def _failure_reason(reason: str | None, default: Reason) -> Reason:
    reason = reason or ""
    if reason.startswith(f"{Reason.INVALID_JOB}:"):
        return Reason.INVALID_JOB
    if reason.startswith(GATE_REASON_PREFIX):
        return Reason.GATE_REFUSED
    return default


def plan_training(
    adapter: LanguageAdapter, trainer_image: str, multi_node_missing: str | None = None
) -> TrainingPlan:
    """multi_node_missing: why this executor cannot run a training across pods (None: it
    can, or it ignores spec.resources.nodes as the local loop does)."""
    spec, status = adapter.spec, adapter.status
    fingerprint = adapter_fingerprint(spec, trainer_image)
    if spec.resources.nodes > 1:
        job = trainjob_name(adapter.metadata.name, fingerprint)
    else:
        job = job_name(adapter.metadata.name, "train", fingerprint)
    if status and status.artifact and status.artifact.fingerprint == fingerprint:
        return TrainingPlan(
            Action.NONE, fingerprint, job, Reason.UP_TO_DATE, "the adapter matches its spec"
        )
    last = status.last_run if status else None
    if last and last.fingerprint == fingerprint and last.result == RunResult.FAILED:
        why = last.reason or "see the Job"
        message = f"training failed: {why}; change the spec to retry"
        reason = _failure_reason(last.reason, Reason.TRAINING_FAILED)
        return TrainingPlan(Action.FAILED, fingerprint, job, reason, message)
    if spec.suspend:
        return TrainingPlan(
            Action.SUSPENDED, fingerprint, job, Reason.SUSPENDED, "spec.suspend is true"
        )
    if spec.resources.nodes > 1 and multi_node_missing:
        message = f"spec.resources.nodes is {spec.resources.nodes}: {multi_node_missing}"
        return TrainingPlan(Action.BLOCKED, fingerprint, job, Reason.TRAINER_MISSING, message)
    return TrainingPlan(
        Action.RUN, fingerprint, job, Reason.TRAINING, f"training for fingerprint {fingerprint}"
    )


@dataclass(frozen=True)
class MergeInput:
    name: str
    language: str
    fingerprint: str
    uri: str
    sha256: str
    weight: float


@dataclass(frozen=True)
class MergePlan:
    action: Action
    reason: str
    message: str
    fingerprint: str = ""
    job: str = ""
    inputs: tuple[MergeInput, ...] = ()
    adapters_ready: bool = False
    waiting_for: tuple[str, ...] = field(default_factory=tuple)


def selects(merged: MergedModel, adapter: LanguageAdapter) -> bool:
    """Whether the MergedModel's selection includes the adapter (same namespace)."""
    if adapter.metadata.namespace != merged.metadata.namespace:
        return False
    selection = merged.spec.adapters
    if selection.names is not None:
        return adapter.metadata.name in selection.names
    wanted = (selection.selector.match_labels if selection.selector else None) or {}
    return all(adapter.metadata.labels.get(k) == v for k, v in wanted.items())


def _incompatibility(merged: MergedModel, adapters: list[LanguageAdapter]) -> str | None:
    want = merged.spec.base_model
    languages: dict[str, str] = {}
    for adapter in adapters:
        ref = f"LanguageAdapter {adapter.metadata.name}"
        have = adapter.spec.base_model
        if (have.name, have.revision) != (want.name, want.revision):
            return (
                f"{ref}: spec.baseModel is {have.name}@{have.revision}, this model merges "
                f"{want.name}@{want.revision}"
            )
        if adapter.spec.task != merged.spec.task:
            return f"{ref}: spec.task is {adapter.spec.task}, this model merges {merged.spec.task}"
        if adapter.spec.language in languages:
            return (
                f"{ref}: language {adapter.spec.language} is also adapter "
                f"{languages[adapter.spec.language]}'s; select one adapter per language"
            )
        languages[adapter.spec.language] = adapter.metadata.name
    # A weight for a language no adapter has would be dropped without a word (a typo, or an
    # adapter not selected): refused, as the search's weights are.
    weighted = {"spec.parameters.weights": merged.spec.parameters.weights}
    for index, entry in enumerate(merged.spec.search.grid if merged.spec.search else []):
        for position, preset in enumerate(entry.weights or []):
            weighted[f"spec.search.grid[{index}].weights[{position}].languages"] = preset.languages
    for path, by_language in weighted.items():
        unknown = sorted(set(by_language or {}) - set(languages))
        if unknown:
            return (
                f"{path}: no selected adapter has language {unknown[0]} (the adapters' "
                f"languages: {', '.join(sorted(languages))}); weigh only those"
            )
    layouts = {tuple(sorted(a.spec.lora.target_modules)) for a in adapters}
    if len(layouts) > 1:
        return (
            "the adapters target different modules "
            f"({' vs '.join(','.join(layout) for layout in sorted(layouts))}); "
            "train them with the same spec.lora.targetModules"
        )
    return None


def plan_merge(
    merged: MergedModel, candidates: list[LanguageAdapter], trainer_image: str, merger_image: str
) -> MergePlan:
    """candidates: the LanguageAdapters of the namespace (the plan selects among them)."""
    adapters = sorted((a for a in candidates if selects(merged, a)), key=lambda a: a.metadata.name)
    names = merged.spec.adapters.names
    if names is not None:
        missing = sorted(set(names) - {a.metadata.name for a in adapters})
        if missing:
            return MergePlan(
                Action.WAIT,
                Reason.ADAPTERS_MISSING,
                f"LanguageAdapters not found: {', '.join(missing)}",
                waiting_for=tuple(missing),
            )
    if not adapters:
        return MergePlan(
            Action.WAIT, Reason.NO_ADAPTERS, "no LanguageAdapter matches spec.adapters"
        )
    problem = _incompatibility(merged, adapters)
    if problem:
        return MergePlan(Action.BLOCKED, Reason.INCOMPATIBLE_ADAPTERS, problem)
    not_ready = [
        a.metadata.name for a in adapters if plan_training(a, trainer_image).action != Action.NONE
    ]
    if not_ready:
        return MergePlan(
            Action.WAIT,
            Reason.ADAPTERS_NOT_READY,
            f"waiting for: {', '.join(not_ready)}",
            waiting_for=tuple(not_ready),
        )
    weights = merged.spec.parameters.weights or {}
    inputs = []
    for adapter in adapters:
        artifact = adapter.status.artifact if adapter.status else None
        assert artifact is not None  # plan_training said NONE
        inputs.append(
            MergeInput(
                adapter.metadata.name,
                adapter.spec.language,
                artifact.fingerprint,
                artifact.uri,
                artifact.sha256,
                weights.get(adapter.spec.language, 1.0),
            )
        )
    fingerprint = merge_fingerprint(
        merged.spec, {i.name: i.fingerprint for i in inputs}, merger_image
    )
    job = job_name(merged.metadata.name, "merge", fingerprint)

    def ready(action: Action, reason: str, message: str) -> MergePlan:
        return MergePlan(
            action, reason, message, fingerprint, job, tuple(inputs), adapters_ready=True
        )

    status = merged.status
    if status and status.artifact and status.artifact.fingerprint == fingerprint:
        return ready(Action.NONE, Reason.UP_TO_DATE, "the merged model matches its inputs")
    last = status.last_run if status else None
    if last and last.fingerprint == fingerprint and last.result == RunResult.FAILED:
        return ready(
            Action.FAILED,
            _failure_reason(last.reason, Reason.MERGE_FAILED),
            f"merge failed: {last.reason or 'see the Job'}; change the spec to retry",
        )
    if merged.spec.suspend:
        return ready(Action.SUSPENDED, Reason.SUSPENDED, "spec.suspend is true")
    return ready(Action.RUN, Reason.MERGING, f"merging {len(inputs)} adapters")


def retrained_since(previous: dict[str, str] | None, current: dict[str, str]) -> list[str]:
    """Adapters (name -> artifact fingerprint) that changed since the previous merge (all of
    them on the first merge), sorted by name."""
    previous = previous or {}
    return sorted(name for name, fp in current.items() if previous.get(name) != fp)
