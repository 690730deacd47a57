"""The embedded default: `langmerge up -f DIR` runs the whole loop on this machine.

The local executor: the same manifests (validated by the same models), the same planner, the
same command lines (run as subprocesses instead of Jobs) and the same ledger as the cluster.
State lives in a folder (default .langmerge/): statuses in the CRDs' own shape, artifacts, logs,
and the measured phases that the report's research table is built from.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, NamedTuple, TypeVar

from langmerge.common.reproducible import THREADS_VARIABLE
from langmerge.common.scoring import GENERATION_METRICS
from langmerge.common.summary import (
    EvaluationSummary,
    MergeSummary,
    RunSummary,
    TrainingSummary,
    parse_summary,
)
from langmerge.operator.api.adapter import LanguageAdapter, LanguageAdapterStatus
from langmerge.operator.api.common import ActiveJob, BaseModelRef, RunRecord
from langmerge.operator.api.merged import GateBaseline, MergedModel, MergedModelStatus
from langmerge.operator.clock import now
from langmerge.operator.cost import DEFAULT_PRICES, cost_usd
from langmerge.operator.jobs import merge_args, training_args
from langmerge.operator.ledger import (
    apply_merge_run,
    apply_progress,
    apply_training_run,
    run_record,
    settle_adapter,
    settle_merged,
)
from langmerge.operator.local.manifests import load_manifests
from langmerge.operator.local.processes import Launcher, launcher
from langmerge.operator.local.state import (
    Candidate,
    CombinedBaseline,
    Phase,
    RunFigures,
    State,
    TaskEvaluation,
    failed,
)
from langmerge.operator.metrics import Metrics
from langmerge.operator.outcome import progress_line
from langmerge.operator.planner import GATE_REASON_PREFIX, Action, plan_merge, plan_training

# Locally the "images" are this installation's commands; they enter fingerprints as such.
LOCAL_TRAINER = "local:langmerge-train"
LOCAL_MERGER = "local:langmerge-merge"


S = TypeVar("S", bound=RunSummary)


class Execution(NamedTuple, Generic[S]):
    """A finished run of a command line: whether it worked, its wall time and summary."""

    ok: bool
    seconds: float
    summary: S | None
    reason: str
    log: Path


class FinishedMerge(NamedTuple):
    execution: Execution[MergeSummary]
    run: RunRecord
    inputs: dict[str, str]  # adapter name -> the fingerprint it merged


@dataclass
class LocalRunner:
    directory: Path
    state_dir: Path
    launcher: Launcher
    compare_combined: bool = False
    metrics: Metrics | None = None
    out: IO[str] = field(default=sys.stdout)
    eval_limit: int | None = None  # the first N held-out examples per language
    # Intra-op threads of every run (LANGMERGE_TORCH_THREADS where set, else every core). On a
    # machine busy with other work, 1 avoids threads that spin waiting for a descheduled peer.
    cores: int = field(
        default_factory=lambda: int(os.environ.get(THREADS_VARIABLE) or os.cpu_count() or 1)
    )

    def __post_init__(self) -> None:
        self.state_path = self.state_dir / "state.json"
        self.state = State.load(self.state_path)
        self.price = DEFAULT_PRICES.price(None, 0)
        self.interactive = self.out.isatty()
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

    def _progress(
        self, label: str, line: str, on_step: Callable[[dict[str, Any]], None] | None
    ) -> None:
        step = progress_line(line)  # the trainer's progress lines
        if step is None:
            return
        if on_step is not None:
            on_step(step)
        if self.interactive:
            print(
                f"\r  {label}: step {step['step']}/{step['totalSteps']} loss {step['loss']:.4f}",
                end="",
                file=self.out,
                flush=True,
            )

    def _execute(
        self,
        label: str,
        command_line: list[str],
        model: type[S],
        on_step: Callable[[dict[str, Any]], None] | None = None,
    ) -> Execution[S]:
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
                lambda line: self._progress(label, line, on_step),
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

    def _core_seconds(self, seconds: float) -> float:
        return seconds * self.cores  # CPU runs are priced per core-hour

    def _figures(self, name: str, task: str, seconds: float, loop_seconds: float) -> RunFigures:
        core_seconds = self._core_seconds(seconds)
        return RunFigures(
            name=name,
            task=task,
            seconds=round(seconds, 3),
            core_seconds=round(core_seconds, 3),
            cost_usd=cost_usd(core_seconds, self.price),
            loop_seconds=round(loop_seconds, 3),
        )

    def _record(self, job: str, fingerprint: str, execution: Execution[S]) -> RunRecord:
        finished = now()
        summary = execution.summary
        succeeded = execution.ok and summary is not None and summary.output is not None
        reason = execution.reason
        if execution.ok and not succeeded:
            reason = f"the run reported no output; see {execution.log}"
        return run_record(
            job,
            fingerprint,
            succeeded=succeeded,
            started_at=finished.fromtimestamp(
                finished.timestamp() - execution.seconds, finished.tzinfo
            ),
            finished_at=finished,
            billed_seconds=self._core_seconds(execution.seconds),
            price=self.price,
            price_override_usd=None,
            reason=reason,
            summary=summary,
        )

    # --- adapters -----------------------------------------------------------------------------
    def with_status(self, adapter: LanguageAdapter) -> LanguageAdapter:
        """The adapter with its status as recorded in the state folder."""
        return adapter.model_copy(update={"status": self.state.adapters.get(adapter.metadata.name)})

    def train(self, adapter: LanguageAdapter, phase: Phase) -> None:
        plan = plan_training(adapter, LOCAL_TRAINER)
        status = (adapter.status or LanguageAdapterStatus()).model_copy(deep=True)
        if self.metrics:
            self.metrics.seed(adapter, status.totals, gpus=0)
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
            # Visible while it runs (`langmerge status`): phase Training, then its progress.
            settle_adapter(status, plan, adapter.metadata.generation)
            self._keep(adapter.metadata.name, status)

            def progressed(line: dict[str, Any]) -> None:
                before = status.progress
                apply_progress(status, line)
                if status.progress is not before:
                    self._keep(adapter.metadata.name, status)

            self.say(f"  train {adapter.metadata.name} ({adapter.spec.language}) ...")
            execution = self._execute(
                plan.job,
                [
                    "langmerge-train",
                    *training_args(spec, output, checkpoints, plan.fingerprint, None),
                ],
                TrainingSummary,
                progressed,
            )
            run = self._record(plan.job, plan.fingerprint, execution)
            apply_training_run(status, run, plan.fingerprint)
            if execution.ok and execution.summary:
                loop = execution.summary.trainSeconds or 0.0
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
                self.metrics.record_run(adapter, run, gpus=0)  # priced per core-hour here
        plan = plan_training(adapter.model_copy(update={"status": status}), LOCAL_TRAINER)
        settle_adapter(status, plan, adapter.metadata.generation)
        self._keep(adapter.metadata.name, status)

    def _keep(self, name: str, status: LanguageAdapterStatus) -> None:
        self.state.adapters[name] = status.model_copy(deep=True)
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
        existing = self.state.combined.get(task)
        if existing is not None and existing.fingerprint == fingerprint:
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
        loop = execution.summary.trainSeconds or 0.0
        figures = self._figures(f"COMB {task}", task, execution.seconds, loop)
        phase.combined.append(figures)
        self.combined_cost[task] = figures.cost_usd
        self.state.combined[task] = CombinedBaseline(
            fingerprint=fingerprint, uri=execution.summary.output.uri
        )
        self.state.save(self.state_path)
        self.say(
            f"  trained the combined baseline in {execution.seconds:.1f}s "
            f"(training loop {loop:.1f}s)"
        )

    # --- merges -------------------------------------------------------------------------------
    def with_merge_status(self, merged: MergedModel) -> MergedModel:
        """The merged model with its status as recorded in the state folder."""
        return merged.model_copy(update={"status": self.state.merged.get(merged.metadata.name)})

    def merge(
        self, merged: MergedModel, adapters: list[LanguageAdapter], phase: Phase
    ) -> FinishedMerge | None:
        """Runs the merge when the plan asks for one; its outcome is promoted (or not) later,
        after the evaluation, by promote()."""
        merged = self.with_merge_status(merged)
        plan = plan_merge(merged, adapters, LOCAL_TRAINER, LOCAL_MERGER)
        if plan.action != Action.RUN:
            return None
        output = self._artifact(merged.metadata.name, plan.fingerprint)
        how = (
            f"a search of {merged.spec.search.count()} candidates"
            if merged.spec.search
            else merged.spec.method
        )
        self.say(f"  merge {merged.metadata.name} ({how}, {len(plan.inputs)} adapters) ...")
        spec = merged.spec.model_copy(deep=True)
        if spec.evaluation and spec.evaluation.datasets:
            spec.evaluation.datasets = {
                k: self._path(v) for k, v in spec.evaluation.datasets.items()
            }
        if spec.search:
            spec.search.validation = {k: self._path(v) for k, v in spec.search.validation.items()}
        if spec.base_model.uri:
            spec.base_model.uri = self._path(spec.base_model.uri)
        current = merged.status.artifact.uri if merged.status and merged.status.artifact else None
        combined = self.state.combined.get(merged.spec.task)
        rejected = self._artifact(merged.metadata.name, plan.fingerprint, "rejected")
        execution = self._execute(
            plan.job,
            [
                "langmerge-merge",
                *merge_args(
                    spec, plan, output, None, "cpu", current, combined.uri if combined else None
                ),
                "--rejected-output",
                rejected,
            ],
            MergeSummary,
        )
        run = self._record(plan.job, plan.fingerprint, execution)
        # The research table compares training with training: the gate's evaluation inside
        # the merge process is left out of it (the run's own cost keeps it).
        summary = execution.summary
        evaluating = (summary.evaluationSeconds or 0.0) if summary else 0.0
        wall = (summary.wallSeconds or 0.0) if summary else 0.0
        phase.merges.append(
            self._figures(
                merged.metadata.name,
                merged.spec.task,
                max(execution.seconds - evaluating, 0.0),
                max(wall - evaluating, 0.0),
            )
        )
        return FinishedMerge(execution, run, {i.name: i.fingerprint for i in plan.inputs})

    def promote(
        self,
        merged: MergedModel,
        adapters: list[LanguageAdapter],
        finished: FinishedMerge | None,
    ) -> None:
        """Applies the merge that ran (if any) to the model's status: its artifact is served
        when it succeeded and passed its gate."""
        status = self.state.merged.get(merged.metadata.name) or MergedModelStatus()
        if self.metrics:
            self.metrics.seed(merged, status.totals, gpus=0)
        if finished is not None:
            run = finished.run
            applied = apply_merge_run(
                status, run, finished.inputs, adapters, self.combined_cost.get(merged.spec.task)
            )
            if applied.update is None:
                # A gate's refusal is a verdict on a merge that worked; anything else failed it.
                refused = (run.reason or "").startswith(GATE_REASON_PREFIX)
                verdict = "NOT PROMOTED" if refused else "FAILED"
                self.say(f"  {verdict} {merged.metadata.name}: {run.reason}")
            elif self.metrics:
                self.metrics.record_update(merged, applied.update)
            if self.metrics:
                self.metrics.record_run(merged, run, gpus=0)
        plan = plan_merge(
            merged.model_copy(update={"status": status}), adapters, LOCAL_TRAINER, LOCAL_MERGER
        )
        settle_merged(status, plan, merged.metadata.generation)
        self.state.merged[merged.metadata.name] = status
        self.state.save(self.state_path)

    def latest_candidate(
        self, merged: MergedModel, finished: FinishedMerge | None
    ) -> Candidate | None:
        """Records the merge output this run produced (promoted, or kept apart by its gate)
        and returns the model's latest one."""
        name = merged.metadata.name
        if finished is not None:
            execution = finished.execution
            summary = execution.summary
            if execution.ok and summary and summary.output:
                self.state.candidates[name] = Candidate(uri=summary.output.uri, gated_out=False)
            elif summary and summary.rejectedOutput:
                self.state.candidates[name] = Candidate(uri=summary.rejectedOutput, gated_out=True)
        return self.state.candidates.get(name)

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(
        self,
        task: str,
        adapters: list[LanguageAdapter],
        candidates: dict[str, str],
        generation: bool = False,
        precision: str = "fp32",
    ) -> TaskEvaluation | None:
        """BASE, each INDV adapter, COMB and the merged candidates on every language's
        held-out split (so INDV rows are also the transfer matrix); by generation (ROUGE)
        when the task's merged models are measured so, in their scoring precision."""
        members = sorted(
            (a for a in adapters if a.spec.task == task and a.spec.dataset.eval_uri),
            key=lambda a: a.spec.language,
        )
        if not members:
            return None
        models = {"BASE": ""}
        for adapter in members:
            artifact = adapter.status.artifact if adapter.status else None
            if artifact:
                models[f"INDV {adapter.spec.language}"] = artifact.uri
        if task in self.state.combined:
            models["COMB"] = self.state.combined[task].uri
        models.update(candidates)
        base = members[0].spec.base_model
        datasets = {}
        for adapter in members:
            assert adapter.spec.dataset.eval_uri is not None
            datasets[adapter.spec.language] = self._path(adapter.spec.dataset.eval_uri)
        # Scores of the same model on the same data carry over: an update re-scores only the
        # models it changed (artifact URIs carry their fingerprints).
        inputs: dict[str, Any] = {
            "baseModel": base.uri or base.name,
            "datasets": datasets,
            "limit": self.eval_limit,
        }
        if precision != "fp32":  # absent: fp32, as in states written before the option
            inputs["precision"] = precision
        earlier = self.state.evaluation.get(task)
        kept: dict[str, dict[str, dict[str, float]]] = {}  # model -> language -> metrics
        kept_means: dict[str, dict[str, float]] = {}
        if earlier and earlier.inputs == inputs:
            kept = {
                name: earlier.models[name]
                for name, uri in models.items()
                if earlier.uris.get(name) == uri and name in earlier.models
            }
            kept_means = {name: earlier.means[name] for name in kept if name in earlier.means}
        to_score = {name: uri for name, uri in models.items() if name not in kept}
        evaluation = TaskEvaluation(inputs=inputs, uris=models)
        if earlier and kept:
            evaluation.chance = earlier.chance
        if to_score:
            scored = self._score(task, base, to_score, datasets, generation, precision, len(kept))
            if scored is None:
                return None
            evaluation.models, evaluation.chance = scored.models, scored.chance
            evaluation.means = scored.means
        evaluation.models = {name: (kept | evaluation.models)[name] for name in models}
        means = kept_means | evaluation.means
        evaluation.means = {name: means[name] for name in models if name in means}
        return evaluation

    def _score(
        self,
        task: str,
        base: BaseModelRef,
        models: dict[str, str],
        datasets: dict[str, str],
        generation: bool,
        precision: str,
        kept: int,
    ) -> TaskEvaluation | None:
        output = self.state_dir / f"evaluation-{task}.json"
        args = [
            "langmerge-eval",
            "--base-model",
            self._path(base.uri) if base.uri else base.name,
            "--output",
            str(output),
            *(["--generation"] if generation else []),
            *(["--limit", str(self.eval_limit)] if self.eval_limit else []),
            *(["--precision", precision] if precision != "fp32" else []),
        ]
        for name, uri in models.items():
            args += ["--model", f"{name}={uri}"]
        for language, uri in datasets.items():
            args += ["--dataset", f"{language}={uri}"]
        self.say(
            f"  evaluate {len(models)} models on {len(datasets)} languages ({task})"
            + (f"; {kept} unchanged keep their scores" if kept else "")
            + " ..."
        )
        execution = self._execute(f"evaluate-{task}", args, EvaluationSummary)
        if not execution.ok:
            self.say(f"  FAILED evaluation: {execution.reason}")
            return None
        return TaskEvaluation.model_validate_json(output.read_text())


