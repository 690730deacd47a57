"""`langmerge up` with a MergedModel whose spec.search sweeps merges: the same command line
and summary contract as the cluster's merge Job, the winner served, its search in status and
in the report (every candidate, from the artifact's langmerge.json)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import yaml

from langmerge.operator.local import State, up
from tests.conftest import REPO

QUICKSTART = REPO / "examples" / "quickstart"
LANGUAGES = ("de", "en")

pytestmark = pytest.mark.timeout(
    900 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))  # a hang guard, not a timer
)


def _folder(root: Path) -> Path:
    data = root / "datasets" / "sentiment"
    data.mkdir(parents=True)
    for language in LANGUAGES:
        source = QUICKSTART / "datasets" / "sentiment"
        train = (source / f"{language}-train.jsonl").read_text("utf-8").splitlines()[:48]
        held = (source / f"{language}-eval.jsonl").read_text("utf-8").splitlines()
        (data / f"{language}-train.jsonl").write_text("\n".join(train) + "\n")
        (data / f"{language}-validation.jsonl").write_text("\n".join(held[:16]) + "\n")
        (data / f"{language}-eval.jsonl").write_text("\n".join(held[16:40]) + "\n")
        manifest = yaml.safe_load((QUICKSTART / f"sentiment-{language}.yaml").read_text())
        manifest["spec"]["training"]["epochs"] = 1
        manifest["spec"]["dataset"].pop("evalUri")
        (root / f"sentiment-{language}.yaml").write_text(yaml.safe_dump(manifest))
    merged = {
        "apiVersion": "langmerge.io/v1alpha1",
        "kind": "MergedModel",
        "metadata": {"name": "sentiment-searched"},
        "spec": {
            "baseModel": {"name": "builtin:tiny"},
            "task": "sentiment",
            "adapters": {"selector": {"matchLabels": {"langmerge.io/task": "sentiment"}}},
            "search": {
                "grid": [
                    {"method": "knots-ties", "densities": [0.3, 0.7], "lambdas": [1.0, 1.5]},
                    {"method": "linear", "weights": [{"preset": "examples"}]},
                ],
                "metric": "f1",
                "aggregate": "worst",
                "validation": {
                    lang: f"datasets/sentiment/{lang}-validation.jsonl" for lang in LANGUAGES
                },
            },
            "evaluation": {
                "datasets": {lang: f"datasets/sentiment/{lang}-eval.jsonl" for lang in LANGUAGES},
                "metrics": ["f1"],
            },
            "resources": {"gpus": 0, "cpu": 2},
        },
    }
    (root / "merged.yaml").write_text(yaml.safe_dump(merged))
    return root


def test_a_search_in_the_local_loop_serves_its_winner_and_reports_every_candidate(
    tmp_path: Path,
) -> None:
    folder, state_dir = _folder(tmp_path / "manifests"), tmp_path / "state"
    out = io.StringIO()
    code = up(folder, state_dir, out=out)
    assert code == 0, out.getvalue()
    assert "merge sentiment-searched (a search of 5 candidates, 2 adapters)" in out.getvalue()
    status = State.load(state_dir / "state.json").merged["sentiment-searched"]
    assert status.search is not None and status.artifact is not None
    assert (status.search.evaluated, status.search.failed) == (5, 0)
    record = json.loads((Path(status.artifact.uri) / "langmerge.json").read_text())
    assert record["search"]["winner"]["index"] == status.search.winner.index
    rows = record["search"]["candidates"]
    assert [r["index"] for r in rows] == list(range(5))
    assert rows[4]["weights"] == "examples"  # the adapters recorded their training examples
    for row in rows:  # worst language, as asked
        assert row["score"] == pytest.approx(min(row["perLanguage"].values()), abs=1e-6)
    assert status.search.winner.score == max(r["score"] for r in rows)
    report = (state_dir / "report.md").read_text()
    assert "## sentiment-searched (search of 5): " in report
    assert "search: 5 candidates merged and scored on validation data (0 failed)" in report
    assert report.count("| knots-ties ") == 4 and report.count("| linear ") == 1
