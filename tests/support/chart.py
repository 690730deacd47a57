"""The Helm chart as the tests render it: the helm built from the Go module proxy, the chart
in charts/langmerge, the Kubernetes version it is tested against."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from tests.conftest import REPO
from tests.support.control_plane import ControlPlane, pinned

CHART = REPO / "charts" / "langmerge"
# `helm template` assumes Kubernetes v1.20 unless told; `helm install` asks the cluster.
KUBE_VERSION = pinned("KUBERNETES_VERSION")
ALL_TOGGLES = ["-f", str(REPO / "tests" / "chart" / "every-toggle.yaml")]


def helm(plane: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(plane.binaries["helm"]), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def render(plane: ControlPlane, *values: str) -> list[dict[str, Any]]:
    out = helm(
        plane,
        "template",
        "lm",
        str(CHART),
        "--namespace",
        "langmerge-system",
        "--kube-version",
        KUBE_VERSION,
        *values,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]
