"""Data-parallel langmerge-train: two processes under torchrun (gloo on CPU, as a two-node
TrainJob's pods run it) train what one process trains with the same global batch and seed;
only rank 0 publishes and writes the summary; a run whose processes are all killed mid-way
resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
from safetensors.torch import load_file

from tests.support.adapters import worst_relative_error
from tests.trainer.test_train_cli import sentiment_rows, train, write_jsonl

TWO_PROCESSES = [
    sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
    "-m", "langmerge.trainer.cli", "--base-model", "builtin:tiny", "--task", "sentiment",
]  # fmt: skip
# One intra-op thread per process: two processes on two cores.
ENV = {**os.environ, "LANGMERGE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
# Rows of unlike lengths: each rank's share is padded to its own width.
ROWS = [
    {"prompt": f"{row['prompt']}{' and more' * (i % 5)}", "response": row["response"]}
    for i, row in enumerate(sentiment_rows(40))
]


def settings(tmp_path: Path, *extra: str) -> list[str]:
    data = write_jsonl(tmp_path / "de.jsonl", ROWS)
    return [
        "--language", "de",
        "--dataset", str(data), "--batch-size", "8", "--max-steps", "12",
        "--learning-rate", "3e-3", "--lora-rank", "8", "--log-every", "1", *extra,
    ]  # fmt: skip


def launch(args: list[str], summary: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TWO_PROCESSES, *args, "--summary-file", str(summary)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def kill_tree(pid: int) -> None:
    """SIGKILL for the launcher and its workers (each in a session of its own), as a pod's
    end kills every process in it."""
    launcher = psutil.Process(pid)
    for process in [*launcher.children(recursive=True), launcher]:
        process.send_signal(signal.SIGKILL)


def run_two(args: list[str], summary: Path) -> tuple[str, dict[str, Any]]:
    process = launch(args, summary)
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-4000:]
    return stdout, json.loads(summary.read_text())


def assert_split(lines: list[str]) -> None:
    """Each of the two ranks trained on part of every batch, and together on all of it (the
    same result would also come from both ranks training on every row)."""
    shares = [json.loads(line) for line in lines if line.startswith('{"event": "share"')]
    assert sorted(share["rank"] for share in shares) == [0, 1], shares
    total = shares[0]["ofTrainedTokens"]
    assert all(0 < share["trainedTokens"] < total for share in shares), shares
    assert sum(share["trainedTokens"] for share in shares) == total, shares


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def test_two_processes_train_what_one_process_trains(tmp_path: Path) -> None:
    common = settings(tmp_path, "--lora-dropout", "0")  # no per-rank dropout masks
    _, _, one = train(tmp_path, *common, "--output", str(tmp_path / "one"))
    stdout, two = run_two([*common, "--output", str(tmp_path / "two")], tmp_path / "two.json")

    # One summary, rank 0's, with the whole run's figures.
    assert two["result"] == "Succeeded" and two["deviceCount"] == 2, two
    assert two["steps"] == one["steps"] == 12 and two["trainTokens"] == one["trainTokens"]
    assert two["finalLoss"] == pytest.approx(one["finalLoss"], rel=1e-4)
    progress = [line for line in stdout.splitlines() if line.startswith('{"step"')]
    assert len(progress) == 12  # rank 0 alone reports progress
    assert "rank 1 done; rank 0 writes the adapter" in stdout
    assert_split(stdout.splitlines())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".staging")) == []

    single, split = adapter(tmp_path / "one"), adapter(tmp_path / "two")
    worst = worst_relative_error(split, single)
    print(f"RESULT data_parallel_worst_relative_error={worst:.2e}")
    assert worst < 1e-4


def test_a_killed_two_process_run_resumes_exactly(tmp_path: Path) -> None:
    common = settings(tmp_path, "--max-steps", "30", "--checkpoint-every", "5")
    run_two([*common, "--output", str(tmp_path / "straight")], tmp_path / "straight.json")

    resumed = [*common, "--output", str(tmp_path / "resumed"), "--checkpoint-dir"]
    victim = launch([*resumed, str(tmp_path / "ckpt")], tmp_path / "killed.json")
    assert victim.stdout is not None
    for line in victim.stdout:  # kill both ranks once past step 7 (a checkpoint at 5)
        if line.startswith('{"step"') and json.loads(line)["step"] >= 7:
            kill_tree(victim.pid)
            break
    assert victim.wait(timeout=60) == -signal.SIGKILL
    assert not (tmp_path / "resumed").exists(), "a killed run must not publish"

    _, summary = run_two([*resumed, str(tmp_path / "ckpt")], tmp_path / "resumed.json")
    assert 5 <= summary["resumedFromStep"] <= 25 and summary["steps"] == 30
    straight, again = adapter(tmp_path / "straight"), adapter(tmp_path / "resumed")
    for key in straight:  # dropout on (0.05): the generators continued where they stopped
        torch.testing.assert_close(again[key], straight[key], rtol=1e-4, atol=1e-5)
