"""A namespace's artifacts claim as the end-to-end tests see it: through a pod that mounts it
(the loader), never through a node's disk, so the same tests run on a user's cluster. Files go
in and out as tar streams over `kubectl exec`, as the pods' user, under the restricted Pod
Security Standard."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

from tests.support.containers import image
from tests.support.target import POD_USER, Target

MOUNT = PurePosixPath("/artifacts")  # where the chart's Jobs mount the claim, too
LOADER = "artifacts-loader"
EXEC_TIMEOUT_S = 300


def loader_pod(namespace: str, claim: str) -> dict[str, object]:
    """A pod that only mounts the claim and waits, in the trainer image (it has tar)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": LOADER, "namespace": namespace},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": POD_USER,
                "runAsGroup": POD_USER,
                "fsGroup": POD_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "loader",
                    "image": image("trainer"),
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "infinity"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "artifacts", "mountPath": str(MOUNT)}],
                }
            ],
            "volumes": [{"name": "artifacts", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


class ArtifactVolume:
    def __init__(self, target: Target, namespace: str, claim: str = "langmerge-artifacts") -> None:
        self.target, self.namespace, self.claim = target, namespace, claim

    def start(self, timeout_s: float = 900) -> ArtifactVolume:
        """Provisions the claim and starts the loader; returns once it runs."""
        self.target.provision_claim(self.namespace, self.claim)
        self.target.apply(json.dumps(loader_pod(self.namespace, self.claim)))
        self.target.kubectl(
            "wait", f"--namespace={self.namespace}", "--for=condition=Ready", f"pod/{LOADER}",
            f"--timeout={int(timeout_s)}s", timeout_s=timeout_s + 30,
        )  # fmt: skip
        return self

    def _exec(self, *command: str, stdin: bytes | None = None) -> bytes:
        interactive = ["-i"] if stdin is not None else []
        kubectl = self.target.kubectl_command(
            "exec", f"--namespace={self.namespace}", *interactive, LOADER, "--", *command
        )
        done = subprocess.run(
            kubectl, input=stdin, capture_output=True, check=False, timeout=EXEC_TIMEOUT_S
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} in {self.namespace}/{LOADER} exited {done.returncode}: "
                f"{done.stderr.decode(errors='replace')}"
            )
        return done.stdout

    def put(self, source: Path, destination: str) -> None:
        """Copies a file or a folder's tree to MOUNT/destination."""
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w") as archive:
            archive.add(source, arcname=destination)
        self._exec("tar", "-x", "-f", "-", "-C", str(MOUNT), stdin=stream.getvalue())

    def fetch(self, path: str, into: Path) -> Path:
        """Copies the file or folder at path (under MOUNT) into the local folder `into`;
        returns the local copy."""
        relative = PurePosixPath(path).relative_to(MOUNT)
        stream = self._exec("tar", "-c", "-f", "-", "-C", str(MOUNT), str(relative))
        with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
            archive.extractall(into, filter="data")
        return into / relative

    def owner(self, path: str) -> int:
        """The uid that owns the file at path."""
        return int(self._exec("stat", "-c", "%u", path).decode().strip())

    def is_file(self, path: str) -> bool:
        try:
            self._exec("test", "-f", path)
        except AssertionError:
            return False
        return True
