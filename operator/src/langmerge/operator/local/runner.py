"""The embedded default: `langmerge up -f DIR` runs the whole loop on this machine.

The same manifests (validated by the same models), the same planner, the same command lines
(run as subprocesses instead of Jobs) and the same accounting as the cluster. State lives in
a folder (default .langmerge/): statuses in the CRDs' own shape, artifacts, logs, and the
measured phases that the report's research table is built from.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from langmerge.operator.accounting import (
    HISTORY,
    evaluation_result,
    record_finished,
    update_record,
)
from langmerge.operator.api.adapter import (
    AdapterArtifact,
    LanguageAdapter,
    LanguageAdapterStatus,
    RunRecord,
)
from langmerge.operator.api.common import ActiveJob, RunResult
from langmerge.operator.api.common import Phase as ObjectPhase
from langmerge.operator.api.merged import (
    GateBaseline,
    MergedArtifact,
    MergedModel,
    MergedModelStatus,
)
from langmerge.operator.conditions import adapter_conditions, merged_conditions, now, phase_of
from langmerge.operator.cost import DEFAULT_PRICES, cost_usd
from langmerge.operator.jobs import merge_args, training_args
from langmerge.operator.local.processes import Launcher, launcher
from langmerge.operator.metrics import Metrics
from langmerge.operator.planner import Action, MergePlan, plan_merge, plan_training
from langmerge.operator.summaries import MergeSummary, RunSummary, TrainingSummary, parse_summary

# Locally the "images" are this installation's commands; they enter fingerprints as such.
LOCAL_TRAINER = "local:langmerge-train"
LOCAL_MERGER = "local:langmerge-merge"
NAMESPACE = "local"
KINDS: dict[str, type[LanguageAdapter] | type[MergedModel]] = {
    "LanguageAdapter": LanguageAdapter,
    "MergedModel": MergedModel,
}

# The trainer's and merger's thread variable (langmerge.common.reproducible; the operator
# package does not depend on langmerge.common).
THREADS_VARIABLE = "LANGMERGE_TORCH_THREADS"


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the object, the field and the fix."""


