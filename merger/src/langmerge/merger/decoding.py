"""Reading a batch of prompts once and continuing from it: the scoring primitives under the
evaluator. A batch of heads is left-padded so that the heads end together, run through the
decoder once with its cache kept (a `Prefix`), and then continued: by given tails, to score
them (each from a copy of the cache), or greedily, to generate. A summary's reference loss
and its generation so share one pass over the text being summarised.

Torch is imported by the callers' paths, never at import time here."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langmerge.common.logits import decode, output_logits


@dataclass
class Prefix:
    """A batch of heads read once: the decoder's output with its cache, the attention mask
    and positions of the left-padded batch, and the logits of the token after each head."""

    state: Any
    mask: Any
    positions: Any
    next_logits: Any  # [rows, vocabulary], float32
    next_logprobs: Any  # their log-softmax


def left_padded(heads: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """Token ids and attention mask of heads padded on the left, so that they end together
    (where a continuation or a generation starts)."""
    import torch

    width = max(map(len, heads))
    ids = torch.full((len(heads), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(heads), width), dtype=torch.long)
    for row, head in enumerate(heads):
        ids[row, width - len(head) :] = torch.tensor(head)
        mask[row, width - len(head) :] = 1
    return ids, mask


def read_heads(model: Any, pad_id: int, heads: list[list[int]]) -> Prefix:
    import torch

    ids, mask = left_padded(heads, pad_id)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        state = decode(model, ids, mask, position_ids=positions, use_cache=True)
        logits = output_logits(model, state.last_hidden_state[:, -1]).float()
    return Prefix(state, mask, positions, logits, torch.log_softmax(logits, dim=-1))


def tail_logprobs(
    model: Any, prefix: Prefix, pad_id: int, tails: list[list[int] | None]
) -> list[float]:
    """Summed log-probability of each row's tail after its head (0.0 for a row without one),
    continuing from a copy of the prefix's cache, so the prefix serves again."""
    import torch

    rows = len(tails)
    scores = [0.0] * rows
    here = [(row, tail) for row, tail in enumerate(tails) if tail]
    for row, tail in here:
        scores[row] = float(prefix.next_logprobs[row, tail[0]])
    length = max((len(tail) for _, tail in here), default=1) - 1
    if length == 0:
        return scores
    tokens = torch.full((rows, length), pad_id, dtype=torch.long)
    keep = torch.zeros((rows, length), dtype=torch.long)
    for row, tail in here:
        tokens[row, : len(tail) - 1] = torch.tensor(tail[:-1])
        keep[row, : len(tail) - 1] = 1
    with torch.no_grad():
        rest = decode(
            model,
            tokens,
            torch.cat([prefix.mask, keep], dim=1),
            position_ids=prefix.positions[:, -1:] + 1 + torch.arange(length),
            cache=copy.deepcopy(prefix.state.cache),
            use_cache=True,
        )
        logprobs = torch.log_softmax(
            output_logits(model, rest.last_hidden_state[keep.bool()]).float(), dim=-1
        )
    targets = torch.tensor([t for _, tail in here for t in tail[1:]])
    picked = logprobs.gather(1, targets.unsqueeze(1)).squeeze(1)
    at = 0
    for row, tail in here:
        scores[row] += float(picked[at : at + len(tail) - 1].sum())
        at += len(tail) - 1
    return scores


def greedy(
    model: Any, prefix: Prefix, pad_id: int, budget: int, ends: Callable[[list[int]], bool]
) -> list[list[int]]:
    """Greedy continuations of each head, at most `budget` tokens each, as transformers'
    greedy `generate` makes them, except that a row ends where `ends` says so of its tokens so
    far (and is fed padding after); decoding ends when every row has ended. The prefix's
    cache is used up."""
    import torch

    rows = prefix.mask.shape[0]
    cache = prefix.state.cache
    mask, position = prefix.mask, prefix.positions[:, -1:]
    token = prefix.next_logits.argmax(-1)
    ended = [False] * rows
    out: list[list[int]] = [[] for _ in range(rows)]
    with torch.no_grad():
        for step in range(budget):
            token = torch.where(torch.tensor(ended), pad_id, token)
            for row, value in enumerate(token.tolist()):
                out[row].append(value)
                ended[row] = ended[row] or ends(out[row])
            if all(ended) or step == budget - 1:
                break
            mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype)], dim=1)
            position = position + 1
            state = decode(
                model, token[:, None], mask, position_ids=position, cache=cache, use_cache=True
            )
            cache = state.cache
            token = output_logits(model, state.last_hidden_state[:, -1]).float().argmax(-1)
    return out


@functools.lru_cache(maxsize=4)  # once per tokenizer, not per model and language scored
def line_break_tokens(tokenizer: Any) -> frozenset[int]:
    """The ids of tokens whose text holds a line break (SentencePiece pieces with one, the
    byte-fallback <0x0A>, byte-level BPE's Ċ): a generated summary ends at the first."""
    candidates = [
        i
        for piece, i in tokenizer.get_vocab().items()
        if "\n" in piece or "Ċ" in piece or piece == "<0x0A>"
    ]
    texts = tokenizer.batch_decode([[i] for i in candidates]) if candidates else []
    return frozenset(i for i, text in zip(candidates, texts, strict=True) if "\n" in text)
