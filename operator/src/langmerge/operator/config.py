"""The operator's configuration, from environment variables (set by the Helm chart)."""

from __future__ import annotations

import os
from typing import Literal, NamedTuple

from pydantic import (
    BaseModel,
    Field,
    NonNegativeFloat,
    ValidationError,
    field_validator,
    model_validator,
)

PullPolicy = Literal["Always", "IfNotPresent", "Never"]


class JobImage(NamedTuple):
    reference: str
    pull_policy: PullPolicy | None  # None: Kubernetes' default for the tag


class ConfigError(ValueError):
    """The operator's configuration is invalid; the message names the variable."""


class OperatorConfig(BaseModel):
    trainer_image: str = Field(default="ghcr.io/langmerge/trainer:0.1.0", min_length=1)
    merger_image: str = Field(default="ghcr.io/langmerge/merger:0.1.0", min_length=1)
    # imagePullPolicy of the Jobs' containers; None: Kubernetes' default for the tag
    trainer_pull_policy: PullPolicy | None = None
    merger_pull_policy: PullPolicy | None = None
    storage: Literal["pvc", "s3"] = "pvc"
    artifact_pvc: str = "langmerge-artifacts"
    artifact_mount: str = "/artifacts"
    artifact_s3: str | None = None  # s3://bucket/prefix
    s3_secret: str | None = None  # Secret with AWS_* keys, passed to pods as env
    # Every Job gets HF_TOKEN from this Secret's key (gated hub models), apart from S3's keys
    hf_token_secret: str | None = None
    hf_token_key: str = Field(default="token", min_length=1)
    # A PVC shared by every Job at /cache (HF_HOME is /cache/huggingface): the base model is
    # downloaded once, not once per Job; an emptyDir when unset
    model_cache_pvc: str | None = None
    # Where training checkpoints live when artifacts are in S3, so a preempted run resumes
    # (with a PVC for artifacts they are on it already); the pod's disk when unset
    checkpoint_pvc: str | None = None
    # /dev/shm (a memory emptyDir) of multi-GPU training pods: NCCL and the data loaders
    # exchange tensors there, and the container runtime's default is 64 MiB
    shm_size: str = Field(default="8Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)?$")
    job_service_account: str | None = None  # the Jobs' ServiceAccount (IRSA, workload identity)
    job_backoff_limit: int = Field(default=2, ge=0, le=20)
    job_deadline_seconds: int = Field(default=24 * 3600, ge=60)
    job_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    # Trainings across pods (spec.resources.nodes > 1) as Kubeflow Trainer TrainJobs on this
    # ClusterTrainingRuntime (the chart's trainJobs.enabled installs it and grants the RBAC)
    train_jobs: bool = False
    training_runtime: str = Field(default="langmerge-torch", min_length=1)
    metrics_port: int = Field(default=9090, ge=1, le=65535)
    price_table: str | None = None  # path of the price table YAML (a mounted ConfigMap)
    resync_seconds: int = Field(default=30, ge=1)  # how often everything is reconciled anyway
    # LANGMERGE_NAMESPACE_BUDGETS="team-a=500,team-b=200": monthly USD per namespace
    namespace_budgets: dict[str, NonNegativeFloat] = {}

    @model_validator(mode="after")
    def _storage_is_complete(self) -> OperatorConfig:
        if self.storage == "s3" and not (self.artifact_s3 or "").startswith("s3://"):
            raise ValueError("LANGMERGE_ARTIFACT_S3 must be an s3:// URI when LANGMERGE_STORAGE=s3")
        return self

    @field_validator("namespace_budgets", mode="before")
    @classmethod
    def _budgets_parse(cls, value: object) -> object:
        """NAMESPACE=USD pairs, comma-separated (the chart's namespaceBudgets map)."""
        if not isinstance(value, str):
            return value
        budgets: dict[str, float] = {}
        for item in filter(None, (p.strip() for p in value.split(","))):
            name, sep, usd = (part.strip() for part in item.partition("="))
            try:
                amount = float(usd)
            except ValueError:
                amount = -1.0
            if not (sep and name and amount >= 0):
                raise ValueError(f"{item!r} is not NAMESPACE=USD (USD >= 0)")
            budgets[name] = amount
        return budgets

    def namespace_budget(self, namespace: str) -> float | None:
        return self.namespace_budgets.get(namespace)

    @property
    def trainer(self) -> JobImage:
        return JobImage(self.trainer_image, self.trainer_pull_policy)

    @property
    def merger(self) -> JobImage:
        return JobImage(self.merger_image, self.merger_pull_policy)

    def artifact_root(self) -> str:
        if self.storage == "s3":
            assert self.artifact_s3 is not None
            return self.artifact_s3.rstrip("/")
        return self.artifact_mount

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        source = os.environ if env is None else env
        values = {
            field: source[f"LANGMERGE_{field.upper()}"]
            for field in cls.model_fields
            if f"LANGMERGE_{field.upper()}" in source
        }
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"LANGMERGE_{'.'.join(str(p) for p in e['loc']).upper() or 'STORAGE'}: {e['msg']}"
                for e in error.errors()
            )
            raise ConfigError(f"invalid operator configuration: {problems}") from error
