"""write_full: the base model's weights plus the merged update, streamed shard by shard
through two reused buffers, each weight written behind the next one's work: its arithmetic on
every stored dtype, what it copies untouched, the order and failures of its writes, and its
refusals."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from langmerge.merger import output
from langmerge.merger.adapters import load_adapter
from langmerge.merger.methods import METHODS, Merger, MergeSettings
from langmerge.merger.output import write_full
from tests.support.adapters import PREFIX, make_adapter

SHAPES = {
    "model.layers.0.self_attn.q_proj": (8, 6),
    "model.layers.0.self_attn.v_proj": (6, 8),
    "model.layers.1.mlp.down_proj": (6, 12),
}


def _merger(tmp_path: Path, method: str = "knots-ties") -> Merger:
    folders = [make_adapter(tmp_path / f"adapter-{i}", SHAPES, seed=i) for i in range(3)]
    loaded = [load_adapter(str(p), p) for p in folders]
    merger = Merger(loaded, MergeSettings(method=METHODS[method], weights=(1.0, 0.5, 2.0)))
    merger.prepare()
    return merger


def _base(folder: Path, dtypes: dict[str, torch.dtype]) -> dict[str, torch.Tensor]:
    """Two shards: the merged weights in the dtypes given, beside weights no adapter touches."""
    generator = torch.Generator().manual_seed(7)
    weights = {
        f"{module}.weight": torch.randn(shape, generator=generator).to(dtypes[module])
        for module, shape in SHAPES.items()
    }
    weights["model.embed_tokens.weight"] = torch.randn(5, 6, generator=generator)
    weights["model.norm.weight"] = torch.ones(6, dtype=torch.bfloat16)
    weights["model.position_ids"] = torch.arange(4, dtype=torch.int64)
    folder.mkdir()
    names = sorted(weights)
    for index, part in enumerate((names[:3], names[3:])):
        save_file({n: weights[n] for n in part}, str(folder / f"model-{index}.safetensors"))
    (folder / "config.json").write_text("{}")
    return weights


def test_each_merged_weight_is_the_base_plus_the_update_rounded_once(tmp_path: Path) -> None:
    merger = _merger(tmp_path)  # factors: the update made from them in the reused scratch
    assert merger.merge(PREFIX + next(iter(SHAPES))).delta is None
    dtypes = dict(zip(SHAPES, (torch.bfloat16, torch.float32, torch.float16), strict=True))
    base = _base(tmp_path / "base", dtypes)
    out = tmp_path / "out"
    out.mkdir()
    figures = write_full(merger, tmp_path / "base", out)

    written = {}
    for shard in sorted(out.glob("*.safetensors")):
        written.update(load_file(str(shard)))
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model-0.safetensors",
        "model-1.safetensors",
    ]
    assert figures["bytes"] == sum(p.stat().st_size for p in out.glob("*.safetensors"))
    assert written.keys() == base.keys()
    for module in SHAPES:
        key = f"{module}.weight"
        update = merger.merge(PREFIX + module).dense().to(torch.float32)
        expected = (base[key].to(torch.float32) + update).to(base[key].dtype)
        assert written[key].dtype == base[key].dtype
        assert torch.equal(written[key], expected), key
        assert not torch.equal(written[key], base[key])  # the update reached it
    for key in ("model.embed_tokens.weight", "model.norm.weight", "model.position_ids"):
        assert torch.equal(written[key], base[key]) and written[key].dtype == base[key].dtype


def _write_over_float32_base(
    tmp_path: Path, merger: Merger
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The float32 base's tensors and what write_full wrote over them, every shard together."""
    base = _base(tmp_path / "base", dict.fromkeys(SHAPES, torch.float32))
    out = tmp_path / "out"
    out.mkdir()
    write_full(merger, tmp_path / "base", out)
    written = load_file(str(out / "model-0.safetensors")) | load_file(
        str(out / "model-1.safetensors")
    )
    return base, written


def test_a_dense_merge_result_is_added_the_same_way(tmp_path: Path) -> None:
    merger = _merger(tmp_path, "dare-ties")  # a dense delta, not factors
    assert merger.merge(PREFIX + next(iter(SHAPES))).delta is not None
    base, written = _write_over_float32_base(tmp_path, merger)
    for module in SHAPES:
        key = f"{module}.weight"
        assert torch.equal(written[key], base[key] + merger.merge(PREFIX + module).dense())


