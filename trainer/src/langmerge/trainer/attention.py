"""Attention for short rows on a CPU, as a transformers attention implementation.

torch's CPU flash attention (SDPA) spends more in its backward than the products of rows this
short cost (benchmarks/attention_bench.py: a bf16 Gemma 3 270M training step 1.02-1.05x faster
without it on the bench's and the research's rows). In bf16 (autocast), where a layer's scores
are few (batch x heads x queries x keys <= SHORT_SCORES), this computes them as plain products
instead: float32 scores from the bf16 queries and keys (flash attention accumulates them in
float32 too; the bf16 LoRA gradients land nearer float32's than SDPA's), softmax in float32,
the probabilities in the values' dtype for the second product. Longer rows go to SDPA: the
scores held for the backward grow with the length squared; so does float32. Masks are SDPA's
(boolean, or none for a causal batch without padding).

Only for the model types whose attention this was checked against SDPA's (the tests); others
keep their own. The trainer's `--attention sdpa` keeps SDPA everywhere (the trainer before)."""

from __future__ import annotations

from typing import Any

import torch

NAME = "langmerge_short_rows"
# At most 2**20 scores a layer (4 MB in float32; on Gemma's 18 layers, with the softmax's
# output kept for the backward, under 0.2 GB): 8 rows x 4 heads x 180 x 180 tokens.
SHORT_SCORES = 1 << 20
CHECKED_MODEL_TYPES = frozenset({"llama", "gemma3_text"})


def _short_rows_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    batch, heads, queries, width = query.shape
    keys = key.shape[2]
    softcap = kwargs.get("softcap")
    # float32 keeps SDPA: no faster here in float32 (attention_bench: 1.00x), and the same
    # numbers as before
    large = batch * heads * queries * keys > SHORT_SCORES
    if large or query.dtype == torch.float32 or dropout > 0 or softcap is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    groups = heads // key.shape[1]  # grouped-query attention: each key head serves `groups`
    scale = scaling if scaling is not None else width**-0.5
    with torch.autocast(query.device.type, enabled=False):
        exact = torch.promote_types(query.dtype, torch.float32)  # float32, or float64 as given
        keys_t = repeat_kv(key, groups).to(exact).transpose(2, 3)
        scores = torch.matmul(query.to(exact), keys_t)
        scores = scores * scale
        # Masked: the lowest float, not -inf: a padding query whose sliding window holds only
        # padding has every key masked, and -inf would make its row NaN, which its values
        # carry on into later layers (zero weight times NaN); a finite floor spreads its
        # weight evenly instead, over values no real position attends to.
        lowest = torch.finfo(scores.dtype).min
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, lowest)
        elif attention_mask is not None:  # an additive mask
            scores = scores + attention_mask.to(exact)
        elif queries > 1 and kwargs.get("is_causal", getattr(module, "is_causal", True)):
            causal = torch.ones(queries, keys, dtype=torch.bool, device=query.device)
            scores = scores.masked_fill(~causal.tril(keys - queries), lowest)
        probabilities = torch.softmax(scores, dim=-1).to(value.dtype)
        output = torch.matmul(probabilities, repeat_kv(value, groups))
    return output.transpose(1, 2).contiguous(), None


def register() -> str:
    """Makes NAME known to transformers (its attention and SDPA's masks); returns it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, _short_rows_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def implementation(model_dir: Any, asked: str) -> str | None:
    """The attention implementation to load the model with: NAME on a CPU for a checked model
    type when `--attention auto`, else None (the model's default, SDPA)."""
    from transformers import AutoConfig

    if asked != "auto" or torch.cuda.is_available():
        return None
    if AutoConfig.from_pretrained(model_dir).model_type not in CHECKED_MODEL_TYPES:
        return None
    return register()
