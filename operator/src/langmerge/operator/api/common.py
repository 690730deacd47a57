"""Building blocks shared by both custom resources: the camelCase base model, metav1.Condition,
Kubernetes quantities, scheduling resources, run records and totals."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from langmerge.operator.api.reasons import ConditionType

GROUP = "langmerge.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Names of Kubernetes objects we create from user names end up in labels: 63 characters.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# BCP-47 in the shape we accept: a 2-3 letter primary language, then script/region/variant subtags.
BCP47 = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
# apimachinery's resource.Quantity grammar (for the string form of an int-or-string).
_NUMBER = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
# Requests are never negative, so no leading minus.
QUANTITY = rf"^\+?{_NUMBER}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_NUMBER}))?$"
# Label values (<= 63), qualified label keys ([DNS subdomain/]name, name <= 63) and DNS
# subdomains: what a Job's labels, nodeSelector, tolerations and priorityClassName accept.
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY = rf"^({_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
DNS_SUBDOMAIN = rf"^{_SUBDOMAIN}$"


def cel_regex(regex: str) -> str:
    """A regex as the body of a single-quoted CEL string (backslashes escaped)."""
    return regex.replace("\\", "\\\\")


class ApiModel(BaseModel):
    """Fields are snake_case in Python and camelCase on the wire; unknown fields are errors,
    so a typo in a manifest fails loudly instead of being dropped."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, unset optional fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _quantity(value: int | str) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return value
    if not isinstance(value, str) or not re.fullmatch(QUANTITY, value):
        raise ValueError(f"must be a quantity such as 8, 7500m or 64Gi, got {value!r}")
    return value


# A Kubernetes resource quantity ("4", 4, "16Gi", "500m"): int-or-string on the wire.
Quantity = Annotated[
    int | str,
    AfterValidator(_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY,
            "x-kubernetes-validations": [
                {"rule": "type(self) != int || self >= 0", "message": "must not be negative"}
            ],
        }
    ),
]

