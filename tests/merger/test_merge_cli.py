"""langmerge-merge end to end: real peft adapters on a tiny Llama, outputs loaded by peft and
transformers, the summary contract, and refusals that name the culprit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from langmerge.common import builtin
from langmerge.common.storage import sha256_dir
from langmerge.merger.cli import main
from tests.support.adapters import dense_updates, make_adapter
from tests.support.tiny_llama import load_base, logits, save_base, save_peft_adapter


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tiny")
    base = save_base(root / "base")
    adapters = [
        save_peft_adapter(base, root / f"adapter-{i}", seed=10 + i, rank=4 + i) for i in range(3)
    ]
    return {"root": root, "base": base, "adapters": adapters}


def _run(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    summary = tmp_path / f"summary-{len(list(tmp_path.glob('summary-*')))}.json"
    code = main([*args, "--summary-file", str(summary)])
    return code, json.loads(summary.read_text())


def _adapter_args(paths: list[Path]) -> list[str]:
    return [arg for p in paths for arg in ("--adapter", str(p))]


def _apply_lora_by_hand(base_dir: Path, adapter_dir: Path) -> torch.nn.Module:
    """Base weights + B @ A (scale 1, as the merged adapter declares) written into the model."""
    model = load_base(base_dir)
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    state = model.state_dict()
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            module = key[: -len(".lora_A.weight")]
            b = tensors[f"{module}.lora_B.weight"]
            assert config["lora_alpha"] == config["r"] and not config["use_rslora"]
            state[module.removeprefix("base_model.model.") + ".weight"] += b @ a
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize(
    "method", ["knots-ties", "knots-dare-ties", "ties", "dare-ties", "linear", "cat"]
)
def test_merged_lora_loads_in_peft_and_equals_base_plus_delta(
    tiny: dict[str, Any], tmp_path: Path, method: str
) -> None:
    out = tmp_path / "merged"
    code, summary = _run(
        tmp_path,
        *_adapter_args(tiny["adapters"]),
        "--method",
        method,
        "--weights",
        "1,0.5,2",
        "--output",
        str(out),
        "--rank",
        "24",
    )
    assert code == 0, summary
    merged = PeftModel.from_pretrained(load_base(tiny["base"]), out)
    merged.eval()
    by_hand = _apply_lora_by_hand(tiny["base"], out)
    torch.testing.assert_close(logits(merged), logits(by_hand), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(
        logits(merged), logits(load_base(tiny["base"]))
    )  # it changed something
    assert summary["output"]["sha256"] == sha256_dir(out)
    assert summary["method"] == method
    card = (out / "README.md").read_text()  # the model card names what went in, exactly
    assert f"with **{method}**" in card and "library_name: peft" in card
    # weights 1, 0.5 and 2 as applied: normalised to sum to one
    for adapter, weight in zip(tiny["adapters"], ["0.285714", "0.142857", "0.571429"], strict=True):
        assert f"| `{adapter}` | - | {weight} | `{sha256_dir(adapter)}` |" in card, card


def test_full_output_equals_the_merged_adapter_applied(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    lora, full = tmp_path / "lora", tmp_path / "full"
    common = [*_adapter_args(tiny["adapters"]), "--method", "knots-ties", "--density", "0.6"]
    assert _run(tmp_path, *common, "--output", str(lora))[0] == 0
    code, summary = _run(
        tmp_path,
        *common,
        "--output",
        str(full),
        "--output-format",
        "full",
        "--base-model",
        str(tiny["base"]),
    )
    assert code == 0, summary
    full_model = AutoModelForCausalLM.from_pretrained(full, dtype=torch.float32).eval()
    applied = PeftModel.from_pretrained(load_base(tiny["base"]), lora).eval()
    torch.testing.assert_close(logits(full_model), logits(applied), rtol=1e-4, atol=1e-4)


def test_summary_fits_the_termination_message_and_states_the_run(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    summary_file = tmp_path / "termination-log"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "langmerge.merger.cli",
            *_adapter_args(tiny["adapters"]),
            "--method",
            "ties",
            "--output",
            str(tmp_path / "out"),
            "--summary-file",
            str(summary_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    raw = summary_file.read_bytes()
    assert len(raw) <= 4096
    summary = json.loads(raw)
    assert summary["result"] == "Succeeded"
    assert summary["parameters"]["density"] == 0.5
    assert len(summary["inputs"]) == 3 and all(len(i["sha256"]) == 64 for i in summary["inputs"])
    assert summary["wallSeconds"] > 0 and summary["peakRssBytes"] > 0
    assert 0 <= summary["reconstruction_error"] < 1  # ties output compressed to low rank


SHAPES = {"model.layers.0.self_attn.q_proj": (8, 8)}


def _refusal(tmp_path: Path, args: list[str]) -> str:
    code, summary = _run(tmp_path, *args, "--output", str(tmp_path / "never"))
    assert code == 1
    assert summary["result"] == "Failed"
    assert not (tmp_path / "never").exists(), "a failed merge must publish nothing"
    return str(summary["reason"])


def test_refuses_adapters_of_different_base_models(tmp_path: Path) -> None:
    a = make_adapter(tmp_path / "a", SHAPES, base_model="llama-3.1-8b")
    b = make_adapter(tmp_path / "b", SHAPES, base_model="mistral-7b")
    reason = _refusal(tmp_path, _adapter_args([a, b]))
    assert str(b) in reason and "base model" in reason


def test_refuses_adapters_with_different_target_modules(tmp_path: Path) -> None:
    a = make_adapter(tmp_path / "a", SHAPES)
    b = make_adapter(tmp_path / "b", {"model.layers.0.self_attn.k_proj": (8, 8)})
    reason = _refusal(tmp_path, _adapter_args([a, b]))
    assert str(b) in reason and "target modules" in reason


def test_refuses_adapters_with_different_shapes(tmp_path: Path) -> None:
    a = make_adapter(tmp_path / "a", SHAPES)
    b = make_adapter(tmp_path / "b", {"model.layers.0.self_attn.q_proj": (16, 8)})
    reason = _refusal(tmp_path, _adapter_args([a, b]))
    assert str(b) in reason and "16x8" in reason


def test_refuses_nan_weights(tmp_path: Path) -> None:
    a = make_adapter(tmp_path / "a", SHAPES)
    b = make_adapter(tmp_path / "b", SHAPES, seed=1)
    tensors = load_file(str(b / "adapter_model.safetensors"))
    key = next(k for k in tensors if "lora_B" in k)
    tensors[key][0, 0] = float("nan")
    save_file(tensors, str(b / "adapter_model.safetensors"))
    reason = _refusal(tmp_path, _adapter_args([a, b]))
    assert str(b) in reason and "NaN" in reason


def test_detects_a_corrupt_adapter_by_its_sha256(tmp_path: Path) -> None:
    a = make_adapter(tmp_path / "a", SHAPES)
    b = make_adapter(tmp_path / "b", SHAPES, seed=1)
    expected = [sha256_dir(a), sha256_dir(b)]
    weights = b / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])  # truncated after training
    reason = _refusal(
        tmp_path,
        [*_adapter_args([a, b]), "--adapter-sha256", expected[0], "--adapter-sha256", expected[1]],
    )
    assert str(b) in reason and "sha256" in reason


def test_refuses_a_folder_that_is_not_an_adapter(tmp_path: Path) -> None:
    a = make_adapter(tmp_path / "a", SHAPES)
    empty = tmp_path / "empty"
    empty.mkdir()
    reason = _refusal(tmp_path, _adapter_args([a, empty]))
    assert str(empty) in reason and "adapter_config.json" in reason


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--weights", "1"], "--weights"),
        (["--weights", "1,-1"], "--weights"),
        (["--density", "0"], "--density"),
        (["--lambda", "0"], "--lambda"),
        (["--output-format", "full"], "--base-model"),
    ],
)
def test_bad_flags_name_the_flag(tmp_path: Path, flags: list[str], named: str) -> None:
    a = make_adapter(tmp_path / "a", SHAPES)
    b = make_adapter(tmp_path / "b", SHAPES, seed=1)
    assert named in _refusal(tmp_path, [*_adapter_args([a, b]), *flags])


def test_paths_outside_the_artifact_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    a = make_adapter(root / "a", SHAPES)
    outside = make_adapter(tmp_path / "outside", SHAPES, seed=1)
    sneaky = f"{root}/../outside"
    reason = _refusal(
        tmp_path, [*_adapter_args([a]), "--adapter", sneaky, "--artifact-root", str(root)]
    )
    assert "outside the artifact root" in reason
    assert outside.exists()


@pytest.mark.parametrize("method", ["linear", "cat"])
def test_default_weights_sum_to_one_so_equal_weights_average_the_updates(
    tiny: dict[str, Any], tmp_path: Path, method: str
) -> None:
    inputs = [dense_updates(p) for p in tiny["adapters"]]
    averaged, summed = tmp_path / "averaged", tmp_path / "summed"
    common = [*_adapter_args(tiny["adapters"]), "--method", method]
    code, summary = _run(tmp_path, *common, "--output", str(averaged))
    assert code == 0, summary
    assert summary["parameters"]["weights"] == [round(1 / 3, 6)] * 3  # what was applied
    code, raw = _run(tmp_path, *common, "--weight-normalization", "none", "--output", str(summed))
    assert code == 0, raw
    assert raw["parameters"]["weights"] == [1.0, 1.0, 1.0]
    mean, total = dense_updates(averaged), dense_updates(summed)
    for module, update in mean.items():
        expected = sum(u[module] for u in inputs)
        torch.testing.assert_close(update, expected / 3, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(total[module], expected, rtol=1e-5, atol=1e-7)


def test_relative_weights_are_normalised(tiny: dict[str, Any], tmp_path: Path) -> None:
    code, summary = _run(
        tmp_path,
        *_adapter_args(tiny["adapters"]),
        "--method",
        "linear",
        "--weights",
        "2,1,1",
        "--output",
        str(tmp_path / "out"),
    )
    assert code == 0 and summary["parameters"]["weights"] == [0.5, 0.25, 0.25]


def test_a_merge_refused_by_its_gate_is_kept_apart_and_never_published(tmp_path: Path) -> None:
    """--rejected-output keeps the refused candidate for inspection; --output stays empty."""
    base = builtin.path()  # evaluation needs a tokenizer: builtin:tiny has one
    adapters = [save_peft_adapter(base, tmp_path / f"a{i}", seed=i) for i in range(2)]
    eval_file = tmp_path / "de.jsonl"
    eval_file.write_text(
        "".join(
            json.dumps({"prompt": f"Bewertung {i}", "response": "gut" if i % 2 else "schlecht"})
            + "\n"
            for i in range(20)
        )
    )
    # Two merges of the same seeded random adapters, 1000 times apart in scale: the one at
    # scale 10 pushes the pre-trained model far off (its loss is nats higher than the
    # near-base one's, asserted below), so as the candidate against the near-base one as the
    # current model it must be refused at a margin of 0.
    current = tmp_path / "current"
    common = [*_adapter_args(adapters), "--method", "linear"]
    assert _run(tmp_path, *common, "--lambda", "0.01", "--output", str(current))[0] == 0
    out, rejected = tmp_path / "merged", tmp_path / "rejected" / "candidate"
    code, summary = _run(
        tmp_path,
        *common,
        "--lambda",
        "10",
        "--output",
        str(out),
        "--base-model",
        builtin.NAME,
        "--evaluate",
        f"de={eval_file}",
        "--gate-metric",
        "loss",
        "--gate-against",
        "current",
        "--gate-baseline",
        str(current),
        "--gate-max-drop",
        "0",
        "--rejected-output",
        str(rejected),
    )
    assert summary["evaluation"]["comparisons"]["de"]["difference"] > 0.5  # the premise
    assert code == 1 and summary["result"] == "Failed", summary
    assert "the current merged model's" in summary["reason"]
    assert not out.exists()
    assert summary["rejectedOutput"] == str(rejected)
    assert (rejected / "adapter_model.safetensors").is_file()
    card = (rejected / "README.md").read_text()  # the card says why it was refused
    assert "## Evaluation" in card and "the gate refused: " in card and "| de | " in card


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_an_output_that_overlaps_an_input_is_refused_and_the_input_survives(
    tiny: dict[str, Any], tmp_path: Path, where: str
) -> None:
    first = tmp_path / "inputs" / "first"
    shutil.copytree(tiny["adapters"][0], first)
    before = sha256_dir(first)
    output = {"same": first, "inside": first / "merged", "parent": first.parent}[where]
    code, summary = _run(
        tmp_path,
        *_adapter_args([first, *tiny["adapters"][1:]]),
        "--output",
        str(output),
    )
    assert code == 1 and "overlaps the input --adapter" in summary["reason"]
    assert sha256_dir(first) == before  # nothing of the input was touched


def test_an_empty_adapter_argument_is_refused(tiny: dict[str, Any], tmp_path: Path) -> None:
    code, summary = _run(
        tmp_path, *_adapter_args(tiny["adapters"]), "--adapter", "", "--output", str(tmp_path / "o")
    )
    assert code == 1 and "--adapter is empty" in summary["reason"]


def test_a_dense_method_is_compressed_to_the_summed_input_rank_by_default(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    """As --help says: ties without --rank writes rank 4 + 5 + 6, not the module's full rank."""
    out = tmp_path / "ties"
    code, summary = _run(
        tmp_path, *_adapter_args(tiny["adapters"]), "--method", "ties", "--output", str(out)
    )
    assert code == 0, summary
    config = json.loads((out / "adapter_config.json").read_text())
    ranks = [config["r"], *config.get("rank_pattern", {}).values()]
    assert max(ranks) == 4 + 5 + 6  # full rank would be 32 for q_proj and down_proj


@pytest.mark.parametrize(
    ("method", "flags", "recorded"),
    [
        ("knots-ties", [], "model"),
        ("knots-ties", ["--topk-scope", "module"], "module"),
        ("ties", [], "module"),  # what ties does, whatever the default elsewhere
        ("linear", [], None),
    ],
)
def test_the_summary_records_the_top_k_scope_the_method_used(
    tiny: dict[str, Any], tmp_path: Path, method: str, flags: list[str], recorded: str | None
) -> None:
    code, summary = _run(
        tmp_path,
        *_adapter_args(tiny["adapters"]),
        "--method",
        method,
        *flags,
        "--output",
        str(tmp_path / "out"),
    )
    assert code == 0, summary
    assert summary["parameters"]["topkScope"] == recorded


def test_a_model_wide_top_k_is_refused_for_ties(tiny: dict[str, Any], tmp_path: Path) -> None:
    code, summary = _run(
        tmp_path,
        *_adapter_args(tiny["adapters"]),
        "--method",
        "ties",
        "--topk-scope",
        "model",
        "--output",
        str(tmp_path / "out"),
    )
    assert code == 1 and "--topk-scope model applies to knots-ties" in summary["reason"]
