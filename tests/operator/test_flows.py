"""The operator's flows against the real API server: the operator runs as a subprocess, the
tests finish Jobs the way the Job controller and kubelet report them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually, until
from tests.support.objects import LANGUAGES, adapter_manifest, merged_manifest
from tests.support.operator import OperatorProcess, finish_job, success_summary


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> client.ApiClient:
    control_plane.install_crds()
    return api_client(control_plane.kubeconfig)


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(control_plane, tmp_path_factory.mktemp("operator")).start()
    yield process
    process.stop()


@pytest.fixture
def cluster(api: client.ApiClient, operator: OperatorProcess) -> Iterator[Cluster]:
    namespace = f"flow-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    yield Cluster(api, namespace)


def test_create_adapter_a_job_appears_and_completing_it_makes_the_adapter_ready(
    cluster: Cluster,
) -> None:
    cluster.apply(
        adapter_manifest(
            "de", resources={"gpus": 2, "gpuType": "nvidia-a100-80gb", "queueName": "gpu"}
        )
    )
    job_name = cluster.job("sentiment-de")
    job = cluster.batch.read_namespaced_job(job_name, cluster.ns)
    owner = job.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("LanguageAdapter", "sentiment-de", True)
    labels = job.metadata.labels
    assert labels["langmerge.io/language"] == "de" and labels["langmerge.io/task"] == "sentiment"
    assert labels["kueue.x-k8s.io/queue-name"] == "gpu" and not job.spec.suspend
    container = job.spec.template.spec.containers[0]
    assert container.image == "registry.test/trainer:1"
    assert container.resources.limits["nvidia.com/gpu"] == "2"
    assert container.command[:4] == [
        "accelerate",
        "launch",
        "--num_processes",
        "2",
    ]  # multi-GPU in one pod
    assert container.termination_message_policy == "FallbackToLogsOnError"
    assert (
        container.security_context.read_only_root_filesystem
        and container.security_context.run_as_non_root
    )
    assert job.spec.pod_failure_policy.rules[0].action == "FailJob"
    # No pod runs yet (no node here): queued, not training (test_kubectl_shows_... turns it).
    waiting = cluster.wait_condition("LanguageAdapter", "sentiment-de", "Training", "False")
    assert waiting["reason"] == "JobPending", waiting

    cluster.train("sentiment-de", seconds=1800)
    cluster.wait_condition("LanguageAdapter", "sentiment-de", "Ready")
    status = cluster.get("LanguageAdapter", "sentiment-de")["status"]
    assert status["artifact"]["uri"] == f"/artifacts/{cluster.ns}/sentiment-de/{job_name}"
    assert (
        status["lastRun"]["result"] == "Succeeded"
        and status["lastRun"]["summary"]["wallSeconds"] == 3600
    )
    assert status["lastRun"]["gpuSeconds"] == 3600  # 1800 s x 2 GPUs
    assert status["lastRun"]["costUsd"] == pytest.approx(3.40)  # one A100-80GB hour
    assert status["totals"]["runs"] == 1 and "activeJob" not in status
    assert status["observedGeneration"] == 1
    # Events follow the status write that made it Ready.
    until(
        lambda: {e.reason for e in cluster.core.list_namespaced_event(cluster.ns).items},
        lambda reasons: {"TrainingStarted", "TrainingSucceeded"} <= reasons,
        what="the TrainingStarted and TrainingSucceeded Events",
    )


def test_result_fields_retrain_other_fields_do_not(cluster: Cluster) -> None:
    cluster.apply(adapter_manifest("fr"))
    first = cluster.train("sentiment-fr")
    cluster.wait_condition("LanguageAdapter", "sentiment-fr", "Ready")
    old_uri = cluster.get("LanguageAdapter", "sentiment-fr")["status"]["artifact"]["uri"]

    cluster.apply(adapter_manifest("fr", revision="v2"))
    second = cluster.job("sentiment-fr", count=2)
    assert second != first
    cluster.wait_condition("LanguageAdapter", "sentiment-fr", "Ready", "False")
    assert (
        cluster.get("LanguageAdapter", "sentiment-fr")["status"]["artifact"]["uri"] == old_uri
    )  # still served
    cluster.train("sentiment-fr", count=2)
    cluster.wait_condition("LanguageAdapter", "sentiment-fr", "Ready")
    assert cluster.get("LanguageAdapter", "sentiment-fr")["status"]["artifact"]["uri"].endswith(
        second
    )

    changed = adapter_manifest(
        "fr", revision="v2", resources={"gpus": 4, "gpuType": "nvidia-h100-80gb"}
    )
    changed["metadata"]["labels"]["team"] = "nlp"
    cluster.apply(changed)
    eventually(
        lambda: cluster.get("LanguageAdapter", "sentiment-fr")["status"]["observedGeneration"] == 3,
        what="the operator to observe generation 3",
    )
    time.sleep(1.5)
    assert len(cluster.jobs("sentiment-fr")) == 2  # nothing new ran
    assert cluster.condition("LanguageAdapter", "sentiment-fr", "Ready")["status"] == "True"


def test_a_failed_job_gives_the_reason_and_a_spec_fix_recovers(cluster: Cluster) -> None:
    cluster.apply(adapter_manifest("ja"))
    job = cluster.job("sentiment-ja")
    finish_job(cluster.api, cluster.ns, job, succeed=False, exit_code=137, reason="OOMKilled")
    failed = cluster.wait_condition("LanguageAdapter", "sentiment-ja", "Failed")
    assert "OOMKilled (exit code 137)" in failed["message"]
    time.sleep(1.5)
    assert len(cluster.jobs("sentiment-ja")) == 1  # the Job's own backoffLimit was the retry policy

    cluster.apply(adapter_manifest("ja", lora={"rank": 4}))
    fixed = cluster.job("sentiment-ja", count=2)
    finish_job(
        cluster.api,
        cluster.ns,
        fixed,
        succeed=False,
        summary={"result": "Failed", "reason": "dataset x.jsonl: no records"},
    )
    until(
        lambda: cluster.condition("LanguageAdapter", "sentiment-ja", "Failed"),
        lambda c: c is not None and "no records" in c["message"],
        what="the summary's reason",
    )
    cluster.apply(adapter_manifest("ja", lora={"rank": 2}))
    cluster.train("sentiment-ja", count=3)
    cluster.wait_condition("LanguageAdapter", "sentiment-ja", "Ready")
    assert cluster.condition("LanguageAdapter", "sentiment-ja", "Failed")["status"] == "False"
    totals = cluster.get("LanguageAdapter", "sentiment-ja")["status"]["totals"]
    assert (totals["runs"], totals["failed"], totals["succeeded"]) == (3, 2, 1)


def _merge_jobs(cluster: Cluster) -> list[Any]:
    return cluster.jobs("sentiment")


def test_merged_model_over_five_adapters(cluster: Cluster) -> None:
    for language in LANGUAGES:
        cluster.apply(adapter_manifest(language))
    cluster.apply(merged_manifest())
    waiting = cluster.wait_condition("MergedModel", "sentiment", "AdaptersReady", "False")
    assert waiting["reason"] == "AdaptersNotReady"
    for language in LANGUAGES[:4]:
        cluster.train(f"sentiment-{language}")
    time.sleep(1.5)
    assert _merge_jobs(cluster) == []  # one adapter still training
    cluster.train("sentiment-zh")
    merge = cluster.job("sentiment")
    job = cluster.batch.read_namespaced_job(merge, cluster.ns)
    args = job.spec.template.spec.containers[0].command
    assert (
        args[0] == "langmerge-merge"
        and args.count("--adapter") == 5
        and args.count("--adapter-sha256") == 5
    )
    finish_job(
        cluster.api,
        cluster.ns,
        merge,
        seconds=600,
        summary=success_summary(f"/artifacts/{cluster.ns}/sentiment/{merge}", method="knots-ties"),
    )
    cluster.wait_condition("MergedModel", "sentiment", "Ready")
    status = cluster.get("MergedModel", "sentiment")["status"]
    assert set(status["artifact"]["adapterFingerprints"]) == {
        f"sentiment-{lang}" for lang in LANGUAGES
    }
    assert status["lastUpdate"]["trigger"] == "initial merge"

    # Three adapters updated together: one merge, after all three are retrained.
    for language in LANGUAGES[:3]:
        cluster.apply(adapter_manifest(language, revision="v2"))
    for language in LANGUAGES[:3]:
        cluster.job(f"sentiment-{language}", count=2)
    cluster.wait_condition("MergedModel", "sentiment", "AdaptersReady", "False")
    for language in LANGUAGES[:2]:
        cluster.train(f"sentiment-{language}", count=2)
    time.sleep(1.5)
    assert len(_merge_jobs(cluster)) == 1
    cluster.train(f"sentiment-{LANGUAGES[2]}", count=2)
    second = cluster.job("sentiment", count=2)
    finish_job(
        cluster.api,
        cluster.ns,
        second,
        seconds=600,
        summary=success_summary(f"/artifacts/{cluster.ns}/sentiment/{second}"),
    )
    eventually(
        lambda: (
            cluster.get("MergedModel", "sentiment")["status"]["lastUpdate"]["retrainedAdapters"]
            == ["sentiment-de", "sentiment-en", "sentiment-fr"]
        ),
        what="the three-adapter update",
    )
    assert len(_merge_jobs(cluster)) == 2

    # One adapter retrained: re-merge, and the update's cost against a full retrain.
    cluster.apply(adapter_manifest("ja", revision="v3"))
    cluster.train("sentiment-ja", count=2)
    third = cluster.job("sentiment", count=3)
    finish_job(
        cluster.api,
        cluster.ns,
        third,
        seconds=600,
        summary=success_summary(f"/artifacts/{cluster.ns}/sentiment/{third}"),
    )
    update = until(
        lambda: cluster.get("MergedModel", "sentiment")["status"].get("lastUpdate"),
        lambda u: u is not None and u["retrainedAdapters"] == ["sentiment-ja"],
        what="the ja update",
    )
    assert update["trigger"] == "adapters: sentiment-ja"
    # 1 GPU-hour of training + a 10-minute CPU merge, against five GPU-hours of training.
    assert update["fullRetrainEstimateUsd"] == pytest.approx(5 * 3.40)
    assert update["savingsRatio"] == pytest.approx(1 - update["costUsd"] / (5 * 3.40), abs=1e-3)
    assert update["savingsRatio"] > 0.75
    assert len(cluster.get("MergedModel", "sentiment")["status"]["updateHistory"]) == 3


def test_incompatible_adapters_give_a_reason_and_no_job(cluster: Cluster) -> None:
    cluster.apply(adapter_manifest("de"))
    cluster.apply(adapter_manifest("fr", baseModel={"name": "llama-3.1-8b"}))
    cluster.train("sentiment-de")
    cluster.train("sentiment-fr")
    cluster.apply(merged_manifest())
    failed = cluster.wait_condition("MergedModel", "sentiment", "Failed")
    assert failed["reason"] == "IncompatibleAdapters" and "sentiment-fr" in failed["message"]
    time.sleep(1)
    assert _merge_jobs(cluster) == []


def test_suspend_stops_new_runs(cluster: Cluster) -> None:
    cluster.apply(adapter_manifest("zh", suspend=True))
    ready = cluster.wait_condition("LanguageAdapter", "sentiment-zh", "Ready", "False")
    assert ready["reason"] == "Suspended"
    assert cluster.jobs("sentiment-zh") == []
    cluster.apply(adapter_manifest("zh", suspend=False))
    cluster.job("sentiment-zh")


def test_delete_owns_the_jobs_and_removes_the_metric_series(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.apply(adapter_manifest("en"))
    cluster.train("sentiment-en")
    cluster.wait_condition("LanguageAdapter", "sentiment-en", "Ready")
    series = f'name="sentiment-en",namespace="{cluster.ns}"'
    eventually(
        lambda: series in operator.metrics().replace('kind="languageadapter",', ""),
        what="the adapter's metric series",
    )
    owner = cluster.jobs("sentiment-en")[0].metadata.owner_references[0]
    uid = cluster.get("LanguageAdapter", "sentiment-en")["metadata"]["uid"]
    assert owner.uid == uid and owner.block_owner_deletion  # the garbage collector removes it
    cluster.delete("LanguageAdapter", "sentiment-en")
    eventually(
        lambda: series not in operator.metrics().replace('kind="languageadapter",', ""),
        what="the series to disappear",
    )


def test_restart_adopts_running_jobs_instead_of_twinning_them(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.apply(adapter_manifest("de"))
    cluster.apply(adapter_manifest("fr"))
    training = cluster.job("sentiment-de")
    cluster.train("sentiment-fr")
    operator.kill()  # during a training run
    operator.start()
    time.sleep(2)
    assert [j.metadata.name for j in cluster.jobs("sentiment-de")] == [training]
    cluster.train("sentiment-de")
    cluster.wait_condition("LanguageAdapter", "sentiment-de", "Ready")
    cluster.apply(
        {
            **merged_manifest(),
            "spec": {
                **merged_manifest()["spec"],
                "adapters": {"names": ["sentiment-de", "sentiment-fr"]},
            },
        }
    )
    merging = cluster.job("sentiment")
    operator.kill()  # during a merge
    operator.start()
    time.sleep(2)
    assert [j.metadata.name for j in _merge_jobs(cluster)] == [merging]
    finish_job(cluster.api, cluster.ns, merging, summary=success_summary("/artifacts/m"))
    cluster.wait_condition("MergedModel", "sentiment", "Ready")
    assert cluster.get("MergedModel", "sentiment")["status"]["totals"]["runs"] == 1


def test_the_liveness_endpoint_answers(operator: OperatorProcess) -> None:
    assert eventually(lambda: operator.healthz() == 200, what="kopf's liveness endpoint")


def test_a_merge_that_fails_its_evaluation_gate_keeps_the_last_good_model(cluster: Cluster) -> None:
    for language in ("de", "fr"):
        cluster.apply(adapter_manifest(language))
        cluster.train(f"sentiment-{language}")
    gated = merged_manifest(
        adapters={"names": ["sentiment-de", "sentiment-fr"]},
        evaluation={
            "datasets": {"de": "/artifacts/eval/de.jsonl", "fr": "/artifacts/eval/fr.jsonl"},
            "metrics": ["f1"],
            "gate": {"against": "individual", "maxDrop": 0.1},
        },
    )
    cluster.apply(gated)
    first = cluster.job("sentiment")
    command = (
        cluster.batch.read_namespaced_job(first, cluster.ns)
        .spec.template.spec.containers[0]
        .command
    )
    assert "--evaluate" in command and "de=/artifacts/eval/de.jsonl" in command
    assert command[command.index("--gate-max-drop") + 1] == "0.1"
    finish_job(cluster.api, cluster.ns, first, summary=success_summary("/artifacts/good"))
    cluster.wait_condition("MergedModel", "sentiment", "Ready")

    cluster.apply(adapter_manifest("de", revision="v2"))
    cluster.train("sentiment-de", count=2)
    second = cluster.job("sentiment", count=2)
    verdict = "de f1 0.400 is 50% worse than its individual adapter's 0.800 (at most 10% allowed)"
    reason = f"evaluation gate: {verdict}"
    finish_job(
        cluster.api,
        cluster.ns,
        second,
        succeed=False,
        summary={
            "result": "Failed",
            "reason": reason,
            "evaluation": {
                "perLanguage": {"de": {"f1": 0.4}, "fr": {"f1": 0.6}},
                "gate": {"passed": False, "reason": verdict},
            },
        },
    )
    failed = cluster.wait_condition("MergedModel", "sentiment", "Failed")
    assert "evaluation gate" in failed["message"] and failed["reason"] == "GateRefused"
    status = cluster.get("MergedModel", "sentiment")["status"]
    assert status["artifact"]["uri"] == "/artifacts/good"  # still serving the last good merge
    assert status["evaluation"]["gate"]["passed"] is False
    assert status["evaluation"]["perLanguage"]["de"]["f1"] == 0.4
    assert status["phase"] == "Blocked"  # a policy holds it back; the last good model serves


def test_a_search_runs_in_one_merge_job_and_its_winner_reaches_status_and_metrics(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    for language in ("de", "fr"):
        cluster.apply(adapter_manifest(language))
        cluster.train(f"sentiment-{language}")
    search = {
        "grid": [
            {"method": "knots-ties", "densities": [0.3, 0.5], "lambdas": [1.0, 1.5]},
            {"method": "knots-dare-ties", "seeds": [0, 1]},
        ],
        "metric": "f1",
        "validation": {"de": "/artifacts/val/de.jsonl", "fr": "/artifacts/val/fr.jsonl"},
    }
    cluster.apply(
        merged_manifest(adapters={"names": ["sentiment-de", "sentiment-fr"]}, search=search)
    )
    job = cluster.job("sentiment")
    command = (
        cluster.batch.read_namespaced_job(job, cluster.ns).spec.template.spec.containers[0].command
    )
    assert "--search" in command and "--validate=de=/artifacts/val/de.jsonl" in command
    assert "--method" not in command
    winner = {
        "index": 2,
        "method": "knots-ties",
        "density": 0.5,
        "lambda": 1.0,
        "weights": "uniform",
        "score": 0.81,
    }
    finish_job(
        cluster.api,
        cluster.ns,
        job,
        summary=success_summary(
            "/artifacts/searched",
            method="knots-ties",
            search={
                "metric": "f1",
                "aggregate": "mean",
                "evaluated": 6,
                "failed": 1,
                "winner": winner,
                "why": "the best mean validation f1 of 5 scored candidates",
                "best": [winner, {**winner, "index": 0, "density": 0.3, "score": 0.8}],
                "seconds": {"merge": 3.1, "validate": 12.4},
            },
        ),
    )
    cluster.wait_condition("MergedModel", "sentiment", "Ready")
    status = cluster.get("MergedModel", "sentiment")["status"]
    assert status["artifact"]["uri"] == "/artifacts/searched"
    assert status["search"]["winner"] == winner
    assert (status["search"]["evaluated"], status["search"]["failed"]) == (6, 1)
    assert [b["index"] for b in status["search"]["best"]] == [2, 0]
    candidates = {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(operator.metrics())
        for sample in family.samples
        if sample.name == "langmerge_search_candidates_total"
        and sample.labels["namespace"] == cluster.ns
    }
    assert candidates == {"scored": 5.0, "failed": 1.0}


def test_a_run_that_would_exceed_the_budget_does_not_start(cluster: Cluster) -> None:
    cluster.apply(
        merged_manifest(
            adapters={"names": ["sentiment-de", "sentiment-fr"]}, budget={"monthlyUsd": 8}
        )
    )
    for language in ("de", "fr"):
        cluster.apply(adapter_manifest(language))
        cluster.train(f"sentiment-{language}")  # one A100-80GB hour each: $3.40
        cluster.wait_condition("LanguageAdapter", f"sentiment-{language}", "Ready")
    cluster.apply(adapter_manifest("de", revision="v2"))  # another $3.40 would make $10.20
    blocked = cluster.wait_condition("LanguageAdapter", "sentiment-de", "BudgetExceeded")
    assert "has spent $6.80 of its $8.00 budget" in blocked["message"]
    assert len(cluster.jobs("sentiment-de")) == 1
    budget = cluster.get("MergedModel", "sentiment")["status"]["budget"]
    assert budget["limitUsd"] == 8 and budget["spentUsd"] == pytest.approx(6.8)
    cluster.apply(
        merged_manifest(
            adapters={"names": ["sentiment-de", "sentiment-fr"]}, budget={"monthlyUsd": 20}
        )
    )
    cluster.job("sentiment-de", count=2)  # the raised budget lets it start
    cluster.wait_condition("LanguageAdapter", "sentiment-de", "BudgetExceeded", "False")


def test_a_job_whose_pod_cannot_start_counts_as_pending_not_running(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    """`job.status.active` counts Pending pods too: an unschedulable pod must show as pending
    (the LangmergeRunPendingTooLong alert reads this), a ready one as running."""
    cluster.apply(adapter_manifest("ja"))
    job = cluster.job("sentiment-ja")
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def pending_value() -> str | None:
        for line in operator.metrics().splitlines():
            ours = 'name="sentiment-ja"' in line and f'namespace="{cluster.ns}"' in line
            if line.startswith("langmerge_run_pending{") and ours:
                return line.rsplit(" ", 1)[1]
        return None

    # the pod runs: not pending
    cluster.batch.patch_namespaced_job_status(
        job, cluster.ns, {"status": {"startTime": started, "active": 1, "ready": 1}}
    )
    eventually(lambda: pending_value() == "0.0", what="the run counted as running")
    # evicted; its replacement cannot be scheduled: still active 1, but ready 0
    cluster.batch.patch_namespaced_job_status(job, cluster.ns, {"status": {"ready": 0}})
    eventually(lambda: pending_value() == "1.0", what="the run counted as pending again")


def _columns(control_plane: ControlPlane, namespace: str, plural: str, name: str) -> dict[str, str]:
    """The printer columns `kubectl get` shows for one object (the API server renders them)."""
    table = control_plane.kubectl("get", plural, name, "-n", namespace, "--no-headers=false")
    header, row = table.stdout.splitlines()[:2]
    return dict(zip(header.split(), row.split(), strict=False))


def test_kubectl_shows_one_phase_and_a_reason_and_describe_shows_warnings(
    cluster: Cluster, control_plane: ControlPlane
) -> None:
    def columns(plural: str, name: str) -> dict[str, str]:
        return _columns(control_plane, cluster.ns, plural, name)

    def shows(plural: str, name: str, phase: str, reason: str) -> None:
        eventually(
            lambda: (
                (c := columns(plural, name)).get("PHASE") == phase and c.get("REASON") == reason
            ),
            what=f"{plural}/{name} PHASE {phase} REASON {reason}: {columns(plural, name)}",
        )

    def described_events(kind: str, name: str) -> list[list[str]]:
        """The Events section of `kubectl describe`, one word list per event."""
        text = control_plane.kubectl("describe", kind, name, "-n", cluster.ns).stdout
        section = text.split("\nEvents:", 1)[1].splitlines()[3:]  # after the column header
        return [line.split() for line in section if line.strip()]

    for language in ("de", "fr"):
        cluster.apply(adapter_manifest(language))
    cluster.apply(merged_manifest(adapters={"names": ["sentiment-de", "sentiment-fr"]}))
    shows("mergedmodels", "sentiment", "Pending", "AdaptersNotReady")
    cluster.apply(adapter_manifest("en"))
    job = cluster.job("sentiment-en")
    shows("languageadapters", "sentiment-en", "Queued", "JobPending")  # no pod runs yet
    queued = cluster.wait_condition("LanguageAdapter", "sentiment-en", "Training", "False")
    assert queued["reason"] == "JobPending", queued  # queued is not training
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    running = {"status": {"startTime": started, "active": 1, "ready": 1}}
    cluster.batch.patch_namespaced_job_status(job, cluster.ns, running)
    shows("languageadapters", "sentiment-en", "Training", "Training")
    training = cluster.wait_condition("LanguageAdapter", "sentiment-en", "Training")
    assert training["reason"] == "JobRunning", training  # a pod runs
    for language in ("de", "fr"):
        cluster.train(f"sentiment-{language}")
    shows("languageadapters", "sentiment-de", "Ready", "UpToDate")
    merge = cluster.job("sentiment")
    cluster.batch.patch_namespaced_job_status(merge, cluster.ns, running)
    shows("mergedmodels", "sentiment", "Merging", "Merging")

    # An input deleted during the merge: the merge stops, and the Event says why.
    cluster.delete("LanguageAdapter", "sentiment-fr")
    shows("mergedmodels", "sentiment", "Pending", "AdaptersMissing")
    eventually(lambda: merge not in {j.metadata.name for j in _merge_jobs(cluster)}, what="stop")
    stopped = until(
        lambda: described_events("mergedmodel", "sentiment"),
        lambda events: any(e[:2] == ["Warning", "Stopped"] and "sentiment-fr" in e for e in events),
        what="a Warning Event Stopped naming the missing adapter",
    )
    assert not any(e[1] == "Superseded" for e in stopped), stopped

    # A failed run: Failed, with its reason, and a Warning in `kubectl describe`.
    cluster.apply(adapter_manifest("ja"))
    finish_job(
        cluster.api,
        cluster.ns,
        cluster.job("sentiment-ja"),
        succeed=False,
        summary={"result": "Failed", "reason": "dataset x.jsonl: no records"},
    )
    shows("languageadapters", "sentiment-ja", "Failed", "TrainingFailed")
    until(
        lambda: described_events("languageadapter", "sentiment-ja"),
        lambda events: any(
            e[:2] == ["Warning", "TrainingFailed"] and "records" in e for e in events
        ),
        what="a Warning Event TrainingFailed with the run's reason",
    )
