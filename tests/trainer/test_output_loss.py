"""The output layer's cross-entropy in one pass over the vocabulary
(langmerge.common.output_loss): the loss and the hidden states' gradient equal autograd's over
the full logits, across block boundaries (a last block shorter than the others), with the
model's soft-capping and a bias; in bf16 the gradient stays accurate where the target's
probability is near 1 (the target's term kept out of the rounded product); with no gradient
wanted nothing is kept; a trained output layer takes autograd's path and gets its gradient;
the targets' log-probabilities for scoring equal the full log-softmax's, and a wrapped output
layer (a LoRA on it) is scored from its full logits."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model

from langmerge.common import output_loss
from langmerge.common.logits import decode, response_loss, target_logprobs
from tests.trainer.test_response_logits import batch, gemma, grads, lora

VOCABULARY, HIDDEN, POSITIONS = 520, 24, 37


def layer(bias: bool, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    linear = torch.nn.Linear(HIDDEN, VOCABULARY, bias=bias)
    linear.requires_grad_(False)  # frozen, as under LoRA
    return linear


def autograd_reference(
    hidden: torch.Tensor, linear: torch.nn.Linear, targets: torch.Tensor, cap: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = hidden.detach().clone().requires_grad_()
    logits = linear(hidden)
    logits = logits if logits.dtype == torch.float64 else logits.float()  # float64 stays exact
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    loss.backward()
    assert hidden.grad is not None
    return loss.detach(), hidden.grad


@pytest.mark.parametrize("cap", [None, 3.0], ids=["uncapped", "soft-capped"])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("block", [64, 100, 4096], ids=["blocks-64", "blocks-100", "one-block"])
def test_loss_and_gradient_equal_autograds_over_the_full_logits(
    monkeypatch: pytest.MonkeyPatch, cap: float | None, bias: bool, block: int
) -> None:
    monkeypatch.setattr(output_loss, "VOCABULARY_BLOCK", block)
    linear = layer(bias)
    hidden = torch.randn(POSITIONS, HIDDEN) * 3
    # targets in the first, a middle and the last (short) block, repeated ones among them
    targets = torch.randint(0, VOCABULARY, (POSITIONS,), generator=torch.Generator().manual_seed(1))
    targets[:3] = torch.tensor([0, VOCABULARY - 1, VOCABULARY - 1])
    expected_loss, expected_gradient = autograd_reference(hidden, linear, targets, cap)
    mine = hidden.clone().requires_grad_()
    loss = output_loss.summed_cross_entropy(mine, linear, targets, cap)
    (loss * 0.5).backward()  # the upstream gradient scales the kept one
    assert mine.grad is not None
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, expected_loss, rtol=1e-6), (loss.item(), expected_loss.item())
    assert torch.allclose(mine.grad, 0.5 * expected_gradient, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cap", [None, 3.0], ids=["uncapped", "soft-capped"])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_target_log_probabilities_equal_the_full_log_softmax(
    monkeypatch: pytest.MonkeyPatch, cap: float | None, bias: bool
) -> None:
    monkeypatch.setattr(output_loss, "VOCABULARY_BLOCK", 100)
    linear = layer(bias)
    hidden = torch.randn(POSITIONS, HIDDEN) * 3
    targets = torch.randint(0, VOCABULARY, (POSITIONS,), generator=torch.Generator().manual_seed(2))
    logits = linear(hidden).float()
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    expected = torch.log_softmax(logits, dim=1)[torch.arange(POSITIONS), targets]
    got = output_loss.target_log_probabilities(hidden, linear, targets, cap)
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_a_wrapped_output_layer_is_scored_from_its_full_logits() -> None:
    """A LoRA on the output layer: not a plain linear layer, so the full logits serve (and the
    walk refuses it), with the same scores as the model's own forward."""
    model = get_peft_model(
        gemma(), LoraConfig(r=2, target_modules=["lm_head"], init_lora_weights=False)
    ).eval()
    assert not output_loss.is_plain_linear(model.get_output_embeddings())
    with pytest.raises(ValueError, match="plain linear"):
        output_loss.target_log_probabilities(
            torch.randn(2, 32), model.get_output_embeddings(), torch.tensor([1, 2])
        )
    rows = batch(model.config.vocab_size)
    keep = rows["attention_mask"].bool()
    keep[:, -1] = False
    targets = rows["input_ids"][:, 1:][keep[:, :-1]]
    with torch.no_grad():
        full = model(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"]).logits
        expected = torch.log_softmax(full[keep].float(), dim=1)
        hidden = decode(model, rows["input_ids"], rows["attention_mask"]).last_hidden_state
        got = target_logprobs(model, hidden[keep], targets)
    wanted = expected[torch.arange(len(targets)), targets]
    assert torch.allclose(got, wanted, rtol=1e-5, atol=1e-5)


def test_bf16_gradient_stays_accurate_where_the_target_is_nearly_certain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hidden states pointing at their target's weight row: p(target) is 0.94 to 1 - 1e-9, so
    the true gradient, (p - 1) W_target + the others' p W, is small. Against float64, each
    row's bf16 gradient is within 20 % (the logits' bf16 rounding): p - 1 comes from the other
    tokens' sum. Taken as p W - W inside the bf16 product, or as a float32 p - 1 (autograd's
    path: 0 below 6e-8), the target's term is lost and the error is of the gradient's size."""
    monkeypatch.setattr(output_loss, "VOCABULARY_BLOCK", 128)
    linear = layer(bias=False)
    linear.weight.data = linear.weight.data.bfloat16().float()  # exact in bf16
    targets = torch.arange(POSITIONS) * 13 % VOCABULARY
    rows = linear.weight[targets]
    hidden = (rows * 40 / (rows * rows).sum(1, keepdim=True)).bfloat16().float()
    probability = torch.softmax(linear(hidden).double(), dim=1)[torch.arange(POSITIONS), targets]
    assert float(probability.min()) > 0.9 and float(probability.median()) > 0.999
    _, exact = autograd_reference(hidden.double(), linear.double(), targets, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, autograds = autograd_reference(hidden.bfloat16(), linear.bfloat16(), targets, None)
        mine = hidden.bfloat16().requires_grad_()
        loss = output_loss.summed_cross_entropy(mine, linear.bfloat16(), targets)
    loss.backward()
    assert mine.grad is not None and mine.grad.dtype == torch.bfloat16
    error = (mine.grad.double() - exact).norm(dim=1) / exact.norm(dim=1)
    reference = (autograds.double() - exact).norm(dim=1) / exact.norm(dim=1)
    assert float(error.max()) < 0.2, error
    assert float(reference.max()) > 1, reference  # the rows here are where it matters
    assert float(error.mean()) < float(reference.mean())


def test_without_a_gradient_wanted_nothing_is_kept() -> None:
    linear = layer(bias=False)
    hidden = torch.randn(POSITIONS, HIDDEN)
    targets = torch.randint(0, VOCABULARY, (POSITIONS,))
    with torch.no_grad():
        loss = output_loss.summed_cross_entropy(hidden, linear, targets)
    expected, _ = autograd_reference(hidden, linear, targets, None)
    assert not loss.requires_grad and loss.grad_fn is None
    assert torch.allclose(loss, expected, rtol=1e-6)


def test_a_trained_output_layer_takes_autograds_path_and_gets_its_gradient() -> None:
    def with_trained_head() -> Any:
        model = lora(gemma())
        model.get_base_model().lm_head.weight.requires_grad_(True)  # tied: the embeddings too
        return model

    linear = layer(bias=False)
    linear.requires_grad_(True)
    with pytest.raises(ValueError, match="trained"):
        output_loss.summed_cross_entropy(torch.randn(2, HIDDEN), linear, torch.tensor([1, 2]))
    model = with_trained_head()
    rows = batch(model.config.vocab_size)
    model(**rows).loss.backward()
    expected = grads(model)
    response_loss(model, **rows).backward()
    got = grads(model)
    head = "base_model.model.lm_head.weight"
    names = {n for n, _ in model.named_parameters()}
    assert head in expected or "base_model.model.model.embed_tokens.weight" in expected, names
    assert got.keys() == expected.keys()
    for name, gradient in expected.items():
        scale = float(gradient.abs().max())
        assert torch.allclose(got[name], gradient, rtol=1e-5, atol=1e-6 * scale), name