def test_factors_held_in_float64_are_multiplied_as_a_lora_output_stores_them(
    tmp_path: Path,
) -> None:
    merger = _merger(tmp_path, "linear")  # linear holds its concatenated factors in float64
    merged = merger.merge(PREFIX + next(iter(SHAPES)))
    assert merged.b is not None and merged.b.dtype == torch.float64
    base, written = _write_over_float32_base(tmp_path, merger)
    for module in SHAPES:
        key, merged = f"{module}.weight", merger.merge(PREFIX + module)
        assert merged.b is not None and merged.a is not None
        stored = merged.b.to(torch.float32) @ merged.a.to(torch.float32)  # the LoRA output's
        assert torch.equal(written[key], base[key] + stored), key


LAYERS = {  # five merged weights in a row in one shard: each buffer is refilled twice
    f"model.layers.{i}.mlp.down_proj": (6, 12) for i in range(5)
}


def _layered(tmp_path: Path) -> tuple[Merger, dict[str, torch.Tensor]]:
    folders = [make_adapter(tmp_path / f"adapter-{i}", LAYERS, seed=i) for i in range(2)]
    merger = Merger(
        [load_adapter(str(p), p) for p in folders],
        MergeSettings(method=METHODS["knots-ties"], weights=(0.5, 0.5)),
    )
    merger.prepare()
    generator = torch.Generator().manual_seed(3)
    base = {f"{m}.weight": torch.randn(shape, generator=generator) for m, shape in LAYERS.items()}
    base["model.norm.weight"] = torch.ones(6)  # after them: copied once their writes are done
    (tmp_path / "base").mkdir()
    save_file(base, str(tmp_path / "base" / "model.safetensors"))
    return merger, base


def test_a_slow_disk_never_sees_its_buffer_refilled_before_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merger, base = _layered(tmp_path)
    original = output.SafetensorsStreamWriter.add
    threads = set()

    def slow_add(self: output.SafetensorsStreamWriter, name: str, tensor: torch.Tensor) -> None:
        threads.add(threading.current_thread().name)
        time.sleep(0.2)  # the next weights are made meanwhile, in the other buffer
        original(self, name, tensor)

    monkeypatch.setattr(output.SafetensorsStreamWriter, "add", slow_add)
    out = tmp_path / "out"
    out.mkdir()
    write_full(merger, tmp_path / "base", out)

    written = load_file(str(out / "model.safetensors"))
    assert written.keys() == base.keys()
    for module in LAYERS:
        key = f"{module}.weight"
        assert torch.equal(written[key], base[key] + merger.merge(PREFIX + module).dense()), key
    assert torch.equal(written["model.norm.weight"], base["model.norm.weight"])
    assert threads and all(t.startswith("langmerge-write") for t in threads)  # behind the caller


def test_a_failed_write_is_raised_to_the_caller_and_nothing_after_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merger, _ = _layered(tmp_path)
    original = output.SafetensorsStreamWriter.add
    names: list[str] = []

    def failing_add(self: output.SafetensorsStreamWriter, name: str, tensor: torch.Tensor) -> None:
        names.append(name)
        if len(names) == 2:  # the disk fills once; a later write would land at a wrong offset
            raise OSError(28, "No space left on device")
        original(self, name, tensor)

    monkeypatch.setattr(output.SafetensorsStreamWriter, "add", failing_add)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OSError, match="No space left on device"):
        write_full(merger, tmp_path / "base", out)
    assert names == [f"model.layers.{i}.mlp.down_proj.weight" for i in range(2)]


def test_a_weight_stored_as_integers_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    merger = _merger(tmp_path)
    dtypes = dict.fromkeys(SHAPES, torch.float32)
    dtypes["model.layers.0.self_attn.v_proj"] = torch.int8
    _base(tmp_path / "base", dtypes)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match=r"v_proj.weight in model-\d.safetensors is stored as I8"):
        write_full(merger, tmp_path / "base", out)
    assert list(out.iterdir()) == []


def test_a_base_model_of_another_shape_is_refused_up_front(tmp_path: Path) -> None:
    merger = _merger(tmp_path)
    base = tmp_path / "base"
    base.mkdir()
    weights = {f"{m}.weight": torch.zeros(shape[::-1]) for m, shape in SHAPES.items()}
    save_file(weights, str(base / "model.safetensors"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="merge onto the adapters' base model"):
        write_full(merger, base, out)
    assert list(out.iterdir()) == []


def test_a_base_model_without_an_updated_weight_is_refused_up_front(tmp_path: Path) -> None:
    merger = _merger(tmp_path)
    base = tmp_path / "base"
    base.mkdir()
    save_file({"model.norm.weight": torch.ones(6)}, str(base / "model.safetensors"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(
        ValueError, match=re.escape("has no weight model.layers.0.self_attn.q_proj.weight")
    ):
        write_full(merger, base, out)
    assert list(out.iterdir()) == []
