"""Merging a search's candidates with the work they share done once.

Every KnOTS candidate over the same adapters starts from the same per-module alignment (the
basis U and the blocks S V_i^T, the merge's costly part) and, for a model-wide TIES top-k,
from thresholds that depend only on the density. SharedKnots computes each module's
alignment once (kept in memory while it fits the cache budget, recomputed beyond it) and the
thresholds of every density from one pass over the modules; merge_candidates then makes every
KnOTS candidate in one pass over the modules, each module aligned once for all of them and
their shared basis U (every candidate's lora_B, about half of a LoRA's bytes) kept once. The
other methods' per-candidate work is the merge itself (cheap factor sums, or dense updates
that are not worth keeping), so each runs as its own Merger. Candidates are held in memory
while they fit a budget, so a search writes to disk only what it publishes, the bytes of one
merge. Every candidate's output is exactly what a separate merge with its settings writes
(tests/merger/test_search.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from langmerge.merger import steps
from langmerge.merger.adapters import LoraAdapter
from langmerge.merger.methods import (
    MergedModule,
    Merger,
    MergeSettings,
    StreamedThresholds,
    knots_basis,
    merge_blocks,
)
from langmerge.merger.output import HeldLora, LoraWriter, join_lora

UNKNOWN_MEMORY_HOLD_BYTES = 2 << 30  # where the OS does not say what is available


def default_hold_bytes(
    meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup/memory.max")
) -> int:
    """What a search may hold in memory, of its candidates and, as much again, of the
    alignments they share: a quarter each of what this process may use (the memory the machine
    has available, or its container's limit when that is lower)."""
    limits = []
    for line in meminfo.read_text().splitlines() if meminfo.is_file() else []:
        if line.startswith("MemAvailable:"):
            limits.append(int(line.split()[1]) * 1024)
    # cgroup v2's memory.max reads "max" when there is no limit
    if cgroup.is_file() and cgroup.read_text().strip().isdigit():
        limits.append(int(cgroup.read_text().strip()))
    return min(limits) // 4 if limits else UNKNOWN_MEMORY_HOLD_BYTES


class CandidateFailedError(ValueError):
    """A candidate whose merge cannot be used (a non-finite value, a refused parameter)."""


def _uses_global_topk(settings: MergeSettings) -> bool:
    method = settings.method
    return (
        method.space == "knots"
        and method.sparsify == "magnitude"
        and settings.topk_scope == "model"
        and settings.density < 1.0
    )


class SharedKnots:
    """The KnOTS alignment of each module and the model-wide thresholds per density, for
    every candidate over one set of adapters. The alignments are cached up to cache_bytes
    (default: default_hold_bytes(), as much as the candidates may hold)."""

    def __init__(
        self,
        adapters: list[LoraAdapter],
        tolerance: float,
        device: str = "cpu",
        cache_bytes: int | None = None,
    ) -> None:
        self.adapters, self.tolerance, self.device = adapters, tolerance, device
        self.modules = sorted(adapters[0].modules)
        self.cache_bytes = default_hold_bytes() if cache_bytes is None else cache_bytes
        self._aligned: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._cached = 0
        self._thresholds: dict[float, list[float]] = {}
        self.alignments = 0  # modules aligned (a benchmark and test figure)

    def _load(self, module: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        pairs = [a.factors(module, dtype=torch.float64, device=self.device) for a in self.adapters]
        return [a for a, _ in pairs], [b for _, b in pairs]

    def aligned(self, module: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, blocks) of a module: from the cache, or computed (and cached while it fits)."""
        found = self._aligned.get(module)
        if found is not None:
            return found
        u, blocks = knots_basis(*self._load(module), self.tolerance)
        assert u is not None
        self.alignments += 1
        size = u.numel() * u.element_size() + blocks.numel() * blocks.element_size()
        if self._cached + size <= self.cache_bytes:
            self._aligned[module] = (u, blocks)
            self._cached += size
        return u, blocks

    def release(self, module: str) -> None:
        """Drops a module's cached alignment (its last candidate is made): the memory goes
        to the candidates made after it."""
        found = self._aligned.pop(module, None)
        if found is not None:
            self._cached -= sum(t.numel() * t.element_size() for t in found)

    def prepare(self, densities: set[float]) -> None:
        """The model-wide TIES thresholds of every density not yet known, as one merge finds
        them (StreamedThresholds): one pass over the modules counts each density's histogram
        from the same buckets and keeps the values near each running threshold; a second pass
        reads only the modules where what was kept misses a final bucket (modules beyond the
        alignment cache are aligned again there, so it matters that they are few)."""
        wanted = sorted(d for d in densities if d < 1.0 and d not in self._thresholds)
        if not wanted:
            return
        n = len(self.adapters)
        streams = {density: StreamedThresholds(n, density) for density in wanted}
        for module in self.modules:
            _, blocks = self.aligned(module)
            for task in range(n):
                buckets = steps.magnitude_buckets(blocks[task]).flatten()
                histogram = torch.bincount(buckets, minlength=steps.BINS).cpu()
                for stream in streams.values():
                    stream.count(task, blocks[task], module, buckets, histogram)
        again: set[str] = set()
        for stream in streams.values():
            stream.locate()
            again |= stream.settle()
        for module in (m for m in self.modules if m in again):
            _, blocks = self.aligned(module)
            for stream in streams.values():
                for task in range(n):
                    if module in stream.missed[task]:
                        stream.collect(task, blocks[task])
        for density, stream in streams.items():
            self._thresholds[density] = stream.thresholds()

    def thresholds(self, settings: MergeSettings) -> list[float] | None:
        """What Merger.prepare finds for these settings: model-wide thresholds, or None."""
        if not _uses_global_topk(settings):
            return None
        self.prepare({settings.density})
        return self._thresholds[settings.density]

    def merge(
        self, module: str, settings: MergeSettings, thresholds: list[float] | None
    ) -> MergedModule:
        """The candidate's merged module, from the shared alignment (methods.merge_blocks,
        which leaves the shared blocks unchanged)."""
        return self._merged(module, *self.aligned(module), settings, thresholds)

    @staticmethod
    def _merged(
        module: str,
        u: torch.Tensor,
        blocks: torch.Tensor,
        settings: MergeSettings,
        thresholds: list[float] | None,
    ) -> MergedModule:
        merged = merge_blocks(blocks, settings, module, thresholds)
        return MergedModule(module, b=u, a=merged, stats={"knots_rank": float(u.shape[1])})

    def merge_scaled(
        self,
        module: str,
        settings: list[MergeSettings],
        thresholds: list[list[float] | None],
    ) -> list[MergedModule]:
        """merge() for several candidates at once, from one alignment of the module (a module
        beyond the cache is aligned once here, not once per candidate). Those that differ only
        in lambda share the combination, which combine_ scales by lambda last, so each result
        is the same bits as its own merge()."""
        u, blocks = self.aligned(module)
        unscaled: dict[MergeSettings, MergedModule] = {}
        out = []
        for candidate, found in zip(settings, thresholds, strict=True):
            key = replace(candidate, lambda_=1.0)
            if key not in unscaled:
                unscaled[key] = self._merged(module, u, blocks, key, found)
            common = unscaled[key]
            assert common.a is not None
            scaled = common.a if candidate.lambda_ == 1.0 else common.a * candidate.lambda_
            out.append(MergedModule(module, b=u, a=scaled, stats=dict(common.stats)))
        return out


def _finite(module: str, tensors: list[torch.Tensor | None], dtype: torch.dtype) -> None:
    """Refuses a merge that is not finite in the dtype it is written in: a NaN, an inf, or a
    float64 value beyond that dtype's largest (it would overflow there). One pass per tensor
    (its min and max), no copy."""
    largest = torch.finfo(dtype).max
    for tensor in tensors:
        if tensor is None or tensor.numel() == 0:
            continue
        low, high = torch.aminmax(tensor)
        if not (-largest <= float(low) and float(high) <= largest):  # NaN fails both
            raise CandidateFailedError(
                f"module {module}: the merge is not finite in {dtype} (NaN or inf)"
            )


def lora_bytes(adapters: list[LoraAdapter], rank: int | None, factors: str) -> int:
    """The most bytes (float32) a merged LoRA's factors can take: every module at the rank a
    merge writes, or at the sum of the input ranks where that is more (KnOTS and cat keep up
    to it)."""
    total = 0
    for module in adapters[0].modules:
        width = max(rank or 0, sum(a.rank(module) for a in adapters))
        rows = {"A": adapters[0].factor_shape(module, "A")[1]}
        rows["B"] = adapters[0].factor_shape(module, "B")[0]
        total += sum(width * rows[f] * 4 for f in factors)
    return total


@dataclass
class Written:
    """A candidate's LoRA: held in memory (`held`), or in scratch as the folders whose tensors
    together make it (`parts`: its own first, with its config). A KnOTS candidate's lora_B is
    the basis every one of them shares, held or written once beside them. Or why it has
    none."""

    parts: list[Path]
    held: list[HeldLora] | None = None
    figures: dict[str, float] | None = None
    failure: str | None = None

    def lora(self) -> list[Path] | HeldLora:
        """What scoring reads: the folders, or the adapter in memory."""
        return HeldLora.join(self.held) if self.held is not None else self.parts

    def publish(self, out_dir: Path) -> None:
        """The candidate as one peft adapter in out_dir: the bytes a separate merge writes."""
        if self.held is not None:
            HeldLora.join(self.held).write(out_dir)
        else:
            join_lora(self.parts, out_dir)


def merge_candidates(
    adapters: list[LoraAdapter],
    settings: list[MergeSettings],
    scratch: Path,
    rank: int | None,
    shared: SharedKnots,
    hold_bytes: int | None = None,
) -> list[Written]:
    """Each candidate's LoRA, held in memory while the candidates' largest size fits
    hold_bytes (default_hold_bytes()), written under scratch beyond it (scratch/<i>, and
    scratch/basis for what the KnOTS candidates share): a search writes only its winner, the
    bytes of one merge. KnOTS candidates are made together in one pass over the modules, the
    basis U once for all of them; a candidate that fails is recorded and the others go on."""
    knots = [i for i, s in enumerate(settings) if s.method.space == "knots"]
    budget = default_hold_bytes() if hold_bytes is None else hold_bytes
    basis_bytes = lora_bytes(adapters, None, "B") if knots else 0
    knots_bytes, other_bytes = lora_bytes(adapters, None, "A"), lora_bytes(adapters, rank, "AB")
    held: set[int] = set()
    for i in range(len(settings)):
        size = knots_bytes if i in knots else other_bytes
        # The basis counts once, with the first KnOTS candidate held.
        extra = basis_bytes if i in knots and not held & set(knots) else 0
        if size + extra <= budget:
            budget -= size + extra
            held.add(i)
    basis = scratch / "basis"
    spilled_knots = [i for i in knots if i not in held]
    results = [
        Written([] if i in held else [scratch / str(i)] + ([basis] if i in knots else []))
        for i in range(len(settings))
    ]
    for folder in {part for written in results for part in written.parts}:
        folder.mkdir(parents=True, exist_ok=True)
    shared.prepare({settings[i].density for i in knots if _uses_global_topk(settings[i])})

    def writer(i: int, factors: str) -> LoraWriter:
        out_dir = None if i in held else results[i].parts[0]
        return LoraWriter(adapters[0], out_dir, rank, factors=factors)

    writers = {i: writer(i, "A") for i in knots}
    basis_writers = [
        LoraWriter(adapters[0], out_dir, rank, factors="B")
        for out_dir, wanted in ((None, held & set(knots)), (basis, spilled_knots))
        if wanted
    ]
    thresholds = {i: shared.thresholds(settings[i]) for i in knots}
    for module in shared.modules:
        alive = [i for i in knots if results[i].failure is None]
        try:
            merged = shared.merge_scaled(
                module, [settings[i] for i in alive], [thresholds[i] for i in alive]
            )
        except (ValueError, RuntimeError) as error:  # a step refused: every candidate here
            for i in alive:
                results[i].failure = str(error)
            continue
        if merged:  # the basis U, every candidate's B here: checked and kept once
            try:
                _finite(module, [merged[0].b], basis_writers[0].dtype)
            except CandidateFailedError as error:
                for i in alive:
                    results[i].failure = str(error)
                continue
            for basis_writer in basis_writers:
                basis_writer.add(merged[0])
        for i, module_merged in zip(alive, merged, strict=True):
            try:
                _finite(module, [module_merged.a], writers[i].dtype)
                writers[i].add(module_merged)
            except (CandidateFailedError, ValueError, RuntimeError) as error:
                results[i].failure = str(error)
        # Fresh memory is dear (first touches cost more than the merge on some machines):
        # what the module's alignment frees goes to the candidates of the next modules.
        shared.release(module)
    if any(results[i].failure is None for i in knots):
        for basis_writer in basis_writers:
            basis_writer.close()  # every module is in it when any candidate has every module
    held_basis = next((w.held for w in basis_writers if w.out_dir is None), None)
    for i in knots:
        if results[i].failure is None:
            results[i].figures = writers[i].close()
            own = writers[i].held
            if i in held:
                assert own is not None and held_basis is not None
                results[i].held = [own, held_basis]
    for i, candidate in enumerate(settings):
        if candidate.method.space == "knots":
            continue
        try:
            merger = Merger(adapters, candidate)
            merger.prepare()
            lora = writer(i, "AB")
            for merged_module in merger:
                _finite(
                    merged_module.name,
                    [merged_module.b, merged_module.a, merged_module.delta],
                    lora.dtype,
                )
                lora.add(merged_module)
            results[i].figures = lora.close()
            if lora.held is not None:
                results[i].held = [lora.held]
        except (CandidateFailedError, ValueError, RuntimeError) as error:
            results[i].failure = str(error)
    return results
