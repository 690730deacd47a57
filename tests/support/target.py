"""The cluster an end-to-end test runs against: this machine's single node (node.py), or a
user's own scratch cluster (kind, minikube, ...) named by LANGMERGE_E2E_KUBECONFIG. The tests
reach either only through kubectl, helm and the Kubernetes API, so the same tests run against
both; the two differ in how the images reach the nodes and how the artifacts claim is backed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import processes
from tests.support.containers import image
from tests.support.control_plane import install_crds, stop_process
from tests.support.kube import eventually
from tests.support.node import Node

KUBECONFIG_ENV = "LANGMERGE_E2E_KUBECONFIG"
# How a user's cluster gets a locally built image: a command with {archive} (a docker
# archive of the image) and {image}, e.g. `kind load image-archive {archive}` or
# `minikube image load {archive}`. Unset: the nodes already have the images.
IMAGE_LOADER_ENV = "LANGMERGE_E2E_IMAGE_LOADER"
# The StorageClass of the artifacts claim on a user's cluster; unset: the cluster's default.
STORAGE_CLASS_ENV = "LANGMERGE_E2E_STORAGE_CLASS"

POD_USER = 10001  # the uid and gid the chart's and the operator's pods run as
HELM_TIMEOUT_S = 900


class Target:
    """kubectl and helm (the project's pinned builds) against one cluster's kubeconfig."""

    def __init__(self, kubeconfig: Path, binaries: dict[str, Path], workdir: Path) -> None:
        self.kubeconfig, self.binaries, self.workdir = kubeconfig, binaries, workdir

    def kubectl_command(self, *args: str) -> list[str]:
        return [str(self.binaries["kubectl"]), f"--kubeconfig={self.kubeconfig}", *args]

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout_s: float = 300
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.kubectl_command(*args),
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_s,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done

    def apply(self, manifest: str) -> None:
        """`kubectl apply` of YAML or JSON text."""
        self.kubectl("apply", "-f", "-", input=manifest)

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.binaries["helm"]), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=HELM_TIMEOUT_S,
        )
        assert done.returncode == 0, f"helm {args[0]}: {done.stdout}{done.stderr}"
        return done

    def install_crds(self) -> None:
        install_crds(self.kubectl)

    @contextmanager
    def port_forward(self, namespace: str, pod: str, port: int) -> Iterator[int]:
        """`kubectl port-forward` to the pod's port (through the API server and the kubelet,
        so it reaches pods on any cluster); yields the local port."""
        log = self.workdir / f"port-forward-{pod}-{port}.log"
        with log.open("wb") as out:
            process = processes.spawn(
                "kubectl port-forward",
                self.kubectl_command(
                    "port-forward", f"--namespace={namespace}", f"pod/{pod}", f":{port}"
                ),
                out,
            )
        try:

            def forwarding() -> int | None:
                found = re.search(r"127\.0\.0\.1:(\d+) ->", log.read_text())
                if found is None and process.poll() is not None:
                    raise AssertionError(f"kubectl port-forward exited: {log.read_text()}")
                return int(found.group(1)) if found else None

            yield eventually(forwarding, timeout_s=60, what=f"port-forward to {pod}:{port}")
        finally:
            stop_process(process, grace_s=10)

    def create_namespace(self, name: str) -> bool:
        """A namespace under the restricted Pod Security Standard, enforced by admission;
        False when it was there already (an earlier module's: the chart's, say)."""
        exists = self.kubectl("get", "namespace", name, check=False).returncode == 0
        if not exists:
            self.kubectl("create", "namespace", name)
        self.kubectl(
            "label", "namespace", name, "--overwrite",
            "pod-security.kubernetes.io/enforce=restricted",
        )  # fmt: skip
        return not exists

    def load_image(self, role: str) -> str:
        raise NotImplementedError

    def provision_claim(self, namespace: str, claim: str) -> None:
        """A ReadWriteOnce claim of that name in the namespace that pods of POD_USER can
        write to."""
        raise NotImplementedError

    def tails(self) -> str:
        """What a failure message shows of the cluster."""
        raise NotImplementedError

    def close(self) -> None:
        """Leaves the cluster as it was found."""


class NodeTarget(Target):
    """This machine's single node: images imported into its containerd, claims bound to
    static hostPath volumes under the test's folder."""

    def __init__(self, node: Node, workdir: Path) -> None:
        super().__init__(node.plane.kubeconfig, node.plane.binaries, workdir)
        self.node = node

    def load_image(self, role: str) -> str:
        return self.node.load_image(role)

    def provision_claim(self, namespace: str, claim: str) -> None:
        # A hostPath volume ignores fsGroup: the folder is made the pods' user's, as an
        # administrator provisioning such a volume would.
        folder = self.workdir / "volumes" / namespace
        folder.mkdir(parents=True)
        shutil.chown(folder, POD_USER, POD_USER)
        volume = f"langmerge-{namespace}-{claim}"
        self.apply(
            f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {volume}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: {folder}, type: Directory}}
  claimRef: {{namespace: {namespace}, name: {claim}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {claim}, namespace: {namespace}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: {volume}
  resources: {{requests: {{storage: 1Gi}}}}
""",
        )

    def tails(self) -> str:
        return self.node.tails()


class ExternalTarget(Target):
    """A user's scratch cluster: images handed to IMAGE_LOADER_ENV's command, claims from
    its StorageClass; the namespaces the tests made are deleted at the end."""

    def __init__(self, kubeconfig: Path, binaries: dict[str, Path], workdir: Path) -> None:
        super().__init__(kubeconfig, binaries, workdir)
        self.namespaces: list[str] = []

    def create_namespace(self, name: str) -> bool:
        created = super().create_namespace(name)
        if created:  # deleted at the end, once
            self.namespaces.append(name)
        return created

    def load_image(self, role: str) -> str:
        name = image(role)
        loader = os.environ.get(IMAGE_LOADER_ENV)
        if not loader:
            return name
        archive = self.workdir / f"{role}.tar"
        subprocess.run(
            ["podman", "save", "--quiet", "--format", "docker-archive", "-o", str(archive), name],
            check=True,
        )
        try:
            command = loader.format(archive=shlex.quote(str(archive)), image=shlex.quote(name))
            done = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
            assert done.returncode == 0, f"{IMAGE_LOADER_ENV}: {command}\n{done.stderr}"
        finally:
            archive.unlink(missing_ok=True)
        return name

    def provision_claim(self, namespace: str, claim: str) -> None:
        storage_class = os.environ.get(STORAGE_CLASS_ENV)
        chosen = f"storageClassName: {storage_class}" if storage_class else ""
        self.apply(
            f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {claim}, namespace: {namespace}}}
spec:
  accessModes: [ReadWriteOnce]
  {chosen}
  resources: {{requests: {{storage: 1Gi}}}}
""",
        )

    def tails(self) -> str:
        events = self.kubectl(
            "get", "events", "--all-namespaces", "--sort-by=.lastTimestamp", check=False
        )
        return "--- events ---\n" + "\n".join(events.stdout.splitlines()[-30:])

    def close(self) -> None:
        for namespace in reversed(self.namespaces):
            self.kubectl("delete", "namespace", namespace, "--wait=true", check=False)
