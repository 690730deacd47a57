"""Writing merge results: a peft LoRA adapter, or full weights streamed from the base model.

Both go through SafetensorsStreamWriter, which holds one tensor in memory at a time and writes
each byte once."""

from __future__ import annotations

import json
import math
import shutil
import struct
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any, BinaryIO

import torch

from langmerge.merger.adapters import CONFIG, WEIGHTS, LoraAdapter
from langmerge.merger.methods import MergedModule, Merger

PEFT_PREFIX = "base_model.model."
COMPRESSION_SEED = 0  # the randomised SVD's start: a module compresses the same in any run
_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


MAX_DIMS = 8
COPY_CHUNK_BYTES = 16 << 20
_LARGEST = 2**63 - 1
# The longest header entry a tensor can have beyond its name: the widest dtype, MAX_DIMS
# dimensions and both offsets at int64's largest, its separators included.
HEADER_ENTRY_BOUND = len(
    json.dumps(
        {"": {"dtype": "BOOL", "shape": [_LARGEST] * MAX_DIMS, "data_offsets": [_LARGEST] * 2}},
        separators=(",", ":"),
    )
)


class SafetensorsStreamWriter:
    """Writes a .safetensors file tensor by tensor without holding them all in memory, each
    byte once: the header's room is reserved up front from the names of the tensors to come
    (their shapes and offsets are not known yet, so every entry gets room for the largest),
    the tensors are written behind it as they come, and the header, padded with spaces as the
    format allows, fills its room at the end."""

    def __init__(
        self, path: Path, names: Iterable[str], metadata: dict[str, str] | None = None
    ) -> None:
        self.path = path
        self.metadata = metadata or {}
        self._expected = set(names)
        room = sum(len(json.dumps(name)) + HEADER_ENTRY_BOUND for name in self._expected)
        room += len(json.dumps({"__metadata__": self.metadata})) + 8
        self._room = room + (-room % 8)  # the format aligns the body to 8 bytes
        self._file = path.open("wb")
        self._file.seek(8 + self._room)
        self._header: dict[str, Any] = {}
        self._offset = 0
        self.bytes_written = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        data = tensor.detach().contiguous().cpu()
        size = data.numel() * data.element_size()
        self._entry(name, _DTYPES[data.dtype], list(data.shape), size)
        if size:  # the tensor's own memory, written without a copy
            self._file.write(data.reshape(-1).view(torch.uint8).numpy().data)

    def add_bytes(
        self, name: str, dtype: str, shape: list[int], source: BinaryIO, size: int
    ) -> None:
        """A tensor copied as it is stored in another safetensors file: size bytes from
        source's position, in chunks (no tensor made, nothing mapped)."""
        self._entry(name, dtype, shape, size)
        remaining = size
        while remaining:
            chunk = source.read(min(remaining, COPY_CHUNK_BYTES))
            if not chunk:
                raise ValueError(f"{self.path}: the source of {name} ends early")
            self._file.write(chunk)
            remaining -= len(chunk)

    def _entry(self, name: str, dtype: str, shape: list[int], size: int) -> None:
        if name not in self._expected or name in self._header:
            raise ValueError(f"{self.path}: tensor {name} was not announced, or is added twice")
        if len(shape) > MAX_DIMS:
            raise ValueError(f"{self.path}: tensor {name} has more than {MAX_DIMS} dimensions")
        self._header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [self._offset, self._offset + size],
        }
        self._offset += size

    def close(self) -> None:
        missing = sorted(self._expected - set(self._header))
        if missing:
            self._file.close()
            raise ValueError(f"{self.path}: tensor {missing[0]} was announced but not added")
        header = dict(self._header)
        if self.metadata:
            header["__metadata__"] = self.metadata
        encoded = json.dumps(header, separators=(",", ":")).encode()
        assert len(encoded) <= self._room, "HEADER_ENTRY_BOUND is too small"
        self._file.seek(0)
        self._file.write(struct.pack("<Q", self._room))
        self._file.write(encoded.ljust(self._room, b" "))
        self._file.close()
        self.bytes_written = self.path.stat().st_size


