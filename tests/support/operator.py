"""Running the operator against the test control plane, and playing the Job controller's and
kubelet's part: pods that terminate with a summary, Job status with the real conditions."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client

from tests.support import processes
from tests.support.control_plane import free_port
from tests.support.kube import eventually

IMAGES = {
    "LANGMERGE_TRAINER_IMAGE": "registry.test/trainer:1",
    "LANGMERGE_MERGER_IMAGE": "registry.test/merger:1",
}


class Cluster(Protocol):
    """What the operator is pointed at: a ControlPlane, or an e2e Target."""

    @property
    def kubeconfig(self) -> Path: ...


class OperatorProcess:
    """`langmerge operator` in a subprocess (so tests can SIGKILL it)."""

    def __init__(
        self,
        plane: Cluster,
        workdir: Path,
        kubeconfig: Path | None = None,
        env: dict[str, str] | None = None,
        namespaces: list[str] | None = None,
    ) -> None:
        self.plane, self.workdir = plane, workdir
        self.namespaces = namespaces or []
        self.kubeconfig = kubeconfig or plane.kubeconfig
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.env = {
            **os.environ,
            **IMAGES,
            "KUBECONFIG": str(self.kubeconfig),
            "LANGMERGE_METRICS_PORT": str(self.metrics_port),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.workdir / "operator.log"

    def start(self) -> OperatorProcess:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n--- start {self.starts} ---\n".encode())
            self.process = processes.spawn(
                "langmerge-operator",
                [
                    sys.executable,
                    "-m",
                    "langmerge.operator.cli",
                    "operator",
                    "--liveness",
                    f"http://127.0.0.1:{self.liveness_port}/healthz",
                    *(arg for n in self.namespaces for arg in ("--namespace", n)),
                ],
                out,
                env=self.env,
            )
        try:
            eventually(self._serving, timeout_s=60, what="the operator to serve metrics")
        except AssertionError as error:
            self.kill()  # a caller whose start() raised has nothing to stop
            raise AssertionError(f"{error}\n{self.tail()}") from None
        return self

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1):
                return True
        except OSError:
            return False

    def healthz(self) -> int:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=5
        ) as reply:
            return int(reply.status)

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as reply:
            return str(reply.read().decode())

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        if self.process:
            processes.forget(self.process)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process:
            processes.forget(self.process)

    def resync_passes(self) -> int:
        """How many periodic resync passes this operator has logged (its one line per pass):
        a test waits for real passes instead of sleeping."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        found = re.findall(r"resync pass (\d+):", text)
        return int(found[-1]) if found else 0

    def tail(self, lines: int = 60) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
            if self.log.exists()
            else ""
        )


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def terminated_pod(
    core: client.CoreV1Api,
    namespace: str,
    prefix: str,
    labels: dict[str, str],
    container: str,
    terminated: dict[str, Any],
) -> None:
    """A pod whose one container ended as `terminated` says, as the kubelet reports it."""
    name = f"{prefix}-{int(time.monotonic_ns()) % 100000:05d}"
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": container, "image": "registry.test/x:1"}],
            },
        },
    )
    succeeded = terminated["exitCode"] == 0
    core.patch_namespaced_pod_status(
        name,
        namespace,
        {
            "status": {
                "phase": "Succeeded" if succeeded else "Failed",
                "containerStatuses": [
                    {
                        "name": container,
                        "ready": False,
                        "restartCount": 0,
                        "image": "registry.test/x:1",
                        "imageID": "",
                        "state": {"terminated": terminated},
                    }
                ],
            }
        },
    )


def finish_job(
    api: client.ApiClient,
    namespace: str,
    job_name: str,
    *,
    succeed: bool = True,
    summary: dict[str, Any] | None = None,
    seconds: float = 3600,
    exit_code: int | None = None,
    reason: str | None = None,
    message: str | None = None,
    job_failure: str | None = None,
) -> None:
    """Ends a Job the way the Job controller and kubelet would report it."""
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    job = batch.read_namespaced_job(job_name, namespace)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(seconds=seconds)
    labels = {
        **(job.spec.template.metadata.labels or {}),
        "job-name": job_name,
        "batch.kubernetes.io/job-name": job_name,
    }
    terminated: dict[str, Any] = {
        "exitCode": exit_code if exit_code is not None else (0 if succeed else 1),
        "reason": reason or ("Completed" if succeed else "Error"),
        "startedAt": stamp(start),
        "finishedAt": stamp(end),
    }
    if message is not None:
        terminated["message"] = message
    elif summary is not None:
        terminated["message"] = json.dumps(summary)
    terminated_pod(core, namespace, job_name, labels, "main", terminated)
    now = stamp(end)

    def condition(kind: str, why: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": "True",
            "reason": why,
            "message": "",
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }

    if succeed:
        status = {
            "startTime": stamp(start),
            "completionTime": now,
            "succeeded": 1,
            "active": 0,
            "ready": 0,
            "conditions": [
                condition("SuccessCriteriaMet", "CompletionsReached"),
                condition("Complete", "CompletionsReached"),
            ],
        }
    else:
        why = job_failure or "BackoffLimitExceeded"
        status = {
            "startTime": stamp(start),
            "failed": 1,
            "active": 0,
            "ready": 0,
            "conditions": [condition("FailureTarget", why), condition("Failed", why)],
        }
    batch.patch_namespaced_job_status(job_name, namespace, {"status": status})


def success_summary(uri: str, sha: str = "a" * 64, **extra: Any) -> dict[str, Any]:
    return {
        "result": "Succeeded",
        "output": {"uri": uri, "sha256": sha},
        "wallSeconds": 3600,
        **extra,
    }
