"""The mathematical steps merges are composed of, one pure function each.

Conventions (shared by every method):
- A task tensor is the update of one adapter for one module (dense dW, or a KnOTS block);
  a stack is those tensors for n adapters, shape (n, ...).
- Weights are applied *before* the sign election (mergekit's convention): the election sees
  w_i * tau_i, and the disjoint mean divides by the sum of the weights that agree. With equal
  weights this is exactly TIES's disjoint mean.
- TIES pruning keeps, per task, the entries whose magnitude is >= the k-th smallest magnitude
  with k = d - int(d * density) (the TIES reference's `topk_values_mask`).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

BINS = 1 << 15  # float32 |x| bit patterns >> 16: monotonic in |x|, 32768 buckets


def magnitude_buckets(values: torch.Tensor) -> torch.Tensor:
    """Bucket index of |values| (any float dtype): the top 16 bits of the float32 pattern.

    Rounding to float32 is monotonic, so bucket order is magnitude order; the k-th largest
    magnitude therefore lies in a bucket found from the bucket counts alone.
    """
    bits = values.detach().abs().to(torch.float32).contiguous().view(torch.int32)
    return torch.bitwise_right_shift(bits, 16)


def bucket_counts(values: torch.Tensor) -> torch.Tensor:
    """Histogram (length 32768, int64) of magnitude_buckets(values)."""
    return torch.bincount(magnitude_buckets(values).flatten(), minlength=BINS)


def bucket_range(bucket: int) -> tuple[float, float]:
    """The magnitudes [low, high) whose float32 pattern falls in bucket."""
    edges = torch.tensor([bucket << 16, min((bucket + 1) << 16, 0x7F800000)], dtype=torch.int32)
    low, high = edges.view(torch.float32).tolist()
    return low, high


def in_bucket(values: torch.Tensor, bucket: int) -> torch.Tensor:
    """The entries of values (flattened) whose magnitude lies in bucket."""
    flat = values.flatten()
    if flat.dtype == torch.float32:
        low, high = bucket_range(bucket)
        magnitude = flat.abs()
        return flat[(magnitude >= low) & (magnitude < high)]
    return flat[magnitude_buckets(flat) == bucket]


def threshold_bucket(counts: torch.Tensor, kth_smallest: int) -> tuple[int, int]:
    """The bucket holding the kth_smallest (1-based) magnitude, and how many entries lie in
    lower buckets."""
    cumulative = torch.cumsum(counts, 0)
    bucket = int(torch.searchsorted(cumulative, torch.tensor(kth_smallest, dtype=cumulative.dtype)))
    below = int(cumulative[bucket - 1]) if bucket > 0 else 0
    return bucket, below


def exact_threshold(candidates: torch.Tensor, rank_in_bucket: int) -> float:
    """The rank_in_bucket-th (1-based) smallest magnitude among the bucket's candidates."""
    return float(candidates.abs().flatten().kthvalue(rank_in_bucket).values)


def magnitude_threshold(values: torch.Tensor, density: float) -> float:
    """The TIES threshold of one tensor: entries with |x| >= it are kept.

    Equal to `values.abs().flatten().kthvalue(d - int(d * density))` but found from a bucket
    histogram plus a kthvalue over one bucket, which is several times faster on large tensors.
    """
    size = values.numel()
    kth = size - int(size * density)
    if kth <= 0:
        return 0.0
    bucket, below = threshold_bucket(bucket_counts(values), kth)
    return exact_threshold(in_bucket(values, bucket), kth - below)


