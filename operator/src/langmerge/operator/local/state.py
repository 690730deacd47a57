"""The local loop's state (state.json in the state folder): each object's status in the CRDs'
own shape, the combined baselines, the evaluations, and what each `langmerge up` ran, measured.
Typed as the cluster's status is, so the runner, the report and `langmerge status` read the
same fields the same way."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from langmerge.operator.api.adapter import LanguageAdapterStatus
from langmerge.operator.api.common import Condition, ConditionStatus
from langmerge.operator.api.merged import MergedModelStatus
from langmerge.operator.api.reasons import ConditionType
from langmerge.operator.conditions import condition_of, is_true
from langmerge.operator.local.manifests import ManifestError

STATE_VERSION = 2

Metrics = dict[str, float]  # metric -> value ("f1", "f1Low", "f1High", "loss", "examples", ...)


class StateModel(BaseModel):
    """camelCase on disk, like the statuses beside it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RunFigures(BaseModel):
    """One run of a phase, measured: the whole process (as launched) and the part that grows
    with the model (the training loop, or the merge without its evaluation)."""

    name: str
    task: str
    seconds: float
    core_seconds: float
    cost_usd: float
    loop_seconds: float


class Phase(BaseModel):
    """What one `langmerge up` ran, measured."""

    started_at: str
    launcher: str = "cold"  # warm: runs forked from one process that imported the libraries
    launcher_startup_seconds: float = 0.0  # paid once per `langmerge up`, not per run
    trained: list[RunFigures] = []
    merges: list[RunFigures] = []
    combined: list[RunFigures] = []  # the COMB baseline, one per task

    def ran(self) -> bool:
        return bool(self.trained or self.merges or self.combined)

    def ran_for(self, task: str) -> bool:
        return any(r.task == task for r in (*self.trained, *self.merges, *self.combined))


class CombinedBaseline(StateModel):
    """COMB: one adapter trained on every language's data of a task."""

    fingerprint: str  # of its members' training fingerprints
    uri: str


class TaskEvaluation(StateModel):
    """Every model of a task scored on every language's held-out split."""

    models: dict[str, dict[str, Metrics]] = {}  # model -> language -> metrics
    means: dict[str, Metrics] = {}  # model -> its mean over the languages, with an interval
    chance: dict[str, Metrics] = {}  # language -> a uniform guess's metrics
    gated_out: list[str] = []  # the candidates their gate refused
    uris: dict[str, str] = {}  # model -> the artifact scored ("" the base model)
    inputs: dict[str, Any] = {}  # base model, datasets and limit the scores are on


class Candidate(StateModel):
    """A merged model's most recent merge output, promoted or kept apart by its gate: what
    the report shows for it."""

    uri: str
    gated_out: bool


def ready_reason(conditions: list[Condition] | None) -> str:
    """Ready, or why the object is not (the Ready condition's reason); "-" before any."""
    ready = condition_of(conditions, ConditionType.READY)
    if ready is None:
        return "-"
    return "Ready" if ready.status == ConditionStatus.TRUE else ready.reason


def failed(conditions: list[Condition] | None) -> bool:
    return is_true(conditions, ConditionType.FAILED)


class State(StateModel):
    version: int = STATE_VERSION
    adapters: dict[str, LanguageAdapterStatus] = {}
    merged: dict[str, MergedModelStatus] = {}
    combined: dict[str, CombinedBaseline] = {}  # task -> its COMB
    evaluation: dict[str, TaskEvaluation] = {}  # task -> the last evaluation
    candidates: dict[str, Candidate] = {}  # merged model -> its latest merge output
    phases: list[Phase] = []

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        if raw.get("version") != STATE_VERSION:  # before its shape is read: it may differ
            raise ManifestError(
                f"{path} was written by another langmerge version (state version "
                f"{raw.get('version', 1)}, this one reads {STATE_VERSION}); remove "
                f"{path.parent} (or pass another --state-dir) and run again"
            )
        return cls.model_validate(raw)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(self.model_dump_json(indent=2, by_alias=True, exclude_none=True))
        os.replace(partial, path)  # a kill never leaves a half-written state
