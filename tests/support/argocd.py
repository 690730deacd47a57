"""Argo CD's health-check engine for the tests: hack/argocd-health (gopher-lua, Lua 5.1, the
libraries Argo CD opens) built with the go command from the Go module proxy, once per machine
and source version, into ~/.cache/langmerge/bin/."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO, require

SOURCE = REPO / "hack" / "argocd-health"
CUSTOMIZATIONS = REPO / "charts" / "langmerge" / "files" / "argocd" / "resource_customizations"


def runner() -> Path:
    go = shutil.which("go")
    require(go is not None, "the go command is missing (it builds hack/argocd-health)")
    assert go is not None
    digest = hashlib.sha256(
        b"".join((SOURCE / name).read_bytes() for name in ("main.go", "go.mod", "go.sum"))
    ).hexdigest()[:12]
    binary = Path.home() / ".cache" / "langmerge" / "bin" / f"argocd-health-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".tmp")
        built = subprocess.run(
            [go, "build", "-mod=readonly", "-o", str(partial), "."],
            cwd=SOURCE,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"},
            check=False,
        )
        require(built.returncode == 0, f"go build hack/argocd-health failed: {built.stderr}")
        partial.replace(binary)
    return binary


def run_health_tests(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(runner()), str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
