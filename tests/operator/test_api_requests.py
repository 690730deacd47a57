"""What an adapter costs the API server: the operator reads from its in-memory view, so an
adapter from apply to Ready sends only its writes and the one pod list that reads the run's
summary (README: 6 requests), counted by langmerge_api_requests_total."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from kubernetes import client

from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, until
from tests.support.objects import adapter_manifest
from tests.support.operator import OperatorProcess

SAMPLE = re.compile(r'^langmerge_api_requests_total\{resource="([^"]+)",verb="([^"]+)"\} (\S+)$')


def _requests(operator: OperatorProcess) -> dict[str, float]:
    found = {}
    for line in operator.metrics().splitlines():
        match = SAMPLE.match(line)
        if match:
            resource, verb, value = match.groups()
            found[f"{verb} {resource}"] = float(value)
    return found


def test_an_adapter_from_apply_to_ready_costs_its_writes_and_one_pod_list(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    control_plane.install_crds()
    api = api_client(control_plane.kubeconfig)
    namespace = f"requests-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    # No periodic resync during the test: every request is the adapter's own.
    operator = OperatorProcess(
        control_plane, tmp_path, env={"LANGMERGE_RESYNC_SECONDS": "3600"}, namespaces=[namespace]
    ).start()
    try:
        # Metrics are served while the view's first LIST runs: wait for it.
        listed_at_start = until(
            lambda: _requests(operator), lambda found: len(found) == 3, what="the first LIST"
        )
        assert set(listed_at_start) == {
            "list languageadapters",
            "list mergedmodels",
            "list jobs",
        }, listed_at_start  # the view's first LIST, one page of each kind
        cluster = Cluster(api, namespace)
        cluster.apply(adapter_manifest("de"))
        cluster.train("sentiment-de")
        cluster.wait_condition("LanguageAdapter", "sentiment-de", "Ready")
        spent = {
            key: value - listed_at_start.get(key, 0.0)
            for key, value in _requests(operator).items()
            if value != listed_at_start.get(key, 0.0)
        }
        assert spent == {
            "create jobs": 1,
            "patch languageadapters/status": 2,  # the Job started; the run recorded, Ready
            "create events": 2,  # TrainingStarted; the run's outcome
            "list pods": 1,  # the finished pod's termination message: the run's summary
        }, spent
    finally:
        operator.stop()
