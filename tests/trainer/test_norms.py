"""Gemma 3's RMS norms with the closed-form backward (langmerge.trainer.norms): the model's own
outputs bit for bit, the input's gradient the same function (as near a float64 reference as
autograd's), in float32 and bf16, for a norm alone and for a whole LoRA model; a trained norm
keeps its weight's gradient; the trainer installs them for frozen norms only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm

from langmerge.common.logits import response_loss
from langmerge.trainer import norms
from langmerge.trainer.train import TrainConfig, lora_model
from tests.trainer.test_attention import gemma
from tests.trainer.test_response_logits import batch, grads


def frozen_norm(width: int, dtype: torch.dtype) -> Gemma3RMSNorm:
    torch.manual_seed(0)
    norm = Gemma3RMSNorm(width).to(dtype)
    with torch.no_grad():
        norm.weight.normal_(0, 0.3)  # Gemma's weights are offsets from 1 (the scale is 1 + w)
    norm.weight.requires_grad_(False)
    return norm


def input_gradient(norm: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> tuple:
    x = x.detach().clone().requires_grad_()
    out = norm(x)
    out.backward(upstream)
    assert x.grad is not None
    return out.detach(), x.grad


def reference_gradient(
    norm: Gemma3RMSNorm, x: torch.Tensor, upstream: torch.Tensor
) -> torch.Tensor:
    """The same function in float64, differentiated by autograd."""
    exact = x.detach().double().requires_grad_()
    r = torch.rsqrt(exact.pow(2).mean(-1, keepdim=True) + norm.eps)
    (exact * r * (1 + norm.weight.double())).backward(upstream.double())
    assert exact.grad is not None
    return exact.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", [(4, 9, 64), (4, 9, 2, 16)], ids=["hidden", "heads"])
def test_outputs_are_the_models_bits_and_the_gradient_its_function(
    dtype: torch.dtype, shape: tuple[int, ...]
) -> None:
    norm = frozen_norm(shape[-1], dtype)
    replaced = norms.FrozenGemmaRMSNorm(norm.weight, norm.eps)
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(shape, generator=generator) * 3).to(dtype)
    upstream = torch.randn(shape, generator=generator).to(dtype)
    expected_out, expected_grad = input_gradient(norm, x, upstream)
    got_out, got_grad = input_gradient(replaced, x, upstream)
    assert got_out.dtype == expected_out.dtype and torch.equal(got_out, expected_out)
    assert got_grad.dtype == dtype
    reference = reference_gradient(norm, x, upstream)
    error = float((got_grad.double() - reference).abs().max())
    autograd_error = float((expected_grad.double() - reference).abs().max())
    # fp32: both near 1e-6 of the reference; bf16: both a rounding of the result to bf16
    assert error <= 1.5 * autograd_error + 1e-6, (error, autograd_error)
    assert error <= (1e-5 if dtype == torch.float32 else 2e-2) * float(reference.abs().max())


def test_a_trained_norm_keeps_its_weights_gradient() -> None:
    norm = frozen_norm(32, torch.float32)
    norm.weight.requires_grad_(True)
    replaced = norms.FrozenGemmaRMSNorm(norm.weight, norm.eps)
    x = torch.randn(3, 5, 32)
    found = {}
    for side, module in (("model's own", norm), ("replaced", replaced)):
        module(x).square().sum().backward()
        assert norm.weight.grad is not None
        found[side], norm.weight.grad = norm.weight.grad, None
    assert torch.equal(found["replaced"], found["model's own"])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_trainers_model_has_them_with_the_same_loss_and_near_gradients(
    tmp_path: Path, precision: str
) -> None:
    folder = gemma(tmp_path / "gemma")
    config = TrainConfig(rank=4, alpha=8, dropout=0.0, target_modules=["q_proj", "down_proj"])
    results = {}
    for side in ("model's own", "replaced"):
        torch.manual_seed(0)
        model = lora_model(folder, config, precision)
        found = [m for m in model.modules() if isinstance(m, norms.FrozenGemmaRMSNorm)]
        assert len(found) == 6 * 2 + 1  # six a layer (two layers) and the final norm
        assert not any(isinstance(m, Gemma3RMSNorm) for m in model.modules())
        if side == "model's own":  # put the model's norms back, with the same weights
            for name, module in list(model.named_modules()):
                if isinstance(module, norms.FrozenGemmaRMSNorm):
                    own = Gemma3RMSNorm(module.weight.shape[0], module.eps)
                    own.weight = module.weight
                    parent, _, child = name.rpartition(".")
                    setattr(model.get_submodule(parent), child, own)
        for module in model.modules():  # nonzero B: gradients reach every LoRA factor
            if hasattr(module, "lora_B"):
                torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
        rows = batch(model.config.vocab_size)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = response_loss(model, rows["input_ids"], rows["attention_mask"], rows["labels"])
        loss.backward()
        results[side] = (loss.detach(), grads(model))
    own_loss, own_grads = results["model's own"]
    loss, found_grads = results["replaced"]
    assert torch.equal(loss, own_loss)  # forward: the same bits
    assert found_grads.keys() == own_grads.keys() and own_grads
    flat = torch.cat([found_grads[k].flatten() for k in own_grads])
    expected = torch.cat([g.flatten() for g in own_grads.values()])
    relative = float((flat - expected).norm() / expected.norm())
    assert 0 < relative < (1e-5 if precision == "fp32" else 2e-2), relative


def test_only_frozen_norms_are_replaced(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gemma(tmp_path / "gemma"))
    trained = model.model.norm.weight  # the final norm stays trained, the rest frozen
    for parameter in model.parameters():
        parameter.requires_grad_(parameter is trained)
    assert norms.install(model) == 6 * 2
    assert isinstance(model.model.norm, Gemma3RMSNorm)
    layer = model.model.layers[0]
    assert isinstance(layer.input_layernorm, norms.FrozenGemmaRMSNorm)
    assert layer.input_layernorm.weight is not None
    assert set(model.state_dict()) == set(
        AutoModelForCausalLM.from_pretrained(tmp_path / "gemma").state_dict()
    )
