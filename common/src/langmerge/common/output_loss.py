"""The output layer and its cross-entropy in one pass over the vocabulary.

Training takes the loss at a few response positions, but each of them needs the whole
vocabulary: on Gemma 3 (262,144 tokens x 640) the output layer's weight is 335 MB in bf16, and
autograd reads it twice per step (the logits, then the hidden states' gradient) and passes four
times over a [positions, vocabulary] float32 tensor (the cast, log-softmax, the loss's gradient,
log-softmax's backward). Here the vocabulary is walked in blocks, as flash attention walks keys:
each block's logits, a running maximum and sum of exponentials (the log-sum-exp), and the
hidden states' gradient accumulated from the same block while it is still in cache,
sum_v (softmax_v - onehot_v) W_v, rescaled as the maximum grows. The weight is read once, no
[positions, vocabulary] tensor is ever held (a block's is), and backward only scales the
gradient kept from forward. Only for a frozen output layer (LoRA's case): a trained one takes
autograd's path (langmerge.common.logits)."""

from __future__ import annotations

from typing import Any

import torch

# Rows of the output weight per block: 4,096 x 640 bf16 is 5 MB, a block's logits and their
# exponentials stay in cache for the second product (the fastest of 2-16k on a Zen 5).
VOCABULARY_BLOCK = 4096


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype the products run in: autocast's where it is on, as nn.Linear would."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


class _FrozenOutputCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        cap: float | None,
    ) -> torch.Tensor:
        dtype = _compute_dtype(hidden)
        wants_gradient = ctx.needs_input_grad[0]
        rows = hidden.shape[0]
        h = hidden.to(dtype)
        running_max = torch.full((rows, 1), -torch.inf, device=hidden.device)
        running_sum = torch.zeros((rows, 1), device=hidden.device)
        others_sum = torch.zeros((rows, 1), device=hidden.device)  # all but the target's
        accumulated = (
            torch.zeros((rows, hidden.shape[1]), device=hidden.device) if wants_gradient else None
        )
        target_logit = torch.empty(rows, device=hidden.device)
        target_slope = torch.ones(rows, device=hidden.device)  # d capped / d raw at the target
        # The products in the computed dtype explicitly: autocast's copies would be the same.
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, weight.shape[0], VOCABULARY_BLOCK):
                block = weight[start : start + VOCABULARY_BLOCK].to(dtype)
                logits = torch.mm(h, block.t()).float()
                if bias is not None:
                    logits += bias[start : start + VOCABULARY_BLOCK].float()
                slope = None
                if cap is not None:
                    squashed = torch.tanh(logits / cap)
                    logits = squashed * cap
                    slope = 1 - squashed * squashed
                where = ((targets >= start) & (targets < start + block.shape[0])).nonzero()
                where = where.squeeze(1)
                column = targets[where] - start
                target_logit[where] = logits[where, column]
                if slope is not None:
                    target_slope[where] = slope[where, column]
                new_max = torch.maximum(running_max, logits.amax(dim=1, keepdim=True))
                rescale = torch.exp(running_max - new_max)
                exponentials = torch.exp(logits - new_max)
                running_sum = running_sum * rescale + exponentials.sum(dim=1, keepdim=True)
                running_max = new_max
                if accumulated is not None:
                    # The target's term is added apart below, as (p - 1) W with p - 1 from the
                    # other tokens' sum: p W - W would cancel to rounding when p is near 1.
                    exponentials[where, column] = 0
                    others_sum = others_sum * rescale + exponentials.sum(dim=1, keepdim=True)
                    if slope is not None:
                        exponentials *= slope
                    accumulated *= rescale
                    accumulated += torch.mm(exponentials.to(dtype), block).float()
            # -log p(target), the small terms first (the maximum is large, their sum small)
            losses = (running_max.squeeze(1) - target_logit) + running_sum.log().squeeze(1)
            if accumulated is not None:
                target_weight = -(others_sum / running_sum).squeeze(1) * target_slope  # p - 1
                gradient = accumulated / running_sum
                gradient += target_weight.unsqueeze(1) * weight[targets].to(dtype).float()
                ctx.save_for_backward(gradient.to(hidden.dtype))
        return losses.sum()

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[Any, ...]:
        (gradient,) = ctx.saved_tensors
        return gradient * upstream.to(gradient.dtype), None, None, None, None


def summed_cross_entropy(
    hidden: torch.Tensor,
    output_layer: torch.nn.Module,
    targets: torch.Tensor,
    cap: float | None = None,
) -> torch.Tensor:
    """Sum over positions of -log softmax(cap-squashed output_layer(hidden))[target], float32,
    for a frozen linear output layer; hidden is [positions, hidden size]."""
    weight = output_layer.weight
    bias = getattr(output_layer, "bias", None)
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError("summed_cross_entropy: the output layer is trained; use autograd's path")
    return _FrozenOutputCrossEntropy.apply(hidden, weight, bias, targets, cap)  # type: ignore[no-any-return]
