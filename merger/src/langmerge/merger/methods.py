"""Merge methods as compositions of steps, registered in one table.

A method is: a representation of each adapter's update (low-rank factors, dense dW, or KnOTS
blocks in a shared basis), an optional sparsification (TIES magnitude pruning or DARE), and a
combination (weighted sum, or sign election + disjoint weighted mean), then lambda. The
reconstruction follows from the representation: factors and KnOTS stay exactly low rank,
dense results are returned dense (and compressed by the writer when a LoRA is asked for).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from langmerge.merger import steps
from langmerge.merger.adapters import LoraAdapter
from langmerge.merger.names import METHOD_NAMES, METHOD_OPTIONS

Space = Literal["factors", "dense", "knots"]
Sparsify = Literal["magnitude", "dare"] | None
TopkScope = Literal["model", "module"]  # what TIES's top-k spans: the whole model, or a module


@dataclass(frozen=True)
class Method:
    name: str
    space: Space
    sparsify: Sparsify
    elect: bool  # sign election + disjoint mean; otherwise a weighted sum
    compressible: bool = True  # cat is the plain stack, never compressed
    summary: str = ""


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("linear", "factors", None, False, summary="task arithmetic: lambda * sum w_i dW_i"),
        Method(
            "cat",
            "factors",
            None,
            False,
            compressible=False,
            summary="the factors side by side: exactly sum w_i dW_i, rank sum r_i",
        ),
        Method("ties", "dense", "magnitude", True, summary="TIES on dense dW"),
        Method("dare-linear", "dense", "dare", False, summary="DARE then weighted sum"),
        Method("dare-ties", "dense", "dare", True, summary="DARE then sign election"),
        Method("knots-ties", "knots", "magnitude", True, summary="TIES on KnOTS blocks"),
        Method("knots-dare-ties", "knots", "dare", True, summary="DARE-TIES on KnOTS blocks"),
    )
}


def options(method: Method) -> tuple[str, ...]:
    """The options the method takes beyond weights and lambda."""
    return (("density",) if method.sparsify else ()) + (
        ("seed",) if method.sparsify == "dare" else ()
    )


if tuple(sorted(METHODS)) != METHOD_NAMES:  # the torch-free list must name every method
    raise ImportError(f"names.METHOD_NAMES is stale: the registry has {sorted(METHODS)}")
if {name: options(m) for name, m in METHODS.items()} != METHOD_OPTIONS:
    raise ImportError("names.METHOD_OPTIONS is stale: it must follow each method's steps")


@dataclass(frozen=True)
class MergeSettings:
    method: Method
    weights: tuple[float, ...]
    density: float = 0.5
    lambda_: float = 1.0
    majority_sign: str = "total"
    topk_scope: TopkScope | None = "model"  # None: the method has no top-k
    seed: int = 0
    rank: int | None = None  # compress factor/dense results to this rank for a LoRA output
    device: str = "cpu"
    knots_tolerance: float = 1e-5  # singular values below tol * s_max are dropped


@dataclass
class MergedModule:
    """A merged update: factors (b: out x k, a: k x in, dW = b @ a) or a dense delta."""

    name: str
    b: torch.Tensor | None = None
    a: torch.Tensor | None = None
    delta: torch.Tensor | None = None
    stats: dict[str, float] = field(default_factory=dict)

    def dense(self) -> torch.Tensor:
        if self.delta is not None:
            return self.delta
        assert self.b is not None and self.a is not None
        return self.b @ self.a


def dare_generator(seed: int, module: str, task: int) -> np.random.Generator:
    """A generator per (seed, module, adapter), so DARE's draw does not depend on module order,
    chunking or device."""
    digest = hashlib.sha256(f"{seed}:{module}:{task}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


SPECULATION_BUCKETS = 3  # each side of the running estimate; a bucket is 1/128 of an octave
DARE_BLOCK_ROWS = 256  # DARE draws its mask per block of rows: chunked merges stay identical


def dare_rows_mask(
    settings: MergeSettings,
    module: str,
    task: int,
    shape: tuple[int, int],
    row_start: int,
    row_end: int,
) -> torch.Tensor:
    """DARE's keep-mask for rows [row_start, row_end) of a (rows, cols) tensor; row_start must
    be a multiple of DARE_BLOCK_ROWS."""
    rows, cols = shape
    parts = []
    for block in range(row_start, row_end, DARE_BLOCK_ROWS):
        height = min(DARE_BLOCK_ROWS, rows - block)
        generator = dare_generator(settings.seed, f"{module}#{block}", task)
        parts.append(steps.dare_keep_mask(torch.Size((height, cols)), settings.density, generator))
    return torch.cat(parts)[: row_end - row_start].to(settings.device)


class StreamedThresholds:
    """TIES thresholds per adapter over tensors seen one at a time (many modules, or row
    chunks of one): a magnitude-bucket histogram in a first pass, then the exact k-th value
    among the one bucket that holds it.

    The bucket's values come from a second pass (`collect`), or, for the parts counted with
    a name, from the first: `count(..., part=name)` also keeps the part's values within
    SPECULATION_BUCKETS of the running estimate of that bucket, and `settle()` uses them
    wherever the final bucket lies inside what was kept; only the parts where it does not
    (`missed`) are read again. Either way the threshold is the same exact value."""

    def __init__(self, n_tasks: int, density: float) -> None:
        self.density = density
        self.counts = [torch.zeros(1 << 15, dtype=torch.int64) for _ in range(n_tasks)]
        self.targets: list[tuple[int, int, int] | None] = []
        self.candidates: list[list[torch.Tensor]] = [[] for _ in range(n_tasks)]
        # per task: part -> (lowest, highest bucket kept, the values kept)
        self.kept: list[dict[str, tuple[int, int, torch.Tensor]]] = [{} for _ in range(n_tasks)]
        self.missed: list[set[str]] = [set() for _ in range(n_tasks)]

    def _kth(self, counts: torch.Tensor) -> int:
        size = int(counts.sum())
        return size - int(size * self.density)

    def count(
        self,
        task: int,
        values: torch.Tensor,
        part: str | None = None,
        buckets: torch.Tensor | None = None,
        histogram: torch.Tensor | None = None,
    ) -> None:
        """Counts values (buckets: their magnitude_buckets, flattened, and histogram: the
        buckets' bincount, when the caller has them already: several densities over the same
        values)."""
        if buckets is None:
            buckets = steps.magnitude_buckets(values).flatten()
        if histogram is None:
            histogram = torch.bincount(buckets, minlength=steps.BINS).cpu()
        self.counts[task] += histogram
        if part is None:
            return
        kth = self._kth(self.counts[task])
        if kth <= 0:
            self.kept[task][part] = (0, -1, values.new_empty(0))
            return
        estimate, _ = steps.threshold_bucket(self.counts[task], kth)
        low, high = estimate - SPECULATION_BUCKETS, estimate + SPECULATION_BUCKETS
        near = (buckets >= low) & (buckets <= high)
        self.kept[task][part] = (low, high, values.flatten()[near].cpu())

    def locate(self) -> None:
        for counts in self.counts:
            kth = self._kth(counts)
            self.targets.append((kth, *steps.threshold_bucket(counts, kth)) if kth > 0 else None)

    def settle(self) -> set[str]:
        """After locate(): takes the final bucket's values from what count() kept; returns
        the parts to read again (collect) for some task, because their kept range misses
        that task's final bucket."""
        for task, target in enumerate(self.targets):
            kept, self.kept[task] = self.kept[task], {}
            if target is None:
                continue
            bucket = target[1]
            for part, (low, high, values) in kept.items():
                if low <= bucket <= high:
                    self.candidates[task].append(steps.in_bucket(values, bucket))
                else:
                    self.missed[task].add(part)
        return set().union(*self.missed)

    def collect(self, task: int, values: torch.Tensor) -> None:
        target = self.targets[task]
        if target is not None:
            self.candidates[task].append(steps.in_bucket(values, target[1]).cpu())

    def thresholds(self) -> list[float]:
        found = []
        for task, target in enumerate(self.targets):
            if target is None:
                found.append(0.0)
            else:
                kth, _, below = target
                found.append(steps.exact_threshold(torch.cat(self.candidates[task]), kth - below))
        return found


