"""`langmerge up`: the same manifests, planner and command lines as the cluster, on this
machine. Two languages and few steps keep it short; the full quickstart is `make demo`."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from langmerge.operator.local import ManifestError, State, load_manifests, up
from tests.conftest import REPO

QUICKSTART = REPO / "examples" / "quickstart"


def _small_copy(tmp_path: Path) -> Path:
    """de and fr from the quickstart, 6 steps each, one knots-ties MergedModel with a gate."""
    folder = tmp_path / "manifests"
    (folder / "datasets").mkdir(parents=True)
    shutil.copytree(QUICKSTART / "datasets" / "sentiment", folder / "datasets" / "sentiment")
    for language in ("de", "fr"):
        doc = yaml.safe_load((QUICKSTART / f"sentiment-{language}.yaml").read_text())
        doc["spec"]["training"]["maxSteps"] = 6
        (folder / f"sentiment-{language}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    merged = next(yaml.safe_load_all((QUICKSTART / "merged.yaml").read_text()))
    merged["spec"]["evaluation"]["datasets"] = {
        k: v for k, v in merged["spec"]["evaluation"]["datasets"].items() if k in ("de", "fr")
    }
    (folder / "merged.yaml").write_text(yaml.safe_dump(merged, allow_unicode=True))
    return folder


def _run(folder: Path, state: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = up(folder, state, compare_combined=True, out=out)
    return code, out.getvalue()


def test_up_trains_merges_evaluates_and_then_updates_only_what_changed(tmp_path: Path) -> None:
    folder, state_dir = _small_copy(tmp_path), tmp_path / "state"
    code, first = _run(folder, state_dir)
    assert code == 0, first
    state = State.load(state_dir / "state.json")
    assert set(state.adapters) == {"sentiment-de", "sentiment-fr"}
    assert all(s["artifact"]["uri"].startswith(str(state_dir)) for s in state.adapters.values())
    knots = state.merged["sentiment-knots"]
    assert knots["lastUpdate"]["trigger"] == "initial merge"
    assert set(knots["evaluation"]["perLanguage"]) == {"de", "fr"}
    assert "f1" in knots["evaluation"]["perLanguage"]["de"]
    assert {"INDV de", "INDV fr", "COMB", "sentiment-knots"} <= set(state.evaluation["sentiment"])
    assert "Initial setup, time" in first and "Update one language" in first
    assert len(state.phases) == 1 and sorted(state.phases[0].trained) == [
        "sentiment-de",
        "sentiment-fr",
    ]

    code, again = _run(folder, state_dir)
    assert "to train: nothing" in again
    assert len(State.load(state_dir / "state.json").phases) == 1  # nothing ran, nothing recorded

    manifest = folder / "sentiment-de.yaml"
    manifest.write_text(
        manifest.read_text()
        .replace("de-train.jsonl", "de-train-v2.jsonl")
        .replace("revision: v1", "revision: v2")
    )
    code, update = _run(folder, state_dir)
    state = State.load(state_dir / "state.json")
    assert state.phases[-1].trained == ["sentiment-de"]  # only German retrained
    assert set(state.phases[-1].merges) == {"sentiment-knots"}
    last = state.merged["sentiment-knots"]["lastUpdate"]
    assert (
        last["retrainedAdapters"] == ["sentiment-de"]
        and last["trigger"] == "adapters: sentiment-de"
    )
    assert last["fullRetrainEstimateUsd"] > 0 and last["savingsRatio"] is not None
    assert "Update one language, training compute" in update
    assert (state_dir / "report.md").read_text().strip() == update[
        update.index("## Adapters") :
    ].strip()


def test_a_failing_gate_keeps_the_last_good_merged_model(tmp_path: Path) -> None:
    folder, state_dir = _small_copy(tmp_path), tmp_path / "state"
    assert _run(folder, state_dir)[0] == 0
    good = State.load(state_dir / "state.json").merged["sentiment-knots"]["artifact"]
    merged = yaml.safe_load((folder / "merged.yaml").read_text())
    merged["spec"]["parameters"]["density"] = 0.2
    merged["spec"]["evaluation"]["gate"]["maxRelativeDrop"] = 0.0  # nothing may drop at all
    merged["spec"]["evaluation"]["metrics"] = ["loss"]
    (folder / "merged.yaml").write_text(yaml.safe_dump(merged, allow_unicode=True))
    _, out = _run(folder, state_dir)
    status = State.load(state_dir / "state.json").merged["sentiment-knots"]
    assert (
        status["lastRun"]["result"] == "Failed" and "evaluation gate" in status["lastRun"]["reason"]
    )
    assert status["artifact"] == good  # still serving the last good merge
    assert "NOT PROMOTED" in out


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
