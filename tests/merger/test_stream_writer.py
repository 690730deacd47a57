"""The streamed safetensors writer gives a file safetensors reads back, written once (the
header's room reserved from the names up front), and refuses a tensor it was not told of."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from langmerge.merger.output import MAX_DIMS, SafetensorsStreamWriter


def test_the_written_file_reads_back(tmp_path: Path) -> None:
    tensors = {
        "a": torch.randn(3, 5),
        "b": torch.arange(7, dtype=torch.int64),
        "c": torch.randn(2, 2).to(torch.bfloat16),
        "empty": torch.zeros(0, 4),
        "widest": torch.ones((1,) * MAX_DIMS, dtype=torch.bool),
    }
    path = tmp_path / "out.safetensors"
    writer = SafetensorsStreamWriter(path, tensors, {"format": "pt"})
    for name, tensor in tensors.items():
        writer.add(name, tensor)
    writer.close()
    loaded = load_file(str(path))
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor), name
    raw = path.read_bytes()
    (room,) = struct.unpack("<Q", raw[:8])
    assert room % 8 == 0
    assert json.loads(raw[8 : 8 + room])["__metadata__"] == {"format": "pt"}
    assert (
        writer.bytes_written
        == len(raw)
        == 8 + room + sum(t.numel() * t.element_size() for t in tensors.values())
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"]  # no scratch file


def test_a_tensor_not_announced_or_missing_is_refused(tmp_path: Path) -> None:
    writer = SafetensorsStreamWriter(tmp_path / "x.safetensors", ["a", "b"])
    writer.add("a", torch.zeros(2))
    with pytest.raises(ValueError, match="tensor c was not announced"):
        writer.add("c", torch.zeros(2))
    with pytest.raises(ValueError, match="tensor a was not announced, or is added twice"):
        writer.add("a", torch.zeros(2))
    with pytest.raises(ValueError, match="tensor b was announced but not added"):
        writer.close()