def _by_generation(merged: list[MergedModel]) -> bool:
    """A task whose merged models are measured by ROUGE is scored by generation."""
    return any(
        metric in GENERATION_METRICS
        for m in merged
        if m.spec.evaluation
        for metric in m.spec.evaluation.metrics or []
    )


def _scoring_precision(merged: list[MergedModel]) -> str:
    """A task's models are scored in bf16 when every merged model of it that is evaluated
    asks for bf16 (spec.evaluation.precision), else in fp32, the exact default."""
    asked = {m.spec.evaluation.precision or "fp32" for m in merged if m.spec.evaluation is not None}
    return "bf16" if asked == {"bf16"} else "fp32"


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
    out: IO[str] = sys.stdout,
    warm: bool | None = None,
    eval_limit: int | None = None,
) -> int:
    """One pass of the loop: train what changed, merge what is stale, evaluate, report."""
    from langmerge.operator.local.report import render_report, report_data

    adapters, merged = load_manifests(directory)
    processes = launcher(warm)
    try:
        runner = LocalRunner(
            directory.resolve(),
            state_dir,
            processes,
            compare_combined,
            metrics,
            out,
            eval_limit=eval_limit,
        )
        phase = Phase(started_at=now().isoformat(), launcher=processes.kind)
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
        merges = {m.metadata.name: runner.merge(m, adapters, phase) for m in merged}
        for task in tasks:
            models = [m for m in merged if m.spec.task == task]
            candidates: dict[str, str] = {}
            gated: list[str] = []
            for model in models:
                latest = runner.latest_candidate(model, merges[model.metadata.name])
                if latest:
                    candidates[model.metadata.name] = latest.uri
                    if latest.gated_out:
                        gated.append(model.metadata.name)
            wanted = compare_combined or any(m.spec.evaluation for m in models)
            earlier = runner.state.evaluation.get(task)
            precision = _scoring_precision(models)
            stale = (
                earlier is None
                or earlier.inputs.get("limit") != eval_limit
                or earlier.inputs.get("precision", "fp32") != precision
            )
            if wanted and (phase.ran_for(task) or stale):
                evaluation = (
                    runner.evaluate(task, adapters, candidates, _by_generation(models), precision)
                    or TaskEvaluation()
                )
                evaluation.gated_out = gated
                runner.state.evaluation[task] = evaluation
            for model in models:
                runner.promote(model, adapters, merges[model.metadata.name])
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
    return 1 if any(failed(s.conditions) for s in runner.state.adapters.values()) else 0
