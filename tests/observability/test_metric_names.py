"""The operator's metrics as Prometheus users read them: names and help pass promtool's linter
(the Prometheus naming rules), one unit per metric, one spelling of `kind`, a build_info, and
counters that resume from status totals after a restart instead of dropping to zero."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

from prometheus_client import generate_latest

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.common import RunRecord, RunResult, Totals
from langmerge.operator.api.merged import MergedModel
from langmerge.operator.metrics import Metrics
from tests.support.objects import adapter_manifest, merged_manifest
from tests.support.prometheus import binary

ADAPTER = LanguageAdapter.model_validate(
    adapter_manifest("de", name="a-de") | {"metadata": {"name": "a-de", "namespace": "nlp"}}
)
MERGED = MergedModel.model_validate(
    merged_manifest("m") | {"metadata": {"name": "m", "namespace": "nlp"}}
)


def _run(seconds: float, cost: float, result: RunResult = RunResult.SUCCEEDED) -> RunRecord:
    return RunRecord(
        job="j",
        fingerprint="f",
        result=result,
        started_at=datetime(2026, 11, 1, tzinfo=UTC),
        finished_at=datetime(2026, 11, 1, 1, tzinfo=UTC),
        gpu_seconds=seconds,
        cost_usd=cost,
    )


def _value(metrics: Metrics, metric: str, labels: dict[str, str], **more: str) -> float | None:
    return metrics.registry.get_sample_value(metric, {**labels, **more})


def test_the_exposition_passes_promtools_linter() -> None:
    metrics = Metrics()
    metrics.record_run(ADAPTER, _run(3600, 4.1), gpus=1)
    metrics.record_run(MERGED, _run(600, 0.01), gpus=0)
    exposition = generate_latest(metrics.registry)
    linted = subprocess.run(
        [binary("promtool"), "check", "metrics"],
        check=False,
        input=exposition,
        capture_output=True,
        timeout=60,
    )
    assert linted.returncode == 0, linted.stdout.decode() + linted.stderr.decode()


def test_gpu_and_cpu_seconds_are_separate_units_and_kind_is_spelled_once() -> None:
    metrics = Metrics()
    metrics.record_run(ADAPTER, _run(3600, 4.1), gpus=1)
    metrics.record_run(MERGED, _run(600, 0.01), gpus=0)
    common = {"namespace": "nlp", "task": "sentiment"}
    adapter = {**common, "kind": "languageadapter", "name": "a-de", "language": "de"}
    merged = {**common, "kind": "mergedmodel", "name": "m", "language": ""}
    assert _value(metrics, "langmerge_gpu_seconds_total", adapter, role="train") == 3600
    assert _value(metrics, "langmerge_cpu_core_seconds_total", merged, role="merge") == 600
    assert _value(metrics, "langmerge_gpu_seconds_total", merged, role="merge") is None
    kinds = {
        sample.labels["kind"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if "kind" in sample.labels
    }
    assert kinds == {"languageadapter", "mergedmodel"}
    info = [
        s for f in metrics.registry.collect() for s in f.samples if s.name == "langmerge_build_info"
    ]
    assert len(info) == 1 and info[0].value == 1 and info[0].labels["version"] == "0.1.0"


def test_counters_resume_from_status_totals_after_a_restart() -> None:
    totals = Totals(runs=3, succeeded=2, failed=1, gpu_seconds=7200, cost_usd=8.2)
    labels = {
        "namespace": "nlp",
        "kind": "languageadapter",
        "name": "a-de",
        "task": "sentiment",
        "language": "de",
        "role": "train",
    }
    restarted = Metrics()
    restarted.seed(ADAPTER, totals, gpus=1)
    restarted.seed(ADAPTER, totals, gpus=1)  # once per process, however often it reconciles
    restarted.record_run(ADAPTER, _run(3600, 4.1, RunResult.FAILED), gpus=1)
    assert _value(restarted, "langmerge_cost_usd_total", labels) == 8.2 + 4.1
    assert _value(restarted, "langmerge_gpu_seconds_total", labels) == 7200 + 3600
    assert _value(restarted, "langmerge_runs_total", labels, result="Succeeded") == 2
    assert _value(restarted, "langmerge_runs_total", labels, result="Failed") == 1 + 1
    restarted.forget("languageadapter", "nlp", "a-de")  # deleted: its series go
    assert _value(restarted, "langmerge_cost_usd_total", labels) is None
