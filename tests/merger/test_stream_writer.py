"""The streamed safetensors writer gives a file safetensors reads back, with the kernel copy
(Linux) and with the chunked copy used where os.copy_file_range does not exist (macOS)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from langmerge.merger.output import SafetensorsStreamWriter


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_the_written_file_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    tensors = {
        "a": torch.randn(3, 5),
        "b": torch.arange(7, dtype=torch.int64),
        "c": torch.randn(2, 2).to(torch.bfloat16),
        "empty": torch.zeros(0, 4),
    }
    writer = SafetensorsStreamWriter(tmp_path / "out.safetensors", {"format": "pt"})
    for name, tensor in tensors.items():
        writer.add(name, tensor)
    writer.close()
    loaded = load_file(str(tmp_path / "out.safetensors"))
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor), name
    assert not (tmp_path / "out.safetensors.body").exists()