def _pattern_key(module: str) -> str:
    return module.removeprefix(PEFT_PREFIX)


def joined_names(parts: list[list[str]], where: str) -> list[tuple[str, int]]:
    """The tensors of one adapter made of parts that each hold some of them (a search's
    candidate: its lora_A beside the lora_B every candidate shares), in the order a LoraWriter
    writes both factors: each module's A then B, the modules in the first part's order; each
    with the index of the part that holds it."""
    holder = {name: index for index, names in enumerate(parts) for name in names}
    order = []
    for module in dict.fromkeys(
        n.removesuffix(".weight").rpartition(".lora_")[0] for n in parts[0]
    ):
        for factor in "AB":
            name = f"{module}.lora_{factor}.weight"
            if name not in holder:
                raise ValueError(f"no part of {where} holds {name}")
            order.append((name, holder[name]))
    return order


@dataclass
class HeldLora:
    """A peft adapter kept in memory: its config and its tensors, in the order a LoraWriter
    writes them (each module's A, then its B). write() gives the bytes that LoraWriter gives."""

    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @classmethod
    def join(cls, parts: list[HeldLora]) -> HeldLora:
        """One adapter from parts that each hold some of its tensors (a search's candidate:
        its lora_A and the lora_B that every candidate shares, by reference), the config the
        first part's (joined_names)."""
        names = [list(part.tensors) for part in parts]
        order = joined_names(names, "the held adapter")
        return cls(parts[0].config, {name: parts[i].tensors[name] for name, i in order})

    def write(self, out_dir: Path) -> None:
        writer = SafetensorsStreamWriter(out_dir / WEIGHTS, self.tensors, {"format": "pt"})
        for name, tensor in self.tensors.items():
            writer.add(name, tensor)
        writer.close()
        (out_dir / CONFIG).write_text(json.dumps(self.config, indent=2, sort_keys=True))


