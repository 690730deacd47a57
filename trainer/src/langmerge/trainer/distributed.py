"""Data parallel training: every process builds the same global batches, takes its share of
each one's rows and scales its loss so that the averaged gradient equals the gradient of the
whole batch's mean token loss. With the same global batch and seed, N processes train what one
process trains, up to float summation order, when LoRA dropout is 0 (with dropout, each rank
draws its own masks: the same distribution, other samples).

The launcher (torchrun, accelerate launch, Kubeflow Trainer's torch runtime) sets RANK and
WORLD_SIZE; gloo carries the gradients on CPU, nccl on GPU (accelerate picks)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports this module before torch is needed
    import torch

IGNORED = -100  # the label of a token that is not trained on (padding, the prompt)


def rank() -> int:
    """This process's rank, before any process group exists (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0 publishes the artifact and the summary; other ranks only train."""
    return rank() == 0


def share(
    batch: dict[str, torch.Tensor], rank: int, world: int
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This rank's rows of a global batch (every world-th row from its rank) and the forward
    keyword that scales its summed token loss by world / the batch's trained tokens.

    A rank left without rows (a last batch smaller than the world) runs its first row with no
    trained token: a zero loss that still takes part in the gradient exchange."""
    if world == 1:
        return batch, {}
    rows = batch["input_ids"].shape[0]
    trained = int((batch["labels"][:, 1:] != IGNORED).sum())  # the tokens a shift predicts
    if rank < rows:
        mine = {key: value[rank::world] for key, value in batch.items()}
    else:
        mine = {key: value[:1].clone() for key, value in batch.items()}
        mine["labels"].fill_(IGNORED)
    # The model's loss is then sum / (trained / world); the gradient exchange averages over
    # the world: sum over ranks of the token losses / trained, the single-process mean.
    return mine, {"num_items_in_batch": max(trained, 1) / world}


def rng_states(world: int) -> list[dict[str, Any]]:
    """Every rank's generator states (CPU and its own GPU), in rank order; a collective that
    every rank calls. A resumed run restores each rank's own: GPU generators advance by the
    size of what each rank drew (its share's shape), so the ranks' states differ."""
    import torch

    own = {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
    }
    if world == 1:
        return [own]
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, own)
    return gathered


def restore_rng(state: dict[str, Any]) -> None:
    """This rank's generator states, as rng_states gathered them."""
    import torch

    torch.set_rng_state(torch.as_tensor(state["cpu"]))
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.as_tensor(state["cuda"]))
