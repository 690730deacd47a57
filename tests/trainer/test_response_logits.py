"""The output layer only where it is used (langmerge.common.logits): the trainer's loss from
the trained positions' logits equals the model's own loss from logits at every position, in
value and in every LoRA gradient, for builtin:tiny (a Llama) and a small Gemma 3 with final
logit soft-capping; the trainer trains the same adapter either way; bf16 autocast trains too
and stays near fp32, and on a CPU without bf16 kernels trains in fp32; the evaluator's label
scores equal the full computation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

from langmerge.common import builtin
from langmerge.common.logits import IGNORED, decode, output_logits, response_loss, supported
from langmerge.common.precision import FORCE_VARIABLE
from langmerge.merger import evaluate
from langmerge.trainer.train import TrainConfig, keep_lora_inputs_in_bf16, lora_model
from tests.trainer.test_train_cli import FAST, sentiment_rows, train, write_jsonl


def gemma(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
        final_logit_softcapping=30.0,  # Gemma 2 caps; Gemma 3 270M does not: both paths
    )
    return Gemma3ForCausalLM(config)


def llama() -> Any:
    return AutoModelForCausalLM.from_pretrained(builtin.path(), dtype=torch.float32)


def batch(vocab: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded rows of several lengths, each with a prompt and a response."""
    generator = torch.Generator().manual_seed(seed)
    lengths, prompts = [23, 17, 30, 9], [15, 12, 20, 5]
    width = max(lengths)
    ids = torch.randint(5, vocab, (len(lengths), width), generator=generator)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORED)
    for row, (length, prompt) in enumerate(zip(lengths, prompts, strict=True)):
        mask[row, :length] = 1
        labels[row, prompt:length] = ids[row, prompt:length]
        ids[row, length:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lora(model: Any) -> Any:
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    return get_peft_model(model, config).eval()  # eval: no dropout between the two passes


def grads(model: Any) -> dict[str, torch.Tensor]:
    found = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return found


@pytest.mark.parametrize("build", [llama, gemma], ids=["builtin-tiny", "gemma3-softcapped"])
@pytest.mark.parametrize("items", [None, 37.0], ids=["mean", "num-items-in-batch"])
def test_the_response_only_loss_equals_the_full_computation(build: Any, items: Any) -> None:
    model = lora(build())
    rows = batch(model.config.vocab_size)
    scale = {} if items is None else {"num_items_in_batch": items}
    full = model(**rows, **scale).loss
    full.backward()
    expected = grads(model)
    mine = response_loss(model, **rows, **scale)
    mine.backward()
    got = grads(model)
    assert torch.allclose(mine, full, rtol=1e-6, atol=1e-7), (mine.item(), full.item())
    assert got.keys() == expected.keys() and len(got) > 0
    for name, gradient in expected.items():  # up to float32 summation order
        scale = float(gradient.abs().max())
        assert torch.allclose(got[name], gradient, rtol=1e-5, atol=1e-6 * scale), name


def test_the_logits_at_kept_positions_are_the_models_own() -> None:
    model = gemma().eval()
    rows = batch(model.config.vocab_size)
    keep = rows["attention_mask"].bool()
    with torch.no_grad():
        full = model(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"]).logits
        hidden = decode(model, rows["input_ids"], rows["attention_mask"]).last_hidden_state
        picked = output_logits(model, hidden[keep])
    assert torch.allclose(picked, full[keep], rtol=1e-5, atol=1e-6)


def test_the_trainer_trains_the_same_adapter_with_either_logits(tmp_path: Path) -> None:
    # what the trainer checks before it takes the response-only path (else both runs below
    # would take the model's own forward and agree trivially)
    assert supported(lora(llama()))
    data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows())
    adapters = {}
    for logits in ("response", "all"):
        out = tmp_path / logits
        _, _, summary = train(
            tmp_path, "--dataset", str(data), "--language", "de", *FAST, "--lora-dropout", "0",
            "--logits", logits, "--output", str(out),
        )  # fmt: skip
        assert summary["result"] == "Succeeded"
        adapters[logits] = load_file(out / "adapter_model.safetensors")
    for name, tensor in adapters["all"].items():
        assert torch.allclose(adapters["response"][name], tensor, rtol=1e-4, atol=1e-6), name


def test_bf16_autocast_trains_and_stays_near_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each precision in a process of its own (accelerate's state is one per process); bf16
    forced, as a CPU without bf16 kernels would otherwise train in fp32 (tested below)."""
    monkeypatch.setenv(FORCE_VARIABLE, "force")
    data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows())
    losses = {}
    for precision in ("fp32", "bf16"):
        out, summary = tmp_path / precision, tmp_path / f"{precision}.json"
        subprocess.run(
            [sys.executable, "-m", "langmerge.trainer.cli", "--base-model", "builtin:tiny",
             "--task", "sentiment", "--dataset", str(data), "--language", "de", *FAST,
             "--lora-dropout", "0", "--precision", precision, "--output", str(out),
             "--summary-file", str(summary)],
            check=True, capture_output=True,
        )  # fmt: skip
        losses[precision] = json.loads(summary.read_text())["finalLoss"]
        saved = load_file(out / "adapter_model.safetensors")
        assert all(t.dtype == torch.float32 for t in saved.values())  # fp32 master weights
    assert losses["bf16"] != losses["fp32"]  # autocast ran: bf16 rounds differently
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"], losses


@pytest.mark.parametrize("dropout", [0.0, 0.1], ids=["no-dropout", "dropout"])
def test_bf16_lora_layers_take_their_input_in_bf16_with_the_same_numbers(dropout: float) -> None:
    """The model the trainer trains in bf16 (lora_model, as train() builds it) takes each LoRA
    layer's input in bf16, without peft's float32 copy; the loss and every LoRA gradient bit
    for bit those with the copy (peft's own layers, as before). With dropout the copy stays
    (dropout in bf16 would round its scale)."""
    config = TrainConfig(rank=4, alpha=8, dropout=dropout, target_modules=["q_proj", "down_proj"])
    base = builtin.path()  # built (from seeded draws) before the seed the two sides share
    seen: dict[str, set[torch.dtype]] = {}  # the dtypes the LoRA layers' A matrices took
    results = {}
    for build in ("peft", "trainer"):
        torch.manual_seed(0)
        model = lora_model(base, config, "bf16")
        if build == "peft":  # peft's default: every input cast to the LoRA weights' dtype
            for module in model.modules():
                if isinstance(module, BaseTunerLayer):
                    module.cast_input_dtype_enabled = True
        for module in model.modules():  # the same nonzero factors on both sides
            if isinstance(module, BaseTunerLayer):
                torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
        model.eval()  # dropout off between the two sides (its masks are random)
        rows = batch(model.config.vocab_size)
        seen[build] = dtypes = set()
        for name, module in model.named_modules():
            if name.endswith("lora_A.default"):
                module.register_forward_pre_hook(
                    lambda _, args, into=dtypes: into.add(args[0].dtype)
                )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = response_loss(model, rows["input_ids"], rows["attention_mask"], rows["labels"])
        loss.backward()
        results[build] = (loss.detach(), grads(model))
    assert seen["peft"] == {torch.float32}
    assert seen["trainer"] == ({torch.bfloat16} if dropout == 0 else {torch.float32})
    assert keep_lora_inputs_in_bf16(lora(llama()), dropout) == (dropout == 0)
    assert torch.equal(results["trainer"][0], results["peft"][0])
    assert results["trainer"][1].keys() == results["peft"][1].keys()
    assert len(results["peft"][1]) > 0
    for name, gradient in results["peft"][1].items():
        assert torch.equal(results["trainer"][1][name], gradient), name


def test_bf16_on_a_cpu_without_bf16_kernels_trains_in_fp32_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What this machine's CPU offers decides the branch taken; each is forced here."""
    monkeypatch.setattr("langmerge.common.precision.cpu_has_bf16_kernels", lambda: False)
    data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows())
    adapters, summaries = {}, {}
    for asked in ("fp32", "bf16"):
        out = tmp_path / asked
        _, _, summaries[asked] = train(
            tmp_path, "--dataset", str(data), "--language", "de", *FAST, "--lora-dropout", "0",
            "--precision", asked, "--output", str(out),
        )  # fmt: skip
        adapters[asked] = load_file(out / "adapter_model.safetensors")
        said = capsys.readouterr().err
        assert ("no bfloat16 kernels" in said) == (asked == "bf16"), said
    assert summaries["bf16"]["precision"] == summaries["fp32"]["precision"] == "fp32"
    for name, tensor in adapters["fp32"].items():  # the same computation, bit for bit
        assert torch.equal(adapters["bf16"][name], tensor), name


def test_a_bad_cpu_bf16_setting_fails_the_run_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FORCE_VARIABLE, "yes")
    monkeypatch.setattr("langmerge.common.precision.cpu_has_bf16_kernels", lambda: False)
    data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows())
    out = tmp_path / "bf16"
    _, code, summary = train(
        tmp_path, "--dataset", str(data), "--language", "de", *FAST, "--precision", "bf16",
        "--output", str(out), check=False,
    )  # fmt: skip
    assert code == 1 and summary["result"] == "Failed"
    assert summary["reason"] == f"{FORCE_VARIABLE}=yes: give force, auto or leave it unset"
    assert not out.exists()  # nothing published


