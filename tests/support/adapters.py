"""Synthetic peft LoRA adapter folders with non-zero factors (peft initialises B to zero,
which would make every merge trivially equal)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PREFIX = "base_model.model."


def make_adapter(
    path: Path,
    shapes: dict[str, tuple[int, int]],
    rank: int = 4,
    alpha: float = 8,
    seed: int = 0,
    base_model: str = "builtin:tiny",
    language: str | None = None,
    rslora: bool = False,
    scale: float = 0.1,
) -> Path:
    """Writes adapter_config.json + adapter_model.safetensors; shapes: module -> (out, in)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for module, (out_features, in_features) in shapes.items():
        tensors[f"{PREFIX}{module}.lora_A.weight"] = (
            torch.randn(rank, in_features, generator=generator) * scale
        )
        tensors[f"{PREFIX}{module}.lora_B.weight"] = (
            torch.randn(out_features, rank, generator=generator) * scale
        )
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": alpha,
        "use_rslora": rslora,
        "lora_dropout": 0.0,
        "target_modules": sorted({m.rsplit(".", 1)[-1] for m in shapes}),
        "bias": "none",
    }
    (path / "adapter_config.json").write_text(json.dumps(config))
    if language:
        (path / "langmerge.json").write_text(
            json.dumps({"language": language, "baseModel": base_model})
        )
    return path


def dense_updates(path: Path) -> dict[str, torch.Tensor]:
    """module -> scale * B @ A in float64, read back the way peft applies them."""
    config = json.loads((path / "adapter_config.json").read_text())
    tensors = load_file(str(path / "adapter_model.safetensors"))
    updates = {}
    for key in tensors:
        if key.endswith(".lora_A.weight"):
            module = key[: -len(".lora_A.weight")]
            a = tensors[key].double()
            b = tensors[f"{module}.lora_B.weight"].double()
            r = a.shape[0]
            scale = config["lora_alpha"] / (r**0.5 if config.get("use_rslora") else r)
            updates[module] = scale * b @ a
    return updates


def worst_relative_error(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> float:
    """The largest |got - want| / |want| over the tensors, by Frobenius norm.

    Data-parallel training is the same update as one process's up to the all-reduce's
    summation order: per tensor that agrees to about 1e-5, while one element near zero can
    differ relatively by a few percent, so element-wise tolerances flake. A lost or doubled
    shard moves a tensor by 1e-1 or more."""
    assert got.keys() == want.keys()
    return max(float((got[k] - want[k]).norm() / want[k].norm()) for k in want)
