"""A training across pods as the operator builds and reads it, without a cluster: the
TrainJob's name fits Kubeflow Trainer's and JobSet's rules for any adapter name, the plan
waits (saying why) where TrainJobs cannot run, S3 credentials reach the pods one key at a
time, and a finished TrainJob's outcome bills every pod and takes rank 0's summary."""

from __future__ import annotations

import json
import re
from typing import Any

from langmerge.common.summary import TrainingSummary
from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.config import OperatorConfig
from langmerge.operator.fingerprint import trainjob_name
from langmerge.operator.jobs import training_job
from langmerge.operator.outcome import job_cpus, job_gpus, job_started, read_outcome
from langmerge.operator.planner import Action, plan_training
from tests.support.objects import adapter_manifest

RFC_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# The longest pod name JobSet makes of a TrainJob of 64 nodes: <name>-node-0-63-<5 chars>
LONGEST_POD = "{}-node-0-63-abcde"


def _adapter(name: str = "sentiment-de", **resources: Any) -> LanguageAdapter:
    body = adapter_manifest("de", name=name, resources={"gpus": 1, **resources})
    body["metadata"]["namespace"] = "nlp"
    return LanguageAdapter.model_validate(body)


def test_trainjob_names_are_rfc_1035_labels_that_leave_room_for_their_pods() -> None:
    names = [
        "sentiment-de",
        "de.v2",
        "de-v2",
        "9-languages",
        "a" * 253,
        "a" * 252 + "b",
        "x." * 100 + "y",
        "z",
    ]
    made = {name: trainjob_name(name, "0123456789abcdef0123") for name in names}
    for name, result in made.items():
        assert RFC_1035.fullmatch(result), (name, result)
        assert len(LONGEST_POD.format(result)) <= 63, (name, result)
    assert len(set(made.values())) == len(names)  # two adapters never share one
    assert made["sentiment-de"] == "sentiment-de-train-0123456789"  # readable when it fits


def test_nodes_above_one_plan_a_trainjob_or_wait_saying_why() -> None:
    adapter = _adapter(nodes=2)
    runs = plan_training(adapter, "trainer:1")
    assert runs.action == Action.RUN and runs.job.endswith(runs.fingerprint[:10])
    waits = plan_training(adapter, "trainer:1", "install Kubeflow Trainer")
    assert (waits.action, waits.reason) == (Action.BLOCKED, "TrainerNotInstalled")
    assert waits.message == "spec.resources.nodes is 2: install Kubeflow Trainer"
    one = plan_training(_adapter(nodes=1), "trainer:1", "install Kubeflow Trainer")
    assert one.action == Action.RUN  # one node never needs Trainer
    assert one.fingerprint == runs.fingerprint  # resources never retrain


def test_s3_credentials_reach_a_trainjobs_pods_key_by_key() -> None:
    config = OperatorConfig(
        trainer_image="trainer:1",
        storage="s3",
        artifact_s3="s3://models/lm",
        s3_secret="s3-keys",
    )
    adapter = _adapter(nodes=3, gpus=2)
    trainjob = training_job(config, adapter, plan_training(adapter, "trainer:1"))
    trainer = trainjob["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (3, 2)
    keys = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in trainer["env"] if "valueFrom" in e}
    assert keys["AWS_SECRET_ACCESS_KEY"] == {
        "name": "s3-keys",
        "key": "AWS_SECRET_ACCESS_KEY",
        "optional": True,
    }
    (override,) = trainjob["spec"]["podTemplateOverrides"]
    mounts = {m["name"]: m["mountPath"] for m in override["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["shm"] == "/dev/shm" and "artifacts" not in mounts  # 2 GPUs a pod; S3
    assert job_gpus(trainjob) == 2 and job_cpus(trainjob) == 1


def _pod(
    rank: int, start: str, end: str, message: str | None = None, **state: Any
) -> dict[str, Any]:
    terminated: dict[str, Any] = {"exitCode": 0, "startedAt": start, "finishedAt": end, **state}
    if message is not None:
        terminated["message"] = message
    return {
        "metadata": {
            "labels": {
                "jobset.sigs.k8s.io/job-index": "0",
                "batch.kubernetes.io/job-completion-index": str(rank),
            }
        },
        "status": {"containerStatuses": [{"state": {"terminated": terminated}}]},
    }


def _trainjob(conditions: list[dict[str, str]], **counts: int) -> dict[str, Any]:
    return {
        "kind": "TrainJob",
        "metadata": {"name": "t"},
        "spec": {"trainer": {"resourcesPerNode": {"limits": {"nvidia.com/gpu": "4"}}}},
        "status": {"conditions": conditions, "jobsStatus": [{"name": "node", **counts}]},
    }


def test_a_finished_trainjob_bills_every_pod_and_reports_rank_0s_summary() -> None:
    summary = {"result": "Succeeded", "output": {"uri": "/a/de", "sha256": "a" * 64}}
    complete = _trainjob([{"type": "Complete", "status": "True"}], succeeded=2)
    pods = [
        _pod(0, "2026-11-30T10:00:00Z", "2026-11-30T11:00:00Z", json.dumps(summary)),
        # rank 1 ends last and writes nothing: the summary is still rank 0's
        _pod(1, "2026-11-30T10:00:00Z", "2026-11-30T11:00:05Z", ""),
    ]
    outcome = read_outcome(complete, pods, TrainingSummary)
    assert outcome is not None and outcome.succeeded
    assert outcome.summary is not None and outcome.summary.output is not None
    assert outcome.summary.output.uri == "/a/de"
    assert outcome.container_seconds == 3600 + 3605
    assert outcome.gpu_seconds == (3600 + 3605) * 4
    assert job_started(complete)
    assert not job_started(_trainjob([], ready=0, succeeded=0, failed=0, active=2))
    assert job_started(_trainjob([], ready=2, active=2))


def test_a_failed_trainjob_names_the_rank_that_failed_first() -> None:
    failed = _trainjob([{"type": "Failed", "status": "True", "reason": "JobSetFailed"}])
    pods = [
        # rank 0 is stopped after rank 1 ran out of memory
        _pod(0, "2026-11-30T10:00:00Z", "2026-11-30T10:05:09Z", "", exitCode=143),
        _pod(1, "2026-11-30T10:00:00Z", "2026-11-30T10:05:00Z", reason="OOMKilled", exitCode=137),
    ]
    outcome = read_outcome(failed, pods, TrainingSummary)
    assert outcome is not None and not outcome.succeeded
    assert outcome.reason == "rank 1: OOMKilled (exit code 137)"
    # rank 0's own refusal (its summary's reason) still wins
    refused = {"result": "Failed", "reason": "dataset: no rows"}
    pods[0] = _pod(0, "2026-11-30T10:00:00Z", "2026-11-30T10:04:00Z", json.dumps(refused))
    outcome = read_outcome(failed, pods, TrainingSummary)
    assert outcome is not None and outcome.reason == "dataset: no rows"
