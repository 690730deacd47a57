"""Scoring an adapter in bf16 with its update folded into the base model's weights: each
targeted layer's weight becomes bf16(W + scale * B @ A), the sum taken in float32 from the
base's float32 weights, and the model scored is the plain base model, without LoRA layers in
its forward. peft's layers beside a bf16 base keep the LoRA weights in float32 and cast every
targeted layer's input to float32 and back (benchmarks/eval_compare.py: the evaluator 1.03-1.15x
faster folded, on Gemma 3 270M). Rounded once, the folded weight is as near the
exact model as the base's own bf16 weights are; fp32 scoring keeps peft's layers (exact).

A search's candidates share one folded model: the float32 originals of the targeted weights
are kept, and each candidate is folded into them in turn (`refold`), its weights equal to a
fresh load's bit for bit. An adapter this cannot fold (DoRA, extra trained modules, a tied or
non-linear target) raises UnfoldableError, and peft's layers score it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langmerge.merger.adapters import lora_factors, lora_scale

PEFT_PREFIX = "base_model.model."  # how peft names the wrapped model's modules


class UnfoldableError(ValueError):
    """An adapter whose update this module cannot fold into the weights; the message says why."""


@dataclass
class Update:
    """One targeted layer's update: its weight, and the factors with their scale."""

    weight: Any  # the layer's parameter in the loaded model
    a: Any  # [r, in]
    b: Any  # [out, r]
    scale: float

    def added_to(self, original: Any) -> Any:
        """original + scale * B @ A, in float32."""
        return original + (self.b.float() @ self.a.float()) * self.scale


@dataclass
class Folded:
    """A plain model in bf16 with one adapter folded in, and the float32 originals of the
    weights it may fold into again (empty when it will score one adapter only)."""

    model: Any
    originals: dict[str, Any]


def _unfoldable_config(config: dict[str, Any]) -> str | None:
    reasons = {
        "peft_type is not LORA": config.get("peft_type", "LORA") != "LORA",
        "use_dora is set": bool(config.get("use_dora")),
        "modules_to_save is set": bool(config.get("modules_to_save")),
        "lora_bias is set": bool(config.get("lora_bias")),
        "bias is trained": config.get("bias", "none") != "none",
        "fan_in_fan_out is set": bool(config.get("fan_in_fan_out")),
        "target_parameters is set": bool(config.get("target_parameters")),
        "trainable_token_indices is set": bool(config.get("trainable_token_indices")),
    }
    return next((reason for reason, found in reasons.items() if found), None)


def updates(
    model: Any, name: str, config: dict[str, Any], tensors: dict[str, Any]
) -> dict[str, Update]:
    """The adapter's update of each layer of `model` it targets, by the layer's name in the
    model. Raises ValueError naming the adapter when a factor lacks its pair or does not fit
    its layer, and UnfoldableError when peft's layers must score it."""
    import torch

    reason = _unfoldable_config(config)
    if reason:
        raise UnfoldableError(f"adapter {name}: {reason}")
    modules, strays = lora_factors(tensors, name)
    outside = [module for module in modules if not module.startswith(PEFT_PREFIX)]
    if strays or outside:  # an embedding, a DoRA magnitude, a module named another way
        raise UnfoldableError(
            f"adapter {name}: tensor {(strays + outside)[0]!r} is not a LoRA factor"
        )
    shared = _tied_weights(model)
    out: dict[str, Update] = {}
    for module, (key_a, key_b) in modules.items():
        layer_name = module[len(PEFT_PREFIX) :]
        try:
            layer = model.get_submodule(layer_name)
        except AttributeError as error:
            raise ValueError(f"adapter {name}: the base model has no layer {layer_name}") from error
        if type(layer) is not torch.nn.Linear:
            raise UnfoldableError(f"adapter {name}: {layer_name} is a {type(layer).__name__}")
        if id(layer.weight) in shared:
            raise UnfoldableError(
                f"adapter {name}: {layer_name}'s weight is tied to another layer's"
            )
        a, b = tensors[key_a], tensors[key_b]
        if a.dim() != 2 or b.dim() != 2 or (b.shape[0], a.shape[1]) != tuple(layer.weight.shape):
            raise ValueError(
                f"adapter {name}: {layer_name} has lora_A {list(a.shape)} and lora_B "
                f"{list(b.shape)}, its weight is {list(layer.weight.shape)}; the base models differ"
            )
        out[layer_name] = Update(layer.weight, a, b, lora_scale(config, module, int(a.shape[0])))
    return out


def _tied_weights(model: Any) -> set[int]:
    """The ids of parameters that more than one layer holds (Gemma's output layer and embedding)."""
    seen: dict[int, int] = {}
    for _, parameter in model.named_parameters(remove_duplicate=False):
        seen[id(parameter)] = seen.get(id(parameter), 0) + 1
    return {key for key, count in seen.items() if count > 1}


def load(
    base: Path, name: str, config: dict[str, Any], tensors: dict[str, Any], keep: bool
) -> Folded:
    """The base model in bf16, as transformers loads it in bf16 (its rotary tables stay
    float32), with the adapter folded in from a float32 load's weights; with keep, those
    float32 originals of the targeted weights too, for `refold`."""
    import torch
    from transformers import AutoModelForCausalLM

    exact = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16).eval()
    found = updates(exact, name, config, tensors)
    originals = {layer_name: update.weight.detach() for layer_name, update in found.items()}
    del exact  # only the targeted weights' float32 originals stay
    folded = Folded(model, originals)
    _write(folded, found)
    if not keep:
        folded.originals = {}
    return folded


def refold(folded: Folded, name: str, config: dict[str, Any], tensors: dict[str, Any]) -> bool:
    """Folds another adapter into the originals in place of the one before; False (the model
    unchanged) when it targets a layer whose original is not kept."""
    found = updates(folded.model, name, config, tensors)
    if not set(found) <= set(folded.originals):
        return False
    _write(folded, found)
    return True


def _write(folded: Folded, found: dict[str, Update]) -> None:
    """Every kept layer's weight: its original plus its update, if the adapter has one."""
    import torch

    with torch.no_grad():
        for layer_name, original in folded.originals.items():
            weight = folded.model.get_submodule(layer_name).weight
            update = found.get(layer_name)
            weight.copy_(update.added_to(original) if update else original)
