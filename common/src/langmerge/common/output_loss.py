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
autograd's path (langmerge.common.logits). Scoring walks the same way without the gradient: a
label's or an alternative's log-probability needs the log-sum-exp and the target's logit only."""

from __future__ import annotations

from typing import Any, cast

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


def _walk(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    cap: float | None,
    with_gradient: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """-log p(target) of each position (float32) and, when asked, the gradient of their sum
    with respect to hidden (float32)."""
    dtype = _compute_dtype(hidden)
    rows, device = hidden.shape[0], hidden.device
    h = hidden.to(dtype)
    running_max = torch.full((rows, 1), -torch.inf, device=device)
    running_sum = torch.zeros((rows, 1), device=device)
    others_sum = torch.zeros((rows, 1), device=device)  # all but the target's
    accumulated = torch.zeros((rows, hidden.shape[1]), device=device) if with_gradient else None
    target_logit = torch.empty(rows, device=device)
    target_slope = torch.ones(rows, device=device)  # d capped / d raw, at the target
    # The products in the computed dtype explicitly: autocast's copies would be the same.
    with torch.autocast(device.type, enabled=False):
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
            where = ((targets >= start) & (targets < start + block.shape[0])).nonzero().squeeze(1)
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
        # the small terms first: the maximum can be large, the log of the sum is small
        losses = (running_max.squeeze(1) - target_logit) + running_sum.log().squeeze(1)
        if accumulated is None:
            return losses, None
        target_weight = -(others_sum / running_sum).squeeze(1) * target_slope  # p - 1
        gradient = accumulated / running_sum
        gradient += target_weight.unsqueeze(1) * weight[targets].to(dtype).float()
    return losses, gradient


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
        losses, gradient = _walk(hidden, weight, bias, targets, cap, ctx.needs_input_grad[0])
        if gradient is not None:
            ctx.save_for_backward(gradient.to(hidden.dtype))
        return losses.sum()

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[Any, ...]:
        (gradient,) = ctx.saved_tensors
        return gradient * upstream.to(gradient.dtype), None, None, None, None


def is_plain_linear(output_layer: torch.nn.Module) -> bool:
    """A linear layer as torch defines it (not a LoRA or other wrapper): the walk's case."""
    return type(output_layer) is torch.nn.Linear


def is_frozen_linear(output_layer: torch.nn.Module) -> bool:
    """A plain linear layer that nothing trains: the training loss's case."""
    frozen = not any(p.requires_grad for p in output_layer.parameters())
    return is_plain_linear(output_layer) and frozen


def target_log_probabilities(
    hidden: torch.Tensor,
    output_layer: torch.nn.Module,
    targets: torch.Tensor,
    cap: float | None = None,
) -> torch.Tensor:
    """log softmax(cap-squashed output_layer(hidden))[target] of each position, float32, without
    a gradient: a label's or an alternative's score."""
    if not is_plain_linear(output_layer):
        raise ValueError("target_log_probabilities: the output layer is not a plain linear one")
    linear = cast(torch.nn.Linear, output_layer)
    with torch.no_grad():
        losses, _ = _walk(hidden, linear.weight, linear.bias, targets, cap, with_gradient=False)
    return -losses


def summed_cross_entropy(
    hidden: torch.Tensor,
    output_layer: torch.nn.Module,
    targets: torch.Tensor,
    cap: float | None = None,
) -> torch.Tensor:
    """Sum over positions of -log softmax(cap-squashed output_layer(hidden))[target], float32,
    for a frozen linear output layer; hidden is [positions, hidden size]."""
    if not is_frozen_linear(output_layer):
        raise ValueError("summed_cross_entropy: the output layer is trained; use autograd's path")
    linear = cast(torch.nn.Linear, output_layer)
    return _FrozenOutputCrossEntropy.apply(hidden, linear.weight, linear.bias, targets, cap)  # type: ignore[no-any-return]
