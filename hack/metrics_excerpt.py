"""Prints the /metrics excerpt shown in README.md: two adapters trained for an A100-80GB hour
each, two 10-minute CPU merges and one update (German retrained and re-merged), on the real
API server with the operator as a subprocess and Jobs finished as the Job controller would.

Run from the repository root: .venv/bin/python hack/metrics_excerpt.py"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually
from tests.support.objects import adapter_manifest, merged_manifest
from tests.support.operator import OperatorProcess, finish_job, success_summary

SHOWN = (
    "langmerge_gpu_seconds_total{",
    "langmerge_cpu_core_seconds_total{",
    "langmerge_cost_usd_total{",
    "langmerge_runs_total{",
    "langmerge_update_",
    "langmerge_budget_",
)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, ControlPlane(Path(tmp) / "cp") as plane:
        plane.install_crds()
        api = api_client(plane.kubeconfig)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "nlp"}})
        operator = OperatorProcess(plane, Path(tmp)).start()
        try:
            cluster = Cluster(api, "nlp")
            for language in ("de", "fr"):
                cluster.apply(adapter_manifest(language))
                cluster.train(f"sentiment-{language}")
            cluster.apply(
                merged_manifest(
                    adapters={"names": ["sentiment-de", "sentiment-fr"]}, budget={"monthlyUsd": 100}
                )
            )
            finish_job(
                api,
                "nlp",
                cluster.job("sentiment"),
                seconds=600,
                summary=success_summary("/artifacts/m1"),
            )
            cluster.wait_condition("MergedModel", "sentiment", "Ready")
            cluster.apply(adapter_manifest("de", revision="v2"))
            cluster.train("sentiment-de", count=2)
            finish_job(
                api,
                "nlp",
                cluster.job("sentiment", count=2),
                seconds=600,
                summary=success_summary("/artifacts/m2"),
            )
            eventually(
                lambda: (
                    (cluster.get("MergedModel", "sentiment")["status"].get("lastUpdate") or {}).get(
                        "retrainedAdapters"
                    )
                    == ["sentiment-de"]
                ),
                what="the update",
            )
            eventually(
                lambda: "langmerge_update_savings_ratio" in operator.metrics(), what="the metrics"
            )
            print(
                "\n".join(
                    line for line in operator.metrics().splitlines() if line.startswith(SHOWN)
                )
            )
        finally:
            operator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
