"""The model-wide TIES threshold found in one streamed pass (values kept near the running
estimate) equals the exact k-th magnitude over every part at once, whether the final bucket
lies inside what each part kept or some parts must be read again."""

from __future__ import annotations

import pytest
import torch

from langmerge.merger.methods import StreamedThresholds


def _exact(parts: list[torch.Tensor], density: float) -> float:
    values = torch.cat([p.flatten() for p in parts]).abs()
    kth = values.numel() - int(values.numel() * density)
    return float(values.kthvalue(kth).values)


def _streamed(parts: dict[str, torch.Tensor], density: float) -> tuple[float, set[str]]:
    streamed = StreamedThresholds(1, density)
    for name, values in parts.items():
        streamed.count(0, values, part=name)
    streamed.locate()
    again = streamed.settle()
    for name, values in parts.items():  # the second pass, over the missed parts only
        if name in again:
            streamed.collect(0, values)
    return streamed.thresholds()[0], again


@pytest.mark.parametrize("density", [0.2, 0.5, 0.9])
def test_parts_alike_need_no_second_pass(density: float) -> None:
    generator = torch.Generator().manual_seed(3)
    parts = {
        f"m{i}": torch.randn(64, 512, generator=generator, dtype=torch.float64) for i in range(12)
    }
    threshold, again = _streamed(parts, density)
    assert threshold == _exact(list(parts.values()), density)
    assert len(again) <= 1  # the first part's own estimate may sit off the final bucket


@pytest.mark.parametrize("density", [0.2, 0.5, 0.9])
def test_parts_unlike_are_read_again_and_the_threshold_stays_exact(density: float) -> None:
    generator = torch.Generator().manual_seed(4)
    # Magnitudes growing part by part: the running estimate moves, early parts miss.
    parts = {
        f"m{i}": torch.randn(32, 256, generator=generator, dtype=torch.float64) * 2.0**i
        for i in range(10)
    }
    threshold, again = _streamed(parts, density)
    assert threshold == _exact(list(parts.values()), density)
    assert again and len(again) < len(parts)


def test_a_density_of_one_keeps_everything() -> None:
    parts = {"m": torch.randn(8, 8, dtype=torch.float64)}
    assert _streamed(parts, 1.0) == (0.0, set())
