"""The words of the status contract: condition types, their reasons and the reasons of
Events. Declared once here; automation may match on them, so renaming one is an API change.

The values are the wire strings (metav1.Condition.type / .reason, core/v1 Event.reason).
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"  # True when the artifact matches the current spec and inputs
    TRAINING = "Training"  # LanguageAdapter: a training Job runs for the current spec
    MERGING = "Merging"  # MergedModel: a merge Job runs for the current inputs
    ADAPTERS_READY = "AdaptersReady"  # MergedModel: every selected adapter is up to date
    BUDGET_EXCEEDED = "BudgetExceeded"  # a budget holds the next run back
    FAILED = "Failed"  # the run for the current spec failed; a spec change retries


class Reason(StrEnum):
    """Reasons of conditions (and, where they match, of the Events that report them)."""

    UP_TO_DATE = "UpToDate"
    TRAINING = "Training"  # Ready=False while the plan trains
    MERGING = "Merging"  # Ready=False while the plan merges
    SUSPENDED = "Suspended"  # spec.suspend is true
    TRAINING_FAILED = "TrainingFailed"
    MERGE_FAILED = "MergeFailed"
    # the API server refused the Job (the spec or the operator's configuration)
    INVALID_JOB = "InvalidJob"
    # the API server stored an object that the models refuse (an older, looser CRD)
    INVALID_SPEC = "InvalidSpec"
    # the merge worked but failed its evaluation gate; the last good artifact stays
    GATE_REFUSED = "GateRefused"
    # spec.resources.nodes > 1 and this operator cannot create TrainJobs (Kubeflow Trainer)
    TRAINER_MISSING = "TrainerNotInstalled"
    ADAPTERS_MISSING = "AdaptersMissing"  # spec.adapters.names names one that is absent
    NO_ADAPTERS = "NoAdapters"  # the selector matches none
    ADAPTERS_NOT_READY = "AdaptersNotReady"
    INCOMPATIBLE_ADAPTERS = "IncompatibleAdapters"  # base model, task, language or modules
    ALL_ADAPTERS_READY = "AllAdaptersReady"
    BUDGET_EXCEEDED = "BudgetExceeded"
    WITHIN_BUDGET = "WithinBudget"
    NO_FAILURE = "NoFailure"
    JOB_PENDING = "JobPending"  # the Job exists, no pod runs yet (scheduling, pull, Kueue)
    JOB_RUNNING = "JobRunning"
    IDLE = "Idle"


class EventReason(StrEnum):
    """Reasons of the Events the operator posts on its objects (kubectl describe)."""

    TRAINING_STARTED = "TrainingStarted"
    TRAINING_SUCCEEDED = "TrainingSucceeded"
    TRAINING_FAILED = "TrainingFailed"
    MERGE_STARTED = "MergeStarted"
    MERGE_SUCCEEDED = "MergeSucceeded"
    MERGE_FAILED = "MergeFailed"
    SUPERSEDED = "Superseded"  # a newer fingerprint replaced a running Job
    STOPPED = "Stopped"  # a running Job's inputs are gone or unusable
    BUDGET_EXCEEDED = "BudgetExceeded"
    INVALID_JOB = "InvalidJob"
    INVALID_SPEC = "InvalidSpec"
