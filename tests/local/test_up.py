"""`langmerge up` on a scaled-down quickstart: two languages of the shared-structure task and
two of the negative control, the same manifests, planner and command lines as the cluster.
The full quickstart is `make demo`.

Heavy work runs once per module (a warm run, and a cold run for the determinism check); the
tests read what those runs left. The module's timeout is generous because a busy 2-core
machine can be several times slower than a quiet one; nothing here is timed."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from langmerge.common.precision import FORCE_VARIABLE
from langmerge.operator.api.common import RunResult
from langmerge.operator.local import ManifestError, State, load_manifests, up
from langmerge.operator.local.state import TaskEvaluation
from tests.conftest import REPO

QUICKSTART = REPO / "examples" / "quickstart"
# task -> (manifest prefix, languages). The control's languages share no script and no
# cognates (EN and DE do share some: Hotel, Service, Museum), so there it shares nothing.
TASKS = {"sentiment": ("sentiment", ("en", "de")), "sentiment-isolated": ("isolated", ("en", "ja"))}
LINES = {"train": 96, "train-v2": 120, "eval": 80}
MERGED = ("sentiment-knots", "isolated-knots")


def _patience_s(quiet_s: float) -> float:
    """A hang guard, not a speed check: the quiet machine's bound times the run queue per core
    when the module is collected (a load of 10 on 2 cores makes everything 5x slower)."""
    return quiet_s * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


pytestmark = pytest.mark.timeout(_patience_s(1800))


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_run() -> Iterator[None]:
    """Every run with one intra-op thread: on a busy machine two threads spin waiting for a
    descheduled peer (the training loop measured 3.7x slower at load 10); one thread gives the
    same bits, warm or cold, and the same behaviour on a quiet machine."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LANGMERGE_TORCH_THREADS", "1")
        yield


