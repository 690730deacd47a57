"""Reproducible numerics for the trainer and the evaluator: the same inputs give the same
bits on the same machine, run after run (the demo's evaluation tables are compared whole)."""

from __future__ import annotations

import os

THREADS_VARIABLE = "LANGMERGE_TORCH_THREADS"


def deterministic(seed: int | None = None) -> None:
    """Deterministic kernels, a fixed intra-op thread count (LANGMERGE_TORCH_THREADS, else
    torch's default for this machine) and, given a seed, seeded generators."""
    import torch

    threads = os.environ.get(THREADS_VARIABLE)
    if threads:
        torch.set_num_threads(int(threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    if seed is not None:
        torch.manual_seed(seed)