# Timestamps are RFC 3339 strings, as metav1.Time serialises.
Timestamp = Annotated[datetime, WithJsonSchema({"type": "string", "format": "date-time"})]


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """metav1.Condition."""

    type: str = Field(
        description="Type of condition in CamelCase, e.g. Ready.",
        max_length=316,
        pattern=r"^[A-Za-z][A-Za-z0-9]*$",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    observed_generation: StrictInt | None = Field(
        default=None, ge=0, description="The metadata.generation this condition was set for."
    )
    last_transition_time: Timestamp = Field(
        description="When the condition last changed from one status to another."
    )
    reason: str = Field(
        description="Machine-readable CamelCase reason for the last transition.",
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class Phase(StrEnum):
    """One word for `kubectl get`: where the object stands. The conditions stay the contract
    for automation; the phase summarises them for people."""

    PENDING = "Pending"  # waiting for its inputs (a MergedModel's adapters)
    QUEUED = "Queued"  # its Job exists, no pod runs yet (scheduling, image pull, Kueue)
    TRAINING = "Training"
    MERGING = "Merging"
    READY = "Ready"
    SUSPENDED = "Suspended"
    BLOCKED = "Blocked"  # held back by a budget, the evaluation gate or incompatible inputs
    FAILED = "Failed"  # the run for this spec failed; a spec change retries


PHASE_DESCRIPTION = (
    "Pending (waiting for inputs), Queued (Job created, no pod running yet), Training or "
    "Merging, Ready, Suspended, Blocked (a budget, the evaluation gate, incompatible "
    "inputs or a missing Kubeflow Trainer hold it back) or Failed (change the spec to "
    "retry). Summarises the conditions; "
    "the Ready condition's reason says why."
)


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class Toleration(ApiModel):
    """core/v1 Toleration, for scheduling training and merge pods onto tainted GPU nodes."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.operator) || self.operator != 'Exists' || "
                    "!has(self.value) || self.value == ''",
                    "message": "a toleration with operator Exists matches any value; "
                    "remove value (or use operator Equal)",
                    "fieldPath": ".value",
                },
                {
                    "rule": "!has(self.tolerationSeconds) || "
                    "(has(self.effect) && self.effect == 'NoExecute')",
                    "message": "tolerationSeconds applies to effect NoExecute only; "
                    "set effect: NoExecute or remove tolerationSeconds",
                    "fieldPath": ".tolerationSeconds",
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _as_the_api_server_checks(self) -> Toleration:  # the CEL rules, for the local loop too
        if self.operator == TolerationOperator.EXISTS and self.value:
            raise ValueError(
                "a toleration with operator Exists matches any value; "
                "remove value (or use operator Equal)"
            )
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError(
                "tolerationSeconds applies to effect NoExecute only; "
                "set effect: NoExecute or remove tolerationSeconds"
            )
        return self

    key: str | None = Field(
        default=None, max_length=316, pattern=LABEL_KEY, description="Taint key to tolerate."
    )
    operator: TolerationOperator | None = Field(default=None, description="Exists or Equal.")
    value: str | None = Field(
        default=None, max_length=63, pattern=LABEL_VALUE, description="Taint value for Equal."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty matches all effects."
    )
    toleration_seconds: StrictInt | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )


class Resources(ApiModel):
    """What a training or merge Job asks the cluster for. Never part of a fingerprint: changing
    it reschedules future runs but never retrains."""

    gpus: StrictInt = Field(default=1, ge=0, le=16, description="GPUs per pod (nvidia.com/gpu).")
    gpu_type: str | None = Field(
        default=None,
        max_length=63,
        pattern=LABEL_VALUE,
        description="GPU type used for pricing and, via nodeSelector, placement, "
        "e.g. nvidia-a100-80gb (a label value: letters, digits, '-', '_', '.').",
    )
    cpu: Quantity | None = Field(default=None, description="CPU request, e.g. 8 or 7500m.")
    memory: Quantity | None = Field(default=None, description="Memory request, e.g. 64Gi.")
    node_selector: dict[str, Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]] | None = (
        Field(
            default=None,
            json_schema_extra={
                "maxProperties": 32,
                "x-kubernetes-validations": [
                    {
                        "rule": "self.all(k, k.size() <= 316 && "
                        f"k.matches('{cel_regex(LABEL_KEY)}'))",
                        "message": "keys must be label keys such as nvidia.com/gpu.product",
                    }
                ],
            },
            description="Node labels the pod must match.",
        )
    )

    @field_validator("node_selector")
    @classmethod
    def _label_keys(cls, selector: dict[str, str] | None) -> dict[str, str] | None:
        for key in selector or {}:
            if len(key) > 316 or not re.fullmatch(LABEL_KEY, key):
                raise ValueError(
                    f"keys must be label keys such as nvidia.com/gpu.product, got {key!r}"
                )
        return selector

    tolerations: list[Toleration] | None = Field(
        default=None, max_length=32, description="Taints the pod tolerates."
    )
    priority_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="PriorityClass of the pod (an object name: lowercase, digits, '-', '.').",
    )
    queue_name: str | None = Field(
        default=None,
        max_length=63,
        pattern=DNS_SUBDOMAIN,
        description="Kueue LocalQueue; sets the kueue.x-k8s.io/queue-name label on the Job.",
    )
    price_per_hour_usd: StrictFloat | None = Field(
        default=None,
        ge=0,
        description="Overrides the price table: USD per GPU-hour (per core-hour when gpus is 0).",
    )


class BaseModelRef(ApiModel):
    """The base model every adapter of a task must share."""

    name: str = Field(
        min_length=1,
        max_length=256,
        description="Model id (e.g. meta-llama/Llama-3.1-8B-Instruct) or builtin:tiny.",
    )
    revision: str = Field(
        default="main", min_length=1, max_length=128, description="Model revision (commit or tag)."
    )
    uri: str | None = Field(
        default=None,
        max_length=1024,
        description="Where to load the weights from instead of the hub: a path under the artifact "
        "root or an s3:// URI.",
    )


class RunResult(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Totals(ApiModel):
    """Running totals over every run of this object; each run counted once."""

    runs: StrictInt = Field(default=0, ge=0, description="Runs finished.")
    succeeded: StrictInt = Field(default=0, ge=0, description="Runs that succeeded.")
    failed: StrictInt = Field(default=0, ge=0, description="Runs that failed.")
    gpu_seconds: StrictFloat = Field(default=0, ge=0, description="GPU-seconds of all runs.")
    cost_usd: StrictFloat = Field(default=0, ge=0, description="Cost of all runs in USD.")
    period: str | None = Field(
        default=None, max_length=7, description="The month of monthCostUsd, YYYY-MM."
    )
    month_cost_usd: StrictFloat = Field(
        default=0, ge=0, description="Cost of the runs finished in period, in USD."
    )


class ActiveJob(ApiModel):
    """The Job running now for this object."""

    name: str = Field(max_length=63, description="Job name.")
    fingerprint: str = Field(max_length=64, description="Fingerprint the Job produces.")
    created_at: Timestamp | None = Field(default=None, description="When the Job was created.")


def summary_schema() -> dict[str, Any]:
    """Run summaries are the trainer's and merger's contract (see summaries.py); status keeps
    them as reported, so their keys are free-form there."""
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


class RunRecord(ApiModel):
    """One finished run (a training or a merge), as counted."""

    job: str = Field(max_length=63, description="Job name.")
    fingerprint: str = Field(max_length=64, description="Fingerprint the run was for.")
    result: RunResult | None = Field(default=None, description="Succeeded or Failed.")
    started_at: Timestamp | None = Field(default=None, description="Container start.")
    finished_at: Timestamp | None = Field(default=None, description="Container finish.")
    gpu_seconds: StrictFloat | None = Field(
        default=None, ge=0, description="(finish - start) x GPUs."
    )
    cost_usd: StrictFloat | None = Field(default=None, ge=0, description="Cost of the run in USD.")
    reason: str | None = Field(default=None, max_length=4096, description="Why the run failed.")
    summary: Annotated[dict[str, Any] | None, WithJsonSchema(summary_schema())] = Field(
        default=None, description="The trainer's or merger's summary JSON."
    )


class ObjectStatus(ApiModel):
    """What both kinds report: where the object stands (conditions, phase), what its next run
    is for (fingerprint), the Job running now, the last finished run and the running totals."""

    observed_generation: StrictInt | None = Field(
        default=None, description="Last metadata.generation acted on."
    )
    conditions: Conditions | None = Field(
        default=None,
        description="Ready, Failed and BudgetExceeded, and the kind's own: Training "
        "(LanguageAdapter), Merging and AdaptersReady (MergedModel).",
    )
    phase: Phase | None = Field(default=None, description=PHASE_DESCRIPTION)
    fingerprint: str | None = Field(
        default=None,
        max_length=64,
        description="Fingerprint of the current spec (and, for a MergedModel, its inputs).",
    )
    active_job: ActiveJob | None = Field(default=None, description="The Job running now.")
    last_run: RunRecord | None = Field(default=None, description="The last finished run.")
    totals: Totals | None = Field(default=None, description="Totals over all runs.")
    recorded_jobs: list[Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        max_length=20,
        description="Recent Jobs whose results are already counted (newest last): "
        "none counts twice.",
    )


PHASE_COLUMN = {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}
REASON_COLUMN = {
    "name": "Reason",
    "type": "string",
    "jsonPath": f'.status.conditions[?(@.type=="{ConditionType.READY}")].reason',
}
COST_COLUMN = {
    "name": "Cost",
    "type": "number",
    "jsonPath": ".status.totals.costUsd",
    "description": "USD",
}
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


class ObjectMeta(BaseModel):
    """The part of metav1.ObjectMeta the operator reads; the API server owns the rest."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    # A DNS label of at most 63 characters: the name is a label value on the object's Jobs
    # (the CRDs check the same with a CEL rule at the root).
    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: StrictInt = 0
    uid: str | None = None


class CustomResource(ApiModel):
    """apiVersion, kind and metadata around a spec and a status."""

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[list[str]]
    DESCRIPTION: ClassVar[str]
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]]

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str
    metadata: ObjectMeta

    @property
    def ref(self) -> str:
        """How errors and logs name the object: Kind namespace/name."""
        return f"{self.KIND} {self.metadata.namespace}/{self.metadata.name}"