def _scaled_quickstart(folder: Path) -> Path:
    """Two languages per task, fewer examples; everything else as in examples/quickstart."""
    for task, (prefix, languages) in TASKS.items():
        data = folder / "datasets" / task
        data.mkdir(parents=True)
        for language in languages:
            for split, count in LINES.items():
                source = QUICKSTART / "datasets" / task / f"{language}-{split}.jsonl"
                lines = source.read_text(encoding="utf-8").splitlines()[:count]
                (data / source.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
            manifest = QUICKSTART / f"{prefix}-{language}.yaml"
            (folder / manifest.name).write_text(manifest.read_text(encoding="utf-8"))
    documents = []
    for document in yaml.safe_load_all((QUICKSTART / "merged.yaml").read_text()):
        if document["metadata"]["name"] in MERGED:
            languages = TASKS[document["spec"]["task"]][1]
            datasets = document["spec"]["evaluation"]["datasets"]
            document["spec"]["evaluation"]["datasets"] = {
                k: v for k, v in datasets.items() if k in languages
            }
            documents.append(document)
    (folder / "merged.yaml").write_text(yaml.safe_dump_all(documents, allow_unicode=True))
    return folder


def _run(folder: Path, state: Path, warm: bool = True) -> tuple[int, str]:
    out = io.StringIO()
    code = up(folder, state, compare_combined=True, out=out, warm=warm)
    return code, out.getvalue()


@dataclass
class Runs:
    folder: Path
    warm_state: Path
    cold_state: Path
    warm_output: str
    warm_evaluation: dict[str, TaskEvaluation]
    cold_evaluation: dict[str, TaskEvaluation]
    report: dict[str, Any]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("up")
    folder = _scaled_quickstart(root / "manifests")
    warm_state, cold_state = root / "warm", root / "cold"
    code, output = _run(folder, warm_state, warm=True)
    assert code == 0, output
    warm_evaluation = State.load(warm_state / "state.json").evaluation
    code, cold_output = _run(folder, cold_state, warm=False)
    assert code == 0, cold_output
    return Runs(
        folder,
        warm_state,
        cold_state,
        output,
        warm_evaluation,
        State.load(cold_state / "state.json").evaluation,
        json.loads((warm_state / "report.json").read_text()),
    )


def _row(report: dict[str, Any], task: str, name: str) -> dict[str, Any]:
    rows = report["tasks"][task]["evaluation"]["rows"]
    return next(r for r in rows if r["name"].startswith(name))


def test_merging_keeps_quality_where_the_languages_share_structure(runs: Runs) -> None:
    merged = _row(runs.report, "sentiment", "sentiment-knots")
    base = _row(runs.report, "sentiment", "BASE")
    assert not merged["gatedOut"]
    assert merged["mean"] > base["mean"] + 0.2, (merged["mean"], base["mean"])
    combined = _row(runs.report, "sentiment", "COMB")
    assert merged["mean"] >= combined["mean"] - 0.05, (merged["mean"], combined["mean"])
    state = State.load(runs.warm_state / "state.json")
    knots = state.merged["sentiment-knots"]
    assert knots.artifact is not None and knots.artifact.uri.startswith(str(runs.warm_state))
    assert knots.evaluation and knots.evaluation.gate and knots.evaluation.gate.passed is True
    assert knots.last_update and knots.last_update.trigger == "initial merge"


def test_the_gate_blocks_the_negative_control_and_the_report_says_why(runs: Runs) -> None:
    control = _row(runs.report, "sentiment-isolated", "isolated-knots")
    comb = _row(runs.report, "sentiment-isolated", "COMB")
    assert control["gatedOut"] and control["gate"]["passed"] is False
    assert "the combined model (COMB)" in control["gate"]["reason"]
    assert control["mean"] < comb["mean"] - 0.05
    status = State.load(runs.warm_state / "state.json").merged["isolated-knots"]
    assert status.artifact is None  # nothing was promoted
    assert "isolated-knots (gated out)" in runs.warm_output
    assert "BLOCKED: " in runs.warm_output


def test_the_report_has_every_row_with_intervals_and_the_transfer_matrix(runs: Runs) -> None:
    evaluation = runs.report["tasks"]["sentiment"]["evaluation"]
    names = [r["name"] for r in evaluation["rows"]]
    assert names[:4] == [
        "BASE (no adapter)",
        "chance (uniform guess)",
        "INDV (own language)",
        "COMB",
    ]
    languages = TASKS["sentiment"][1]
    for row in evaluation["rows"]:
        for language in languages:
            cell = row["perLanguage"][language]
            if row["kind"] != "chance":
                assert cell["f1Low"] <= cell["f1"] <= cell["f1High"]
            assert cell["n"] == LINES["eval"]
    assert set(evaluation["transfer"]) == set(languages)
    assert all(set(per) == set(languages) for per in evaluation["transfer"].values())
    initial = runs.report["tasks"]["sentiment"]["research"]["initialSetup"]
    assert initial["launcher"] == "warm" and initial["combined"]["trainingComputeSeconds"] > 0
    assert (runs.warm_state / "report.md").read_text().strip() == runs.warm_output[
        runs.warm_output.index("## Adapters") :
    ].strip()


def test_two_runs_warm_or_cold_print_the_same_evaluation(runs: Runs) -> None:
    """Seeds, deterministic kernels and a fixed thread count: the same bits every time, and the
    warm process runs exactly what a new process would. (Where the artifacts lie differs: each
    run has its own state folder.)"""
    assert runs.warm_evaluation.keys() == runs.cold_evaluation.keys()
    for task, warm in runs.warm_evaluation.items():
        cold = runs.cold_evaluation[task]
        assert (warm.models, warm.means, warm.chance, warm.gated_out) == (
            cold.models,
            cold.means,
            cold.chance,
            cold.gated_out,
        ), task


def test_an_update_retrains_only_what_changed(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    shutil.copytree(runs.folder, folder)
    state_dir = tmp_path / "state"
    shutil.copytree(runs.warm_state, state_dir)
    assert "warm process: imported the libraries once" in runs.warm_output
    code, again = _run(folder, state_dir)
    assert code == 0 and "to train: nothing" in again
    assert "warm process: imported" not in again  # nothing to run: no imports paid
    assert len(State.load(state_dir / "state.json").phases) == 1  # nothing ran, nothing recorded

    manifest = folder / "sentiment-de.yaml"
    manifest.write_text(
        manifest.read_text()
        .replace("de-train.jsonl", "de-train-v2.jsonl")
        .replace("revision: v1", "revision: v2")
    )
    code, update = _run(folder, state_dir)
    state = State.load(state_dir / "state.json")
    assert [r.name for r in state.phases[-1].trained] == ["sentiment-de"]  # only German
    assert [r.name for r in state.phases[-1].merges] == ["sentiment-knots"]
    last = state.merged["sentiment-knots"].last_update
    assert last is not None and last.retrained_adapters == ["sentiment-de"]
    assert last.full_retrain_estimate_usd and last.full_retrain_estimate_usd > 0
    assert last.savings_ratio is not None
    research = json.loads((state_dir / "report.json").read_text())["tasks"]["sentiment"]
    update_row = research["research"]["updateOneLanguage"]
    assert update_row["mergedRan"].startswith("1 adapter(s) (sentiment-de) + 1 merge")
    # The saving itself is a measured time, a figure for `make demo` and the README, not a
    # test assertion: on a busy machine it moved from -25 % to -14 % (load average 11).
    assert update_row["change"]["trainingComputeSeconds"] is not None
    assert "Update one language, training compute" in update


def test_scoring_in_bf16_re_merges_and_re_scores_the_task_that_asks_for_it(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FORCE_VARIABLE, "force")  # bf16 even on a CPU without bf16 kernels
    folder = tmp_path / "manifests"
    shutil.copytree(runs.folder, folder)
    state_dir = tmp_path / "state"
    shutil.copytree(runs.warm_state, state_dir)
    documents = list(yaml.safe_load_all((folder / "merged.yaml").read_text()))
    knots = next(d for d in documents if d["metadata"]["name"] == "sentiment-knots")
    knots["spec"]["evaluation"]["precision"] = "bf16"
    (folder / "merged.yaml").write_text(yaml.safe_dump_all(documents, allow_unicode=True))
    code, out = _run(folder, state_dir)
    assert code == 0, out
    state = State.load(state_dir / "state.json")
    assert [r.name for r in state.phases[-1].trained] == []  # training does not change
    assert [r.name for r in state.phases[-1].merges] == ["sentiment-knots"]  # its gate does
    rescored, before = state.evaluation["sentiment"], runs.warm_evaluation["sentiment"]
    assert rescored.inputs["precision"] == "bf16"
    assert rescored.models.keys() == before.models.keys()
    for name, languages in rescored.models.items():  # every model, scored in bf16 now
        for language, metrics in languages.items():
            assert metrics["loss"] != before.models[name][language]["loss"], (name, language)
    # the other task asked for nothing: its scores stand as they were
    assert state.evaluation["sentiment-isolated"] == runs.warm_evaluation["sentiment-isolated"]


def _rerun_with_knots_changed(
    runs: Runs, tmp_path: Path, change: Callable[[dict[str, Any]], None]
) -> tuple[str, Any, Any]:
    """The warm run again with sentiment-knots' manifest changed (change(document)):
    the loop's output, sentiment-knots' status after it, and its artifact before it."""
    folder = tmp_path / "manifests"
    shutil.copytree(runs.folder, folder)
    state_dir = tmp_path / "state"
    shutil.copytree(runs.warm_state, state_dir)
    good = State.load(state_dir / "state.json").merged["sentiment-knots"].artifact
    documents = list(yaml.safe_load_all((folder / "merged.yaml").read_text()))
    knots = next(d for d in documents if d["metadata"]["name"] == "sentiment-knots")
    knots["spec"]["parameters"]["density"] = 0.2  # a new merge is due
    change(knots)
    (folder / "merged.yaml").write_text(yaml.safe_dump_all(documents, allow_unicode=True))
    _, out = _run(folder, state_dir)
    return out, State.load(state_dir / "state.json").merged["sentiment-knots"], good


def test_a_failing_gate_keeps_the_last_good_merged_model(runs: Runs, tmp_path: Path) -> None:
    def strict_gate(knots: dict[str, Any]) -> None:
        # COMB's loss is far below any merge's here: at a margin of 0 the gate must refuse.
        knots["spec"]["evaluation"]["gate"] = {"against": "combined", "maxDrop": 0.0}
        knots["spec"]["evaluation"]["metrics"] = ["loss"]

    out, status, good = _rerun_with_knots_changed(runs, tmp_path, strict_gate)
    assert status.last_run is not None and status.last_run.result == RunResult.FAILED
    assert "evaluation gate" in (status.last_run.reason or "")
    assert good is not None and status.artifact == good  # still serving the last good merge
    assert "NOT PROMOTED" in out


def test_a_merge_that_fails_keeps_the_last_good_model_and_names_the_field(
    runs: Runs, tmp_path: Path
) -> None:
    missing = tmp_path / "manifests" / "datasets" / "sentiment" / "gone.jsonl"

    def missing_dataset(knots: dict[str, Any]) -> None:
        knots["spec"]["evaluation"]["datasets"]["de"] = str(missing)

    out, status, good = _rerun_with_knots_changed(runs, tmp_path, missing_dataset)
    assert status.last_run is not None and status.last_run.result == RunResult.FAILED
    assert good is not None and status.artifact == good
    assert (
        f"  FAILED sentiment-knots: --evaluate de={missing} (spec.evaluation.datasets.de): "
    ) in out
    assert "NOT PROMOTED" not in out


def test_bad_manifests_name_the_object_the_field_and_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    doc = yaml.safe_load((QUICKSTART / "sentiment-de.yaml").read_text())
    doc["spec"]["lora"]["rank"] = 0
    (folder / "de.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ManifestError) as error:
        load_manifests(folder)
    message = str(error.value)
    assert "LanguageAdapter sentiment-de (de.yaml)" in message
    assert "spec.lora.rank" in message and "got 0" in message and "fix the manifest" in message
    (folder / "de.yaml").write_text(
        json.dumps(doc).replace('"rank": 0', '"rank": 8')
        + "\n---\n"
        + json.dumps(doc).replace('"rank": 0', '"rank": 8')
    )
    with pytest.raises(ManifestError, match="defined twice"):
        load_manifests(folder)


def test_a_state_folder_from_another_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    state_dir = tmp_path / "old"
    state_dir.mkdir()
    (state_dir / "state.json").write_text(json.dumps({"adapters": {}, "phases": []}))
    with pytest.raises(ManifestError, match=r"remove .*old"):
        State.load(state_dir / "state.json")
