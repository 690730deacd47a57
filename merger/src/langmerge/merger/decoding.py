"""Reading a batch of prompts once and continuing from it: the scoring primitives under the
evaluator. A batch of heads is left-padded so that the heads end together, run through the
decoder once with its cache kept (a `Prefix`), and then continued: by given tails, to score
them (all in one pass, each from its row's cache), or greedily, to generate. A summary's
reference loss and its generation so share one pass over the text being summarised.

Torch is imported by the callers' paths, never at import time here."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langmerge.common.logits import decode, output_logits, target_logprobs


@dataclass
class Prefix:
    """A batch of heads read once: the decoder's output with its cache, the attention mask
    and positions of the left-padded batch, and the logits of the token after each head."""

    state: Any
    mask: Any
    positions: Any
    next_logits: Any  # [rows, vocabulary], float32
    next_logprobs: Any  # their log-softmax


def length_batches(lengths: list[int], most: int, charge: int) -> list[list[int]]:
    """The rows' indices in batches of at most `most`, rows of near one length together: the
    rows sorted longest first (ties in their order) and cut where the batches' padded
    positions (a row padded to its batch's longest) plus `charge` positions a batch come
    least. The first batch is the widest."""
    order = sorted(range(len(lengths)), key=lambda row: -lengths[row])
    widths = [lengths[row] for row in order]
    # cheapest[i]: the least cost of the first i rows in batches; cut[i]: where its last starts
    cheapest, cut = [0] * (len(order) + 1), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        cheapest[end], cut[end] = min(
            (cheapest[start] + (end - start) * widths[start] + charge, start)
            for start in range(max(0, end - most), end)
        )
    batches: list[list[int]] = []
    end = len(order)
    while end:
        batches.append(order[cut[end] : end])
        end = cut[end]
    return batches[::-1]


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


def _rows_of(cache: Any, rows: Any) -> Any:
    """A cache holding the given rows of `cache`, in that order and a row as often as it is
    named; `cache` stays as it was (its layers are copied and each copy's tensors replaced by
    the picked rows, new tensors), so the prefix serves again."""
    picked = copy.copy(cache)
    picked.layers = [copy.copy(layer) for layer in cache.layers]
    picked.reorder_cache(rows)
    return picked


def continuation_logprobs(
    model: Any, prefix: Prefix, pad_id: int, continuations: list[tuple[int, list[int]]]
) -> list[float]:
    """Summed log-probability of each continuation, a row of the prefix and a tail, after that
    row's head (0.0 for an empty tail). Every tail longer than one token continues from its
    row's cache in one pass through the decoder: a head with three options is read once and
    continued three times side by side, not in a pass per option. The prefix stays usable."""
    import torch

    scores = [
        float(prefix.next_logprobs[row, tail[0]]) if tail else 0.0 for row, tail in continuations
    ]
    longer = [(at, row, tail) for at, (row, tail) in enumerate(continuations) if len(tail) > 1]
    if not longer:
        return scores
    rows = torch.tensor([row for _, row, _ in longer])
    length = max(len(tail) for _, _, tail in longer) - 1
    tokens = torch.full((len(longer), length), pad_id, dtype=torch.long)
    keep = torch.zeros((len(longer), length), dtype=torch.long)
    for line, (_, _, tail) in enumerate(longer):
        tokens[line, : len(tail) - 1] = torch.tensor(tail[:-1])
        keep[line, : len(tail) - 1] = 1
    with torch.no_grad():
        rest = decode(
            model,
            tokens,
            torch.cat([prefix.mask[rows], keep], dim=1),
            position_ids=prefix.positions[rows, -1:] + 1 + torch.arange(length),
            cache=_rows_of(prefix.state.cache, rows),
            use_cache=True,
        )
        hidden = rest.last_hidden_state[keep.bool()]
        targets = torch.tensor([t for _, _, tail in longer for t in tail[1:]])
        picked = target_logprobs(model, hidden, targets)
    sizes = [len(tail) - 1 for _, _, tail in longer]
    for (at, _, _), part in zip(longer, picked.split(sizes), strict=True):
        scores[at] += float(part.sum())
    return scores


def greedy(
    model: Any, prefix: Prefix, budgets: list[int], ends: Callable[[list[int]], bool]
) -> list[list[int]]:
    """Greedy continuations of each head, at most its budget of tokens, as transformers'
    greedy `generate` makes them, except that a row ends where `ends` says so of its tokens so
    far. A row that ends, or spends its budget, leaves the batch (its rows of the cache are
    dropped): a row's continuation depends on its own head and budget alone, not on the rows
    beside it, and each step costs the rows still decoding. The prefix's cache is used up."""
    import torch

    out: list[list[int]] = [[] for _ in range(prefix.mask.shape[0])]
    live = list(range(len(out)))  # the rows still decoding, in the batch's order
    cache = prefix.state.cache
    mask, position = prefix.mask, prefix.positions[:, -1:]
    token = prefix.next_logits.argmax(-1)
    with torch.no_grad():
        while True:
            going = []
            for line, (row, value) in enumerate(zip(live, token.tolist(), strict=True)):
                out[row].append(value)
                if len(out[row]) < budgets[row] and not ends(out[row]):
                    going.append(line)
            if not going:
                return out
            if len(going) < len(live):
                kept = torch.tensor(going)
                cache.reorder_cache(kept)
                mask, position, token = mask[kept], position[kept], token[kept]
                live = [live[line] for line in going]
            mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype)], dim=1)
            position = position + 1
            state = decode(
                model, token[:, None], mask, position_ids=position, cache=cache, use_cache=True
            )
            cache = state.cache
            token = output_logits(model, state.last_hidden_state[:, -1]).float().argmax(-1)


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
