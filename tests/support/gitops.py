"""GitOps for the e2e tests: a git repository on this machine that Argo CD reads by file://,
and Argo CD's application controller and repo server (hack/argocd.sh builds them from the Go
module proxy) running as host processes against the cluster's kubeconfig, as upstream's own
e2e (its Procfile) runs them, with redis beside them.

Argo CD gets langmerge's health checks the way the README tells a user to install them: the
chart's `argocd.healthChecks` values merged into the `argocd-cm` ConfigMap (kubectl patch)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Protocol

import yaml

from tests.conftest import require
from tests.support import processes
from tests.support.control_plane import REPO, free_port, stop_process
from tests.support.kube import eventually

NAMESPACE = "argocd"
PART_OF = {"app.kubernetes.io/part-of": "argocd"}  # Argo CD reads only labelled settings
CHART_VALUES = REPO / "charts" / "langmerge" / "values.yaml"
# Argo CD polls git every app-resync seconds; the tests also ask for a refresh after each
# commit (what a git webhook does), so this is only the fallback.
RESYNC_S = 10


class Cluster(Protocol):
    """What Argo CD is pointed at: a ControlPlane, or an e2e Target."""

    binaries: dict[str, Path]

    @property
    def kubeconfig(self) -> Path: ...

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> Any: ...


def built() -> dict[str, Path]:
    """hack/argocd.sh's answer: ARGOCD (the binary), MODULE (Argo CD's source), REDIS. Skips
    (fails under CI=true) where it cannot build them or install redis, or git is missing."""
    require(shutil.which("git") is not None, "git is missing (Argo CD reads the repository)")
    done = subprocess.run(
        ["bash", str(REPO / "hack" / "argocd.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    require(done.returncode == 0, f"hack/argocd.sh failed:\n{done.stderr[-4000:]}")
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {key: Path(value) for key, value in pairs}


def health_checks() -> dict[str, str]:
    """The chart's `argocd.healthChecks` values: what the README tells a user to copy into
    argocd-cm."""
    values = yaml.safe_load(CHART_VALUES.read_text())
    return dict(values["argocd"]["healthChecks"])


class GitRepository:
    """A git repository with one branch, main, that Argo CD reads as file://PATH."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main")

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@langmerge.test", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def commit(self, files: dict[str, str], message: str) -> str:
        """Writes the files (path relative to the repository: text) and commits them; the
        commit's sha."""
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", message)
        return self.git("rev-parse", "HEAD")