@pytest.mark.parametrize("build", [llama, gemma], ids=["llama", "gemma3-softcapped"])
def test_label_scores_come_from_the_label_positions_alone(build: Any) -> None:
    model = lora(build())
    pairs = [([5, 9, 17, 30], [41, 7]), ([8, 3], [99]), ([12, 14, 16, 18, 20, 22], [5, 6, 7])]
    got = evaluate._logprobs(model, 0, pairs)
    for (head, tail), value in zip(pairs, got, strict=True):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([head + tail])).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        expected = sum(logprobs[len(head) - 1 + i, t].item() for i, t in enumerate(tail))
        assert value == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("build", [llama, gemma], ids=["llama", "gemma3-softcapped"])
def test_options_scored_after_one_cached_pass_equal_each_scored_in_full(build: Any) -> None:
    """Heads of different lengths (left-padded together), options of different counts and
    lengths, single-token ones among them: the cached continuation gives each option the
    score it has when its head and it run through the model in one sequence."""
    model = lora(build())
    heads = [[5, 9, 17, 30], [8, 3], [12, 14, 16, 18, 20, 22, 24], [40]]
    options = [
        [[41, 7], [99]],
        [[5, 6, 7], [8], [9, 10]],
        [[3], [4]],
        [[11, 12, 13, 14], [15, 16]],
    ]
    got = evaluate._option_logprobs(model, 0, heads, options)
    pairs = [(h, o) for h, opts in zip(heads, options, strict=True) for o in opts]
    expected = evaluate._logprobs(model, 0, pairs)
    flat = [value for per_head in got for value in per_head]
    assert [len(g) for g in got] == [len(o) for o in options]
    assert flat == pytest.approx(expected, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("response_only", [True, False], ids=["response-logits", "all-logits"])
def test_the_held_out_loss_is_the_mean_over_every_response_token(response_only: bool) -> None:
    """Batches holding responses of different lengths weigh each token alike: the held-out
    loss is the summed loss over all examples' response tokens over their count."""
    from torch.nn.functional import cross_entropy

    from langmerge.common.prompts import Example
    from langmerge.trainer.train import CausalLoss, _evaluate

    model = lora(gemma())
    generator = torch.Generator().manual_seed(3)
    shapes = [(6, 1), (4, 9), (7, 2), (3, 12), (5, 1)]  # (prompt, response) lengths
    examples = []
    for prompt, response in shapes:
        ids = torch.randint(5, 512, (prompt + response,), generator=generator).tolist()
        examples.append(Example(ids, [IGNORED] * prompt + ids[prompt:]))
    summed = 0.0
    with torch.no_grad():
        for example in examples:
            logits = model(input_ids=torch.tensor([example.input_ids])).logits[0, :-1].float()
            targets = torch.tensor(example.labels[1:])
            summed += float(cross_entropy(logits, targets, ignore_index=IGNORED, reduction="sum"))
    expected = summed / sum(response for _, response in shapes)
    loss_of = CausalLoss(model, response_only=response_only)
    held_out = _evaluate(loss_of, examples, TrainConfig(batch_size=2), 0, torch.device("cpu"))
    assert held_out == pytest.approx(expected, rel=1e-5)
