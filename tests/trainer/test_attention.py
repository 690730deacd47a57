"""Short rows' attention (langmerge.trainer.attention): the same attention as SDPA's, with and
without padding, grouped-query heads and Gemma 3's sliding window; in bf16 the loss and LoRA
gradients no farther from float32's than SDPA's; long rows and float32 go to SDPA itself, bit
for bit; the trainer loads it on a CPU for the checked model types only, and `--attention
sdpa` keeps SDPA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

from langmerge.common import builtin
from langmerge.common.logits import response_loss
from langmerge.trainer import attention
from langmerge.trainer.train import TrainConfig, lora_model
from tests.trainer.test_response_logits import IGNORED, batch, grads, lora


def gemma(folder: Path) -> Path:
    """A small Gemma 3 saved to a folder: grouped-query heads, an 8-token sliding window."""
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
        sliding_window=8,
    )  # fmt: skip
    Gemma3ForCausalLM(config).save_pretrained(folder)
    return folder


def unpadded(rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rows of one length, no padding: SDPA's mask is then none (a causal batch)."""
    ids = rows["input_ids"][:, :9]
    labels = ids.clone()
    labels[:, :4] = IGNORED
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def loss_and_grads(folder: Path, implementation: str, dtype: torch.dtype, rows: Any) -> Any:
    base = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, attn_implementation=implementation
    )
    torch.manual_seed(1)  # the same LoRA factors on every side
    model = lora(base)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        loss = response_loss(model, **rows)
    loss.backward()
    return loss.detach().double(), {k: v.double() for k, v in grads(model).items()}


def distance(got: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """The relative distance of all gradients together."""
    flat = torch.cat([g.flatten() for g in got.values()])
    expected = torch.cat([reference[k].flatten() for k in got])
    return float((flat - expected).norm() / expected.norm())


def models(tmp_path: Path) -> list[Path]:
    return [builtin.path(), gemma(tmp_path / "gemma")]


@pytest.mark.parametrize("padding", [True, False], ids=["padded", "unpadded"])
def test_bf16_loss_and_gradients_are_no_farther_from_float32_than_sdpas(
    tmp_path: Path, padding: bool
) -> None:
    name = attention.register()
    for folder in models(tmp_path):
        rows = batch(512)
        rows = rows if padding else unpadded(rows)
        exact, exact_grads = loss_and_grads(folder, "sdpa", torch.float32, rows)
        sdpa, sdpa_grads = loss_and_grads(folder, "sdpa", torch.bfloat16, rows)
        mine, mine_grads = loss_and_grads(folder, name, torch.bfloat16, rows)
        assert not torch.equal(mine, sdpa)  # the short path ran (its rounding differs)

        assert abs(mine - exact) <= max(2 * abs(sdpa - exact), 1e-2 * abs(exact)), (mine, sdpa)
        mine_error = distance(mine_grads, exact_grads)
        assert mine_error <= 1.5 * distance(sdpa_grads, exact_grads) + 1e-3, (folder, mine_error)


def test_the_short_path_is_sdpas_attention(tmp_path: Path) -> None:
    """float64 takes the short path (float32 alone keeps SDPA): equal to SDPA to 1e-10."""
    name = attention.register()
    for folder in models(tmp_path):
        for rows in (batch(512), unpadded(batch(512))):
            expected, expected_grads = loss_and_grads(folder, "sdpa", torch.float64, rows)
            got, got_grads = loss_and_grads(folder, name, torch.float64, rows)
            assert torch.allclose(got, expected, rtol=1e-10), (got, expected)
            for key, gradient in expected_grads.items():
                assert torch.allclose(got_grads[key], gradient, rtol=1e-8, atol=1e-12), key


def test_long_rows_and_float32_go_to_sdpa_bit_for_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = attention.register()
    folder = gemma(tmp_path / "gemma")
    rows = batch(512)
    fp32 = loss_and_grads(folder, name, torch.float32, rows)
    expected = loss_and_grads(folder, "sdpa", torch.float32, rows)
    assert torch.equal(fp32[0], expected[0])
    monkeypatch.setattr(attention, "SHORT_SCORES", 4 * 4 * 30 * 30 - 1)  # one row fewer fits
    long = loss_and_grads(folder, name, torch.bfloat16, rows)
    expected = loss_and_grads(folder, "sdpa", torch.bfloat16, rows)
    assert torch.equal(long[0], expected[0])
    for key, gradient in expected[1].items():
        assert torch.equal(long[1][key], gradient), key


def test_the_trainer_loads_it_on_a_cpu_for_checked_model_types_only(tmp_path: Path) -> None:
    config = TrainConfig(rank=4, alpha=8, dropout=0.0, target_modules=["q_proj"])
    assert torch.cuda.is_available() is False  # this test reads the CPU's choice
    for folder in models(tmp_path):
        loaded = lora_model(folder, config, "bf16")
        assert loaded.config._attn_implementation == attention.NAME
        kept = lora_model(folder, TrainConfig(**{**config.__dict__, "attention": "sdpa"}), "bf16")
        assert kept.config._attn_implementation == "sdpa"
    other = tmp_path / "gpt2"
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64)).save_pretrained(
        other
    )
    assert attention.implementation(other, "auto") is None
    assert attention.implementation(builtin.path(), "sdpa") is None
    assert attention.implementation(builtin.path(), "auto") == attention.NAME
