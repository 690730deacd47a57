"""Every method against a slow dense float64 reference written from its definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from langmerge.merger import steps
from langmerge.merger.adapters import load_adapter
from langmerge.merger.methods import (
    METHODS,
    Merger,
    MergeSettings,
    dare_generator,
    dare_rows_mask,
)
from tests.merger import reference
from tests.support.adapters import dense_updates, make_adapter

SHAPES = {
    "model.layers.0.self_attn.q_proj": (48, 32),
    "model.layers.0.self_attn.v_proj": (16, 32),
    "model.layers.0.mlp.down_proj": (32, 64),
    "model.layers.1.self_attn.q_proj": (48, 32),
}
WEIGHTS = [1.0, 0.5, 2.0]


@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    # Different ranks, alphas and one rsLoRA adapter: scaling must be folded in per adapter.
    return [
        make_adapter(root / "en", SHAPES, rank=4, alpha=8, seed=1, language="en"),
        make_adapter(root / "de", SHAPES, rank=6, alpha=6, seed=2, language="de"),
        make_adapter(root / "ja", SHAPES, rank=4, alpha=16, seed=3, language="ja", rslora=True),
    ]


def _merge(adapter_dirs: list[Path], method: str, **kwargs: object) -> dict[str, torch.Tensor]:
    adapters = [load_adapter(p.name, p) for p in adapter_dirs]
    settings = MergeSettings(method=METHODS[method], weights=tuple(WEIGHTS), **kwargs)  # type: ignore[arg-type]
    merger = Merger(adapters, settings)
    merger.prepare()
    return {m.name: m.dense().double() for m in merger}


def _deltas(adapter_dirs: list[Path]) -> dict[str, list[torch.Tensor]]:
    per_adapter = [dense_updates(p) for p in adapter_dirs]
    return {name: [u[name] for u in per_adapter] for name in per_adapter[0]}


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(actual - expected) / torch.linalg.matrix_norm(expected))


def test_linear_is_exact_task_arithmetic(adapter_dirs: list[Path]) -> None:
    merged = _merge(adapter_dirs, "linear", lambda_=0.7)
    for name, deltas in _deltas(adapter_dirs).items():
        expected = 0.7 * sum(w * d for w, d in zip(WEIGHTS, deltas, strict=True))
        assert _relative_error(merged[name], expected) < 1e-10


def test_cat_is_exact_and_stacks_ranks(adapter_dirs: list[Path]) -> None:
    adapters = [load_adapter(p.name, p) for p in adapter_dirs]
    merger = Merger(adapters, MergeSettings(method=METHODS["cat"], weights=tuple(WEIGHTS), rank=2))
    for module, deltas in zip(merger, _deltas(adapter_dirs).values(), strict=True):
        assert module.a is not None and module.a.shape[0] == 4 + 6 + 4  # never compressed
        expected = sum(w * d for w, d in zip(WEIGHTS, deltas, strict=True))
        assert _relative_error(module.dense().double(), expected) < 1e-10


@pytest.mark.parametrize("rule", ["total", "frequency"])
@pytest.mark.parametrize("density", [0.2, 0.5, 1.0])
def test_ties_matches_reference(adapter_dirs: list[Path], rule: str, density: float) -> None:
    merged = _merge(adapter_dirs, "ties", density=density, lambda_=1.3, majority_sign=rule)
    for name, deltas in _deltas(adapter_dirs).items():
        expected = reference.ties(deltas, WEIGHTS, density, 1.3, rule)
        assert _relative_error(merged[name], expected) < 1e-5, name


@pytest.mark.parametrize("method", ["dare-ties", "dare-linear"])
def test_dare_matches_reference_for_the_same_seed(adapter_dirs: list[Path], method: str) -> None:
    merged = _merge(adapter_dirs, method, density=0.4, lambda_=1.0, seed=7)
    for name, deltas in _deltas(adapter_dirs).items():
        settings = MergeSettings(
            method=METHODS[method], weights=tuple(WEIGHTS), density=0.4, seed=7
        )
        masks = [
            dare_rows_mask(settings, name, t, d.shape, 0, d.shape[0]) for t, d in enumerate(deltas)
        ]
        if method == "dare-ties":
            expected = reference.dare_ties(deltas, masks, WEIGHTS, 0.4, 1.0)
        else:
            expected = reference.dare_linear(deltas, masks, WEIGHTS, 0.4, 1.0)
        assert _relative_error(merged[name], expected) < 1e-5, name


def test_dare_depends_on_the_seed(adapter_dirs: list[Path]) -> None:
    one = _merge(adapter_dirs, "dare-ties", density=0.4, seed=1)
    two = _merge(adapter_dirs, "dare-ties", density=0.4, seed=2)
    again = _merge(adapter_dirs, "dare-ties", density=0.4, seed=1)
    name = next(iter(one))
    assert not torch.equal(one[name], two[name])
    assert torch.equal(one[name], again[name])


@pytest.mark.parametrize("scope", ["model", "module"])
@pytest.mark.parametrize("density", [0.3, 0.7, 1.0])
def test_knots_ties_matches_dense_reference(
    adapter_dirs: list[Path], scope: str, density: float
) -> None:
    merged = _merge(adapter_dirs, "knots-ties", density=density, lambda_=1.1, topk_scope=scope)
    expected = reference.knots_ties(_deltas(adapter_dirs), WEIGHTS, density, 1.1, scope=scope)
    for name in expected:
        assert _relative_error(merged[name], expected[name]) <= 1e-4, name


def test_global_and_module_topk_differ(adapter_dirs: list[Path]) -> None:
    model = _merge(adapter_dirs, "knots-ties", density=0.3, topk_scope="model")
    module = _merge(adapter_dirs, "knots-ties", density=0.3, topk_scope="module")
    assert any(_relative_error(model[n], module[n]) > 1e-3 for n in model)


def test_knots_dare_ties_matches_dense_reference(adapter_dirs: list[Path]) -> None:
    merged = _merge(adapter_dirs, "knots-dare-ties", density=0.6, lambda_=1.0, seed=3)
    modules = _deltas(adapter_dirs)
    masks = {}
    for name, deltas in modules.items():
        _, blocks = reference.knots_svd(deltas)
        settings = MergeSettings(
            method=METHODS["knots-dare-ties"], weights=tuple(WEIGHTS), density=0.6, seed=3
        )
        masks[name] = [
            dare_rows_mask(settings, name, t, b.shape, 0, b.shape[0]) for t, b in enumerate(blocks)
        ]
    expected = reference.knots_dare_ties(modules, masks, WEIGHTS, 0.6, 1.0)
    for name in expected:
        assert _relative_error(merged[name], expected[name]) <= 1e-4, name


def test_knots_rank_stays_within_the_sum_of_input_ranks(adapter_dirs: list[Path]) -> None:
    adapters = [load_adapter(p.name, p) for p in adapter_dirs]
    merger = Merger(adapters, MergeSettings(method=METHODS["knots-ties"], weights=tuple(WEIGHTS)))
    merger.prepare()
    for module in merger:
        assert module.a is not None and module.a.shape[0] <= 4 + 6 + 4


def test_magnitude_threshold_equals_kthvalue() -> None:
    values = torch.randn(100_003, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for density in (0.01, 0.3, 0.5, 0.99):
        k = values.numel() - int(values.numel() * density)
        assert steps.magnitude_threshold(values, density) == float(values.abs().kthvalue(k).values)


@pytest.mark.parametrize("method", ["ties", "dare-ties", "dare-linear"])
def test_dense_methods_give_the_same_result_in_row_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    from langmerge.merger import methods

    shapes = {"model.layers.0.mlp.up_proj": (600, 16)}  # three chunks of <= 256 rows
    dirs = [make_adapter(tmp_path / str(i), shapes, rank=3, seed=i) for i in range(3)]
    whole = _merge(dirs, method, density=0.3, seed=5)
    monkeypatch.setattr(methods, "DENSE_CHUNK_ENTRIES", 256 * 16)
    chunked = _merge(dirs, method, density=0.3, seed=5)
    name = next(iter(whole))
    assert _relative_error(chunked[name], whole[name]) < 1e-6
    deltas = _deltas(dirs)[name]
    if method == "ties":
        expected = reference.ties(deltas, WEIGHTS, 0.3, 1.0)
        assert _relative_error(chunked[name], expected) < 1e-5


@pytest.mark.parametrize(
    ("method", "scope"),
    [
        ("knots-ties", "model"),
        ("knots-ties", "module"),
        ("knots-dare-ties", None),
        ("ties", None),
        ("dare-ties", None),
        ("dare-linear", None),
    ],
)
def test_sparse_methods_give_the_same_bits_in_cache_sized_chunks(
    adapter_dirs: list[Path], monkeypatch: pytest.MonkeyPatch, method: str, scope: str | None
) -> None:
    from langmerge.merger import methods

    whole_module = 1 << 30  # every module in one chunk
    monkeypatch.setattr(methods, "CACHE_CHUNK_BYTES", whole_module)
    whole = _merge(adapter_dirs, method, density=0.4, seed=2, topk_scope=scope)
    monkeypatch.setattr(methods, "CACHE_CHUNK_BYTES", 1)  # one row of blocks per chunk
    chunked = _merge(adapter_dirs, method, density=0.4, seed=2, topk_scope=scope)
    for name in whole:
        assert torch.equal(chunked[name], whole[name]), name


def test_knots_ties_prunes_blocks_as_each_adapter_pruned_alone_and_keeps_a_nan() -> None:
    """merge_blocks prunes every adapter's blocks at once; the bits are those of the steps
    one adapter at a time (prune a copy, then combine), and a NaN in the blocks stays a NaN,
    so the finite check refuses the candidate instead of a zero hiding it."""
    from langmerge.merger.methods import combine_, merge_blocks

    generator = torch.Generator().manual_seed(3)
    blocks = torch.randn(3, 7, 50, generator=generator, dtype=torch.float64)
    blocks[1, 2, 4] = float("nan")
    blocks[2, 0, 0] = -0.0
    settings = MergeSettings(METHODS["knots-ties"], weights=(0.5, 0.3, 0.2), density=0.4)
    thresholds = [steps.magnitude_threshold(blocks[t], 0.4) for t in range(3)]
    expected = blocks.clone()
    for task in range(3):
        steps.prune_by_magnitude_(expected[task], thresholds[task])
    expected = combine_(expected, settings)
    merged = merge_blocks(blocks, settings, "module", thresholds)
    assert torch.equal(merged.view(torch.int64), expected.view(torch.int64))
    assert bool(merged[2, 4].isnan())


def test_magnitude_keep_keeps_the_threshold_itself_and_drops_below_it() -> None:
    values = torch.tensor([-2.0, -0.5, -0.25, 0.0, 0.25, 0.5, 2.0])
    keep = steps.magnitude_keep(values, 0.5)
    assert keep.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    nudged = torch.nextafter(torch.tensor(0.5), torch.tensor(0.0))  # just below 0.5
    assert steps.magnitude_keep(nudged.view(1), 0.5).tolist() == [0.0]
    pruned = steps.prune_by_magnitude_(values.clone(), 0.5)
    assert pruned.tolist() == [-2.0, -0.5, 0.0, 0.0, 0.0, 0.5, 2.0]
    assert torch.isnan(steps.prune_by_magnitude_(torch.tensor([float("nan")]), 0.5)).all()


def test_the_float_disjoint_mean_equals_the_masked_definition() -> None:
    generator = torch.Generator().manual_seed(5)
    stack = torch.randn(5, 64, 96, generator=generator)
    stack[stack.abs() < 0.6] = 0.0  # trimmed entries, and columns where nothing survives
    for weights in (torch.full((5,), 0.2), torch.tensor([0.1, 0.3, 0.2, 0.25, 0.15])):
        weighted = stack * weights.view(-1, 1, 1)
        sign = steps.elect_sign(weighted, "total")
        agree = (weighted * sign) > 0
        expected = (weighted * agree).sum(0) / (weights.view(-1, 1, 1) * agree).sum(0).clamp_min(
            torch.finfo(torch.float32).tiny
        )
        actual = steps.disjoint_weighted_mean_(weighted.clone(), weights, sign)
        assert torch.allclose(actual, expected, rtol=1e-6, atol=0.0)


def test_dare_keeps_the_masked_entries_rescaled_bit_for_bit_into_its_buffer() -> None:
    """steps.dare multiplies by the mask made floats: the same bits as the bool product it
    replaced (a dropped negative entry stays -0.0), written into the buffer given."""
    values = torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(1))
    values[0, 0, 0] = -1.5
    keep = torch.rand(3, 5, 64, generator=torch.Generator().manual_seed(2)) < 0.4
    keep[0, 0, 0] = False
    expected = values.clone().mul_(keep).mul_(1.0 / 0.4)
    buffer = torch.full_like(values, float("nan"))
    dropped = steps.dare(values, keep, 0.4, out=buffer)
    assert dropped.data_ptr() == buffer.data_ptr()
    assert torch.equal(dropped.view(torch.int32), expected.view(torch.int32))
    assert str(dropped[0, 0, 0].item()) == "-0.0"
    assert torch.equal(steps.dare(values, keep, 0.4).view(torch.int32), expected.view(torch.int32))
    # without a buffer, a new tensor on the values' device (meta stands in for a GPU here)
    assert steps.dare(values.to("meta"), keep.to("meta"), 0.4).device.type == "meta"


def test_dare_keeps_each_entry_with_probability_density_per_seed() -> None:
    shape = (256, 4096)
    for density in (0.1, 0.5, 0.9):
        keep = steps.dare_keep_mask(torch.Size(shape), density, dare_generator(0, "m", 0))
        assert keep.dtype == torch.bool and tuple(keep.shape) == shape
        assert abs(float(keep.float().mean()) - density) < 0.005  # about 50 sigma at 1M
    a, b, a_again = (
        steps.dare_keep_mask(torch.Size(shape), 0.5, dare_generator(seed, "m", task))
        for seed, task in ((0, 0), (1, 0), (0, 0))
    )
    assert torch.equal(a, a_again)
    # Independent draws agree on about half the entries; equal or opposite masks would not.
    assert abs(float((a == b).float().mean()) - 0.5) < 0.01
    other_task = steps.dare_keep_mask(torch.Size(shape), 0.5, dare_generator(0, "m", 1))
    assert abs(float((a == other_task).float().mean()) - 0.5) < 0.01


@pytest.mark.parametrize("count", [1, 2, 7, 4096])
def test_uniform_uint32_are_the_generators_own_integers(count: int) -> None:
    """DARE reads 32-bit draws from the raw 64-bit output: the same integers, even and odd
    counts, that `integers` gives a fresh generator, so masks do not change with the speed-up."""
    fast = steps.uniform_uint32(dare_generator(3, "m#0", 2), count)
    plain = dare_generator(3, "m#0", 2).integers(0, 1 << 32, size=count, dtype=np.uint32)
    assert fast.dtype == np.uint32 and np.array_equal(fast, plain)
