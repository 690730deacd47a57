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
