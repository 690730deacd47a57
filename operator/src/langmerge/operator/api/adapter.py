"""LanguageAdapter: one LoRA adapter for one language of one task."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator

from langmerge.operator.api.common import (
    AGE_COLUMN,
    BCP47,
    COST_COLUMN,
    PHASE_COLUMN,
    REASON_COLUMN,
    ApiModel,
    BaseModelRef,
    CustomResource,
    ObjectStatus,
    Resources,
    Timestamp,
)

# A TrainJob's pods are named <name>-node-0-<rank>-<5 chars>, a 63-character DNS label: two
# digits for the rank keep room for the name (fingerprint.trainjob_name).
MAX_NODES = 64


class DatasetFormat(StrEnum):
    AUTO = "auto"
    JSONL = "jsonl"
    PARQUET = "parquet"
    CSV = "csv"
    ARROW = "arrow"


class DatasetFields(ApiModel):
    """Which columns hold the text. One style: prompt + response, chat messages, or plain text."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.prompt) && has(self.response) ? 1 : 0)"
                    " + (has(self.messages) ? 1 : 0) + (has(self.text) ? 1 : 0) == 1",
                    "message": "set exactly one style: prompt and response, messages, or text",
                },
                {
                    "rule": "has(self.prompt) == has(self.response)",
                    "message": "prompt and response go together",
                    "fieldPath": ".response",
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _one_style(self) -> DatasetFields:  # the CRD's CEL rules, for the local loop too
        pair = self.prompt is not None and self.response is not None
        if (self.prompt is None) != (self.response is None):
            raise ValueError("prompt and response go together")
        if sum((pair, self.messages is not None, self.text is not None)) != 1:
            raise ValueError("set exactly one style: prompt and response, messages, or text")
        return self

    prompt: str | None = Field(
        default=None, max_length=128, description="Column with the instruction or input."
    )
    response: str | None = Field(
        default=None, max_length=128, description="Column with the expected output."
    )
    messages: str | None = Field(
        default=None, max_length=128, description="Column with chat messages (role/content list)."
    )
    text: str | None = Field(default=None, max_length=128, description="Column with plain text.")


class Dataset(ApiModel):
    uri: str = Field(
        min_length=1,
        max_length=1024,
        description="Training data: a path under the artifact root, file://, or s3:// URI.",
    )
    format: DatasetFormat = Field(
        default=DatasetFormat.AUTO,
        description="jsonl, parquet, csv, arrow (a saved datasets folder) or auto.",
    )
    revision: str = Field(
        default="",
        max_length=128,
        description="Version of the data; change it to retrain when the URI stays the same.",
    )
    fields: DatasetFields = Field(
        default_factory=lambda: DatasetFields(prompt="prompt", response="response"),
        description="Column mapping.",
    )
    eval_uri: str | None = Field(
        default=None, max_length=1024, description="Optional held-out split for evaluation loss."
    )


class Lora(ApiModel):
    rank: StrictInt = Field(default=16, ge=1, le=1024, description="LoRA rank r.")
    alpha: StrictFloat = Field(
        default=32, gt=0, le=4096, description="LoRA alpha; the update is scaled by alpha/r."
    )
    dropout: StrictFloat = Field(default=0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        max_length=32,
        description="Names of the linear modules that get adapters.",
    )
    use_rslora: StrictBool = Field(default=False, description="Scale by alpha/sqrt(r) (rsLoRA).")


class Precision(StrEnum):
    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"


class Training(ApiModel):
    epochs: StrictFloat = Field(default=1, gt=0, le=100, description="Passes over the data.")
    max_steps: StrictInt | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Stop after this many steps (overrides epochs).",
    )
    learning_rate: StrictFloat = Field(default=2e-4, gt=0, le=1, description="Peak learning rate.")
    batch_size: StrictInt = Field(
        default=8,
        ge=1,
        le=4096,
        description="Sequences per step: the global batch, split across every process of the "
        "run (GPUs of the pod, pods of the run).",
    )
    gradient_accumulation: StrictInt = Field(
        default=1, ge=1, le=1024, description="Steps accumulated per optimiser step."
    )
    max_seq_length: StrictInt = Field(
        default=1024,
        ge=8,
        le=131072,
        description="Tokens per sequence (longer ones are truncated).",
    )
    precision: Precision = Field(default=Precision.BF16, description="bf16, fp16 or fp32.")
    seed: StrictInt = Field(default=42, ge=0, le=2**31 - 1, description="Random seed.")


