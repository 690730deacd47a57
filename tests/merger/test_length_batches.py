"""How the evaluator batches its records (langmerge.merger.decoding.length_batches): rows of
near one length together, every row once, and the cuts the cheapest the cost rule allows
(checked against every way of cutting the sorted rows)."""

from __future__ import annotations

import itertools
import random

import pytest

from langmerge.merger.decoding import length_batches


def _cost(lengths: list[int], batches: list[list[int]], charge: int) -> int:
    return sum(len(b) * max(lengths[row] for row in b) + charge for b in batches)


def _cheapest_by_trying_every_cut(lengths: list[int], most: int, charge: int) -> int:
    order = sorted(range(len(lengths)), key=lambda row: -lengths[row])
    best = None
    for cuts in itertools.product([False, True], repeat=len(order) - 1):
        batches, batch = [], [order[0]]
        for row, cut in zip(order[1:], cuts, strict=True):
            if cut:
                batches.append(batch)
                batch = []
            batch.append(row)
        batches.append(batch)
        if max(map(len, batches)) <= most:
            cost = _cost(lengths, batches, charge)
            best = cost if best is None else min(best, cost)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(12))
def test_every_row_once_longest_first_and_no_cheaper_cut_exists(seed: int) -> None:
    chance = random.Random(seed)
    lengths = [chance.randint(3, 40) for _ in range(chance.randint(1, 11))]
    most, charge = chance.randint(1, 5), chance.choice([0, 4, 16, 256])
    batches = length_batches(lengths, most, charge)
    assert sorted(row for batch in batches for row in batch) == list(range(len(lengths)))
    assert all(1 <= len(batch) <= most for batch in batches)
    flat = [lengths[row] for batch in batches for row in batch]
    assert flat == sorted(lengths, reverse=True)  # longest first, the widest batch first
    assert _cost(lengths, batches, charge) == _cheapest_by_trying_every_cut(lengths, most, charge)


def test_without_a_charge_no_row_is_padded_and_with_a_large_one_batches_are_fewest() -> None:
    lengths = [20, 7, 19, 20, 7, 33, 19, 19, 8, 33]
    unpadded = length_batches(lengths, 64, 0)
    assert all(len({lengths[row] for row in batch}) == 1 for batch in unpadded)
    assert len(length_batches(lengths, 4, 10**6)) == 3  # ceil(10 / 4)
    assert length_batches(lengths, 64, 10**6) == [[5, 9, 0, 3, 2, 6, 7, 8, 1, 4]]  # ties in order
    assert length_batches([], 64, 256) == []