# --- low-rank algebra ------------------------------------------------------------------------
def factor_svd(b: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SVD of b @ a (out x R times R x in) without forming it: QR of both factors and one
    R x R SVD. Returns (U: out x R, s: R, Vt: R x in)."""
    q_b, r_b = torch.linalg.qr(b)
    q_a, r_a = torch.linalg.qr(a.T)
    u_core, s, vt_core = torch.linalg.svd(r_b @ r_a.T)
    return q_b @ u_core, s, vt_core @ q_a.T


def truncate(
    b: torch.Tensor, a: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Best rank-`rank` factors of b @ a and the relative Frobenius error of the truncation."""
    u, s, vt = factor_svd(b, a)
    kept = min(rank, s.numel())
    total = float((s**2).sum())
    error = float((s[kept:] ** 2).sum() / total) ** 0.5 if total > 0 else 0.0
    return u[:, :kept] * s[:kept], vt[:kept], error


KNOTS_DTYPE = torch.float32


def knots_basis(
    a_list: list[torch.Tensor], b_list: list[torch.Tensor], tolerance: float, basis: bool = True
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """KnOTS alignment of one module in factor space.

    The concatenation [dW_1 ... dW_n] (out x n*in, dW_i = B_i A_i) = U S [V_1^T ... V_n^T] is
    never formed: QR of the stacked B's and of each A_i^T reduce it to one small SVD.
    Returns U (out x k; None unless basis, which the thresholds do not need: then the B's QR
    forms no Q, and R is the same) and the per-adapter blocks S V_i^T stacked (n x k x in),
    k <= sum r_i. The algebra runs in the factors' dtype (float64 from Merger); U and the
    blocks come back in float32, the precision a merge writes, so every TIES step after it
    moves half the bytes and a search's cache holds twice the modules.
    """
    stacked = torch.cat(b_list, dim=1)
    if basis:
        q_b, r_b = torch.linalg.qr(stacked)
    else:
        r_b = torch.linalg.qr(stacked, mode="r").R
    q_a, r_a = zip(*(torch.linalg.qr(a.T) for a in a_list), strict=True)
    core = r_b @ torch.block_diag(*(r.T for r in r_a))
    u_core, s, vt_core = torch.linalg.svd(core, full_matrices=False)
    keep = s > tolerance * s[0] if s.numel() and s[0] > 0 else torch.zeros_like(s, dtype=torch.bool)
    u = (q_b @ u_core[:, keep]).to(KNOTS_DTYPE) if basis else None
    s_kept, vt_kept = s[keep], vt_core[keep]
    blocks = stacked.new_empty((len(q_a), s_kept.numel(), q_a[0].shape[0]), dtype=KNOTS_DTYPE)
    start = 0
    for task, q in enumerate(q_a):
        width = q.shape[1]
        blocks[task] = (s_kept[:, None] * vt_kept[:, start : start + width]) @ q.T
        start += width
    return u, blocks


# --- combination -------------------------------------------------------------------------
def combine_(stack: torch.Tensor, settings: MergeSettings) -> torch.Tensor:
    """lambda * (disjoint weighted mean after sign election, or weighted sum) of a stack.
    Consumes the stack (it is overwritten)."""
    weights = torch.tensor(settings.weights, dtype=stack.dtype, device=stack.device)
    if settings.method.elect:
        weighted = steps.apply_weights_(stack, weights)
        sign = steps.elect_sign(weighted, settings.majority_sign)
        merged = steps.disjoint_weighted_mean_(weighted, weights, sign)
    else:
        merged = steps.weighted_sum(stack, weights)
    return merged.mul_(settings.lambda_)


# A chunk of a stack and the steps' temporaries fit a core's L2 (2 MB here). 4 MiB chunks
# were 1.2-1.7x slower per module (benchmarks/steps_bench.py, three runs).
CACHE_CHUNK_BYTES = 1 << 20


def merge_blocks(
    blocks: torch.Tensor,
    settings: MergeSettings,
    module: str,
    thresholds: list[float] | None,
    row_start: int = 0,
    total_rows: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The method's sparsification, then combine_, of a module's per-adapter tensors (n, rows,
    cols): KnOTS blocks, or rows [row_start, row_start + rows) of the dense updates (of
    total_rows); `blocks` is left unchanged. It runs in chunks of rows small enough to stay in
    the CPU's cache: each step is one pass over memory, and a stack of tens of MB read a dozen
    times from DRAM costs several times its chunks read from cache. What needs the whole module
    (a module-wide threshold, DARE's mask) is found first, so the result is the same bits as the
    unchunked steps wherever a chunk's size is a multiple of the CPU's vector width (every
    model's widths; elsewhere torch sums a chunk's last few entries over the adapters in
    another order). Written into `out` (rows, cols) where given."""
    n, rows, cols = blocks.shape
    method = settings.method
    trim = method.sparsify if settings.density < 1.0 else None
    if trim == "magnitude" and thresholds is None:
        thresholds = [steps.magnitude_threshold(blocks[t], settings.density) for t in range(n)]
    shape = (total_rows or rows, cols)
    masks = (
        torch.stack(
            [
                dare_rows_mask(settings, module, t, shape, row_start, row_start + rows)
                for t in range(n)
            ]
        )
        if trim == "dare"
        else None
    )
    # Each task's threshold broadcast over its rows: one prune of the whole chunk (
    # prune_by_magnitude_ on a copy, per task, is the same bits).
    limits = (
        blocks.new_tensor(thresholds).view(n, 1, 1)
        if trim == "magnitude" and thresholds is not None
        else None
    )
    step = max(1, CACHE_CHUNK_BYTES // (n * cols * blocks.element_size()))
    merged = blocks.new_empty((rows, cols)) if out is None else out
    # Every piece is written into one buffer (combine_ consumes it): fresh memory per piece
    # costs page faults on some VMs.
    buffer = blocks.new_empty(n * min(step, rows) * cols)
    for lo in range(0, rows, step):
        part = blocks[:, lo : lo + step]
        piece = buffer[: part.numel()].view(part.shape)
        if limits is not None:
            chunk = torch.mul(part, steps.magnitude_keep(part, limits), out=piece)
        elif masks is not None:
            chunk = steps.dare(part, masks[:, lo : lo + step], settings.density, out=piece)
        else:
            chunk = piece.copy_(part)
        merged[lo : lo + step] = combine_(chunk, settings)
    return merged


# --- per representation --------------------------------------------------------------------
FactorLoader = Callable[[str], tuple[list[torch.Tensor], list[torch.Tensor]]]


def _merge_factors(module: str, loader: FactorLoader, settings: MergeSettings) -> MergedModule:
    a_list, b_list = loader(module)
    scale = [settings.lambda_ * w for w in settings.weights]
    b = torch.cat([s * b for s, b in zip(scale, b_list, strict=True)], dim=1)
    a = torch.cat(a_list, dim=0)
    merged = MergedModule(module, b=b, a=a)
    if settings.method.compressible and settings.rank is not None and settings.rank < a.shape[0]:
        merged.b, merged.a, error = truncate(b, a, settings.rank)
        merged.stats["reconstruction_error"] = error
    return merged


DENSE_CHUNK_ENTRIES = 1 << 22  # per adapter and chunk: 16 MiB in float32


def _merge_dense(module: str, loader: FactorLoader, settings: MergeSettings) -> MergedModule:
    """dW_i = B_i A_i is streamed in row chunks (thresholds first, then the merge), so memory
    holds one chunk per adapter plus the merged result; each chunk is merged in pieces that
    stay in cache (merge_blocks), as KnOTS blocks are."""
    a_list, b_list = loader(module)
    n, rows, cols = len(a_list), b_list[0].shape[0], a_list[0].shape[1]
    step = max(1, DENSE_CHUNK_ENTRIES // cols // DARE_BLOCK_ROWS) * DARE_BLOCK_ROWS
    spans = [(lo, min(lo + step, rows)) for lo in range(0, rows, step)]

    def chunk(task: int, lo: int, hi: int) -> torch.Tensor:
        return b_list[task][lo:hi] @ a_list[task]

    thresholds = None
    if settings.method.sparsify == "magnitude" and settings.density < 1.0:
        streamed = StreamedThresholds(n, settings.density)
        for lo, hi in spans:
            for task in range(n):
                streamed.count(task, chunk(task, lo, hi))
        streamed.locate()
        for lo, hi in spans:
            for task in range(n):
                streamed.collect(task, chunk(task, lo, hi))
        thresholds = streamed.thresholds()
    dtype, device = b_list[0].dtype, b_list[0].device
    delta = torch.empty((rows, cols), dtype=dtype, device=device)
    buffer = torch.empty((n, min(step, rows), cols), dtype=dtype, device=device)
    for lo, hi in spans:
        stack = buffer[:, : hi - lo]
        for task in range(n):
            torch.matmul(b_list[task][lo:hi], a_list[task], out=stack[task])
        merge_blocks(stack, settings, module, thresholds, lo, rows, out=delta[lo:hi])
    return MergedModule(module, delta=delta)


def _merge_knots(
    module: str, loader: FactorLoader, settings: MergeSettings, thresholds: list[float] | None
) -> MergedModule:
    a_list, b_list = loader(module)
    u, blocks = knots_basis(a_list, b_list, settings.knots_tolerance)
    assert u is not None
    merged = merge_blocks(blocks, settings, module, thresholds)
    return MergedModule(module, b=u, a=merged, stats={"knots_rank": float(u.shape[1])})


def global_thresholds(
    modules: list[str], loader: FactorLoader, settings: MergeSettings, n_tasks: int
) -> list[float]:
    """Per adapter, the TIES threshold over its KnOTS blocks of every module at once (the
    reference's global top-k), in memory bounded by one module plus the values near the
    threshold: one pass over the modules, and a second only over those whose kept values
    miss the final bucket (StreamedThresholds)."""
    streamed = StreamedThresholds(n_tasks, settings.density)
    for module in modules:
        _, blocks = knots_basis(*loader(module), settings.knots_tolerance, basis=False)
        for task in range(n_tasks):
            streamed.count(task, blocks[task], part=module)
    streamed.locate()
    again = streamed.settle()
    for module in (m for m in modules if m in again):
        _, blocks = knots_basis(*loader(module), settings.knots_tolerance, basis=False)
        for task in range(n_tasks):
            if module in streamed.missed[task]:
                streamed.collect(task, blocks[task])
    return streamed.thresholds()


class Merger:
    """Merges one module at a time, in any order; memory stays bounded by one module.

    prepare() runs what needs the whole model first (KnOTS's global top-k thresholds)."""

    def __init__(self, adapters: list[LoraAdapter], settings: MergeSettings) -> None:
        self.adapters = adapters
        self.settings = settings
        self.modules = sorted(adapters[0].modules)
        self.thresholds: list[float] | None = None
        self._dtype = torch.float32 if settings.method.space == "dense" else torch.float64

    def load(self, module: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        pairs = [
            adapter.factors(module, dtype=self._dtype, device=self.settings.device)
            for adapter in self.adapters
        ]
        return [a for a, _ in pairs], [b for _, b in pairs]

    def prepare(self) -> None:
        settings, method = self.settings, self.settings.method
        if (
            method.space == "knots"
            and method.sparsify == "magnitude"
            and settings.topk_scope == "model"
            and settings.density < 1.0
        ):
            self.thresholds = global_thresholds(
                self.modules, self.load, settings, len(self.adapters)
            )

    def merge(self, module: str) -> MergedModule:
        space = self.settings.method.space
        if space == "factors":
            return _merge_factors(module, self.load, self.settings)
        if space == "dense":
            return _merge_dense(module, self.load, self.settings)
        return _merge_knots(module, self.load, self.settings, self.thresholds)

    def __iter__(self) -> Iterator[MergedModule]:
        for module in self.modules:
            yield self.merge(module)