class Output(ApiModel):
    uri: str | None = Field(
        default=None,
        max_length=1024,
        description="Where to write the adapter; default: "
        "<artifact root>/<namespace>/<name>/<fingerprint>.",
    )


class TrainingResources(Resources):
    """A training run's resources: a merge always runs in one pod, a training run may span
    several (a Kubeflow Trainer TrainJob)."""

    nodes: StrictInt = Field(
        default=1,
        ge=1,
        le=MAX_NODES,
        description="Pods the run spans, each with these resources, training data parallel. "
        "Above 1 the run is a Kubeflow Trainer TrainJob (Trainer v2 must be installed and the "
        "chart's trainJobs.enabled set); 1 is a batch Job. The local loop trains on this "
        "machine whatever the value.",
    )


class LanguageAdapterSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.language == oldSelf.language",
                    "message": "language is immutable; create a new LanguageAdapter",
                    "fieldPath": ".language",
                },
                {
                    "rule": "self.task == oldSelf.task",
                    "message": "task is immutable; create a new LanguageAdapter",
                    "fieldPath": ".task",
                },
            ]
        }
    }

    base_model: BaseModelRef = Field(description="The base model the adapter is trained on.")
    task: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Task name, e.g. sentiment; adapters merge only within one task.",
    )
    language: str = Field(
        min_length=2,
        max_length=35,
        pattern=BCP47,
        description="BCP-47 language tag, e.g. de or zh-Hans.",
    )
    dataset: Dataset = Field(description="Training data.")
    lora: Lora = Field(default_factory=Lora, description="LoRA settings.")
    training: Training = Field(default_factory=Training, description="Training settings.")
    resources: TrainingResources = Field(
        default_factory=TrainingResources, description="Scheduling and pricing; never retrains."
    )
    output: Output = Field(default_factory=Output, description="Where the adapter is written.")
    suspend: StrictBool = Field(default=False, description="When true no new training run starts.")


class AdapterArtifact(ApiModel):
    uri: str = Field(max_length=1024, description="Where the adapter is.")
    sha256: str = Field(max_length=64, description="sha256 over the adapter's files.")
    fingerprint: str = Field(
        max_length=64, description="Fingerprint of the spec it was trained from."
    )
    trained_at: Timestamp | None = Field(default=None, description="When training finished.")


class TrainingProgress(ApiModel):
    """Where the running training is, from the trainer's own progress lines."""

    step: StrictInt = Field(ge=0, description="Optimiser steps done.")
    total_steps: StrictInt = Field(ge=0, description="Optimiser steps of the whole run.")
    loss: StrictFloat | None = Field(default=None, description="Training loss at that step.")
    eta_seconds: StrictFloat | None = Field(
        default=None, ge=0, description="The trainer's estimate of the time left."
    )
    observed_at: Timestamp | None = Field(
        default=None, description="When the operator read it (the step changed)."
    )


class LanguageAdapterStatus(ObjectStatus):
    artifact: AdapterArtifact | None = Field(
        default=None, description="The current, last good adapter."
    )
    progress: TrainingProgress | None = Field(
        default=None,
        description="The running training's step, total and ETA (while it runs, refreshed "
        "at each reconcile).",
    )


class LanguageAdapter(CustomResource):
    KIND: ClassVar[str] = "LanguageAdapter"
    PLURAL: ClassVar[str] = "languageadapters"
    SHORT_NAMES: ClassVar[list[str]] = ["la", "ladapter"]
    DESCRIPTION: ClassVar[str] = (
        "A LoRA adapter for one language of one task, trained by a Job whenever a field that "
        "changes the result changes."
    )
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        {"name": "Language", "type": "string", "jsonPath": ".spec.language"},
        {"name": "Task", "type": "string", "jsonPath": ".spec.task"},
        PHASE_COLUMN,
        REASON_COLUMN,
        COST_COLUMN,
        AGE_COLUMN,
    ]

    kind: Literal["LanguageAdapter"] = "LanguageAdapter"
    spec: LanguageAdapterSpec
    status: LanguageAdapterStatus | None = None
