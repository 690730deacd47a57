"""A real Prometheus (Debian's package) for the tests: the chart's alert rules loaded, one
scrape job, queried over its HTTP API."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require
from tests.support import processes
from tests.support.control_plane import REPO, free_port, stop_process

FILES = REPO / "charts" / "langmerge" / "files"


def binary(name: str) -> str:
    path = shutil.which(name)
    require(
        path is not None,
        f"{name} is not installed (Debian package prometheus; make test installs it)",
    )
    assert path is not None
    return path


def static_scrape(target: str) -> dict[str, Any]:
    """The operator at a fixed host:port (a host process)."""
    return {"job_name": "langmerge", "static_configs": [{"targets": [target]}]}


def file_scrape(targets_file: Path) -> dict[str, Any]:
    """Targets from a file that the test writes, re-read within a second of a change.
    Debian's Prometheus is built without Kubernetes service discovery, so the test resolves
    the chart's metrics Service through the API as `kubernetes_sd_configs` would
    (tests/e2e: publish_service_targets)."""
    return {
        "job_name": "langmerge",
        "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
    }


class Prometheus:
    def __init__(self, workdir: Path, scrape: dict[str, Any]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(FILES / "alerts.yaml")],
            "scrape_configs": [scrape],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self.log = self.log_path.open("wb")
        self.process = processes.spawn(
            "prometheus",
            [
                binary("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            self.log,
        )

    def query(self, expr: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]

    def api(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/-/ready", timeout=2
            ) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.process, grace_s=30)
        self.log.close()
