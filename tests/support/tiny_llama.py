"""A tiny Llama built locally (no model hub) and real peft adapters on it."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

TARGETS = ["q_proj", "v_proj", "down_proj"]


def tiny_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
        max_position_embeddings=64,
    )


def save_base(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    LlamaForCausalLM(tiny_config()).save_pretrained(path, safe_serialization=True)
    return path


def load_base(path: Path) -> LlamaForCausalLM:
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model


def save_peft_adapter(
    base_dir: Path,
    path: Path,
    seed: int,
    rank: int = 4,
    alpha: int = 8,
    targets: list[str] | None = None,
) -> Path:
    """A real peft adapter with random non-zero A and B (init_lora_weights=False)."""
    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=targets or TARGETS,
        init_lora_weights=False,
        lora_dropout=0.0,
    )
    model = get_peft_model(load_base(base_dir), config)
    model.save_pretrained(path)
    return path


def logits(model: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(input_ids=ids).logits
