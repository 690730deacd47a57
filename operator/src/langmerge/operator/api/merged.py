"""MergedModel: the language adapters of one task merged into one model."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator

from langmerge.operator.api.common import (
    AGE_COLUMN,
    BCP47,
    COST_COLUMN,
    DNS_LABEL,
    PHASE_COLUMN,
    REASON_COLUMN,
    ApiModel,
    BaseModelRef,
    CustomResource,
    ObjectStatus,
    Resources,
    Timestamp,
)


class MergeMethod(StrEnum):
    LINEAR = "linear"
    TIES = "ties"
    DARE_LINEAR = "dare-linear"
    DARE_TIES = "dare-ties"
    KNOTS_TIES = "knots-ties"
    KNOTS_DARE_TIES = "knots-dare-ties"
    CAT = "cat"


class MajoritySign(StrEnum):
    TOTAL = "total"
    FREQUENCY = "frequency"


class WeightNormalization(StrEnum):
    SUM_TO_ONE = "sum-to-one"
    NONE = "none"


class GateBaseline(StrEnum):
    COMBINED = "combined"
    INDIVIDUAL = "individual"
    CURRENT = "current"


class TopkScope(StrEnum):
    MODEL = "model"
    MODULE = "module"


class LabelSelector(ApiModel):
    match_labels: dict[str, str] | None = Field(
        default=None,
        json_schema_extra={"maxProperties": 32},
        description="Labels an adapter must carry.",
    )


class AdapterSelection(ApiModel):
    """Exactly one of selector (labels) or names (explicit list)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.selector) != has(self.names)",
                    "message": "set exactly one of adapters.selector or adapters.names",
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _exactly_one(self) -> AdapterSelection:  # the CRD's CEL rule, for the local loop too
        if (self.selector is None) == (self.names is None):
            raise ValueError("set exactly one of adapters.selector or adapters.names")
        return self

    selector: LabelSelector | None = Field(
        default=None, description="Select LanguageAdapters in this namespace by label."
    )
    names: list[Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_LABEL)]] | None = (
        Field(
            default=None,
            min_length=1,
            max_length=64,
            json_schema_extra={"x-kubernetes-list-type": "set"},
            description="Names of LanguageAdapters in this namespace.",
        )
    )


class MergeParameters(ApiModel):
    weights: dict[str, Annotated[StrictFloat, Field(ge=0, le=100)]] | None = Field(
        default=None,
        json_schema_extra={
            "maxProperties": 64,
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(k, k.matches('^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'))",
                    "message": "keys must be BCP-47 language tags such as de or zh-Hans",
                }
            ],
        },
        description="Relative weight per language (BCP-47 tag -> weight >= 0); languages not "
        "listed weigh 1. With weightNormalization sum-to-one (the default) the weights are "
        "divided by their sum, so equal weights average the adapters' updates.",
    )
    weight_normalization: WeightNormalization = Field(
        default=WeightNormalization.SUM_TO_ONE,
        description="sum-to-one: weights are relative and sum to 1 (equal weights = the mean "
        "update). none: weights are used as given, so weight 1 per adapter SUMS the updates "
        "(task arithmetic), which overshoots what the languages share n-fold. TIES-family "
        "methods divide by the agreeing weights and are unaffected.",
    )

    @field_validator("weights")
    @classmethod
    def _languages(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        for key in weights or {}:
            if not re.fullmatch(BCP47, key):
                raise ValueError("keys must be BCP-47 language tags such as de or zh-Hans")
        return weights

    density: StrictFloat = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Fraction of entries kept by TIES pruning / DARE dropping, in (0, 1].",
    )
    lambda_: StrictFloat = Field(
        default=1.0, alias="lambda", gt=0, le=10, description="Scale of the merged update."
    )
    majority_sign: MajoritySign = Field(
        default=MajoritySign.TOTAL,
        description="Sign election: total (sum of values) or frequency (count).",
    )
    topk_scope: TopkScope = Field(
        default=TopkScope.MODEL,
        description="knots-ties only: its TIES top-k over the whole model (the reference's) or "
        "per module. ties always trims each module by itself; other methods have no top-k.",
    )
    seed: StrictInt = Field(
        default=0, ge=0, le=2**31 - 1, description="Seed for DARE's random drop."
    )


class OutputFormat(StrEnum):
    LORA = "lora"
    FULL = "full"


class MergeOutput(ApiModel):
    format: OutputFormat = Field(
        default=OutputFormat.LORA, description="lora (a peft adapter) or full (merged weights)."
    )
    uri: str | None = Field(
        default=None, max_length=1024, description="Where to write the merged model."
    )
    rank: StrictInt | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Rank of a lora output from a dense-space method (ties, dare-*).",
    )


class EvaluationGate(ApiModel):
    against: GateBaseline = Field(
        default=GateBaseline.INDIVIDUAL,
        description="The baseline per language: combined (the model trained on every "
        "language at once, COMB: the research's claim is parity with it; needs "
        "combinedModelUri in a cluster, the local loop uses the one it trains), individual "
        "(each language's own adapter) or current (the merged model served now).",
    )
    max_drop: StrictFloat = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Margin in metric points (0.05 = 5 points of F1). A merge is not promoted "
        "when, in some language, the 95 % paired bootstrap interval of (merged - baseline) "
        "lies wholly below -maxDrop: a drop that evaluation noise cannot explain.",
    )
    combined_model_uri: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="The combined model's LoRA adapter, for against: combined.",
    )


