"""The end-to-end tests' one-time set-up, run before pytest (`make e2e-prepare`, a step of
`make test`) so that no test's timeout pays for it: the node's Kubernetes binaries, the three
images, the controllers the e2e installs and their images, Argo CD's pieces (run as host
processes), every image imported into the node's containerd. Each step says what it does and
how long it took, and takes seconds when nothing it builds from changed. Where this machine
cannot run the node (not root, say), it says why and does nothing: the e2e tests then skip
with that reason (fail under CI=true).

    python -m tests.support.prepare
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tests.support.containers import IMAGES, build_images, missing_tools
from tests.support.control_plane import REPO
from tests.support.node import CONTROLLERS, Node, clean_stale_node, missing_for_node

T = TypeVar("T")


def step(what: str, action: Callable[[], T]) -> T:
    print(f"e2e-prepare: {what} ...", flush=True)
    started = time.monotonic()
    result = action()
    print(f"e2e-prepare: {what}: done in {time.monotonic() - started:.1f} s", flush=True)
    return result


def run(*command: str) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    missing = missing_tools() + missing_for_node()
    if missing:
        print(f"e2e-prepare: skipped, this machine lacks {', '.join(missing)}", flush=True)
        return 0
    started = time.monotonic()
    step("stale processes and node of earlier test runs", clean_stale_node)
    step(
        "Debian's buildah, podman, runc and mmdebstrap (hack/images.sh --tools)",
        lambda: run("bash", str(REPO / "hack" / "images.sh"), "--tools"),
    )
    # The images (mostly downloads and disk on a first run) build beside the Go builds
    # (mostly CPU): on a brand-new machine the two overlap instead of adding up.
    with ThreadPoolExecutor(max_workers=1) as beside:
        images = beside.submit(step, "the images (hack/images.sh)", build_images)
        step(
            "the node's binaries (hack/control-plane.sh node)",
            lambda: run("bash", str(REPO / "hack" / "control-plane.sh"), "node"),
        )
        step(
            f"the controllers {', '.join(CONTROLLERS)} (hack/controllers.sh)",
            lambda: run("bash", str(REPO / "hack" / "controllers.sh"), *CONTROLLERS),
        )
        step(
            "Argo CD's application controller and repo server, and redis (hack/argocd.sh)",
            lambda: run("bash", str(REPO / "hack" / "argocd.sh")),
        )
        sizes = images.result()
    for name, megabytes in sorted(sizes.items()):
        print(f"RESULT image_size_mb_{name}={megabytes}")
    with (
        tempfile.TemporaryDirectory(prefix="langmerge-prepare-") as workdir,
        Node.store(Path(workdir)) as node,
    ):
        step(
            "importing the images into the node's containerd",
            lambda: node.load_images(*IMAGES, *CONTROLLERS),
        )
    print(f"RESULT e2e_prepare_seconds={time.monotonic() - started:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
