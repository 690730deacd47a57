"""Clear reasons for faults that need no server: a Job past its deadline, an invalid operator
configuration, and paths that try to leave the artifact root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from langmerge.common.storage import StorageError, check_under_root
from langmerge.common.summary import TrainingSummary
from langmerge.operator.config import ConfigError, OperatorConfig
from langmerge.operator.outcome import read_outcome


def _job(condition: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "j", "labels": {"langmerge.io/fingerprint": "f"}},
        "spec": {
            "template": {
                "spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}]}
            }
        },
        "status": {
            "conditions": [
                {"type": "FailureTarget", "status": "True", **condition},
                {"type": "Failed", "status": "True", **condition},
            ]
        },
    }


def test_a_job_past_its_deadline_says_so() -> None:
    job = _job(
        {"reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}
    )
    killed = {
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "Error",
                            "startedAt": "2026-11-26T10:00:00Z",
                            "finishedAt": "2026-11-26T11:00:00Z",
                        }
                    }
                }
            ]
        }
    }
    outcome = read_outcome(job, [killed], TrainingSummary)
    assert outcome is not None and not outcome.succeeded
    assert outcome.reason == "DeadlineExceeded: Job was active longer than specified deadline"
    assert outcome.gpu_seconds == 7200  # the hour it ran still costs two GPUs


def test_an_oom_killed_pod_is_named() -> None:
    job = _job({"reason": "PodFailurePolicy", "message": ""})
    oom = {
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "OOMKilled",
                            "startedAt": "2026-11-26T10:00:00Z",
                            "finishedAt": "2026-11-26T10:10:00Z",
                        }
                    }
                }
            ]
        }
    }
    outcome = read_outcome(job, [oom], TrainingSummary)
    assert outcome is not None and outcome.reason == "OOMKilled (exit code 137)"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LANGMERGE_STORAGE": "s3"}, "LANGMERGE_ARTIFACT_S3"),
        ({"LANGMERGE_STORAGE": "nfs"}, "LANGMERGE_STORAGE"),
        ({"LANGMERGE_JOB_BACKOFF_LIMIT": "-1"}, "LANGMERGE_JOB_BACKOFF_LIMIT"),
        ({"LANGMERGE_NAMESPACE_BUDGETS": "team-a:500"}, "LANGMERGE_NAMESPACE_BUDGETS"),
    ],
)
def test_an_invalid_operator_configuration_names_the_variable(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as error:
        OperatorConfig.from_env(env)
    assert named in str(error.value)


def test_paths_cannot_escape_the_artifact_root(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    (root / "ok").mkdir(parents=True)
    outside = tmp_path / "secrets"
    outside.mkdir()
    os.symlink(outside, root / "link")
    check_under_root(str(root / "ok"), str(root), "--dataset")
    for sneaky in (
        f"{root}/../secrets",
        str(outside),
        f"file://{outside}",
        str(root / "link" / "x"),
    ):
        with pytest.raises(StorageError, match="outside the artifact root"):
            check_under_root(sneaky, str(root), "--dataset")
    check_under_root("s3://bucket/x", str(root), "--dataset")  # object stores have no '..'
