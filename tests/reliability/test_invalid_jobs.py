"""A Job the API server refuses (422) fails its object with reason InvalidJob, the API's
message and a Warning Event, once: no traceback loop, no retry until something changes.

The refusal here comes from the operator's configuration (an S3 credentials Secret name that
can never be valid, a typo in chart values), which no admission rule on the custom resources
can see: the safety net must catch what admission does not."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import eventually
from tests.support.objects import adapter_manifest
from tests.support.operator import OperatorProcess

PATIENCE_S = 300  # waits for events, never for a fixed time; generous for a busy machine


def test_a_refused_job_fails_the_adapter_once_with_the_apis_reason(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    cluster = Cluster.in_new_namespace(control_plane, "invalid")
    api, namespace = cluster.api, cluster.ns
    operator = OperatorProcess(
        control_plane,
        tmp_path,
        env={
            "LANGMERGE_STORAGE": "s3",
            "LANGMERGE_ARTIFACT_S3": "s3://models/langmerge",
            "LANGMERGE_S3_SECRET": "Not_A_Valid_Secret",
            "LANGMERGE_RESYNC_SECONDS": "1",
        },
        namespaces=[namespace],
    ).start()
    try:
        cluster.apply(adapter_manifest("de"))
        failed = cluster.wait_condition("LanguageAdapter", "sentiment-de", "Failed")
        assert failed["reason"] == "InvalidJob"
        assert "Not_A_Valid_Secret" in failed["message"]  # the API's own words
        assert cluster.jobs("sentiment-de") == []
        first = cluster.get("LanguageAdapter", "sentiment-de")["status"]["lastRun"]
        start = operator.resync_passes()
        eventually(
            lambda: operator.resync_passes() >= start + 3,
            timeout_s=PATIENCE_S,
            what="three more resync passes",
        )
        # no retry loop: the same single failed run, still no Job, no traceback
        assert cluster.get("LanguageAdapter", "sentiment-de")["status"]["lastRun"] == first
        assert cluster.jobs("sentiment-de") == []
        assert "Traceback" not in operator.log.read_text(errors="replace")
        events = client.CoreV1Api(api).list_namespaced_event(namespace).items
        warnings = [e for e in events if e.type == "Warning" and e.reason == "InvalidJob"]
        assert warnings and "Not_A_Valid_Secret" in warnings[0].message
        # a spec change retries (and is refused again, with the same clear reason)
        cluster.apply(adapter_manifest("de", revision="v2"))
        eventually(
            lambda: (
                cluster.get("LanguageAdapter", "sentiment-de")["status"]["lastRun"]["fingerprint"]
                != first["fingerprint"]
            ),
            timeout_s=PATIENCE_S,
            what="a new attempt for the changed spec",
        )
    finally:
        operator.stop()
