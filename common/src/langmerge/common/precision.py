"""The precision a run computes in on this machine: the one asked for, except bf16 on a CPU
without bfloat16 kernels, which computes in fp32.

Where oneDNN has no bf16 kernels (a CPU with AVX2 and no AVX-512), torch multiplies bfloat16
matrices in a scalar fallback: on an AMD EPYC (Zen 1, AVX2) training Gemma 3 270M ran 38x
slower in bf16 than in fp32 (benchmarks/cpu_bf16_bench.py). A run that asked for bf16 (a
LanguageAdapter's default) would crawl there; it computes in fp32 instead and says so.
LANGMERGE_CPU_BF16=force keeps bf16 on such a CPU (the tests use it to run the bf16 path on
any machine)."""

from __future__ import annotations

import os

FORCE_VARIABLE = "LANGMERGE_CPU_BF16"


def cpu_has_bf16_kernels() -> bool:
    """oneDNN's bfloat16 kernels are available on this CPU (AVX-512 or AMX)."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class PrecisionSettingError(ValueError):
    """A bad LANGMERGE_CPU_BF16: the user's to fix, not an internal error."""


def _forced() -> bool:
    value = os.environ.get(FORCE_VARIABLE, "")
    if value not in ("", "auto", "force"):
        raise PrecisionSettingError(f"{FORCE_VARIABLE}={value}: give force, auto or leave it unset")
    return value == "force"


def effective_precision(asked: str) -> tuple[str, str | None]:
    """(the precision to compute in, why it is not the one asked for, or None)."""
    import torch

    if asked != "bf16" or torch.cuda.is_available() or _forced() or cpu_has_bf16_kernels():
        return asked, None
    return "fp32", (
        "bf16 asked, but this CPU has no bfloat16 kernels (no AVX-512 or AMX; bf16 training "
        "runs tens of times slower than fp32 here): computing in fp32 "
        f"({FORCE_VARIABLE}=force keeps bf16)"
    )
