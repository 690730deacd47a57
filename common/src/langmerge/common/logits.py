"""Logits only where they are used. A causal LM's output layer maps every position to the
whole vocabulary: on Gemma 3 (262,144 tokens over a hidden size of 640) that is most of a
training step and of a scoring pass, while the loss needs the response's positions only and a
label's score the label's. These run the model's decoder, pick the positions, and apply the
output layer (with the model's final soft-capping, where it has one) to those alone: the same
numbers as the model's own forward at those positions, up to float summation order. Where only
the targets' log-probabilities are wanted (the training loss, a label's score), a plain output
layer's weight is walked once instead (langmerge.common.output_loss).

Torch is imported by the callers (the trainer and the evaluator), never at import time here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

IGNORED = -100  # the label of a position that is not trained on (padding, the prompt)


def _causal_lm(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supported(model: Any) -> bool:
    """Whether the model splits into a decoder and an output layer this module can drive."""
    lm = _causal_lm(model)
    return callable(getattr(lm, "get_decoder", None)) and lm.get_output_embeddings() is not None


def decode(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> Any:
    """The decoder's output (last_hidden_state, and its cache when use_cache=True):
    the model without its output layer."""
    return _causal_lm(model).get_decoder()(
        input_ids=input_ids, attention_mask=attention_mask, **kwargs
    )


def output_logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The output layer (and the model's final soft-capping) applied to hidden states."""
    import torch

    lm = _causal_lm(model)
    logits = lm.get_output_embeddings()(hidden)
    cap = getattr(lm.config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits  # type: ignore[no-any-return]


# Positions whose full logits are held at once where the output layer is not walked: 256 x
# Gemma's 262,144 tokens is 0.27 GB in float32 (64 summaries of 25 tokens at once: 1.7 GB).
POSITIONS = 256


def target_logprobs(model: Any, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The log-probability (float32) of each position's target token, from its hidden state:
    in one pass over a plain output layer's weight (langmerge.common.output_loss), else from
    the full logits."""
    import torch

    from langmerge.common import output_loss

    lm = _causal_lm(model)
    layer = lm.get_output_embeddings()
    if output_loss.is_plain_linear(layer):
        cap = getattr(lm.config, "final_logit_softcapping", None)
        return output_loss.target_log_probabilities(hidden, layer, targets, cap)
    picked = []
    for at in range(0, len(targets), POSITIONS):
        logits = output_logits(model, hidden[at : at + POSITIONS]).float()
        wanted = targets[at : at + POSITIONS].unsqueeze(1)
        picked.append(torch.log_softmax(logits, dim=-1).gather(1, wanted).squeeze(1))
    return torch.cat(picked) if picked else hidden.new_zeros(0, dtype=torch.float32)


def response_loss(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: float | None = None,
) -> torch.Tensor:
    """The causal LM loss of transformers' models (each position predicts the next token's
    label; float32 cross-entropy summed over the trained tokens, divided by
    num_items_in_batch, else their count), from the logits of the trained positions only;
    with a frozen output layer, in one pass over its weight (langmerge.common.output_loss)."""
    import torch
    from torch.nn.functional import cross_entropy

    targets = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)  # the positions predicting a label
    keep[:, :-1] = targets != IGNORED
    hidden = decode(model, input_ids, attention_mask).last_hidden_state[keep]
    wanted = targets[keep[:, :-1]]
    lm = _causal_lm(model)
    layer = lm.get_output_embeddings()
    from langmerge.common import output_loss

    if output_loss.is_frozen_linear(layer):  # LoRA's case: one pass over the vocabulary
        cap = getattr(lm.config, "final_logit_softcapping", None)
        summed = output_loss.summed_cross_entropy(hidden, layer, wanted, cap)
    else:  # a trained or wrapped output layer: autograd's path
        logits = output_logits(model, hidden)
        summed = cross_entropy(logits.float(), wanted, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else max(int(keep.sum()), 1)
    return summed / count