class ArgoCD:
    """Argo CD's CRDs, settings and `default` AppProject in NAMESPACE, and its application
    controller, repo server and redis as host processes; stop() ends the processes."""

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        self.cluster, self.kubeconfig, self.workdir = cluster, cluster.kubeconfig, workdir
        self.helm = cluster.binaries["helm"]
        self.paths = built()
        self.crds = self.paths["MODULE"] / "manifests" / "crds"
        self.redis_port, self.repo_port = free_port(), free_port()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def kubectl(self, *args: str, input: str | None = None) -> str:
        done = self.cluster.kubectl(*args, input=input, check=False)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return str(done.stdout)

    def log(self, piece: str) -> Path:
        return self.workdir / f"{piece}.log"

    def install(self) -> None:
        self.cluster.kubectl("create", "namespace", NAMESPACE, check=False)
        # The Application CRD is too large for client-side apply's annotation.
        self.kubectl("apply", "--server-side", "-f", str(self.crds / "application-crd.yaml"))
        self.kubectl("apply", "--server-side", "-f", str(self.crds / "appproject-crd.yaml"))
        for crd in ("applications.argoproj.io", "appprojects.argoproj.io"):
            eventually(lambda crd=crd: self._established(crd), timeout_s=120, what=f"{crd} served")
        documents: list[dict[str, Any]] = [
            _object(
                "v1", "ConfigMap", "argocd-cm", data={"timeout.reconciliation": f"{RESYNC_S}s"}
            ),
            _object("v1", "ConfigMap", "argocd-cmd-params-cm", data={}),
            _object("v1", "ConfigMap", "argocd-rbac-cm", data={}),
            _object("v1", "ConfigMap", "argocd-tls-certs-cm", data={}),
            _object("v1", "ConfigMap", "argocd-ssh-known-hosts-cm", data={}),
            _object("v1", "ConfigMap", "argocd-gpg-keys-cm", data={}),
            _object("v1", "Secret", "argocd-secret", stringData={"server.secretkey": "e2e"}),
            # Only Argo CD's API server creates the default project; this install has none.
            _object(
                "argoproj.io/v1alpha1",
                "AppProject",
                "default",
                spec={
                    "sourceRepos": ["*"],
                    "destinations": [{"server": "*", "namespace": "*"}],
                    "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                },
            ),
        ]
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))
        # What the README tells a user: the chart's health checks merged into argocd-cm.
        patch = self.workdir / "health-checks-patch.json"
        patch.write_text(json.dumps({"data": health_checks()}))
        self.kubectl(
            f"--namespace={NAMESPACE}", "patch", "configmap", "argocd-cm",
            "--type=merge", f"--patch-file={patch}",
        )  # fmt: skip

    def _established(self, crd: str) -> bool:
        # (kubectl wait fails outright on a CRD that has no conditions yet)
        body = json.loads(self.kubectl("get", f"crd/{crd}", "-o", "json"))
        conditions = (body.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    def start(self) -> ArgoCD:
        data = self.workdir / "data"
        for folder in ("tls", "ssh", "gpg/keys", "gpg/source", "plugins", "bin", "tmp"):
            (data / folder).mkdir(parents=True, exist_ok=True)
        # The repo server runs this script on every revision (upstream's image has it in
        # /usr/local/bin); the module cache holds it without the executable bit.
        wrapper = data / "bin" / "git-verify-wrapper.sh"
        shutil.copyfile(self.paths["MODULE"] / "hack" / "git-verify-wrapper.sh", wrapper)
        wrapper.chmod(0o755)
        common_env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            # The in-cluster destination (https://kubernetes.default.svc) through the
            # kubeconfig, as upstream's Procfile runs Argo CD outside a pod.
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_TLS_DATA_PATH": str(data / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(data / "ssh"),
            "ARGOCD_GNUPGHOME": str(data / "gpg" / "keys"),
            "ARGOCD_GPG_DATA_PATH": str(data / "gpg" / "source"),
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_PLUGINSOCKFILEPATH": str(data / "plugins"),
            # The wrapper above, and helm for Helm sources: the project's pinned build.
            "PATH": os.pathsep.join([str(data / "bin"), str(self.helm.parent), os.environ["PATH"]]),
            "HOME": str(data),
            "TMPDIR": str(data / "tmp"),  # the repo server's checkouts
        }
        redis = f"127.0.0.1:{self.redis_port}"
        self._spawn(
            "redis",
            [str(self.paths["REDIS"]), "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            common_env,
        )  # fmt: skip
        self._spawn(
            "repo-server",
            [str(self.paths["ARGOCD"]), "--port", str(self.repo_port), "--redis", redis,
             # v3.6.1 refuses --disable-tls beside its default mTLS CA path: clear it
             "--disable-tls", "--client-ca-path=", "--metrics-port", str(free_port()),
             "--logformat", "text"],
            {**common_env, "ARGOCD_BINARY_NAME": "argocd-repo-server"},
        )  # fmt: skip
        self._spawn(
            "application-controller",
            [str(self.paths["ARGOCD"]), f"--namespace={NAMESPACE}", "--redis", redis,
             "--repo-server", f"127.0.0.1:{self.repo_port}", "--repo-server-plaintext",
             "--metrics-port", str(free_port()), "--app-resync", str(RESYNC_S),
             "--app-resync-jitter", "0", "--self-heal-timeout-seconds", "2",
             # each resource's health (status and message) in the Application, where the
             # tests and `kubectl get application` read it (this install has no API server)
             "--persist-resource-health",
             "--logformat", "text"],
            {**common_env, "ARGOCD_BINARY_NAME": "argocd-application-controller"},
        )  # fmt: skip
        return self

    def _spawn(self, piece: str, command: list[str], env: dict[str, str]) -> None:
        with self.log(piece).open("ab") as out:
            self._processes[piece] = processes.spawn(f"argocd-{piece}", command, out, env=env)

    def alive(self) -> None:
        for piece, process in self._processes.items():
            if process.poll() is not None:
                raise AssertionError(
                    f"argocd {piece} exited with {process.returncode}\n{self.tails()}"
                )

    def tails(self, lines: int = 25) -> str:
        parts = []
        for piece in self._processes:
            text = self.log(piece).read_text(errors="replace") if self.log(piece).exists() else ""
            parts.append(f"--- {piece} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    def stop(self) -> None:
        for process in reversed(self._processes.values()):
            stop_process(process, grace_s=10)
        self._processes.clear()


def _object(api_version: str, kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(PART_OF)},
        **fields,
    }


def application(
    name: str, repo: GitRepository, path: str, namespace: str, **spec: Any
) -> dict[str, Any]:
    """An Application in NAMESPACE over the repository's folder, into the namespace."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url, "path": path, "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
            **spec,
        },
    }


def wait_for(probe: Any, what: str, argocd: ArgoCD, timeout_s: float) -> Any:
    def checked() -> Any:
        argocd.alive()
        return probe()

    try:
        return eventually(checked, timeout_s=timeout_s, interval_s=1, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{argocd.tails()}") from None
