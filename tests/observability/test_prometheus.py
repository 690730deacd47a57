"""Observability with a real Prometheus (Debian's package): the alert rules pass promtool's
unit tests, and during a run of the real operator every dashboard query returns data."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.conftest import REPO
from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually
from tests.support.objects import adapter_manifest, merged_manifest
from tests.support.operator import OperatorProcess, finish_job, success_summary
from tests.support.prometheus import Prometheus, binary, static_scrape

FILES = REPO / "charts" / "langmerge" / "files"


def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    promtool = binary("promtool")
    check = subprocess.run(
        [promtool, "check", "rules", str(FILES / "alerts.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yaml"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    rules = yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"][0]["rules"]
    tested = (Path(__file__).parent / "alerts_test.yaml").read_text()
    for rule in rules:
        assert f"alertname: {rule['alert']}" in tested, f"{rule['alert']} has no unit test"


@pytest.fixture
def observed(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[tuple[Cluster, OperatorProcess, Prometheus]]:
    control_plane.install_crds()
    api = api_client(control_plane.kubeconfig)
    namespace = f"obs-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    operator = OperatorProcess(control_plane, tmp_path).start()
    prometheus = None
    try:  # a skip (no Prometheus here) must not leave the operator running for later tests
        prometheus = Prometheus(tmp_path, static_scrape(f"127.0.0.1:{operator.metrics_port}"))
        eventually(prometheus.ready, timeout_s=60, what="Prometheus to be ready")
        yield Cluster(api, namespace), operator, prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        operator.stop()


def test_every_dashboard_query_returns_data_from_a_real_run(
    observed: tuple[Cluster, OperatorProcess, Prometheus],
) -> None:
    cluster, _, prometheus = observed
    for language in ("de", "fr"):
        cluster.apply(adapter_manifest(language))
    job = cluster.job("sentiment-de")
    finish_job(cluster.api, cluster.ns, job, succeed=False, exit_code=137, reason="OOMKilled")
    cluster.apply(adapter_manifest("de", revision="v2"))
    cluster.train("sentiment-de", count=2)
    cluster.train("sentiment-fr")
    cluster.apply(
        merged_manifest(
            adapters={"names": ["sentiment-de", "sentiment-fr"]}, budget={"monthlyUsd": 1000}
        )
    )
    merge = cluster.job("sentiment")
    finish_job(
        cluster.api, cluster.ns, merge, seconds=300, summary=success_summary("/artifacts/m1")
    )
    cluster.wait_condition("MergedModel", "sentiment", "Ready")
    cluster.apply(adapter_manifest("fr", revision="v2"))  # an update: one adapter, then a re-merge

    cluster.train("sentiment-fr", count=2)
    second = cluster.job("sentiment", count=2)
    finish_job(
        cluster.api, cluster.ns, second, seconds=300, summary=success_summary("/artifacts/m2")
    )
    eventually(
        lambda: (
            (cluster.get("MergedModel", "sentiment")["status"].get("lastUpdate") or {}).get(
                "retrainedAdapters"
            )
            == ["sentiment-fr"]
        ),
        what="the update",
    )
    eventually(
        lambda: prometheus.query(f'langmerge_update_savings_ratio{{namespace="{cluster.ns}"}}')[
            "data"
        ]["result"],
        timeout_s=60,
        what="Prometheus to scrape the update",
    )

    # rate() and increase() need two samples of a series in their window
    eventually(
        lambda: prometheus.query(
            "min(count_over_time(langmerge_update_savings_ratio"
            f'{{namespace="{cluster.ns}"}}[10m])) >= 3'
        )["data"]["result"],
        timeout_s=60,
        what="a few scrapes after the update",
    )

    dashboard = json.loads((FILES / "dashboard.json").read_text())
    assert dashboard["uid"] == "langmerge-cost"
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"datasource", "namespace"}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = (
                target["expr"].replace("$namespace", cluster.ns).replace("$__rate_interval", "10m")
            )
            reply = prometheus.query(expr)
            assert reply["status"] == "success", (panel["title"], reply)
            assert reply["data"]["result"], f"panel {panel['title']!r} has no data: {expr}"

    groups = prometheus.api("/api/v1/rules")["data"]["groups"]
    assert {r["name"] for g in groups for r in g["rules"]} == {
        "LangmergeRunsFailingRepeatedly",
        "LangmergeRunPendingTooLong",
        "LangmergeReconcileErrors",
        "LangmergeBudgetNearlyUsed",
        "LangmergeBudgetExhausted",
        "LangmergePriceTableInvalid",
    }
    assert all(r["health"] == "ok" for g in groups for r in g["rules"])
