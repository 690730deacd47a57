"""langmerge-train on builtin:tiny on the CPU: loss falls, the adapter loads in peft, s3://
in and out, resume after a kill, every format and field style, and bad input refused early."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from langmerge.common import builtin
from langmerge.common.storage import sha256_dir
from langmerge.trainer.cli import main
from tests.support.s3 import s3_server

SENTIMENT = [
    ("I love this phone, it is wonderful", "positive"),
    ("Terrible service and cold food", "negative"),
    ("The concert was amazing", "positive"),
    ("The package arrived broken", "negative"),
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def sentiment_rows(n: int = 32) -> list[dict[str, str]]:
    return [
        {"prompt": f"Review: {t}\nSentiment:", "response": label}
        for t, label in SENTIMENT * (n // 4)
    ]


def train(tmp_path: Path, *args: str, check: bool = True) -> tuple[str, int, dict[str, Any]]:
    """Runs langmerge-train in this process (the import of torch is paid once); returns its
    stdout (the JSON progress lines), exit code and summary."""
    summary = tmp_path / f"summary-{time.monotonic_ns()}.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "--base-model",
                "builtin:tiny",
                "--task",
                "sentiment",
                "--summary-file",
                str(summary),
                *args,
            ]
        )
    parsed = json.loads(summary.read_text()) if summary.exists() else {}
    if check:
        assert code == 0, parsed
    return out.getvalue(), code, parsed


FAST = [
    "--max-steps",
    "20",
    "--batch-size",
    "8",
    "--learning-rate",
    "5e-3",
    "--lora-rank",
    "8",
    "--log-every",
    "1",
]


def test_tiny_adapter_trains_loss_falls_and_loads_in_peft(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stdout, _, summary = train(
            tmp_path,
            "--dataset",
            str(data),
            "--language",
            "de",
            *FAST,
            "--output",
            str(tmp_path / "adapter"),
            "--fingerprint",
            "fp-123",
            "--eval-dataset",
            str(data),
        )
    leaked = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert leaked == []  # library deprecation notices are not the user's business
    assert stdout.splitlines()[-1] == (
        f"langmerge-train: adapter for sentiment (de) written to {tmp_path / 'adapter'} "
        f"(sha256 {summary['output']['sha256'][:12]})"
    )
    losses = [
        json.loads(line)["loss"] for line in stdout.splitlines() if line.startswith('{"step"')
    ]
    assert len(losses) == 20
    assert losses[-1] < losses[0] / 3, losses
    assert summary["result"] == "Succeeded" and summary["steps"] == 20
    assert summary["trainTokens"] > 0 and summary["tokensPerSecond"] > 0
    assert summary["evalLoss"] is not None and summary["peakMemoryBytes"] > 0
    assert summary["output"]["sha256"] == sha256_dir(tmp_path / "adapter")
    metadata = json.loads((tmp_path / "adapter" / "langmerge.json").read_text())
    assert metadata["language"] == "de" and metadata["task"] == "sentiment"
    assert metadata["fingerprint"] == "fp-123" and len(metadata["datasetSha256"][0]) == 64
    assert metadata["examples"] == len(sentiment_rows())  # a search's `examples` weights
    base = AutoModelForCausalLM.from_pretrained(builtin.path(), dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, tmp_path / "adapter")
    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert any("lora_B" in k and weights[k].abs().sum() > 0 for k in weights)  # it learned
    assert tuned.peft_config["default"].r == 8


def test_summary_fits_4_kib(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows(8))
    _, _, summary = train(
        tmp_path, "--dataset", str(data), "--max-steps", "2", "--output", str(tmp_path / "a")
    )
    files = list(tmp_path.glob("summary-*.json"))
    assert files and all(f.stat().st_size <= 4096 for f in files)
    assert summary["deviceType"] == "cpu" and summary["deviceCount"] == 1


def test_reads_parquet_csv_and_saved_datasets_with_each_field_style(tmp_path: Path) -> None:
    from datasets import Dataset

    rows = sentiment_rows(8)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    with (tmp_path / "train.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["prompt", "response"])
        writer.writeheader()
        writer.writerows(rows)
    chats = [
        {
            "conv": [
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["response"]},
            ]
        }
        for r in rows
    ]
    Dataset.from_list(chats).save_to_disk(str(tmp_path / "chats"))
    write_jsonl(
        tmp_path / "text.jsonl", [{"body": r["prompt"] + " " + r["response"]} for r in rows]
    )
    cases = [
        ["--dataset", str(tmp_path / "train.parquet")],
        ["--dataset", str(tmp_path / "train.csv")],
        ["--dataset", str(tmp_path / "chats"), "--messages-field", "conv"],
        [
            "--dataset",
            str(tmp_path / "text.jsonl"),
            "--text-field",
            "body",
            "--packing",
            "--max-seq-length",
            "32",
        ],
    ]
    for index, case in enumerate(cases):
        _, _, summary = train(
            tmp_path, *case, "--max-steps", "2", "--output", str(tmp_path / f"out-{index}")
        )
        assert summary["result"] == "Succeeded", case


def test_combined_mode_trains_one_adapter_on_several_languages(tmp_path: Path) -> None:
    de = write_jsonl(tmp_path / "de.jsonl", sentiment_rows(8))
    fr = write_jsonl(tmp_path / "fr.jsonl", sentiment_rows(8))
    _, _, summary = train(
        tmp_path,
        "--dataset",
        str(de),
        "--language",
        "de",
        "--dataset",
        str(fr),
        "--language",
        "fr",
        "--max-steps",
        "2",
        "--output",
        str(tmp_path / "comb"),
    )
    metadata = json.loads((tmp_path / "comb" / "langmerge.json").read_text())
    assert metadata["languages"] == ["de", "fr"] and metadata["language"] is None
    assert len(metadata["datasetSha256"]) == 2 and summary["languages"] == ["de", "fr"]


def test_reads_from_and_writes_to_s3(tmp_path: Path) -> None:
    import boto3

    with s3_server() as env:
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        s3.create_bucket(Bucket="langmerge")
        data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows(8))
        s3.upload_file(str(data), "langmerge", "datasets/de.jsonl")
        _, _, summary = train(
            tmp_path,
            "--dataset",
            "s3://langmerge/datasets/de.jsonl",
            "--max-steps",
            "2",
            "--output",
            "s3://langmerge/adapters/de/fp1",
        )
        keys = {
            o["Key"]
            for o in s3.list_objects_v2(Bucket="langmerge", Prefix="adapters/de/fp1/")["Contents"]
        }
        assert {
            "adapters/de/fp1/adapter_config.json",
            "adapters/de/fp1/adapter_model.safetensors",
            "adapters/de/fp1/langmerge.json",
        } <= keys
        assert summary["output"]["uri"] == "s3://langmerge/adapters/de/fp1"


def test_resumes_from_the_checkpoint_after_a_kill(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows(64))
    common = [
        "--dataset",
        str(data),
        "--max-steps",
        "40",
        "--batch-size",
        "4",
        "--learning-rate",
        "3e-3",
        "--checkpoint-every",
        "5",
        "--lora-dropout",
        "0.1",
    ]
    train(tmp_path, *common, "--output", str(tmp_path / "straight"))

    checkpoints = tmp_path / "ckpt"
    summary_file = tmp_path / "killed-summary.json"
    args = [
        sys.executable,
        "-m",
        "langmerge.trainer.cli",
        "--base-model",
        "builtin:tiny",
        "--task",
        "sentiment",
        *common,
        "--output",
        str(tmp_path / "resumed"),
        "--checkpoint-dir",
        str(checkpoints),
        "--summary-file",
        str(summary_file),
    ]
    victim = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert victim.stdout is not None
    for line in victim.stdout:  # kill it once it has passed step 12 (checkpoint at 10)
        if line.startswith('{"step"') and json.loads(line)["step"] >= 12:
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "resumed").exists(), "a killed run must not publish a partial adapter"

    _, _, resumed = train(
        tmp_path,
        *common,
        "--output",
        str(tmp_path / "resumed"),
        "--checkpoint-dir",
        str(checkpoints),
    )
    assert resumed["resumedFromStep"] >= 10
    assert resumed["steps"] == 40
    a = load_file(str(tmp_path / "straight" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "adapter_model.safetensors"))
    for key in a:  # same data order, optimizer state and RNG: the same adapter
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("setup", "flags", "expected"),
    [
        ("empty", [], "no records"),
        (
            "good",
            ["--prompt-field", "question", "--response-field", "response"],
            "'question' not found",
        ),
        ("good", ["--text-field", "body"], "'body' not found"),
        ("good", ["--lora-rank", "0"], "--lora-rank must be between 1 and 1024"),
        ("good", ["--lora-rank", "5000"], "--lora-rank must be between 1 and 1024"),
        ("good", ["--prompt-field", "prompt"], "--prompt-field and --response-field go together"),
        ("latin1", [], "is not UTF-8"),
        ("broken-json", [], "line 2 is not valid JSON"),
        ("good", ["--base-model", "/nonexistent/model"], "/nonexistent/model"),
        ("missing", [], "does not exist"),
        ("good", ["--language", "de", "--language", "fr"], "--language given 2 times"),
        (  # peft alone adapts q_proj and skips the name that matches nothing
            "good",
            ["--target-modules", "q_proj,qq_proj"],
            "--target-modules: qq_proj matches no module of the base model (its linear layers: "
            "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj)",
        ),
        ("good", ["--target-modules", "attn"], "attn matches no module"),
        (  # every prompt is longer than the limit: the run trained nothing and "succeeded"
            "long-prompts",
            ["--max-seq-length", "16"],
            "every record's response begins after token 16, where --max-seq-length cuts it off",
        ),
    ],
)
def test_bad_input_fails_fast_with_a_clear_reason(
    tmp_path: Path, setup: str, flags: list[str], expected: str
) -> None:
    data = tmp_path / "data.jsonl"
    if setup == "good":
        write_jsonl(data, sentiment_rows(4))
    elif setup == "empty":
        data.write_text("")
    elif setup == "latin1":
        data.write_bytes(
            '{"prompt": "ok", "response": "ok"}\n{"prompt": "Café", "response": "x"}\n'.encode(
                "latin-1"
            )
        )
    elif setup == "long-prompts":
        write_jsonl(data, [{"prompt": "word " * 40, "response": "ok"}] * 4)
    elif setup == "broken-json":
        data.write_text('{"prompt": "a", "response": "b"}\n{"prompt": \n')
    _, code, summary = train(
        tmp_path, "--dataset", str(data), *flags, "--output", str(tmp_path / "never"), check=False
    )
    assert code == 1
    assert summary["result"] == "Failed"
    assert expected in summary["reason"], summary["reason"]
    assert not (tmp_path / "never").exists()
    assert "trainSeconds" not in summary  # refused before any training


def test_records_that_lose_their_response_to_the_length_limit_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = sentiment_rows(8)
    rows[2] = {"prompt": "word " * 200, "response": "ok"}
    rows[5] = rows[2]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    _, code, summary = train(
        tmp_path,
        "--dataset",
        str(data),
        "--max-steps",
        "1",
        "--max-seq-length",
        "96",
        "--output",
        str(tmp_path / "out"),
    )
    assert code == 0 and summary["result"] == "Succeeded"
    assert (
        f"dataset {data}: 2 of 8 records (the first: record 3) lose their whole response to "
        "--max-seq-length 96 and count for nothing"
    ) in capsys.readouterr().err


def test_trains_from_a_model_folder(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows(8))
    folder = builtin.path()  # a plain transformers folder, as a PVC or s3:// copy would be
    _, _, summary = train(
        tmp_path,
        "--dataset",
        str(data),
        "--max-steps",
        "2",
        "--output",
        str(tmp_path / "a"),
        "--base-model",
        str(folder),
    )
    metadata = json.loads((tmp_path / "a" / "langmerge.json").read_text())
    assert summary["result"] == "Succeeded" and metadata["baseModel"] == str(folder)
