"""Chaos: a five-language update while the operator is SIGKILLed at random moments.
Afterwards no Job was ever created twice for one fingerprint, every adapter and the merged
model converge to Ready with the right fingerprints, and status totals count each run once.

`make test` kills 8 times; `make reliability` (LANGMERGE_CHAOS_KILLS=20) the full count."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from pathlib import Path

from kubernetes import client, watch

from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import eventually
from tests.support.objects import LANGUAGES, adapter_manifest, merged_manifest
from tests.support.operator import OperatorProcess, finish_job, success_summary

KILLS = int(os.environ.get("LANGMERGE_CHAOS_KILLS", "8"))


class JobAudit(threading.Thread):
    """Every Job creation the API server reports (a watch sees deleted ones too)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        super().__init__(daemon=True)
        self.api, self.namespace = api, namespace
        self.created: list[tuple[str, str, str]] = []  # (name, uid, fingerprint)
        self.stop = threading.Event()

    def run(self) -> None:
        batch = client.BatchV1Api(self.api)
        while not self.stop.is_set():
            for event in watch.Watch().stream(
                batch.list_namespaced_job, self.namespace, timeout_seconds=2
            ):
                job = event["object"]
                key = (
                    job.metadata.name,
                    job.metadata.uid,
                    job.metadata.labels["langmerge.io/fingerprint"],
                )
                if key not in self.created:
                    self.created.append(key)


def test_random_sigkills_during_a_five_language_update(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    cluster = Cluster.in_new_namespace(control_plane, "chaos")
    api, namespace = cluster.api, cluster.ns
    audit = JobAudit(api, namespace)
    audit.start()
    operator = OperatorProcess(control_plane, tmp_path).start()
    rng = random.Random(20261126)
    kills = 0

    def maybe_kill() -> None:
        nonlocal kills
        if kills < KILLS and rng.random() < 0.5:
            operator.kill()
            kills += 1
            operator.start()

    try:
        for language in LANGUAGES:  # the initial setup, without chaos
            cluster.apply(adapter_manifest(language))
            cluster.train(f"sentiment-{language}")
        cluster.apply(merged_manifest())
        first_merge = cluster.job("sentiment")
        finish_job(
            api, namespace, first_merge, seconds=600, summary=success_summary("/artifacts/m1")
        )
        cluster.wait_condition("MergedModel", "sentiment", "Ready")

        for language in LANGUAGES:  # the update: every language retrains, then one merge
            cluster.apply(adapter_manifest(language, revision="v2"))
            maybe_kill()
        order = list(LANGUAGES)
        rng.shuffle(order)
        for language in order:
            maybe_kill()
            job = cluster.job(f"sentiment-{language}", count=2)
            maybe_kill()
            finish_job(
                api,
                namespace,
                job,
                summary=success_summary(f"/artifacts/{namespace}/{language}/{job}"),
            )
        maybe_kill()
        merge = cluster.job("sentiment", count=2)
        maybe_kill()
        finish_job(api, namespace, merge, seconds=600, summary=success_summary("/artifacts/m2"))
        while kills < KILLS:  # the rest of the kills while the operator records the results
            operator.kill()
            kills += 1
            operator.start()

        def converged() -> bool:
            merged = cluster.get("MergedModel", "sentiment")["status"]
            ready = all(c["status"] == "True" for c in merged["conditions"] if c["type"] == "Ready")
            return ready and merged["artifact"]["uri"] == "/artifacts/m2"

        eventually(converged, timeout_s=90, what="the merged model to converge after the chaos")
        merged = cluster.get("MergedModel", "sentiment")["status"]
        for language in LANGUAGES:
            status = cluster.get("LanguageAdapter", f"sentiment-{language}")["status"]
            assert any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])
            assert status["artifact"]["fingerprint"] == status["fingerprint"]
            assert (
                merged["artifact"]["adapterFingerprints"][f"sentiment-{language}"]
                == status["fingerprint"]
            )
            assert status["totals"]["runs"] == 2, (
                language,
                status["totals"],
            )  # each run counted once
        assert merged["totals"]["runs"] == 2
        assert merged["lastUpdate"]["retrainedAdapters"] == sorted(
            f"sentiment-{lang}" for lang in LANGUAGES
        )
    finally:
        audit.stop.set()
        operator.stop()

    names = Counter(name for name, _, _ in audit.created)
    fingerprints = Counter(fp for _, _, fp in audit.created)
    duplicates = [n for n, count in names.items() if count > 1] + [
        f for f, c in fingerprints.items() if c > 1
    ]
    print(f"chaos: kills={kills} jobs={len(audit.created)} duplicates={len(duplicates)}")
    assert kills == KILLS
    assert len(audit.created) == 2 * len(LANGUAGES) + 2  # 10 trainings + 2 merges, each once
    assert duplicates == []
