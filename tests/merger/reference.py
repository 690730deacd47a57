"""Slow dense float64 references written from the papers' definitions (see paper.md), used
only to check the merger. Weighting convention as documented in langmerge.merger.steps:
weights multiply the task tensors before the sign election; the disjoint mean divides by the
sum of the agreeing weights."""

from __future__ import annotations

import torch


def topk_mask(x: torch.Tensor, density: float) -> torch.Tensor:
    """TIES reference: keep |x| >= the k-th smallest |x|, k = d - int(d * density)."""
    d = x.numel()
    k = d - int(d * density)
    if density >= 1 or k <= 0:
        return torch.ones_like(x, dtype=torch.bool)
    kth = x.abs().flatten().kthvalue(k).values
    return x.abs() >= kth


def ties_combine(tensors: list[torch.Tensor], weights: list[float], rule: str) -> torch.Tensor:
    weighted = torch.stack([w * t for w, t in zip(weights, tensors, strict=True)])
    if rule == "total":
        sign = torch.sign(weighted.sum(0))
    else:
        sign = torch.sign(torch.sign(weighted).sum(0))
    num = torch.zeros_like(weighted[0])
    den = torch.zeros_like(weighted[0])
    for w, t in zip(weights, weighted, strict=True):
        agree = (torch.sign(t) == sign) & (t != 0)
        num += torch.where(agree, t, 0.0)
        den += agree.double() * w
    return torch.where(den > 0, num / den.clamp_min(1e-300), 0.0)


def ties(
    deltas: list[torch.Tensor],
    weights: list[float],
    density: float,
    lam: float,
    rule: str = "total",
) -> torch.Tensor:
    pruned = [d * topk_mask(d, density) for d in deltas]
    return lam * ties_combine(pruned, weights, rule)


def dare_drop(
    tensors: list[torch.Tensor], masks: list[torch.Tensor], density: float
) -> list[torch.Tensor]:
    """DARE: keep the masked entries, rescaled by 1/density."""
    return [torch.where(m, t / density, 0.0) for t, m in zip(tensors, masks, strict=True)]


def dare_ties(
    deltas: list[torch.Tensor],
    masks: list[torch.Tensor],
    weights: list[float],
    density: float,
    lam: float,
    rule: str = "total",
) -> torch.Tensor:
    dropped = dare_drop(deltas, masks, density)
    return lam * ties_combine(dropped, weights, rule)


def dare_linear(
    deltas: list[torch.Tensor],
    masks: list[torch.Tensor],
    weights: list[float],
    density: float,
    lam: float,
) -> torch.Tensor:
    dropped = dare_drop(deltas, masks, density)
    return lam * sum(w * d for w, d in zip(weights, dropped, strict=True))


def knots_svd(
    deltas: list[torch.Tensor], tolerance: float = 1e-5
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Concatenate dW_i along the input dimension, one dense SVD: U and blocks diag(s) V_i^T."""
    concat = torch.cat(deltas, dim=1)
    u, s, vt = torch.linalg.svd(concat, full_matrices=False)
    keep = s > tolerance * s[0]
    u, s, vt = u[:, keep], s[keep], vt[keep]
    width = deltas[0].shape[1]
    blocks = [s[:, None] * vt[:, i * width : (i + 1) * width] for i in range(len(deltas))]
    return u, blocks


def knots_ties(
    modules: dict[str, list[torch.Tensor]],
    weights: list[float],
    density: float,
    lam: float,
    rule: str = "total",
    scope: str = "model",
) -> dict[str, torch.Tensor]:
    """KnOTS-TIES over a whole model: top-k per task over all of its blocks at once."""
    bases = {name: knots_svd(deltas) for name, deltas in modules.items()}
    n = len(weights)
    names = sorted(modules)
    masks: dict[str, list[torch.Tensor]] = {}
    if scope == "model":
        for task in range(n):
            flat = torch.cat([bases[name][1][task].flatten() for name in names])
            keep = topk_mask(flat, density)
            start = 0
            for name in names:
                block = bases[name][1][task]
                masks.setdefault(name, []).append(
                    keep[start : start + block.numel()].view_as(block)
                )
                start += block.numel()
    else:
        for name in names:
            masks[name] = [topk_mask(b, density) for b in bases[name][1]]
    merged = {}
    for name in names:
        u, blocks = bases[name]
        pruned = [b * m for b, m in zip(blocks, masks[name], strict=True)]
        merged[name] = u @ (lam * ties_combine(pruned, weights, rule))
    return merged


def knots_dare_ties(
    modules: dict[str, list[torch.Tensor]],
    block_masks: dict[str, list[torch.Tensor]],
    weights: list[float],
    density: float,
    lam: float,
    rule: str = "total",
) -> dict[str, torch.Tensor]:
    merged = {}
    for name, deltas in modules.items():
        u, blocks = knots_svd(deltas)
        dropped = dare_drop(blocks, block_masks[name], density)
        merged[name] = u @ (lam * ties_combine(dropped, weights, rule))
    return merged