class Evaluation(ApiModel):
    datasets: dict[str, Annotated[str, Field(min_length=1, max_length=1024)]] | None = Field(
        default=None,
        json_schema_extra={"maxProperties": 64},
        description="Held-out dataset URI per language.",
    )
    metrics: (
        list[Annotated[str, Field(pattern=r"^(accuracy|f1|precision|recall|rouge1|rougeL|loss)$")]]
        | None
    ) = Field(default=None, max_length=16, description="Metrics to compute.")
    gate: EvaluationGate | None = Field(default=None, description="Promote only merges that pass.")


class Budget(ApiModel):
    monthly_usd: StrictFloat = Field(
        ge=0, description="Monthly spend allowed for this model's runs, in USD."
    )


class MergedModelSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.task == oldSelf.task",
                    "message": "task is immutable; create a new MergedModel for another task",
                    "fieldPath": ".task",
                },
            ]
        }
    }

    base_model: BaseModelRef = Field(description="The base model all adapters share.")
    task: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Task; only adapters of this task are merged. Immutable: a model of "
        "another task is another MergedModel (its artifact, history and costs belong to this "
        "task).",
    )
    adapters: AdapterSelection = Field(description="Which LanguageAdapters to merge.")
    method: MergeMethod = Field(default=MergeMethod.KNOTS_TIES, description="Merge method.")
    parameters: MergeParameters = Field(
        default_factory=MergeParameters, description="Method parameters."
    )
    output: MergeOutput = Field(default_factory=MergeOutput, description="What to write.")
    evaluation: Evaluation | None = Field(
        default=None, description="Per-language evaluation and gate."
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(gpus=0),
        description="Scheduling and pricing of the merge Job.",
    )
    budget: Budget | None = Field(default=None, description="Optional monthly budget.")
    suspend: StrictBool = Field(default=False, description="When true no new merge starts.")


class MergedArtifact(ApiModel):
    uri: str = Field(max_length=1024, description="Where the merged model is.")
    sha256: str = Field(max_length=64, description="sha256 over its files.")
    fingerprint: str = Field(
        max_length=64, description="Fingerprint of the merge settings and inputs."
    )
    adapter_fingerprints: dict[str, str] | None = Field(
        default=None, description="Adapter name -> fingerprint of the adapter it was built from."
    )
    merged_at: Timestamp | None = Field(default=None, description="When the merge finished.")


class UpdateRecord(ApiModel):
    """One change of the model's inputs: the runs it caused and what a full retrain would cost."""

    trigger: str = Field(
        max_length=1024, description="What changed, e.g. 'adapters: de' or 'spec'."
    )
    retrained_adapters: list[Annotated[str, Field(max_length=253)]] | None = Field(
        default=None, max_length=64, description="Adapters retrained for this update."
    )
    gpu_seconds: StrictFloat = Field(
        default=0, ge=0, description="GPU-seconds of the retraining runs and the merge."
    )
    cost_usd: StrictFloat = Field(default=0, ge=0, description="Cost of the update in USD.")
    full_retrain_estimate_usd: StrictFloat | None = Field(
        default=None, ge=0, description="Estimated cost of retraining every language together."
    )
    savings_ratio: StrictFloat | None = Field(
        default=None, le=1, description="1 - cost / full retrain estimate."
    )
    finished_at: Timestamp | None = Field(
        default=None, description="When the update's merge finished."
    )


class GateResult(ApiModel):
    passed: StrictBool = Field(description="Whether the merge passed the gate.")
    reason: str | None = Field(default=None, max_length=4096, description="Why it did not.")


class EvaluationResult(ApiModel):
    per_language: dict[str, dict[str, StrictFloat]] | None = Field(
        default=None, description="Language -> metric -> value for the last merge."
    )
    gate: GateResult | None = Field(default=None, description="The gate's verdict.")


class BudgetStatus(ApiModel):
    period: str = Field(max_length=7, description="The month, YYYY-MM.")
    spent_usd: StrictFloat = Field(ge=0, description="Spent this month.")
    limit_usd: StrictFloat = Field(ge=0, description="Allowed this month.")


class MergedModelStatus(ObjectStatus):
    artifact: MergedArtifact | None = Field(
        default=None, description="The last good merged model, served until a new merge succeeds."
    )
    last_update: UpdateRecord | None = Field(default=None, description="The last update.")
    update_history: list[UpdateRecord] | None = Field(
        default=None, max_length=20, description="Recent updates, newest last."
    )
    evaluation: EvaluationResult | None = Field(
        default=None, description="Evaluation of the last merge."
    )
    budget: BudgetStatus | None = Field(default=None, description="Budget use this month.")


class MergedModel(CustomResource):
    KIND: ClassVar[str] = "MergedModel"
    PLURAL: ClassVar[str] = "mergedmodels"
    SHORT_NAMES: ClassVar[list[str]] = ["mm", "merged"]
    DESCRIPTION: ClassVar[str] = (
        "The LanguageAdapters of one task merged into one model, rebuilt when an input adapter "
        "changes; the last good artifact is served until a new merge succeeds."
    )
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        {"name": "Task", "type": "string", "jsonPath": ".spec.task"},
        {"name": "Method", "type": "string", "jsonPath": ".spec.method"},
        PHASE_COLUMN,
        REASON_COLUMN,
        {
            "name": "Savings",
            "type": "number",
            "jsonPath": ".status.lastUpdate.savingsRatio",
            "priority": 1,
        },
        COST_COLUMN,
        AGE_COLUMN,
    ]

    kind: Literal["MergedModel"] = "MergedModel"
    spec: MergedModelSpec
    status: MergedModelStatus | None = None
