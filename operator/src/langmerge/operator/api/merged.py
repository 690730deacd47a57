"""MergedModel: the language adapters of one task merged into one model."""

from __future__ import annotations

import itertools
import json
import math
import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator
from pydantic.config import JsonDict

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


LANGUAGE_KEYS = "keys must be BCP-47 language tags such as de or zh-Hans"
LANGUAGE_KEYS_RULE: JsonDict = {
    "rule": "self.all(k, k.matches('^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'))",
    "message": LANGUAGE_KEYS,
}


def _language_keys(weights: dict[str, float] | None) -> dict[str, float] | None:
    """The CEL rule LANGUAGE_KEYS_RULE, for the local loop too."""
    for key in weights or {}:
        if not re.fullmatch(BCP47, key):
            raise ValueError(LANGUAGE_KEYS)
    return weights


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
            "x-kubernetes-validations": [LANGUAGE_KEYS_RULE],
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
        return _language_keys(weights)

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
        "lies wholly below -maxDrop: a drop that evaluation noise cannot explain. The "
        "bootstrap resamples records, or whole groups where every record names its group.",
    )
    combined_model_uri: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="The combined model's LoRA adapter, for against: combined.",
    )


class EvaluationPrecision(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"


class Evaluation(ApiModel):
    datasets: dict[str, Annotated[str, Field(min_length=1, max_length=1024)]] | None = Field(
        default=None,
        json_schema_extra={"maxProperties": 64},
        description="Held-out dataset URI per language: JSON Lines, each record a prompt and "
        "a response (and choices, for multiple choice). Where every record names a group "
        "(the template, scenario or text it was written from), the intervals resample "
        "groups, not records.",
    )
    metrics: (
        list[Annotated[str, Field(pattern=r"^(accuracy|f1|precision|recall|rouge1|rougeL|loss)$")]]
        | None
    ) = Field(default=None, max_length=16, description="Metrics to compute.")
    gate: EvaluationGate | None = Field(default=None, description="Promote only merges that pass.")
    # None is fp32: models written before the field keep their fingerprints.
    precision: EvaluationPrecision | None = Field(
        default=None,
        description="The model's weights in every scoring of the merge Job (the gate's and "
        "the search's): fp32 (exact; the default) or bf16 (faster on CPUs with AVX512-BF16 "
        "and on GPUs; an adapter's update folded into the weights in float32, then rounded; "
        "scores differ by bf16's rounding).",
    )


class Budget(ApiModel):
    monthly_usd: StrictFloat = Field(
        ge=0, description="Monthly spend allowed for this model's runs, in USD."
    )


class WeightPreset(StrEnum):
    UNIFORM = "uniform"
    EXAMPLES = "examples"


class SearchAggregate(StrEnum):
    MEAN = "mean"
    WORST = "worst"


# The options each method takes beyond lambdas and weights (the merger's names.METHOD_OPTIONS).
TAKES_DENSITY = ("ties", "dare-linear", "dare-ties", "knots-ties", "knots-dare-ties")
TAKES_SEED = ("dare-linear", "dare-ties", "knots-dare-ties")
MAX_SEARCH_CANDIDATES = 64
_SEARCH_VALUES = 16


def _listed(methods: tuple[str, ...]) -> str:
    """A CEL list literal of method names."""
    return "[" + ", ".join(f"'{m}'" for m in methods) + "]"


class SearchWeights(ApiModel):
    """One weighting to try: a preset, or a weight per language (languages left out weigh 1)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.preset) != has(self.languages)",
                    "message": "set exactly one of preset or languages",
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _exactly_one(self) -> SearchWeights:
        if (self.preset is None) == (self.languages is None):
            raise ValueError("set exactly one of preset or languages")
        return self

    preset: WeightPreset | None = Field(
        default=None,
        description="uniform (every adapter alike) or examples (each adapter by the number of "
        "examples it was trained on).",
    )
    languages: dict[str, Annotated[StrictFloat, Field(ge=0, le=100)]] | None = Field(
        default=None,
        json_schema_extra={
            "minProperties": 1,
            "maxProperties": 64,
            "x-kubernetes-validations": [LANGUAGE_KEYS_RULE],
        },
        description="Relative weight per language (BCP-47 tag -> weight >= 0); languages not "
        "listed weigh 1. Every language named must be one of the selected adapters'.",
    )

    @field_validator("languages")
    @classmethod
    def _tags(cls, languages: dict[str, float] | None) -> dict[str, float] | None:
        _language_keys(languages)
        if languages is not None and not any(languages.values()):
            raise ValueError("every weight is zero; at least one language must count")
        return languages

    def to_merger(self) -> str | dict[str, float]:
        return self.preset.value if self.preset else dict(self.languages or {})


class SearchGridEntry(ApiModel):
    """One method and the values of its options to try; the candidates are every combination.
    Only the options the method takes may be given."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": f"!has(self.densities) || self.method in {_listed(TAKES_DENSITY)}",
                    "message": "densities: only ties, dare-linear, dare-ties, knots-ties and "
                    "knots-dare-ties trim or drop; linear and cat take no density",
                    "fieldPath": ".densities",
                },
                {
                    "rule": f"!has(self.seeds) || self.method in {_listed(TAKES_SEED)}",
                    "message": "seeds: only the DARE methods (dare-linear, dare-ties, "
                    "knots-dare-ties) draw at random",
                    "fieldPath": ".seeds",
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _options_of_the_method(self) -> SearchGridEntry:
        if self.densities is not None and self.method not in TAKES_DENSITY:
            raise ValueError(
                "densities: only ties, dare-linear, dare-ties, knots-ties and knots-dare-ties "
                "trim or drop; linear and cat take no density"
            )
        if self.seeds is not None and self.method not in TAKES_SEED:
            raise ValueError(
                "seeds: only the DARE methods (dare-linear, dare-ties, knots-dare-ties) draw "
                "at random"
            )
        return self

    method: MergeMethod = Field(description="Merge method of these candidates.")
    densities: list[Annotated[StrictFloat, Field(gt=0, le=1)]] | None = Field(
        default=None,
        min_length=1,
        max_length=_SEARCH_VALUES,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Densities to try, each in (0, 1] (default: 0.5). Methods that trim or "
        "drop only.",
    )
    lambdas: list[Annotated[StrictFloat, Field(gt=0, le=10)]] | None = Field(
        default=None,
        min_length=1,
        max_length=_SEARCH_VALUES,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Scales of the merged update to try (default: 1.0).",
    )
    weights: list[SearchWeights] | None = Field(
        default=None,
        min_length=1,
        max_length=_SEARCH_VALUES,
        description="Weightings to try (default: uniform).",
    )
    seeds: list[Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]] | None = Field(
        default=None,
        min_length=1,
        max_length=_SEARCH_VALUES,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Seeds of DARE's random drop to try (default: 0). DARE methods only.",
    )

    def candidates(self) -> int:
        return math.prod(
            len(values or [None])
            for values in (self.densities, self.lambdas, self.weights, self.seeds)
        )

    def candidate_keys(self) -> list[str]:
        """Each candidate as the values it merges with (the defaults filled in)."""
        densities: list[float | None] = [*(self.densities or [])] or (
            [0.5] if self.method in TAKES_DENSITY else [None]
        )
        seeds: list[int | None] = [*(self.seeds or [])] or (
            [0] if self.method in TAKES_SEED else [None]
        )
        weights = [w.to_merger() for w in self.weights or []] or [WeightPreset.UNIFORM.value]
        return [
            json.dumps([self.method.value, d, lam, w, seed], sort_keys=True)
            for d, lam, w, seed in itertools.product(
                densities, self.lambdas or [1.0], weights, seeds
            )
        ]

    def to_merger(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method.value}
        for key in ("densities", "lambdas", "seeds"):
            if getattr(self, key) is not None:
                out[key] = list(getattr(self, key))
        if self.weights is not None:
            out["weights"] = [w.to_merger() for w in self.weights]
        return out