class LoraWriter:
    """Writes a peft adapter whose B @ A per module is the merged update (scale 1), one merged
    module at a time (a search feeds many writers from one pass over the modules); with no
    out_dir it holds the adapter in memory instead (`held`, after close).

    Dense results are compressed to `rank` (default: the sum of the input ranks) by an SVD;
    the largest relative Frobenius error is reported. `factors` "A" or "B" writes only that
    factor of each module (a search's KnOTS candidates share B, written once; join_lora makes
    the adapter)."""

    def __init__(
        self,
        template: LoraAdapter,
        out_dir: Path | None,
        rank: int | None,
        dtype: torch.dtype = torch.float32,
        factors: str = "AB",
    ) -> None:
        self.template, self.out_dir, self.rank, self.dtype = template, out_dir, rank, dtype
        self.factors = factors
        names = [f"{m}.lora_{f}.weight" for m in template.modules for f in factors]
        self._writer = (
            SafetensorsStreamWriter(out_dir / WEIGHTS, names, {"format": "pt"})
            if out_dir is not None
            else None
        )
        self._tensors: dict[str, torch.Tensor] = {}
        self.held: HeldLora | None = None
        self._ranks: dict[str, int] = {}
        self._worst_error = 0.0

    def add(self, module: MergedModule) -> None:
        if module.delta is not None:
            b, a, error = compress_dense(module.delta, self.rank)
        else:
            assert module.b is not None and module.a is not None
            b, a, error = module.b, module.a, module.stats.get("reconstruction_error", 0.0)
        if a.shape[0] == 0:  # nothing survived: keep a valid rank-1 zero update
            a = torch.zeros((1, a.shape[1]), dtype=a.dtype)
            b = torch.zeros((b.shape[0], 1), dtype=b.dtype)
        self._worst_error = max(self._worst_error, error)
        for factor, tensor in (("A", a), ("B", b)):
            if factor in self.factors:
                name = f"{module.name}.lora_{factor}.weight"
                if self._writer is not None:
                    self._writer.add(name, tensor.to(self.dtype))
                else:  # its own memory, contiguous on the CPU as a file would hold it
                    self._tensors[name] = tensor.detach().to("cpu", self.dtype).contiguous()
        self._ranks[_pattern_key(module.name)] = int(a.shape[0])

    def close(self) -> dict[str, float]:
        if self._writer is not None:
            self._writer.close()
        ranks = self._ranks
        top = max(ranks.values())
        config = dict(self.template.config)
        config.update(
            r=top,
            lora_alpha=top,
            use_rslora=False,
            lora_dropout=0.0,
            use_dora=False,
            rank_pattern={k: v for k, v in ranks.items() if v != top},
            alpha_pattern={k: v for k, v in ranks.items() if v != top},
            inference_mode=True,
        )
        if self.out_dir is not None:
            (self.out_dir / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
        else:
            self.held = HeldLora(config, self._tensors)
        return {"rank": float(top), "reconstruction_error": self._worst_error}


def write_lora(
    merged: Iterable[MergedModule],
    template: LoraAdapter,
    out_dir: Path,
    rank: int | None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """A LoraWriter fed every merged module."""
    writer = LoraWriter(template, out_dir, rank, dtype)
    for module in merged:
        writer.add(module)
    return writer.close()


def read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """A safetensors file's header (tensor name -> dtype, shape, data_offsets) and where its
    tensor data begins."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return 8 + length, header


def join_lora(parts: list[Path], out_dir: Path) -> None:
    """One peft adapter in out_dir from folders that each hold some of its tensors (a search's
    candidate: its lora_A beside the lora_B that every candidate shares), the config the first
    part's. Its bytes are those a LoraWriter writing both factors gives: each module's A then
    B, the modules in the order of the first part's file; each tensor's bytes are copied as
    stored."""
    files = [part / WEIGHTS for part in parts]
    headers = [read_header(path) for path in files]
    names = [_in_data_order(header) for _, header in headers]
    order = joined_names(names, str(parts))
    writer = SafetensorsStreamWriter(out_dir / WEIGHTS, [n for n, _ in order], {"format": "pt"})
    sources = [path.open("rb") for path in files]
    try:
        for name, index in order:
            start, header = headers[index]
            entry = header[name]
            low, high = entry["data_offsets"]
            sources[index].seek(start + low)
            writer.add_bytes(name, entry["dtype"], entry["shape"], sources[index], high - low)
        writer.close()
    finally:
        for source in sources:
            source.close()
    shutil.copyfile(parts[0] / CONFIG, out_dir / CONFIG)


def compress_dense(
    delta: torch.Tensor, rank: int | None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Rank-`rank` factors of a dense update and their relative Frobenius error."""
    target = min(rank or min(delta.shape), delta.shape[0], delta.shape[1])
    work = delta.to(torch.float32)
    if target >= min(delta.shape) * 0.5:
        u, s, vh = torch.linalg.svd(work, full_matrices=False)
        u, s, vh = u[:, :target], s[:target], vh[:target]
    else:
        # Its random start never depends on what ran before (the RNG state is restored).
        with torch.random.fork_rng(devices=[work.device] if work.is_cuda else []):
            torch.manual_seed(COMPRESSION_SEED)
            u, s, v = torch.svd_lowrank(work, q=min(target + 8, *delta.shape), niter=2)
        u, s, vh = u[:, :target], s[:target], v[:, :target].T
    b, a = u * s, vh
    norm = float(torch.linalg.matrix_norm(work))
    error = float(torch.linalg.matrix_norm(work - b @ a)) / norm if norm > 0 else 0.0
    return b, a, error


def _base_key(module: str) -> str:
    return module.removeprefix(PEFT_PREFIX) + ".weight"


_FLOAT_DTYPES = {name: dtype for dtype, name in _DTYPES.items() if dtype.is_floating_point}


def _stored_bytes(entry: dict[str, Any]) -> int:
    low, high = entry["data_offsets"]
    return int(high - low)


def _in_data_order(header: dict[str, Any]) -> list[str]:
    """A safetensors header's tensor names in the order of their data in the file."""
    return sorted(header, key=lambda name: header[name]["data_offsets"][0])


def _read_weight(
    buffer: torch.Tensor, source: BufferedReader, entry: dict[str, Any], where: str
) -> torch.Tensor:
    """The tensor stored at source's position, read into buffer's first bytes (no new memory)."""
    size = _stored_bytes(entry)
    if source.readinto(buffer.numpy().data[:size]) != size:
        raise ValueError(f"{where}: its data ends early")
    return buffer[:size].view(_FLOAT_DTYPES[entry["dtype"]]).view(entry["shape"])


def _dense_update(module: MergedModule, scratch: torch.Tensor) -> torch.Tensor:
    """The module's merged update, dense float32 on the CPU, made in scratch from the factors
    as a LoRA output stores them (float32): full weights are then the base plus what the LoRA
    output of the same merge applies, and a merge held in float64 (linear's factors) costs a
    float32 product, not a float64 one of twice the time and bytes."""
    if module.delta is not None:
        return module.delta.to("cpu", torch.float32)
    assert module.b is not None and module.a is not None
    b, a = module.b.to(torch.float32), module.a.to(torch.float32)
    if b.device.type != "cpu" or a.device.type != "cpu":  # made where the merge ran
        return (b @ a).to("cpu")
    rows, cols = b.shape[0], a.shape[1]
    return torch.matmul(b, a, out=scratch[: rows * cols].view(rows, cols))


def _check_base_weight(merger: Merger, module: str, entry: dict[str, Any], where: str) -> None:
    """Refuses a base weight the merged update cannot be added to: not stored as floats, or
    not of the shape the adapters update (out features of lora_B by in features of lora_A)."""
    if entry["dtype"] not in _FLOAT_DTYPES:
        raise ValueError(
            f"{where} is stored as {entry['dtype']}; full weights need a float base model "
            "(F32, F16, BF16 or F64), or a LoRA output (spec.output.format: lora, "
            "--output-format lora)"
        )
    template = merger.adapters[0]
    updated = [template.factor_shape(module, "B")[0], template.factor_shape(module, "A")[1]]
    if list(entry["shape"]) != updated:
        raise ValueError(
            f"{where} is {list(entry['shape'])}, the adapters update a {updated} weight; "
            "merge onto the adapters' base model"
        )


class _WriteBehind:
    """Writes each merged weight on a thread of its own while the next one is made: past the
    page cache's dirty limit a write goes at the disk's pace, and the next weight's read and
    arithmetic need not wait for it. Two buffers take turns (one written while the other is
    filled); every write to the file goes through the one thread, in order, and a failed
    write is raised on the caller's thread. After a failed write the file is broken: the write
    handed over behind it is skipped, not appended at the wrong offset."""

    def __init__(self, size: int) -> None:
        self._buffers = [torch.empty(size, dtype=torch.uint8) for _ in range(2)]
        self._pending: list[Future[None] | None] = [None, None]
        self._turn = 0
        self._failed = False  # read and set by the one writing thread only
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="langmerge-write")

    def next_buffer(self) -> torch.Tensor:
        """The buffer to fill next, once its previous write is done."""
        self._wait(self._turn)
        return self._buffers[self._turn]

    def write(self, writer: SafetensorsStreamWriter, name: str, weight: torch.Tensor) -> None:
        """Writes weight, held in the buffer next_buffer gave, behind the caller."""
        self._pending[self._turn] = self._pool.submit(self._add, writer, name, weight)
        self._turn = 1 - self._turn

    def drain(self) -> None:
        """Every write handed over is done (before the caller writes to the file itself)."""
        for turn in (self._turn, 1 - self._turn):  # in the order they were handed over
            self._wait(turn)

    def close(self) -> None:
        """Ends the thread once its writes are over; reached with writes pending only when the
        caller failed, whose error is the one to raise."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _add(self, writer: SafetensorsStreamWriter, name: str, weight: torch.Tensor) -> None:
        if self._failed:
            return  # the caller raises the first failure when it waits for that write
        try:
            writer.add(name, weight)
        except BaseException:
            self._failed = True
            raise

    def _wait(self, turn: int) -> None:
        pending, self._pending[turn] = self._pending[turn], None
        if pending is not None:
            pending.result()


def write_full(merger: Merger, base_dir: Path, out_dir: Path) -> dict[str, float]:
    """Base weights plus the merged update, shard by shard and tensor by tensor, in the order
    of each shard's names. Weights the adapters do not touch are copied as stored; each merged
    weight is read into one of two buffers that every weight reuses, the update added there in
    float32, and written from it behind the next weight's work (_WriteBehind). The writer makes
    no tensor per weight (a dense merge's delta is the merge's own): on a VM a page touched for
    the first time costs more than the addition (1.2-1.9 s per GiB here,
    benchmarks/steps_bench.py's fresh-memory probe)."""
    targets = {_base_key(m): m for m in merger.modules}
    shards = sorted(base_dir.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"base model {base_dir} has no .safetensors weights")
    headers = {shard: read_header(shard) for shard in shards}
    stored = {key for _, header in headers.values() for key in header}
    missing = sorted(set(targets) - stored)
    if missing:
        raise ValueError(
            f"base model {base_dir} has no weight {missing[0]} that the adapters update"
        )
    merged_entries = []
    for shard, (_, header) in headers.items():  # every refusal before any work
        for key in sorted(set(header) & set(targets)):
            entry = header[key]
            where = f"base model {base_dir}: {key} in {shard.name}"
            _check_base_weight(merger, targets[key], entry, where)
            merged_entries.append(entry)
    largest = max((_stored_bytes(e) for e in merged_entries), default=0)
    elements = max((math.prod(e["shape"]) for e in merged_entries), default=0)
    behind = _WriteBehind(largest)
    scratch = torch.empty(elements, dtype=torch.float32)  # the update from factors
    narrow = any(e["dtype"] != "F32" for e in merged_entries)
    widened = torch.empty(elements if narrow else 0, dtype=torch.float32)  # one not in float32
    written = 0
    try:
        for shard in shards:
            start, header = headers[shard]
            writer = SafetensorsStreamWriter(out_dir / shard.name, header, {"format": "pt"})
            with shard.open("rb") as source:
                for key in sorted(header):
                    entry = header[key]
                    source.seek(start + entry["data_offsets"][0])
                    if key not in targets:
                        behind.drain()  # the file's bytes stay in the header's order
                        size = _stored_bytes(entry)
                        writer.add_bytes(key, entry["dtype"], entry["shape"], source, size)
                        continue
                    buffer = behind.next_buffer()
                    weight = _read_weight(buffer, source, entry, f"{shard}: {key}")
                    delta = _dense_update(merger.merge(targets[key]), scratch)
                    if weight.dtype == torch.float32:
                        weight.add_(delta)
                    else:  # float32 arithmetic, rounded once to the stored dtype
                        wide = widened[: weight.numel()].view(weight.shape).copy_(weight)
                        weight.copy_(wide.add_(delta))
                    behind.write(writer, key, weight)
            behind.drain()
            writer.close()
            written += writer.bytes_written
    finally:
        behind.close()
    for extra in base_dir.iterdir():
        if extra.is_file() and not extra.name.endswith(".safetensors"):
            shutil.copy2(extra, out_dir / extra.name)
    return {"bytes": float(written)}
