"""Running the project's images with podman + runc under the constraints of the pod spec the
operator generates: the image, command, env, volumes, user, read-only root, dropped
capabilities, memory limit and a termination-message file, all taken from the Job itself.
This checks what an image must survive in a pod; the kubelet itself is not in this picture."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.control_plane import REPO

IMAGES = ("operator", "trainer", "merger")
# runc refuses limits above the host's hard limits (field-notes.md).
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]


def image(name: str) -> str:
    return f"localhost/langmerge-{name}:dev"


def build_images() -> dict[str, int]:
    """Builds the three images (hack/images.sh; seconds when nothing changed); their sizes."""
    done = subprocess.run(
        ["bash", str(REPO / "hack" / "images.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"hack/images.sh failed ({done.returncode}):\n{done.stderr[-4000:]}")
    sizes = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT image_size_mb_"):
            name, _, value = line.removeprefix("RESULT image_size_mb_").partition("=")
            sizes[name] = int(value)
    return sizes


def missing_tools() -> list[str]:
    """What hack/images.sh needs and cannot install itself here."""
    can_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    return [] if can_install else [t for t in ("buildah", "podman", "runc") if not shutil.which(t)]


@dataclass
class Exit:
    code: int
    output: str
    termination_message: str
    oom_killed: bool  # what the kubelet reports as reason OOMKilled


def podman_flags(pod: dict[str, Any], volumes: dict[str, Path]) -> list[str]:
    """podman run flags for the pod's first container. volumes: host folders standing in for
    the pod's persistentVolumeClaim volumes, by volume name."""
    container = pod["containers"][0]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    flags = ["--runtime", "runc", "--rm", "--network", "none", *ULIMITS]
    if security.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if "runAsUser" in security:
        flags += ["--user", f"{security['runAsUser']}:{security.get('runAsGroup', 0)}"]
    if "fsGroup" in security:
        flags += ["--group-add", str(security["fsGroup"])]
    for capability in security.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", capability]
    if security.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    memory = container.get("resources", {}).get("limits", {}).get("memory")
    if memory:
        flags += ["--memory", memory.replace("Mi", "m").replace("Gi", "g")]
    for variable in container.get("env", []):
        flags += ["--env", f"{variable['name']}={variable['value']}"]
    by_name = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = by_name[mount["name"]]
        if "emptyDir" in volume:
            flags += ["--mount", f"type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777"]
        elif "persistentVolumeClaim" in volume:
            flags += ["--volume", f"{volumes[mount['name']]}:{mount['mountPath']}:rw"]
        else:
            raise ValueError(f"volume {mount['name']}: only emptyDir and PVC are mapped")
    return flags


def run_pod(
    pod: dict[str, Any],
    workdir: Path,
    volumes: dict[str, Path],
    extra_flags: list[str] | None = None,
    timeout_s: float = 1800,
) -> Exit:
    """Runs the pod's container to completion; its termination message is read back from the
    file mounted at the container's terminationMessagePath, as the kubelet does."""
    container = pod["containers"][0]
    run_dir = workdir / f"run-{len(list(workdir.glob('run-*')))}"
    run_dir.mkdir()
    message = run_dir / "termination-log"
    message.write_text("")
    message.chmod(0o666)
    path = container.get("terminationMessagePath", "/dev/termination-log")
    command = container.get("command") or []
    flags = [*podman_flags(pod, volumes), "--volume", f"{message}:{path}:rw"]
    done = subprocess.run(
        [
            "podman",
            "run",
            *flags,
            *(extra_flags or []),
            "--entrypoint",
            command[0],
            container["image"],
            *command[1:],
            *container.get("args", []),
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=run_dir,  # conmon drops a file named `oom` in its working folder after an OOM kill
    )
    return Exit(
        done.returncode,
        done.stdout + done.stderr,
        message.read_text(),
        (run_dir / "oom").exists(),
    )