def magnitude_keep(values: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """1.0 where |values| >= threshold (a number, or a tensor that broadcasts), else 0.0.

    Float arithmetic rather than a comparison: on the CPU, torch's kernels that take a bool
    mask (where, masked_fill, a float times a bool) run an order of magnitude slower than
    float ones, and TIES runs this over every entry of every candidate."""
    return values.abs().sub_(threshold).sign_().add_(1).clamp_max_(1)


def prune_by_magnitude_(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """In place: every entry whose magnitude is below threshold set to zero."""
    return values.mul_(magnitude_keep(values, threshold))


def dare_keep_mask(
    shape: torch.Size,
    density: float,
    generator: np.random.Generator,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Bernoulli(density) keep-mask for DARE, drawn on the CPU so results do not depend on
    the device: a uniform 32-bit integer per entry below density * 2^32 (numpy's PCG64 draws
    them at twice the rate of torch's CPU generator, and drawing is most of a DARE merge)."""
    draws = uniform_uint32(generator, math.prod(shape)).reshape(tuple(shape))
    return torch.from_numpy(draws < np.uint32(min(int(density * (1 << 32)), (1 << 32) - 1))).to(
        device
    )


def uniform_uint32(generator: np.random.Generator, count: int) -> np.ndarray:
    """count uniform 32-bit integers: exactly `generator.integers(0, 2**32, count, uint32)` of a
    fresh generator (each 64-bit output's low half, then its high half), read from the bit
    generator's raw output at about 1.6x the rate (benchmarks/steps_bench.py)."""
    if sys.byteorder != "little":  # the halves' order in memory differs: take the slow path
        return generator.integers(0, 1 << 32, size=count, dtype=np.uint32)
    raw = generator.bit_generator.random_raw((count + 1) // 2)
    return raw.view(np.uint32)[:count]


def dare(
    values: torch.Tensor, keep: torch.Tensor, density: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """DARE: the entries of values in keep (a bool mask of its shape) rescaled by 1/density,
    the others zero; written into `out` (a buffer of values' shape) where given.

    The mask is read as bytes and made 0.0 / 1.0 floats first: torch's CPU kernel for a float
    times a bool is slower than the byte conversion plus a float product (by 1.1x to 2x,
    benchmarks/steps_bench.py), and x * 1.0 and x * 0.0 are the same bits either way."""
    out = torch.empty_like(values) if out is None else out  # on values' device
    return out.copy_(keep.view(torch.uint8)).mul_(values).mul_(1.0 / density)


def elect_sign(weighted: torch.Tensor, rule: str) -> torch.Tensor:
    """Elected sign per entry of a weighted stack (n, ...): 'total' takes the sign of the sum
    of values, 'frequency' the sign of the sum of signs. Returns a tensor of -1, 0, +1."""
    if rule == "total":
        return torch.sign(weighted.sum(0))
    if rule == "frequency":
        return torch.sign(torch.sign(weighted).sum(0))
    raise ValueError(f"majority sign rule must be 'total' or 'frequency', got {rule!r}")


def disjoint_weighted_mean_(
    weighted: torch.Tensor, weights: torch.Tensor, sign: torch.Tensor
) -> torch.Tensor:
    """Mean of the entries that agree with the elected sign, weighted: sum of agreeing w_i*x_i
    over the sum of agreeing w_i (zero where none agree). Overwrites `weighted`.

    weighted: (n, ...) already multiplied by weights; weights: (n,).
    In float arithmetic only (see magnitude_keep): an entry agrees when w_i*x_i*sign > 0, so
    relu(w_i*x_i*sign) is its magnitude where it agrees and 0 elsewhere; their sum times the
    sign is the agreeing entries' sum, and their signs (1 or 0) count them.
    """
    agreeing = weighted.mul_(sign).clamp_min_(0)
    numerator = agreeing.sum(0).mul_(sign)
    present = agreeing.sign_()
    if bool((weights == weights[0]).all()):  # equal weights: count, then scale
        denominator = present.sum(0).mul_(weights[0])
    else:
        denominator = torch.tensordot(weights.to(weighted.dtype), present, dims=1)
    return numerator.div_(denominator.clamp_min_(torch.finfo(weighted.dtype).tiny))


def weighted_sum(stack: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i * x_i over the first dimension (task arithmetic)."""
    summed: torch.Tensor = torch.tensordot(weights.to(stack.dtype), stack, dims=1)
    return summed


def apply_weights_(stack: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """In place: row i of the stack times w_i."""
    if bool((weights == 1).all()):
        return stack
    shape = (-1,) + (1,) * (stack.dim() - 1)
    return stack.mul_(weights.to(stack.dtype).view(shape))
