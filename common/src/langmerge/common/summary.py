"""The run summary: the contract between the trainer, merger and evaluator (which write it)
and both executors (which read it). One JSON object, at most 4 KiB, written to the
container's termination message (where the operator reads it) or to a file (the local loop).

The writers build these models and the readers parse with the same ones; unknown keys are
kept (extra="allow"), so a newer writer never breaks an older reader. Wire names are
camelCase, as in the CRDs' status.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

TERMINATION_LOG = Path("/dev/termination-log")
LIMIT_BYTES = 4096


class Output(BaseModel):
    model_config = ConfigDict(extra="allow")

    uri: str
    sha256: str = Field(min_length=64, max_length=64)
    format: str | None = None  # merges: "lora" or "full"


class RunSummary(BaseModel):
    """What every run reports: its result, why it failed, what it wrote, how long it took."""

    model_config = ConfigDict(extra="allow")

    result: Literal["Succeeded", "Failed"]
    reason: str | None = None
    output: Output | None = None
    wallSeconds: float | None = None  # noqa: N815 (the wire name)
    truncated: bool | None = None  # lists or strings were shortened to fit LIMIT_BYTES


class TrainingSummary(RunSummary):
    task: str | None = None
    languages: list[str] | None = None
    fingerprint: str | None = None
    steps: int | None = None
    resumedFromStep: int | None = None  # noqa: N815
    trainTokens: int | None = None  # noqa: N815
    tokensPerSecond: float | None = None  # noqa: N815
    trainSeconds: float | None = None  # noqa: N815 (the training loop alone)
    finalLoss: float | None = None  # noqa: N815
    evalLoss: float | None = None  # noqa: N815
    peakMemoryBytes: int | None = None  # noqa: N815
    peakMemoryKind: str | None = None  # noqa: N815 ("gpu-allocated" or "rss")
    deviceType: str | None = None  # noqa: N815
    deviceCount: int | None = None  # noqa: N815
    deviceName: str | None = None  # noqa: N815
    # what the run computed in: the asked precision, or fp32 for bf16 on a CPU without bf16
    # kernels (langmerge.common.precision)
    precision: str | None = None


class MergeSummary(RunSummary):
    method: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[dict[str, Any]] | None = None
    peakRssBytes: int | None = None  # noqa: N815
    device: str | None = None
    # per-language metrics, the baseline and the gate's verdict ({"gate": {"passed", ...}})
    evaluation: dict[str, Any] | None = None
    evaluationSeconds: float | None = None  # noqa: N815 (the evaluation inside wallSeconds)
    rejectedOutput: str | None = None  # noqa: N815 (where a gated-out merge was kept)
    # a merge search: the winner and why, the counts, the best few candidates, its seconds
    search: dict[str, Any] | None = None


class EvaluationSummary(RunSummary):
    models: list[str] | None = None
    languages: list[str] | None = None


S = TypeVar("S", bound=RunSummary)


def failed(reason: str) -> RunSummary:
    return RunSummary(result="Failed", reason=reason)


def parse_summary(text: str | None, model: type[S]) -> S | None:
    """The summary in a termination message, or None when the message is not one (a crash
    before the summary was written leaves log lines there, FallbackToLogsOnError)."""
    if not text:
        return None
    for candidate in (text, text.strip().splitlines()[-1] if text.strip() else ""):
        try:
            return model.model_validate_json(candidate)
        except ValidationError:
            continue
    return None


def default_summary_path() -> Path | None:
    return TERMINATION_LOG if TERMINATION_LOG.exists() else None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process. On Linux the high-water mark of its own memory
    (VmHWM): getrusage's ru_maxrss is inherited across fork and exec, so a run started by a
    larger process (a benchmark, the warm server) would report that process's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def fit(summary: dict[str, Any], limit: int = LIMIT_BYTES) -> str:
    """The summary as compact JSON within limit bytes: long lists and strings are shortened
    (marked with 'truncated'), never the scalar figures."""
    text = json.dumps(summary, separators=(",", ":"), default=str)
    if len(text.encode()) <= limit:
        return text
    shrunk = dict(summary)
    shrunk["truncated"] = True
    for key, value in sorted(summary.items(), key=lambda kv: -len(json.dumps(kv[1], default=str))):
        if isinstance(value, list):
            shrunk[key] = value[:3]
        elif isinstance(value, dict):
            shrunk[key] = {k: v for k, v in list(value.items())[:8]}
        elif isinstance(value, str) and len(value) > 512:
            shrunk[key] = value[:500] + "..."
        text = json.dumps(shrunk, separators=(",", ":"), default=str)
        if len(text.encode()) <= limit:
            return text
    return json.dumps(
        {
            "result": summary["result"],
            "truncated": True,
            "reason": str(summary.get("reason", ""))[:1000],
        }
    )


def write_summary(summary: RunSummary, path: Path | None) -> None:
    """Writes the summary to path (or stdout's last line when there is none)."""
    text = fit(summary.model_dump(mode="json", exclude_none=True))
    if path is None:
        print(text, file=sys.stdout, flush=True)
        return
    path.write_text(text)
