"""bf16 scoring with the adapter folded into the weights (langmerge.merger.folding): the folded
weights are peft's own merge, taken in float32 and rounded once; everything else is the model
transformers loads in bf16; a search's refold equals a fresh fold bit for bit and restores the
layers a candidate does not target; adapters it cannot fold are scored by peft's layers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from langmerge.common import builtin
from langmerge.common.precision import FORCE_VARIABLE
from langmerge.merger import evaluate, folding
from tests.support.tiny_llama import load_base, save_peft_adapter

RECORDS = [{"prompt": f"de review {i}", "response": ("good", "bad")[i % 2]} for i in range(12)]


def _source(adapter: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    config = json.loads((adapter / "adapter_config.json").read_text())
    return config, load_file(str(adapter / "adapter_model.safetensors"))


def _save(base: Path, path: Path, seed: int, **options: Any) -> Path:
    torch.manual_seed(seed)
    config = LoraConfig(init_lora_weights=False, lora_dropout=0.0, **options)
    get_peft_model(load_base(base), config).save_pretrained(path)
    return path


def _peft_merged(base: Path, adapter: Path) -> dict[str, torch.Tensor]:
    exact = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(exact, adapter).merge_and_unload()
    return {name: p.detach() for name, p in merged.named_parameters()}


@pytest.fixture(autouse=True)
def _bf16_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FORCE_VARIABLE, "force")  # bf16 even on a CPU without bf16 kernels


@pytest.mark.parametrize(
    "options",
    [
        {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]},
        # rsLoRA's alpha / sqrt(r) and a per-layer alpha
        {
            "r": 4,
            "lora_alpha": 8,
            "use_rslora": True,
            "alpha_pattern": {"down_proj": 2},
            "target_modules": ["q_proj", "down_proj", "up_proj"],
        },
    ],
    ids=["alpha-over-r", "rslora-alpha-pattern"],
)
def test_the_folded_weights_are_peft_s_merge_rounded_once_the_rest_transformers_bf16_load(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    base = builtin.path()
    adapter = _save(base, tmp_path / "adapter", seed=3, **options)
    merged = _peft_merged(base, adapter)
    plain = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    folded = evaluate._load(base, adapter, "bf16")
    assert not [n for n, _ in folded.named_modules() if "lora_" in n]  # no LoRA layers to run
    targeted = 0
    for name, parameter in folded.named_parameters():
        assert parameter.dtype == torch.bfloat16, name
        assert torch.equal(parameter, merged[name].to(torch.bfloat16)), name
        targeted += not torch.equal(parameter, plain.get_parameter(name))
    assert targeted == 2 * len(options["target_modules"])  # two layers, each target changed
    for name, buffer in plain.named_buffers():  # the rotary tables stay float32, as loaded
        assert buffer.dtype == folded.get_buffer(name).dtype, name
        assert torch.equal(buffer, folded.get_buffer(name)), name


def test_folded_scores_stay_near_peft_s_layers_in_bf16_and_near_fp32(tmp_path: Path) -> None:
    base = builtin.path()
    adapter = save_peft_adapter(base, tmp_path / "adapter", seed=5, alpha=16)
    with pytest.MonkeyPatch.context() as patch:  # peft's layers on the bf16 base, as before
        patch.setattr(evaluate, "_folded", lambda base, adapter: None)
        layered = evaluate.score_models(base, {"a": adapter}, {"de": RECORDS}, precision="bf16")
    folded = evaluate.score_models(base, {"a": adapter}, {"de": RECORDS}, precision="bf16")
    exact = evaluate.score_models(base, {"a": adapter}, {"de": RECORDS})
    losses = [s["a"]["de"].metrics["loss"] for s in (folded, layered, exact)]
    assert len(set(losses)) == 3  # three ways of computing indeed
    assert abs(losses[0] - losses[2]) < 0.05 * losses[2], losses
    assert abs(losses[0] - losses[2]) < 3 * abs(losses[1] - losses[2]) + 1e-3, losses


def test_refolding_equals_a_fresh_fold_and_restores_the_layers_a_candidate_leaves(
    tmp_path: Path,
) -> None:
    base = builtin.path()
    wide = save_peft_adapter(base, tmp_path / "wide", seed=1, targets=["q_proj", "down_proj"])
    other = save_peft_adapter(base, tmp_path / "other", seed=2, rank=2, targets=["q_proj"])
    outside = save_peft_adapter(base, tmp_path / "outside", seed=4, targets=["k_proj"])
    held = folding.load(base, "wide", *_source(wide), keep=True)
    assert folding.refold(held, "other", *_source(other))
    fresh = folding.load(base, "other", *_source(other), keep=False).model
    for name, parameter in held.model.named_parameters():  # down_proj back to the original
        assert torch.equal(parameter, fresh.get_parameter(name)), name
    assert folding.refold(held, "wide", *_source(wide))
    fresh = folding.load(base, "wide", *_source(wide), keep=False).model
    for name, parameter in held.model.named_parameters():
        assert torch.equal(parameter, fresh.get_parameter(name)), name
    before = {n: p.clone() for n, p in held.model.named_parameters()}
    assert not folding.refold(held, "outside", *_source(outside))  # k_proj: no original kept
    assert all(torch.equal(p, before[n]) for n, p in held.model.named_parameters())


def test_in_place_scoring_folds_again_or_loads_again_as_each_adapter_needs(
    tmp_path: Path,
) -> None:
    base = builtin.path()
    adapters: dict[str, Path] = {
        "q": save_peft_adapter(base, tmp_path / "q", seed=1, targets=["q_proj"]),
        "k": save_peft_adapter(base, tmp_path / "k", seed=2, targets=["k_proj"]),  # reload
        "dora": _save(
            base, tmp_path / "dora", seed=3, r=4, target_modules=["q_proj"], use_dora=True
        ),
        "q-again": save_peft_adapter(base, tmp_path / "q2", seed=6, targets=["q_proj"]),
    }
    data = {"de": RECORDS}
    in_place = evaluate.score_adapters_in_place(
        base, {n: [p] for n, p in adapters.items()}, data, precision="bf16"
    )
    fresh = evaluate.score_models(base, dict(adapters), data, precision="bf16")
    for name in adapters:
        assert in_place[name]["de"].metrics == fresh[name]["de"].metrics, name
    assert len({in_place[name]["de"].metrics["loss"] for name in adapters}) == len(adapters)


def test_an_adapter_it_cannot_fold_is_scored_by_peft_s_layers_and_says_why_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = builtin.path()
    dora = _save(base, tmp_path / "dora", seed=3, r=4, target_modules=["q_proj"], use_dora=True)
    # builtin:tiny ties its output layer to the embedding: peft saves the embedding with it
    tied = _save(base, tmp_path / "tied", seed=3, r=4, target_modules=["lm_head"])
    evaluate._say_once.cache_clear()
    for adapter, why in ((dora, "use_dora is set"), (tied, "is not a LoRA factor")):
        for _ in range(2):
            model = evaluate._load(base, adapter, "bf16")
            assert isinstance(model, PeftModel)
        assert capsys.readouterr().err.count(why) == 1
        with pytest.raises(folding.UnfoldableError, match=why):
            folding.load(base, adapter.name, *_source(adapter), keep=False)
    # Its factors alone: folding into a tied weight would change the embedding too.
    config, tensors = _source(tied)
    factors = {k: v for k, v in tensors.items() if ".lora_" in k}
    with pytest.raises(
        folding.UnfoldableError, match="lm_head's weight is tied to another layer's"
    ):
        folding.updates(load_base(base), "tied", config, factors)


@pytest.mark.parametrize(
    "change, error",
    [
        (
            lambda t: t.pop(next(k for k in t if "lora_B" in k)),
            r"adapter a does not fit its "
            r"config: missing \['base_model\.model\.model\.layers\.0\.\S+lora_B\.weight'\]",
        ),
        (
            lambda t: t.update({k: v[:, :-1] for k, v in t.items() if "lora_A" in k}),
            r"adapter a: model\.layers\.\d\.\S+ has lora_A \[4, \d+\] .* the base models differ",
        ),
    ],
    ids=["a-factor-without-its-pair", "factors-of-another-shape"],
)
def test_an_adapter_that_does_not_fit_is_refused_naming_it_and_the_factor(
    tmp_path: Path, change: Any, error: str
) -> None:
    base = builtin.path()
    config, tensors = _source(save_peft_adapter(base, tmp_path / "a", seed=1))
    change(tensors)
    with pytest.raises(ValueError, match=error):
        folding.load(base, "a", config, tensors, keep=False)