def _describe(kind: str, name: str, source: Path, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        got = f", got {item['input']!r}" if not isinstance(item.get("input"), dict | list) else ""
        problems.append(f"{where}: {item['msg']}{got}")
    return (
        f"{kind} {name} ({source.name}): "
        + "; ".join(problems)
        + "; fix the manifest and run again"
    )


def load_manifests(directory: Path) -> tuple[list[LanguageAdapter], list[MergedModel]]:
    """Every LanguageAdapter and MergedModel in the folder's YAML files (multi-document)."""
    adapters: list[LanguageAdapter] = []
    merged: list[MergedModel] = []
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise ManifestError(f"{directory}: no .yaml manifests found")
    for source in files:
        try:
            documents = [d for d in yaml.safe_load_all(source.read_text(encoding="utf-8")) if d]
        except yaml.YAMLError as error:
            raise ManifestError(f"{source}: not valid YAML ({error})") from error
        for raw in documents:
            kind = raw.get("kind")
            if kind not in KINDS:
                continue  # other objects (a Namespace, say) are the cluster's business
            name = (raw.get("metadata") or {}).get("name", "<no name>")
            document = {
                **raw,
                "metadata": {**raw.get("metadata", {}), "namespace": NAMESPACE},
            }
            try:
                parsed = KINDS[kind].model_validate(document)
            except ValidationError as error:
                raise ManifestError(_describe(kind, name, source, error)) from error
            (adapters if isinstance(parsed, LanguageAdapter) else merged).append(parsed)  # type: ignore[arg-type]
    for group in (adapters, merged):
        names = [r.metadata.name for r in group]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ManifestError(
                f"{group[0].KIND} {duplicates[0]} is defined twice; names must be unique"
            )
    return adapters, merged


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


STATE_VERSION = 2


class State(BaseModel):
    version: int = STATE_VERSION
    adapters: dict[str, dict[str, Any]] = {}
    merged: dict[str, dict[str, Any]] = {}
    combined: dict[str, dict[str, Any]] = {}  # task -> {fingerprint, uri}
    # task -> {"models": model -> language -> metrics, "chance": language -> metrics,
    #          "gatedOut": [merged model names whose candidate failed its gate]}
    evaluation: dict[str, dict[str, Any]] = {}
    # merged model -> its most recent merge output, promoted or refused by its gate
    # ({"uri", "gatedOut"}): what the report shows for it
    candidates: dict[str, dict[str, Any]] = {}
    phases: list[Phase] = []

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        if raw.get("version") != STATE_VERSION:
            raise ManifestError(
                f"{path} was written by another langmerge version (state version "
                f"{raw.get('version', 1)}, this one reads {STATE_VERSION}); remove "
                f"{path.parent} (or pass another --state-dir) and run again"
            )
        return cls.model_validate(raw)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(self.model_dump_json(indent=2))
        os.replace(partial, path)  # a kill never leaves a half-written state


@dataclass
class Execution:
    ok: bool
    seconds: float
    summary: RunSummary | None
    reason: str
    log: Path


@dataclass
class LocalRunner:
    directory: Path
    state_dir: Path
    launcher: Launcher
    compare_combined: bool = False
    metrics: Metrics | None = None
    out: Any = field(default=sys.stdout)
    # Intra-op threads of every run (LANGMERGE_TORCH_THREADS where set, else every core). On a
    # machine busy with other work, 1 avoids threads that spin waiting for a descheduled peer.
    cores: int = field(
        default_factory=lambda: int(os.environ.get(THREADS_VARIABLE) or os.cpu_count() or 1)
    )

    def __post_init__(self) -> None:
        self.state_path = self.state_dir / "state.json"
        self.state = State.load(self.state_path)
        self.price = DEFAULT_PRICES.price(None, 0)
        self.interactive = bool(getattr(self.out, "isatty", lambda: False)())
        self.combined_cost: dict[str, float] = {}  # task -> measured COMB cost on today's data
        # The same thread count for every run, warm or cold: the same bits, run after run.
        self.run_env = {THREADS_VARIABLE: str(self.cores)}

    # --- plumbing ---------------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _path(self, uri: str) -> str:
        """Manifest paths are relative to the manifest folder."""
        if "://" in uri or Path(uri).is_absolute():
            return uri
        return str((self.directory / uri).resolve())

    def _artifact(self, name: str, fingerprint: str, kind: str = "artifacts") -> str:
        return str((self.state_dir / kind / name / fingerprint).resolve())

    def _progress(self, label: str, line: str) -> None:
        if line.startswith('{"step"') and self.interactive:  # the trainer's progress lines
            step = json.loads(line)
            print(
                f"\r  {label}: step {step['step']}/{step['totalSteps']} loss {step['loss']:.4f}",
                end="",
                file=self.out,
                flush=True,
            )

    def _execute(self, label: str, command_line: list[str], model: type[RunSummary]) -> Execution:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{label}.log"
        summary_file = logs / f"{label}.summary.json"
        summary_file.unlink(missing_ok=True)
        # The warm process starts with the first run; its imports are reported once, apart.
        self.launcher.prepare()
        started = time.monotonic()
        with log.open("w") as stderr:
            returncode = self.launcher.run(
                [*command_line, "--summary-file", str(summary_file)],
                lambda line: self._progress(label, line),
                stderr,
                self.run_env,
            )
        seconds = time.monotonic() - started
        if self.interactive:
            print("\r" + " " * 72 + "\r", end="", file=self.out)
        summary = parse_summary(summary_file.read_text() if summary_file.exists() else None, model)
        ok = returncode == 0 and summary is not None and summary.result == "Succeeded"
        reason = ""
        if not ok:
            reason = (
                summary.reason
                if summary and summary.reason
                else f"exit code {returncode}; see {log}"
            )
        return Execution(ok, seconds, summary, reason, log)

    def _figures(self, name: str, task: str, seconds: float, loop_seconds: float) -> RunFigures:
        core_seconds = seconds * self.cores  # CPU runs are priced per core-hour
        return RunFigures(
            name=name,
            task=task,
            seconds=round(seconds, 3),
            core_seconds=round(core_seconds, 3),
            cost_usd=cost_usd(core_seconds, self.price),
            loop_seconds=round(loop_seconds, 3),
        )

    def _record(self, job: str, fingerprint: str, execution: Execution) -> RunRecord:
        core_seconds = execution.seconds * self.cores  # CPU runs are priced per core-hour
        finished = now()
        return RunRecord(
            job=job,
            fingerprint=fingerprint,
            result=RunResult.SUCCEEDED if execution.ok else RunResult.FAILED,
            started_at=finished.fromtimestamp(
                finished.timestamp() - execution.seconds, finished.tzinfo
            ),
            finished_at=finished,
            gpu_seconds=round(core_seconds, 3),
            cost_usd=round(cost_usd(core_seconds, self.price), 6),
            reason=execution.reason or None,
            summary=execution.summary.model_dump(exclude_none=True) if execution.summary else None,
        )

    # --- adapters -----------------------------------------------------------------------------
    def with_status(self, adapter: LanguageAdapter) -> LanguageAdapter:
        status = self.state.adapters.get(adapter.metadata.name)
        return adapter.model_copy(
            update={"status": LanguageAdapterStatus.model_validate(status) if status else None}
        )

    def train(self, adapter: LanguageAdapter, phase: Phase) -> None:
        plan = plan_training(adapter, LOCAL_TRAINER)
        status = adapter.status or LanguageAdapterStatus()
        if plan.action == Action.RUN:
            spec = adapter.spec.model_copy(deep=True)
            spec.dataset.uri = self._path(spec.dataset.uri)
            if spec.dataset.eval_uri:
                spec.dataset.eval_uri = self._path(spec.dataset.eval_uri)
            if spec.base_model.uri:
                spec.base_model.uri = self._path(spec.base_model.uri)
            output = self._artifact(adapter.metadata.name, plan.fingerprint)
            checkpoints = str(self.state_dir / "checkpoints" / plan.job)
            status.active_job = ActiveJob(
                name=plan.job, fingerprint=plan.fingerprint, created_at=now()
            )
            self.say(f"  train {adapter.metadata.name} ({adapter.spec.language}) ...")
            execution = self._execute(
                plan.job,
                [
                    "langmerge-train",
                    *training_args(spec, output, checkpoints, plan.fingerprint, None),
                ],
                TrainingSummary,
            )
            run = self._record(plan.job, plan.fingerprint, execution)
            record_finished(status, plan.job, run)
            if execution.ok and execution.summary and execution.summary.output:
                status.artifact = AdapterArtifact(
                    uri=execution.summary.output.uri,
                    sha256=execution.summary.output.sha256,
                    fingerprint=plan.fingerprint,
                    trained_at=run.finished_at,
                )
                loop = float(getattr(execution.summary, "trainSeconds", 0.0) or 0.0)
                phase.trained.append(
                    self._figures(adapter.metadata.name, adapter.spec.task, execution.seconds, loop)
                )
                self.say(
                    f"  trained {adapter.metadata.name} in {execution.seconds:.1f}s "
                    f"(training loop {loop:.1f}s)"
                )
            else:
                self.say(f"  FAILED {adapter.metadata.name}: {execution.reason}")
            if self.metrics:
                self.metrics.record_run(adapter, "train", run)
        adapter = adapter.model_copy(update={"status": status})
        plan = plan_training(adapter, LOCAL_TRAINER)
        status.conditions = adapter_conditions(
            status.conditions,
            plan,
            status.artifact.uri if status.artifact else None,
            adapter.metadata.generation,
        )
        status.phase = phase_of(plan, ObjectPhase.TRAINING, pending=False, blocked=None)
        status.fingerprint = plan.fingerprint
        status.observed_generation = adapter.metadata.generation
        self.state.adapters[adapter.metadata.name] = status.to_wire()
        self.state.save(self.state_path)

    # --- the combined baseline (COMB) ------------------------------------------------------------
    def train_combined(self, task: str, adapters: list[LanguageAdapter], phase: Phase) -> None:
        members = sorted(
            (a for a in adapters if a.spec.task == task), key=lambda a: a.spec.language
        )
        if not members:
            return
        fingerprints = [plan_training(a, LOCAL_TRAINER).fingerprint for a in members]
        fingerprint = hashlib.sha256(json.dumps(fingerprints).encode()).hexdigest()[:20]
        if self.state.combined.get(task, {}).get("fingerprint") == fingerprint:
            return
        first = members[0].spec.model_copy(deep=True)
        first.dataset.uri = self._path(first.dataset.uri)
        first.dataset.eval_uri = None
        args = training_args(
            first,
            self._artifact(f"{task}-combined", fingerprint),
            str(self.state_dir / "checkpoints" / f"{task}-combined-{fingerprint[:10]}"),
            fingerprint,
            None,
        )
        for other in members[1:]:  # one adapter on every language's data: the COMB baseline
            args += [
                "--dataset",
                self._path(other.spec.dataset.uri),
                "--language",
                other.spec.language,
            ]
        self.say(f"  train the combined baseline for {task} ({len(members)} languages) ...")
        execution = self._execute(
            f"{task}-combined-{fingerprint[:10]}", ["langmerge-train", *args], TrainingSummary
        )
        if not execution.ok or not execution.summary or not execution.summary.output:
            self.say(f"  FAILED combined baseline: {execution.reason}")
            return
        loop = float(getattr(execution.summary, "trainSeconds", 0.0) or 0.0)
        figures = self._figures(f"COMB {task}", task, execution.seconds, loop)
        phase.combined.append(figures)
        self.combined_cost[task] = figures.cost_usd
        self.state.combined[task] = {
            "fingerprint": fingerprint,
            "uri": execution.summary.output.uri,
        }
        self.state.save(self.state_path)
        self.say(
            f"  trained the combined baseline in {execution.seconds:.1f}s "
            f"(training loop {loop:.1f}s)"
        )

    # --- merges -------------------------------------------------------------------------------
    def merge(
        self, merged: MergedModel, adapters: list[LanguageAdapter], phase: Phase
    ) -> tuple[MergePlan, tuple[Execution, RunRecord] | None]:
        """Runs the merge when needed; returns the plan and the finished run (or None)."""
        stored = self.state.merged.get(merged.metadata.name)
        merged = merged.model_copy(
            update={"status": MergedModelStatus.model_validate(stored) if stored else None}
        )
        plan = plan_merge(merged, adapters, LOCAL_TRAINER, LOCAL_MERGER)
        if plan.action != Action.RUN:
            return plan, None
        output = self._artifact(merged.metadata.name, plan.fingerprint)
        self.say(
            f"  merge {merged.metadata.name} ({merged.spec.method}, "
            f"{len(plan.inputs)} adapters) ..."
        )
        spec = merged.spec.model_copy(deep=True)
        if spec.evaluation and spec.evaluation.datasets:
            spec.evaluation.datasets = {
                k: self._path(v) for k, v in spec.evaluation.datasets.items()
            }
        if spec.base_model.uri:
            spec.base_model.uri = self._path(spec.base_model.uri)
        current = merged.status.artifact.uri if merged.status and merged.status.artifact else None
        combined = self.state.combined.get(merged.spec.task, {}).get("uri")
        rejected = self._artifact(merged.metadata.name, plan.fingerprint, "rejected")
        execution = self._execute(
            plan.job,
            [
                "langmerge-merge",
                *merge_args(spec, plan, output, None, "cpu", current, combined),
                "--rejected-output",
                rejected,
            ],
            MergeSummary,
        )
        run = self._record(plan.job, plan.fingerprint, execution)
        # The research table compares training with training: the gate's evaluation inside
        # the merge process is left out of it (the run's own cost keeps it).
        evaluating = float(getattr(execution.summary, "evaluationSeconds", 0.0) or 0.0)
        wall = float(execution.summary.wallSeconds or 0.0) if execution.summary else 0.0
        phase.merges.append(
            self._figures(
                merged.metadata.name,
                merged.spec.task,
                max(execution.seconds - evaluating, 0.0),
                max(wall - evaluating, 0.0),
            )
        )
        return plan, (execution, run)

    def promote(
        self,
        merged: MergedModel,
        adapters: list[LanguageAdapter],
        plan: MergePlan,
        result: tuple[Execution, RunRecord] | None,
    ) -> None:
        stored = self.state.merged.get(merged.metadata.name)
        status = MergedModelStatus.model_validate(stored) if stored else MergedModelStatus()
        if result is not None:
            execution, run = result
            status.evaluation = evaluation_result(run.summary) or status.evaluation
            record_finished(status, plan.job, run)
            summary = execution.summary
            if run.result == RunResult.SUCCEEDED and summary and summary.output:
                inputs = {i.name: i.fingerprint for i in plan.inputs}
                previous = status.artifact.adapter_fingerprints if status.artifact else None
                update = update_record(
                    previous, inputs, adapters, run, self.combined_cost.get(merged.spec.task)
                )
                status.artifact = MergedArtifact(
                    uri=summary.output.uri,
                    sha256=summary.output.sha256,
                    fingerprint=plan.fingerprint,
                    adapter_fingerprints=inputs,
                    merged_at=run.finished_at,
                )
                status.last_update = update
                status.update_history = [*(status.update_history or []), update][-HISTORY:]
                if self.metrics:
                    self.metrics.record_update(merged, update)
            else:
                self.say(f"  NOT PROMOTED {merged.metadata.name}: {run.reason}")
            if self.metrics:
                self.metrics.record_run(merged, "merge", run)
        final = plan_merge(
            merged.model_copy(update={"status": status}), adapters, LOCAL_TRAINER, LOCAL_MERGER
        )
        status.conditions = merged_conditions(
            status.conditions,
            final,
            status.artifact.uri if status.artifact else None,
            merged.metadata.generation,
        )
        status.phase = phase_of(final, ObjectPhase.MERGING, pending=False, blocked=None)
        if final.fingerprint:
            status.fingerprint = final.fingerprint
        status.observed_generation = merged.metadata.generation
        self.state.merged[merged.metadata.name] = status.to_wire()
        self.state.save(self.state_path)

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(
        self, task: str, adapters: list[LanguageAdapter], candidates: dict[str, str]
    ) -> dict[str, Any]:
        """BASE, each INDV adapter, COMB and the merged candidates on every language's
        held-out split (so INDV rows are also the transfer matrix)."""
        members = sorted(
            (a for a in adapters if a.spec.task == task and a.spec.dataset.eval_uri),
            key=lambda a: a.spec.language,
        )
        if not members:
            return {}
        models = {"BASE": ""}
        for adapter in members:
            artifact = adapter.status.artifact if adapter.status else None
            if artifact:
                models[f"INDV {adapter.spec.language}"] = artifact.uri
        if task in self.state.combined:
            models["COMB"] = self.state.combined[task]["uri"]
        models.update(candidates)
        base = members[0].spec.base_model
        output = self.state_dir / f"evaluation-{task}.json"
        args = [
            "langmerge-eval",
            "--base-model",
            self._path(base.uri) if base.uri else base.name,
            "--output",
            str(output),
        ]
        for name, uri in models.items():
            args += ["--model", f"{name}={uri}"]
        for adapter in members:
            assert adapter.spec.dataset.eval_uri is not None
            args += [
                "--dataset",
                f"{adapter.spec.language}={self._path(adapter.spec.dataset.eval_uri)}",
            ]
        self.say(f"  evaluate {len(models)} models on {len(members)} languages ({task}) ...")
        execution = self._execute(f"evaluate-{task}", args, RunSummary)
        if not execution.ok:
            self.say(f"  FAILED evaluation: {execution.reason}")
            return {}
        report: dict[str, Any] = json.loads(output.read_text())
        return report


def _latest_candidate(
    runner: LocalRunner, model: MergedModel, result: tuple[Execution, RunRecord] | None
) -> dict[str, Any] | None:
    """Records the merge output this run produced (promoted, or kept apart by its gate) and
    returns the model's latest one."""
    name = model.metadata.name
    if result is not None:
        execution, _ = result
        summary = execution.summary
        rejected = (summary.model_extra or {}).get("rejectedOutput") if summary else None
        if execution.ok and summary and summary.output:
            runner.state.candidates[name] = {"uri": summary.output.uri, "gatedOut": False}
        elif rejected:
            runner.state.candidates[name] = {"uri": str(rejected), "gatedOut": True}
    return runner.state.candidates.get(name)


def _gated_against_combined(merged: list[MergedModel]) -> set[str]:
    """Tasks whose gate compares with a COMB that the loop must train itself."""
    return {
        m.spec.task
        for m in merged
        if m.spec.evaluation
        and m.spec.evaluation.gate
        and m.spec.evaluation.gate.against == GateBaseline.COMBINED
        and not m.spec.evaluation.gate.combined_model_uri
    }


def up(
    directory: Path,
    state_dir: Path,
    compare_combined: bool = False,
    metrics: Metrics | None = None,
    out: Any = sys.stdout,
    warm: bool | None = None,
) -> int:
    """One pass of the loop: train what changed, merge what is stale, evaluate, report."""
    from langmerge.operator.local.report import render_report, report_data

    adapters, merged = load_manifests(directory)
    processes = launcher(warm)
    try:
        runner = LocalRunner(
            directory.resolve(), state_dir, processes, compare_combined, metrics, out
        )
        phase = Phase(
            started_at=now().isoformat(),
            launcher=processes.kind,
        )
        adapters = [runner.with_status(a) for a in adapters]
        pending = [
            a.metadata.name
            for a in adapters
            if plan_training(a, LOCAL_TRAINER).action == Action.RUN
        ]
        runner.say(
            f"langmerge up: {len(adapters)} adapters, {len(merged)} merged models; "
            f"to train: {', '.join(pending) or 'nothing'}"
        )
        for adapter in sorted(adapters, key=lambda a: a.metadata.name):
            runner.train(adapter, phase)
        adapters = [runner.with_status(a) for a in adapters]
        tasks = sorted({m.spec.task for m in merged})
        for task in tasks:
            if compare_combined or task in _gated_against_combined(merged):
                runner.train_combined(task, adapters, phase)
        results = {m.metadata.name: runner.merge(m, adapters, phase) for m in merged}
        for task in tasks:
            models = [m for m in merged if m.spec.task == task]
            candidates: dict[str, str] = {}
            gated: list[str] = []
            for model in models:
                latest = _latest_candidate(runner, model, results[model.metadata.name][1])
                if latest:
                    candidates[model.metadata.name] = latest["uri"]
                    if latest["gatedOut"]:
                        gated.append(model.metadata.name)
            wanted = compare_combined or any(m.spec.evaluation for m in models)
            if wanted and (phase.ran_for(task) or task not in runner.state.evaluation):
                report = runner.evaluate(task, adapters, candidates)
                runner.state.evaluation[task] = {**report, "gatedOut": gated}
            for model in models:
                plan, result = results[model.metadata.name]
                runner.promote(model, adapters, plan, result)
        if processes.startup_seconds:
            runner.say(
                f"  warm process: imported the libraries once in "
                f"{processes.startup_seconds:.1f}s for every run above"
            )
        if phase.ran():
            phase.launcher_startup_seconds = round(processes.startup_seconds, 3)
            runner.state.phases.append(phase)
            runner.state.save(runner.state_path)
    finally:
        processes.close()
    text = render_report(runner.state, adapters, merged)
    (state_dir / "report.md").write_text(text)
    (state_dir / "report.json").write_text(
        json.dumps(report_data(runner.state, adapters, merged), indent=2)
    )
    runner.say(text)
    failed = [
        n
        for n, s in runner.state.adapters.items()
        if any(c["type"] == "Failed" and c["status"] == "True" for c in s.get("conditions", []))
    ]
    return 1 if failed else 0
