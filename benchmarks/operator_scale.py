"""The operator at scale, against the real control plane (no kubelet: this script finishes
the Jobs the way the Job controller reports them).

200 LanguageAdapters (40 tasks x 5 languages) and 40 MergedModels applied at once; measured:
apply -> training Job created (p50, p99), Job completion -> adapter Ready (p50, p99), the
merges that follow, and the operator's peak RSS. Usage:
python benchmarks/operator_scale.py [--quick]   (quick: 40 adapters, 8 merged models)
Ends with RESULT name=value lines and writes benchmarks/results/operator_scale.json."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client, watch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client
from tests.support.objects import GROUP, LANGUAGES, VERSION, adapter_manifest, merged_manifest
from tests.support.operator import OperatorProcess, finish_job, success_summary

RESULTS = Path(__file__).resolve().parent / "results"
NAMESPACE = "scale"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Watcher(threading.Thread):
    """Records when each Job first appears and when each adapter first turns Ready."""

    def __init__(self, api: client.ApiClient) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.jobs: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        threading.Thread(target=self._jobs, daemon=True).start()
        self._adapters()

    def _jobs(self) -> None:
        stream = watch.Watch()
        batch = client.BatchV1Api(self.api)
        while not self.stop.is_set():
            for event in stream.stream(batch.list_namespaced_job, NAMESPACE, timeout_seconds=5):
                labels = event["object"].metadata.labels or {}
                owner = labels.get("langmerge.io/name")
                if owner and labels.get("langmerge.io/role") == "train":
                    self.jobs.setdefault(owner, time.monotonic())
                elif owner:
                    self.jobs.setdefault(f"merge:{owner}", time.monotonic())

    def _adapters(self) -> None:
        stream = watch.Watch()
        custom = client.CustomObjectsApi(self.api)
        while not self.stop.is_set():
            for event in stream.stream(
                custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                NAMESPACE,
                "languageadapters",
                timeout_seconds=5,
            ):
                body = event["object"]
                for condition in (body.get("status") or {}).get("conditions") or []:
                    if condition["type"] == "Ready" and condition["status"] == "True":
                        self.ready.setdefault(body["metadata"]["name"], time.monotonic())


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tasks = 8 if args.quick else 40
    with (
        tempfile.TemporaryDirectory(prefix="operator-scale-") as tmp,
        ControlPlane(Path(tmp) / "cp") as plane,
    ):
        plane.install_crds()
        api = api_client(plane.kubeconfig)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        operator = OperatorProcess(plane, Path(tmp)).start()
        watcher = Watcher(api)
        watcher.start()
        time.sleep(1)
        custom = client.CustomObjectsApi(api)
        applied: dict[str, float] = {}
        started = time.monotonic()
        for task_index in range(tasks):
            task = f"task{task_index:02d}"
            for language in LANGUAGES:
                body = adapter_manifest(language, task=task)
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "languageadapters", body
                )
                applied[body["metadata"]["name"]] = time.monotonic()
            custom.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "mergedmodels", merged_manifest(name=task, task=task)
            )
        apply_seconds = time.monotonic() - started
        deadline = time.monotonic() + 600
        while len([k for k in watcher.jobs if not k.startswith("merge:")]) < len(applied):
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(watcher.jobs)} Jobs after 600 s\n{operator.tail()}")
            time.sleep(0.1)
        to_job = [watcher.jobs[name] - applied[name] for name in applied]

        batch = client.BatchV1Api(api)
        completed: dict[str, float] = {}
        for job in batch.list_namespaced_job(NAMESPACE).items:
            owner = job.metadata.labels["langmerge.io/name"]
            finish_job(
                api,
                NAMESPACE,
                job.metadata.name,
                seconds=60,
                summary=success_summary(f"/artifacts/{NAMESPACE}/{owner}/{job.metadata.name}"),
            )
            completed[owner] = time.monotonic()
        while (
            len(watcher.ready) < len(applied)
            or len([k for k in watcher.jobs if k.startswith("merge:")]) < tasks
        ):
            if time.monotonic() > deadline:
                raise SystemExit(f"{len(watcher.ready)} Ready after 600 s\n{operator.tail()}")
            time.sleep(0.1)
        to_ready = [watcher.ready[name] - completed[name] for name in applied]
        last_merge = max(v for k, v in watcher.jobs.items() if k.startswith("merge:"))
        rss = peak_rss_mb(operator.process.pid) if operator.process else float("nan")
        watcher.stop.set()
        operator.stop()
    results = {
        "adapters": len(applied),
        "merged_models": tasks,
        "apply_seconds": apply_seconds,
        "apply_to_job_p50_s": statistics.median(to_job),
        "apply_to_job_p99_s": percentile(to_job, 0.99),
        "completion_to_ready_p50_s": statistics.median(to_ready),
        "completion_to_ready_p99_s": percentile(to_ready, 0.99),
        "last_completion_to_all_merge_jobs_s": last_merge - max(completed.values()),
        "operator_peak_rss_mb": rss,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("operator_scale_quick.json" if args.quick else "operator_scale.json")).write_text(
        json.dumps(results, indent=2)
    )
    print(json.dumps(results, indent=2))
    for key, value in results.items():
        print(f"RESULT {key}={value:.3f}" if isinstance(value, float) else f"RESULT {key}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
