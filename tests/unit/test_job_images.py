"""The images of the Jobs and their pull policy come from the operator's configuration (the
chart's trainer.image / merger.image), and the Jobs' pods carry no ServiceAccount token."""

from __future__ import annotations

import pytest

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.config import ConfigError, OperatorConfig
from langmerge.operator.jobs import training_job
from langmerge.operator.planner import plan_training
from tests.support.objects import adapter_manifest


def _training_pod(config: OperatorConfig) -> dict:  # type: ignore[type-arg]
    body = adapter_manifest("de")
    body["metadata"]["namespace"] = "nlp"
    adapter = LanguageAdapter.model_validate(body)
    return training_job(config, adapter, plan_training(adapter, config.trainer_image))["spec"][
        "template"
    ]["spec"]


def test_the_pull_policy_reaches_the_container_only_when_set() -> None:
    env = {
        "LANGMERGE_TRAINER_IMAGE": "registry/trainer:1",
        "LANGMERGE_TRAINER_PULL_POLICY": "Never",
    }
    (container,) = _training_pod(OperatorConfig.from_env(env))["containers"]
    assert container["image"] == "registry/trainer:1"
    assert container["imagePullPolicy"] == "Never"
    (container,) = _training_pod(OperatorConfig.from_env({}))["containers"]
    assert "imagePullPolicy" not in container  # Kubernetes' default for the tag


def test_a_bad_pull_policy_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="LANGMERGE_MERGER_PULL_POLICY"):
        OperatorConfig.from_env({"LANGMERGE_MERGER_PULL_POLICY": "Sometimes"})


def test_job_pods_mount_no_service_account_token() -> None:
    assert _training_pod(OperatorConfig())["automountServiceAccountToken"] is False


def _pod(env: dict[str, str], **resources: object) -> dict:  # type: ignore[type-arg]
    body = adapter_manifest("de")
    body["metadata"]["namespace"] = "nlp"
    body["spec"]["resources"] = {**body["spec"].get("resources", {}), **resources}
    adapter = LanguageAdapter.model_validate(body)
    config = OperatorConfig.from_env(env)
    job = training_job(config, adapter, plan_training(adapter, config.trainer_image))
    return job["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_what_a_real_cluster_needs_reaches_every_job() -> None:
    """A gated model's token apart from S3's keys, a shared model cache, durable checkpoints
    with S3 artifacts, the Jobs' own ServiceAccount, and /dev/shm for multi-GPU runs."""
    pod = _pod(
        {
            "LANGMERGE_STORAGE": "s3",
            "LANGMERGE_ARTIFACT_S3": "s3://models/langmerge",
            "LANGMERGE_S3_SECRET": "s3-keys",
            "LANGMERGE_HF_TOKEN_SECRET": "hf",
            "LANGMERGE_MODEL_CACHE_PVC": "model-cache",
            "LANGMERGE_CHECKPOINT_PVC": "checkpoints",
            "LANGMERGE_JOB_SERVICE_ACCOUNT": "trainer",
            "LANGMERGE_SHM_SIZE": "16Gi",
        },
        gpus=4,
    )
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    token = next(e for e in container["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert container["envFrom"] == [{"secretRef": {"name": "s3-keys"}}]
    assert volumes["cache"] == {
        "name": "cache",
        "persistentVolumeClaim": {"claimName": "model-cache"},
    }
    assert volumes["checkpoints"]["persistentVolumeClaim"] == {"claimName": "checkpoints"}
    checkpoint_dir = container["command"][container["command"].index("--checkpoint-dir") + 1]
    assert checkpoint_dir.startswith(mounts["checkpoints"] + "/")  # survives the pod
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert mounts["shm"] == "/dev/shm"
    assert pod["serviceAccountName"] == "trainer"
    assert pod["automountServiceAccountToken"] is False  # still no API token


def test_a_single_gpu_job_without_options_stays_minimal() -> None:
    pod = _pod({}, gpus=1)
    (container,) = pod["containers"]
    assert {v["name"] for v in pod["volumes"]} == {"tmp", "cache", "artifacts"}
    assert pod["volumes"][1] == {"name": "cache", "emptyDir": {}}
    assert not any(e["name"] == "HF_TOKEN" for e in container["env"])
    assert "serviceAccountName" not in pod