_COUNT = "(has({g}.{f}) ? size({g}.{f}) : 1)"
_CANDIDATES_RULE = (
    "self.grid.map(g, "
    + " * ".join(_COUNT.format(g="g", f=f) for f in ("densities", "lambdas", "weights", "seeds"))
    + f").sum() <= {MAX_SEARCH_CANDIDATES}"
)


class MergeSearch(ApiModel):
    """A sweep of merges (the research's eight merged models per task) in one merge Job: every
    candidate of the grid is merged and scored on the validation datasets, the best by the
    metric is kept and then judged by evaluation's gate as a single merge would be. Replaces
    method and parameters (but majoritySign, topkScope and weightNormalization)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": _CANDIDATES_RULE,
                    "message": f"the grid makes more than {MAX_SEARCH_CANDIDATES} candidates; "
                    "give fewer values",
                    "fieldPath": ".grid",
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _bounded(self) -> MergeSearch:
        count = self.count()
        if count > MAX_SEARCH_CANDIDATES:
            raise ValueError(
                f"grid: the grid makes {count} candidates, more than {MAX_SEARCH_CANDIDATES}; "
                "give fewer values"
            )
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.grid):
            for key in entry.candidate_keys():
                if key in seen:
                    raise ValueError(
                        f"grid[{index}]: the candidate {key} repeats one of grid[{seen[key]}]; "
                        "give each candidate once"
                    )
                seen[key] = index
        return self

    grid: list[SearchGridEntry] = Field(
        min_length=1,
        max_length=16,
        description=f"Methods and the values of their options to try; at most "
        f"{MAX_SEARCH_CANDIDATES} candidates in all, each given once.",
    )
    metric: Literal["f1", "accuracy", "precision", "recall", "rouge1", "rougeL", "loss"] = Field(
        default="f1",
        description="The validation metric the winner is chosen by (loss: the lowest wins); "
        "rouge1 and rougeL score by generation.",
    )
    aggregate: SearchAggregate = Field(
        default=SearchAggregate.MEAN,
        description="How the languages' scores combine: their mean, or the worst language's.",
    )
    validation: dict[str, Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        json_schema_extra={"minProperties": 1, "maxProperties": 64},
        description="Validation dataset URI per language, on which the candidates are scored. "
        "Must differ from every evaluation dataset, which judges the winner.",
    )

    def count(self) -> int:
        """How many candidates the grid makes."""
        return sum(entry.candidates() for entry in self.grid)

    def to_merger(self) -> dict[str, Any]:
        return {
            "grid": [entry.to_merger() for entry in self.grid],
            "metric": self.metric,
            "aggregate": self.aggregate.value,
        }


_VALIDATION_APART = (
    "search.validation must differ from every evaluation.datasets URI: the gate would judge "
    "the winner on the data it was chosen on"
)
_VALIDATION_APART_RULE = (
    "!has(self.search) || !has(self.evaluation) || !has(self.evaluation.datasets) || "
    "self.search.validation.all(v, !self.evaluation.datasets.exists(e, "
    "self.evaluation.datasets[e] == self.search.validation[v]))"
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
                {
                    "rule": _VALIDATION_APART_RULE,
                    "message": _VALIDATION_APART,
                    "fieldPath": ".search.validation",
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _validation_apart(self) -> MergedModelSpec:  # the CEL rule, for the local loop too
        evaluation = (self.evaluation.datasets if self.evaluation else None) or {}
        if self.search is not None:
            for language, uri in self.search.validation.items():
                if uri in evaluation.values():
                    raise ValueError(
                        f"search.validation.{language} is also an evaluation.datasets URI "
                        f"({uri}): {_VALIDATION_APART}"
                    )
        return self

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
    search: MergeSearch | None = Field(
        default=None,
        description="Sweep merges and keep the best on validation data instead of one merge "
        "with method and parameters.",
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


class SearchCandidate(ApiModel):
    index: StrictInt = Field(ge=0, description="The candidate's place in the grid's expansion.")
    method: str = Field(max_length=32, description="Its merge method.")
    density: StrictFloat | None = Field(default=None, description="Its density, if it takes one.")
    lambda_: StrictFloat | None = Field(default=None, alias="lambda", description="Its lambda.")
    weights: str | None = Field(default=None, max_length=512, description="Its weighting.")
    seed: StrictInt | None = Field(default=None, description="Its DARE seed, if it takes one.")
    score: StrictFloat | None = Field(
        default=None, description="Its validation score (the metric, aggregated)."
    )
    failed: StrictBool | None = Field(default=None, description="True when it could not run.")
    reason: str | None = Field(default=None, max_length=512, description="Why it failed.")


class SearchResult(ApiModel):
    """The last merge's search: what won and why, and the best candidates (every candidate
    with its per-language scores is in the artifact's langmerge.json and model card)."""

    metric: str = Field(max_length=16, description="The validation metric.")
    aggregate: str = Field(max_length=8, description="mean or worst over the languages.")
    evaluated: StrictInt = Field(ge=0, description="Candidates merged and scored.")
    failed: StrictInt = Field(ge=0, description="Candidates that failed.")
    winner: SearchCandidate = Field(description="The candidate published.")
    why: str | None = Field(default=None, max_length=512, description="Why it won.")
    best: list[SearchCandidate] | None = Field(
        default=None, max_length=8, description="The best candidates by score, best first."
    )


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
    search: SearchResult | None = Field(
        default=None, description="The last merge's search, when spec.search is set."
    )


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
