"""A real Kubernetes control plane for tests and benchmarks: etcd and kube-apiserver on free
loopback ports, RBAC on, certificates and service-account keys generated per run.

There is no kubelet, scheduler or controller-manager: tests play the controllers' part
(completing Jobs, for instance) by writing status the way those controllers do.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support import processes

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("kube-apiserver", "etcd", "kubectl", "helm")
SERVICE_CIDR = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: the first address of SERVICE_CIDR


class ControlPlaneMissingError(RuntimeError):
    """The binaries are missing and could not be built here."""


def _tool_dir_from_assets(tool: str) -> Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / tool).is_file():
        return Path(assets)
    return None


def pinned(name: str) -> str:
    """A version pinned in hack/versions.env."""
    for line in (REPO / "hack" / "versions.env").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == name:
            return value.strip()
    raise KeyError(f"{name} is not pinned in hack/versions.env")


def find_binaries() -> dict[str, Path]:
    """Paths of the control-plane tools: KUBEBUILDER_ASSETS first (envtest's convention), then
    the pinned builds in the cache (built by hack/control-plane.sh when missing)."""
    found: dict[str, Path] = {}
    missing = []
    for tool in TOOLS:
        assets = _tool_dir_from_assets(tool)
        if assets is not None:
            found[tool] = assets / tool
        else:
            missing.append(tool)
    if missing:
        if shutil.which("go") is None:
            raise ControlPlaneMissingError(
                f"{', '.join(missing)} not found and Go is not installed to build them "
                "(set KUBEBUILDER_ASSETS or install Go, then run hack/control-plane.sh)"
            )
        result = subprocess.run(
            ["bash", str(REPO / "hack" / "control-plane.sh")],
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ControlPlaneMissingError(
                f"hack/control-plane.sh failed:\n{result.stderr[-3000:]}"
            )
        cache = Path(result.stdout.strip().splitlines()[-1])
        for tool in missing:
            found[tool] = cache / tool
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after grace_s; nothing for a process already gone. Either way it
    leaves the registry of running test processes (processes.py)."""
    if process is None:
        return
    processes.forget(process)
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server_ips: tuple[str, ...] = (),
    server_names: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usages = (
            [x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            if client
            else [x509.ExtendedKeyUsageOID.SERVER_AUTH]
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server_ips or server_names:
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips
        ]
        sans += [x509.DNSName(name) for name in server_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def install_crds(kubectl: Callable[..., object], folder: Path | None = None) -> None:
    """Applies langmerge's CRDs with that kubectl and waits until the API server serves them."""
    kubectl("apply", "--server-side", "-f", str(folder or REPO / "crds"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/languageadapters.langmerge.io",
        "crd/mergedmodels.langmerge.io",
        "--timeout=60s",
    )


@dataclass
class ControlPlane:
    """etcd + kube-apiserver in a work directory; use as a context manager or start()/stop()."""

    workdir: Path
    binaries: dict[str, Path] = field(default_factory=find_binaries)
    # Where pods reach the API server (a real node's in-cluster clients, through the
    # `kubernetes` Service and kube-proxy); None: loopback only, as the tests without a node.
    pod_address: str | None = None
    etcd_port: int = 0
    apiserver_port: int = 0
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _etcd_peer_port: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    def log(self, component: str) -> Path:
        return self.workdir / f"{component}.log"

    # --- certificates -------------------------------------------------------------------
    def _write_pki(self) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca_name = _name("langmerge-test-ca")
        ca = _certificate(ca_name, ca_key, None, ca=True)
        serving_key = _key()
        serving = _certificate(
            _name("kube-apiserver"),
            serving_key,
            (ca_name, ca_key),
            server_ips=("127.0.0.1", SERVICE_IP, *([self.pod_address] if self.pod_address else [])),
            server_names=("localhost", "kubernetes", "kubernetes.default.svc"),
        )
        admin_key = _key()
        admin = _certificate(
            _name("admin", "system:masters"), admin_key, (ca_name, ca_key), client=True
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        files = {
            "ca.crt": _pem_cert(ca),
            "ca.key": _pem_key(ca_key),
            "apiserver.crt": _pem_cert(serving),
            "apiserver.key": _pem_key(serving_key),
            "admin.crt": _pem_cert(admin),
            "admin.key": _pem_key(admin_key),
            "sa.key": _pem_key(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for name, data in files.items():
            (self.pki / name).write_bytes(data)
            (self.pki / name).chmod(0o600)

    def write_kubeconfig(self, path: Path, user: str, credentials: dict[str, str]) -> Path:
        """A kubeconfig for this server with the given user credentials (cert or token)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [
                {"name": user, "context": {"cluster": "test", "user": user, "namespace": "default"}}
            ],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    # --- processes ----------------------------------------------------------------------
    def _spawn(self, component: str, args: list[str]) -> None:
        with self.log(component).open("ab") as log:
            self._processes[component] = processes.spawn(
                component, [str(self.binaries[component]), *args], log
            )

    def start_etcd(self) -> None:
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{self._etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self._etcd_peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{self._etcd_peer_port}",
                "--unsafe-no-fsync",  # a test cluster: speed over durability
                "--log-level=warn",
            ],
        )

    def start_apiserver(self) -> None:
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--bind-address={'0.0.0.0' if self.pod_address else '127.0.0.1'}",
                f"--advertise-address={self.pod_address or '127.0.0.1'}",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                # How it authenticates to a kubelet (pod logs, exec): as the admin of our CA.
                f"--kubelet-client-certificate={pki / 'admin.crt'}",
                f"--kubelet-client-key={pki / 'admin.key'}",
                # The node's name does not resolve here; its InternalIP does.
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                # Without a node no controller-manager creates the 'default' ServiceAccount
                # of a namespace, and pods never get their tokens: admission would refuse them.
                *([] if self.pod_address else ["--disable-admission-plugins=ServiceAccount"]),
                "--v=1",
            ],
        )

    def _wait_ready(self, deadline_s: float) -> None:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        deadline = time.monotonic() + deadline_s
        last_error = "no answer"
        while time.monotonic() < deadline:
            for component, process in self._processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{component} exited with code {process.returncode}\n{self.log_tails()}"
                    )
            try:
                with urllib.request.urlopen(
                    f"{self.url}/readyz", context=context, timeout=2
                ) as reply:
                    if reply.status == 200:
                        return
            except Exception as error:  # not up yet: connection refused, 500 while starting
                last_error = str(error)
            time.sleep(0.2)
        raise RuntimeError(
            f"kube-apiserver not ready after {deadline_s}s ({last_error})\n{self.log_tails()}"
        )

    def log_tails(self, lines: int = 30) -> str:
        out = []
        for component in ("etcd", "kube-apiserver"):
            path = self.log(component)
            text = (
                path.read_text(errors="replace").splitlines()[-lines:]
                if path.exists()
                else ["(no log)"]
            )
            out.append(f"--- last lines of {component} log ({path}) ---\n" + "\n".join(text))
        return "\n".join(out)

    def start(self, ready_timeout_s: float = 60) -> ControlPlane:
        processes.sweep()  # what a killed earlier run left, before it can get in the way
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.etcd_port, self._etcd_peer_port, self.apiserver_port = (
            free_port(),
            free_port(),
            free_port(),
        )
        self._write_pki()
        pki = self.pki
        self.write_kubeconfig(
            self.kubeconfig,
            "admin",
            {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
        )
        self.start_etcd()
        self.start_apiserver()
        try:
            self._wait_ready(ready_timeout_s)
        except Exception:
            self.stop()
            raise
        return self

    def stop_apiserver(self) -> None:
        self._terminate("kube-apiserver")

    def restart_apiserver(self, ready_timeout_s: float = 60) -> None:
        """Stops and starts kube-apiserver on the same port and etcd (for fault tests)."""
        self.stop_apiserver()
        self.start_apiserver()
        self._wait_ready(ready_timeout_s)

    def _terminate(self, component: str) -> None:
        stop_process(self._processes.pop(component, None), grace_s=15)

    def stop(self) -> None:
        for component in ("kube-apiserver", "etcd"):
            self._terminate(component)

    def install_crds(self, folder: Path | None = None) -> None:
        install_crds(self.kubectl, folder)

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Runs the project's kubectl against this server."""
        return subprocess.run(
            [str(self.binaries["kubectl"]), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
