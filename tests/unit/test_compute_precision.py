"""The precision a run computes in (langmerge.common.precision): the asked one, except bf16 on
a CPU without bf16 kernels, which computes in fp32 unless LANGMERGE_CPU_BF16=force. Which
branch this machine takes depends on its CPU, so each is chosen here."""

from __future__ import annotations

from pathlib import Path

import pytest

from langmerge.common import precision
from langmerge.common.precision import FORCE_VARIABLE, effective_precision


@pytest.fixture
def no_bf16_kernels(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(FORCE_VARIABLE, raising=False)
    monkeypatch.setattr(precision, "cpu_has_bf16_kernels", lambda: False)
    return monkeypatch


def test_bf16_without_bf16_kernels_computes_in_fp32_and_says_why(
    no_bf16_kernels: pytest.MonkeyPatch,
) -> None:
    used, why = effective_precision("bf16")
    assert used == "fp32"
    assert why is not None and "no bfloat16 kernels" in why and f"{FORCE_VARIABLE}=force" in why


@pytest.mark.parametrize("asked", ["fp32", "fp16"])
def test_other_precisions_are_kept(no_bf16_kernels: pytest.MonkeyPatch, asked: str) -> None:
    assert effective_precision(asked) == (asked, None)


def test_bf16_is_kept_where_the_cpu_has_bf16_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FORCE_VARIABLE, raising=False)
    monkeypatch.setattr(precision, "cpu_has_bf16_kernels", lambda: True)
    assert effective_precision("bf16") == ("bf16", None)


def test_forcing_keeps_bf16_without_bf16_kernels(no_bf16_kernels: pytest.MonkeyPatch) -> None:
    no_bf16_kernels.setenv(FORCE_VARIABLE, "force")
    assert effective_precision("bf16") == ("bf16", None)


@pytest.mark.parametrize("value", ["auto", ""])
def test_auto_decides_by_the_cpu(no_bf16_kernels: pytest.MonkeyPatch, value: str) -> None:
    no_bf16_kernels.setenv(FORCE_VARIABLE, value)
    assert effective_precision("bf16")[0] == "fp32"


def test_a_bad_setting_is_refused_naming_the_variable(
    no_bf16_kernels: pytest.MonkeyPatch,
) -> None:
    no_bf16_kernels.setenv(FORCE_VARIABLE, "yes")
    with pytest.raises(ValueError, match=f"{FORCE_VARIABLE}=yes: give force, auto"):
        effective_precision("bf16")


def test_the_kernel_probe_says_no_where_the_cpu_lacks_the_instructions() -> None:
    """oneDNN's bf16 kernels need AVX-512 (BW, VL, DQ), AVX-NE-CONVERT or AMX; on a CPU with
    none of them (this workplace's AMD EPYC: AVX2) the probe must say no."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    has = precision.cpu_has_bf16_kernels()
    assert isinstance(has, bool)
    if flags and not flags & {"avx512bw", "avx_ne_convert", "amx_bf16", "bf16"}:
        assert not has
