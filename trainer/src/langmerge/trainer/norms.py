"""Gemma 3's RMS norms with a hand-written backward, for frozen norm weights (LoRA's case).

Gemma 3 normalises in float32 and scales by (1 + weight): ten small operations forward, and
autograd's backward goes back through each of them, each on a fresh float32 tensor of the
input's size. A Gemma 3 270M layer has six norms (four on the hidden states, two on the
queries and keys), 108 in its 18 layers. With the weight frozen only the input's gradient
is needed, and it has a closed form: for y = x * r, r = 1 / rms(x), out = y * s,

    dx = r * (dy - y * mean(dy * y)),   dy = d_out * s,

which the backward computes in one short pass from the input and r, the only tensors kept
(the bf16 input instead of autograd's float32 intermediates). The forward is the model's own,
operation for operation, so its outputs are the same bits; the input's gradient is the same
function, rounded differently (tests/trainer/test_norms.py). A norm whose weight is trained
keeps the model's own module."""

from __future__ import annotations

from typing import Any

import torch

CHECKED_CLASS = "Gemma3RMSNorm"


class _FrozenScaleRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
        exact = x.float()
        r = torch.rsqrt(exact.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, r, scale)
        return (exact * r * scale).type_as(x)

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[Any, ...]:
        x, r, scale = ctx.saved_tensors
        # out of place first: in float32 .float() is the tensor itself (the input, the upstream)
        y = x.float() * r
        dy = upstream.float() * scale
        projection = (dy * y).mean(-1, keepdim=True)
        return dy.sub_(y.mul_(projection)).mul_(r).type_as(x), None, None


class FrozenGemmaRMSNorm(torch.nn.Module):
    """Gemma3RMSNorm's function with the closed-form input gradient; the same weight."""

    def __init__(self, weight: torch.nn.Parameter, eps: float) -> None:
        super().__init__()
        self.weight, self.eps = weight, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 + self.weight.float()
        if self.weight.requires_grad:  # trained after all: autograd's path, the model's own
            exact = x.float()
            r = torch.rsqrt(exact.pow(2).mean(-1, keepdim=True) + self.eps)
            return (exact * r * scale).type_as(x)
        return _FrozenScaleRMSNorm.apply(x, scale, self.eps)  # type: ignore[no-any-return]

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.eps}, frozen weight"


def install(model: torch.nn.Module) -> int:
    """Replaces each Gemma3RMSNorm whose weight is frozen by FrozenGemmaRMSNorm (the same
    weight, so state dicts are unchanged); returns how many were replaced."""
    replaced = []
    for name, module in model.named_modules():
        if type(module).__name__ == CHECKED_CLASS and not module.weight.requires_grad:
            replaced.append((name, module))
    for name, module in replaced:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, FrozenGemmaRMSNorm(module.weight, module.eps))
    return len(replaced)
