"""The contract with the trainer and merger images: the summary JSON each writes to its
container's termination message. The operator parses it with these models (and a contract
test runs the real trainer and merger and parses their output with them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Output(BaseModel):
    model_config = ConfigDict(extra="allow")

    uri: str
    sha256: str = Field(min_length=64, max_length=64)


class RunSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    result: Literal["Succeeded", "Failed"]
    reason: str | None = None
    output: Output | None = None
    wallSeconds: float | None = None  # noqa: N815 (the wire name)


class TrainingSummary(RunSummary):
    steps: int | None = None
    trainTokens: int | None = None  # noqa: N815
    tokensPerSecond: float | None = None  # noqa: N815
    finalLoss: float | None = None  # noqa: N815
    evalLoss: float | None = None  # noqa: N815
    peakMemoryBytes: int | None = None  # noqa: N815
    deviceType: str | None = None  # noqa: N815
    deviceCount: int | None = None  # noqa: N815


class MergeSummary(RunSummary):
    method: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[dict[str, Any]] | None = None
    peakRssBytes: int | None = None  # noqa: N815


def parse_summary(text: str | None, model: type[RunSummary]) -> RunSummary | None:
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
