"""The contract between the images and the operator: the summary JSON the real trainer and
merger write parses with the operator's models, and fits a termination message."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from langmerge.common.summary import MergeSummary, TrainingSummary, parse_summary
from langmerge.merger.cli import GateFailedError
from langmerge.merger.cli import main as merge_main
from langmerge.operator.planner import GATE_REASON_PREFIX
from langmerge.trainer.cli import main as train_main
from tests.support.adapters import make_adapter


def test_trainer_and_merger_summaries_parse_with_the_operators_models(tmp_path: Path) -> None:
    data = tmp_path / "de.jsonl"
    data.write_text(
        "\n".join(json.dumps({"prompt": f"p{i}", "response": "positive"}) for i in range(8))
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            train_main(
                [
                    "--base-model",
                    "builtin:tiny",
                    "--task",
                    "t",
                    "--dataset",
                    str(data),
                    "--max-steps",
                    "2",
                    "--output",
                    str(tmp_path / "adapter"),
                    "--summary-file",
                    str(tmp_path / "train.json"),
                ]
            )
            == 0
        )
    training = parse_summary((tmp_path / "train.json").read_text(), TrainingSummary)
    assert isinstance(training, TrainingSummary) and training.result == "Succeeded"
    assert training.output is not None and training.output.uri == str(tmp_path / "adapter")
    assert training.tokensPerSecond and training.steps == 2

    shapes = {"model.layers.0.self_attn.q_proj": (8, 8)}
    adapters = [make_adapter(tmp_path / n, shapes, seed=i) for i, n in enumerate(("a", "b"))]
    args = [arg for a in adapters for arg in ("--adapter", str(a))]
    assert (
        merge_main(
            [
                *args,
                "--output",
                str(tmp_path / "merged"),
                "--summary-file",
                str(tmp_path / "merge.json"),
            ]
        )
        == 0
    )
    merged = parse_summary((tmp_path / "merge.json").read_text(), MergeSummary)
    assert (
        isinstance(merged, MergeSummary)
        and merged.method == "knots-ties"
        and merged.output is not None
    )

    assert (
        merge_main(
            [
                *args,
                "--density",
                "7",
                "--output",
                str(tmp_path / "x"),
                "--summary-file",
                str(tmp_path / "failed.json"),
            ]
        )
        == 1
    )
    failed = parse_summary((tmp_path / "failed.json").read_text(), MergeSummary)
    assert failed is not None and failed.result == "Failed" and "--density" in (failed.reason or "")
    for name in ("train.json", "merge.json", "failed.json"):
        assert (tmp_path / name).stat().st_size <= 4096


def test_a_crash_log_in_the_termination_message_is_not_mistaken_for_a_summary() -> None:
    assert parse_summary("Traceback (most recent call last):\n  boom", TrainingSummary) is None
    assert (
        parse_summary('log line\n{"result": "Failed", "reason": "x"}', TrainingSummary) is not None
    )


def test_a_gate_refusal_reads_as_one_in_the_operator() -> None:
    """The merger's refusal reason starts with the prefix the planner turns into GateRefused."""
    refusal = GateFailedError({"gate": {"passed": False, "reason": "de f1 below COMB"}}, None)
    assert str(refusal).startswith(GATE_REASON_PREFIX)
