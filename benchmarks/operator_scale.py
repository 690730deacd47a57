"""The operator at scale, against the real control plane (no kubelet: this script finishes
the Jobs the way the Job controller reports them).

For each size, N LanguageAdapters (N/5 tasks x 5 languages) and N/5 MergedModels are applied
as fast as one client can; measured per run: apply -> training Job created (p50, p99), Job
completion -> adapter Ready (p50, p99), the merges that follow, the operator's peak RSS, its
API requests per adapter (its own langmerge_api_requests_total; kopf's watches aside) and its
CPU-seconds per adapter. Each size runs --repeat times on a fresh API server; the medians and
the spread are printed with the load average. Usage:

    python benchmarks/operator_scale.py                  # 200, 1000 and 2000 adapters, 3 runs each
    python benchmarks/operator_scale.py --sizes 200 --repeat 1
    python benchmarks/operator_scale.py --quick          # 40 adapters, one run

Ends with RESULT name=value lines and writes benchmarks/results/operator_scale.json."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client
from tests.support.objects import GROUP, LANGUAGES, VERSION, adapter_manifest, merged_manifest
from tests.support.operator import OperatorProcess, finish_job, success_summary

RESULTS = Path(__file__).resolve().parent / "results"
NAMESPACE = "scale"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _stream(list_call: Callable[..., Any], *args: Any) -> Iterator[dict[str, Any]]:
    """Every object the list call returns, then every change, as raw dicts: one LIST, then
    a watch that resumes from the last version seen (relists only when it is too old)."""
    version = None
    while True:
        if version is None:
            reply = json.loads(list_call(*args, _preload_content=False).data)
            version = reply["metadata"]["resourceVersion"]
            yield from reply["items"]
        try:
            for event in watch.Watch(return_type="object").stream(
                list_call, *args, resource_version=version, timeout_seconds=60
            ):
                body = event["raw_object"]
                version = body["metadata"]["resourceVersion"]
                yield body
        except ApiException as error:
            if error.status != 410:
                raise
            version = None


def _watch(kubeconfig: str, kind: str, seen: Any) -> None:
    """In its own process (so the applying client never delays what it sees): puts
    (key, monotonic time) when a training or merge Job first appears, or an adapter first
    turns Ready. CLOCK_MONOTONIC is one clock for every process of the machine."""
    api = api_client(Path(kubeconfig))
    if kind == "jobs":
        stream = _stream(client.BatchV1Api(api).list_namespaced_job, NAMESPACE)
    else:
        custom = client.CustomObjectsApi(api)
        stream = _stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, "languageadapters"
        )
    reported: set[str] = set()
    for body in stream:
        key = None
        if kind == "jobs":
            labels = body["metadata"].get("labels") or {}
            owner = labels.get("langmerge.io/name")
            if owner:
                key = owner if labels.get("langmerge.io/role") == "train" else f"merge:{owner}"
        elif any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (body.get("status") or {}).get("conditions") or []
        ):
            key = body["metadata"]["name"]
        if key is not None and key not in reported:
            reported.add(key)
            seen.put((kind, key, time.monotonic()))


class Watcher:
    """When each Job first appears and each adapter first turns Ready, seen by two watching
    processes."""

    def __init__(self, kubeconfig: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.seen = context.Queue()
        self.processes = [
            context.Process(target=_watch, args=(str(kubeconfig), kind, self.seen), daemon=True)
            for kind in ("jobs", "adapters")
        ]
        self.jobs: dict[str, float] = {}
        self.ready: dict[str, float] = {}

    def start(self) -> None:
        for process in self.processes:
            process.start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            kind, key, moment = self.seen.get()
            (self.jobs if kind == "jobs" else self.ready)[key] = moment

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()

    def merges(self) -> int:
        return len([k for k in self.jobs if k.startswith("merge:")])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def api_requests(metrics_text: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    pattern = r'^langmerge_api_requests_total\{resource="([^"]+)",verb="([^"]+)"\} (\S+)$'
    for resource, verb, value in re.findall(pattern, metrics_text, flags=re.M):
        counts[f"{verb} {resource}"] = float(value)
    return counts


def wait_for(condition: Callable[[], bool], deadline: float, what: str, tail: Callable[[], str]):
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}\n{tail()}")
        time.sleep(0.1)


def one_run(adapters: int) -> dict[str, Any]:
    tasks = adapters // len(LANGUAGES)
    patience = 120 + adapters * 0.5
    with (
        tempfile.TemporaryDirectory(prefix="operator-scale-") as tmp,
        ControlPlane(Path(tmp) / "cp") as plane,
    ):
        plane.install_crds()
        api = api_client(plane.kubeconfig)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        operator = OperatorProcess(plane, Path(tmp)).start()
        assert operator.process is not None
        pid = operator.process.pid
        cpu_at_start = cpu_seconds(pid)
        watcher = Watcher(plane.kubeconfig)
        watcher.start()
        time.sleep(3)  # the watching processes start
        custom = client.CustomObjectsApi(api)
        applied: dict[str, float] = {}
        started = time.monotonic()
        for task_index in range(tasks):
            task = f"task{task_index:04d}"
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
        deadline = time.monotonic() + patience
        wait_for(
            lambda: all(name in watcher.jobs for name in applied),
            deadline,
            "every training Job",
            operator.tail,
        )
        to_job = [watcher.jobs[name] - applied[name] for name in applied]

        # Finish the Jobs from a few client threads, as a Job controller finishing many would.
        batch = client.BatchV1Api(api)
        completed: dict[str, float] = {}

        def finish(job: Any) -> None:
            owner = job.metadata.labels["langmerge.io/name"]
            finish_job(
                api,
                NAMESPACE,
                job.metadata.name,
                seconds=60,
                summary=success_summary(f"/artifacts/{NAMESPACE}/{owner}/{job.metadata.name}"),
            )
            completed[owner] = time.monotonic()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(finish, batch.list_namespaced_job(NAMESPACE).items))
        wait_for(
            lambda: len(watcher.ready) >= len(applied) and watcher.merges() >= tasks,
            deadline,
            "every adapter Ready and every merge Job",
            operator.tail,
        )
        to_ready = [watcher.ready[name] - completed[name] for name in applied]
        last_merge = max(v for k, v in watcher.jobs.items() if k.startswith("merge:"))
        requests = api_requests(operator.metrics())
        result = {
            "adapters": len(applied),
            "merged_models": tasks,
            "apply_seconds": apply_seconds,
            "apply_to_job_p50_s": statistics.median(to_job),
            "apply_to_job_p99_s": percentile(to_job, 0.99),
            "completion_to_ready_p50_s": statistics.median(to_ready),
            "completion_to_ready_p99_s": percentile(to_ready, 0.99),
            "last_completion_to_all_merge_jobs_s": last_merge - max(completed.values()),
            "operator_peak_rss_mb": peak_rss_mb(pid),
            "operator_cpu_s_per_adapter": (cpu_seconds(pid) - cpu_at_start) / len(applied),
            "api_requests_per_adapter": sum(requests.values()) / len(applied),
            "api_requests": requests,
        }
        watcher.stop()
        operator.stop()
        return result


SUMMARISED = [
    "apply_to_job_p50_s",
    "apply_to_job_p99_s",
    "completion_to_ready_p50_s",
    "completion_to_ready_p99_s",
    "last_completion_to_all_merge_jobs_s",
    "operator_peak_rss_mb",
    "operator_cpu_s_per_adapter",
    "api_requests_per_adapter",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 2000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 adapters, one run")
    args = parser.parse_args()
    sizes, repeat = ([40], 1) if args.quick else (args.sizes, args.repeat)
    curve = []
    for size in sizes:
        load_before = load_average()
        runs = []
        for index in range(repeat):
            run = one_run(size)
            runs.append(run)
            print(
                f"{size} adapters, run {index + 1}/{repeat}: "
                + ", ".join(f"{k} {run[k]:.2f}" for k in SUMMARISED),
                flush=True,
            )
        summary: dict[str, Any] = {
            "adapters": size,
            "merged_models": size // len(LANGUAGES),
            "runs": repeat,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "api_requests_last_run": runs[-1]["api_requests"],
        }
        for key in SUMMARISED:
            values = [r[key] for r in runs]
            summary[key] = statistics.median(values)
            summary[f"{key}_range"] = [min(values), max(values)]
        curve.append(summary)
    RESULTS.mkdir(exist_ok=True)
    name = "operator_scale_quick.json" if args.quick else "operator_scale.json"
    (RESULTS / name).write_text(json.dumps(curve, indent=2))

    print(f"\nmedians of {repeat} run(s) per size; range in brackets")
    header = ["adapters", *SUMMARISED, "load average"]
    print(" | ".join(header))
    for row in curve:
        cells = [str(row["adapters"])]
        for key in SUMMARISED:
            low, high = row[f"{key}_range"]
            cells.append(f"{row[key]:.2f} [{low:.2f}-{high:.2f}]")
        cells.append(f"{row['load_average_before']} -> {row['load_average_after']}")
        print(" | ".join(cells))
    for row in curve:
        for key in SUMMARISED:
            print(f"RESULT adapters_{row['adapters']}_{key}={row[key]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
