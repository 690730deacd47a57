"""A real single-node Kubernetes for the end-to-end tests: a ControlPlane of its own plus
kube-controller-manager (the Job, garbage-collector, volume and ServiceAccount controllers),
kube-scheduler, kubelet, kube-proxy (so pods reach the API server through the `kubernetes`
Service, as an in-cluster operator does), containerd + runc and a CNI bridge, all on this
machine. Pods run the images built by hack/images.sh; nothing plays a controller's part.

This machine's facts it encodes (field-notes.md): cgroup v1 with the cgroupfs driver; runc,
not crun; no CAP_SYS_RESOURCE, so no negative oom_score_adj (containerd's
restrict_oom_score_adj); no registry, so the pause image is built here and images are
imported into containerd from podman's storage. Needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from tests.support import processes
from tests.support.containers import image
from tests.support.control_plane import REPO, ControlPlane, free_port, stop_process
from tests.support.kube import eventually

STATE = Path("/var/lib/langmerge")  # containerd's images persist here between runs
RUNTIME = Path("/run/langmerge")
BRIDGE = "lmbr0"
POD_SUBNET = "10.244.0.0/24"
NODE = "langmerge-e2e"
PAUSE = "localhost/langmerge-pause:1"
# The API server's address for pods (TEST-NET-1, on a link of its own on the host): the
# `kubernetes` Service's endpoint, which kube-proxy translates 10.96.0.1:443 to.
API_LINK = "lmapi0"
API_ADDRESS = "192.0.2.2"
CLUSTER_DNS = "10.96.0.10"  # the kube-dns Service, in the control plane's Service range
# What the e2e runs beside langmerge, each built by hack/controllers.sh with an image of its
# own: CoreDNS (the node's), Kueue, and JobSet with Kubeflow Trainer (their modules' tests).
CONTROLLERS = ("coredns", "kueue", "jobset", "kubeflow-trainer")

CONTAINERD_CONFIG = """version = 2
root = "{state}/containerd"
state = "{runtime}/containerd"
[grpc]
  address = "{runtime}/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # No CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj (the pause container asks -998).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"""

KUBELET_CONFIG = """apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {pki}/ca.crt}}
authorization: {{mode: AlwaysAllow}}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{runtime}/containerd/containerd.sock
failSwapOn: false
# Cluster DNS (CoreDNS, deployed by the node at the kube-dns Service's address): pods find
# each other by name, as torch's rendezvous between a TrainJob's pods does.
clusterDNS: [{dns}]
clusterDomain: cluster.local
# Reachable at the node's InternalIP, where the API server proxies `kubectl logs` (the
# operator reads the trainer's progress there); clients must present a cert of our CA.
address: 0.0.0.0
port: {port}
readOnlyPort: 0
healthzPort: {healthz}
tlsCertFile: {pki}/apiserver.crt
tlsPrivateKeyFile: {pki}/apiserver.key
# A test node on a shared disk: no eviction or image GC because the disk is fuller than usual.
evictionHard: {{memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
enforceNodeAllocatable: []
resolvConf: /etc/resolv.conf
"""


def cni_config() -> str:
    # No masquerade: pods reach nothing but the host and Services (no registry, no internet
    # needed), so no iptables rules of ours are left to clean up.
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "langmerge",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # A default route through the bridge: how pods reach Service addresses
                    # (the `kubernetes` Service), which kube-proxy translates on the host.
                    "isDefaultGateway": True,
                    "ipMasq": False,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]]},
                },
                {"type": "loopback"},
            ],
        }
    )


def missing_for_node() -> list[str]:
    """What this machine lacks to run the node and cannot install itself (root with apt-get
    installs the Debian packages: ensure_packages)."""
    if os.geteuid() != 0:
        return ["root"]
    if shutil.which("apt-get"):
        return []
    tools = [
        t for t in ("containerd", "ctr", "runc", "podman", "buildah", "gcc") if not shutil.which(t)
    ]
    cni = [] if Path("/usr/lib/cni/bridge").exists() else ["containernetworking-plugins"]
    return tools + cni


def ensure_packages() -> None:
    wanted = {"containerd": "containerd", "runc": "runc", "gcc": "gcc"}
    absent = [package for tool, package in wanted.items() if shutil.which(tool) is None]
    if not Path("/usr/lib/cni/bridge").exists():
        absent.append("containernetworking-plugins")
    if absent:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *absent],
            check=True,
            env=env,
            capture_output=True,
        )


@dataclass
class Node:
    """kube-controller-manager, kube-scheduler, containerd, kubelet and kube-proxy for a
    ControlPlane (one made with pod_address=API_ADDRESS, so that pods reach it)."""

    plane: ControlPlane
    workdir: Path
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _proxy_binary: Path | None = None

    @property
    def socket(self) -> str:
        return str(RUNTIME / "containerd" / "containerd.sock")

    def ctr(
        self, *args: str, check: bool = True, stdin: IO[bytes] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", self.socket, "--namespace", "k8s.io", *args],
            stdin=stdin,
            capture_output=True,
            text=True,
            check=check,
        )

    def _spawn(self, name: str, command: list[str]) -> None:
        with (self.workdir / f"{name}.log").open("ab") as log:
            self._processes[name] = processes.spawn(name, command, log)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return f"--- {name} ({path}) ---\n" + "\n".join(text)

    @classmethod
    @contextlib.contextmanager
    def store(cls, workdir: Path) -> Iterator[Node]:
        """The node's containerd alone, with the sandbox image: where images are imported
        before the node runs (tests/support/prepare.py). Nothing here needs the API server."""
        ensure_packages()
        node = cls(cast(ControlPlane, None), workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            node._start_containerd()
            node._import_pause()
            yield node
        finally:
            node._terminate("containerd")
            release_host()

    # --- start -------------------------------------------------------------------------------
    def start(self) -> Node:
        ensure_packages()
        clean_stale_node()
        self.workdir.mkdir(parents=True, exist_ok=True)
        built = subprocess.run(
            ["bash", str(REPO / "hack" / "control-plane.sh"), "node"],
            capture_output=True,
            text=True,
            check=True,
        )
        bin_dir = Path(built.stdout.strip().splitlines()[-1])
        self._add_api_link()
        self._start_containerd()
        self._import_pause()
        kubeconfig, pki = str(self.plane.kubeconfig), self.plane.pki
        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--leader-elect=false",
                "--secure-port=0",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
        )
        config = self.workdir / "kubelet.yaml"
        config.write_text(
            KUBELET_CONFIG.format(
                pki=pki, runtime=RUNTIME, port=free_port(), healthz=free_port(), dns=CLUSTER_DNS
            )
        )
        self._spawn(
            "kubelet",
            [
                str(bin_dir / "kubelet"),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={NODE}",
                f"--root-dir={STATE / 'kubelet'}",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-proxy",
            [
                str(bin_dir / "kube-proxy"),
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={NODE}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={POD_SUBNET}",
                # Leave the size of the host's conntrack table (a machine-wide sysctl) alone.
                "--conntrack-max-per-core=0",
                f"--healthz-bind-address=127.0.0.1:{free_port()}",
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                "--v=1",
            ],
        )
        self._proxy_binary = bin_dir / "kube-proxy"
        eventually(self._node_ready, timeout_s=180, what=f"node {NODE} Ready\n{self.tails()}")
        self._start_dns()
        return self

    def _start_dns(self) -> None:
        """CoreDNS (hack/controllers.sh) at CLUSTER_DNS, as every cluster runs it."""
        subprocess.run(
            ["bash", str(REPO / "hack" / "controllers.sh"), "coredns"],
            capture_output=True,
            text=True,
            check=True,
        )
        self.load_image("coredns")
        self.plane.kubectl("apply", "-f", str(Path(__file__).parent / "manifests" / "coredns.yaml"))
        self.plane.kubectl(
            "rollout", "status", "--namespace=kube-system", "deployment/coredns", "--timeout=100s"
        )

    def _add_api_link(self) -> None:
        if self.plane.pod_address is None:
            return
        subprocess.run(["ip", "link", "delete", API_LINK], capture_output=True, check=False)
        # A bridge with no ports holds the address (this kernel has no dummy links).
        subprocess.run(["ip", "link", "add", API_LINK, "type", "bridge"], check=True)
        subprocess.run(
            ["ip", "addr", "add", f"{self.plane.pod_address}/32", "dev", API_LINK], check=True
        )
        subprocess.run(["ip", "link", "set", API_LINK, "up"], check=True)

    def _start_containerd(self) -> None:
        folder = self.workdir / "containerd"
        (folder / "cni").mkdir(parents=True, exist_ok=True)
        (folder / "cni" / "10-langmerge.conflist").write_text(cni_config())
        (folder / "config.toml").write_text(
            CONTAINERD_CONFIG.format(
                state=STATE,
                runtime=RUNTIME,
                pause=PAUSE,
                runc=shutil.which("runc"),
                cni_bin="/usr/lib/cni",
                cni_conf=folder / "cni",
            )
        )
        self._spawn("containerd", ["containerd", "--config", str(folder / "config.toml")])
        log = self.workdir / "containerd.log"
        # Its API answers before the CRI plugin has recovered its state; a kubelet started in
        # between exits ("server is not initialized yet"). The CRI logs this line once ready.
        eventually(
            lambda: "Start streaming server" in log.read_text(errors="replace"),
            timeout_s=120,
            what=f"containerd's CRI\n{self.log_tail('containerd')}",
        )
        eventually(
            lambda: self.ctr("version", check=False).returncode == 0,
            timeout_s=60,
            what=f"containerd\n{self.log_tail('containerd')}",
        )

    def _import_pause(self) -> None:
        """The sandbox image: a static binary that waits for signals, built here with gcc."""
        if PAUSE in self.ctr("images", "list", "--quiet").stdout.split():
            return
        source = self.workdir / "pause.c"
        source.write_text(
            "#include <signal.h>\n#include <unistd.h>\n"
            "static void reap(int s) { (void)s; }\n"
            "int main(void) { signal(SIGCHLD, reap); for (;;) pause(); }\n"
        )
        binary = self.workdir / "pause"
        subprocess.run(["gcc", "-static", "-Os", "-o", binary, source], check=True)
        working = subprocess.run(
            ["buildah", "from", "scratch"], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            subprocess.run(["buildah", "copy", working, str(binary), "/pause"], check=True)
            subprocess.run(["buildah", "config", "--entrypoint", '["/pause"]', working], check=True)
            subprocess.run(["buildah", "commit", "--quiet", working, PAUSE], check=True)
        finally:
            subprocess.run(["buildah", "rm", working], capture_output=True, check=False)
        self._import(PAUSE)

    def _import(self, *names: str) -> None:
        """Streams the images from podman's storage into containerd as one archive on a pipe,
        so a layer they share (the trainer's and the merger's dependencies) goes once and no
        archive of the images is written. podman still buffers each layer whose size it does
        not know in a file under /var/tmp while it writes that layer: one layer at a time.

        One failure whose cause is a vanished parent snapshot is tried again: containerd
        1.6's unpacker finds a layer's snapshot present, skips it, and prepares the next layer
        on it, and its garbage collector can remove that snapshot in between (left without a
        reference by a version of the image _prune removed). Seen once in CI: "failed to
        prepare extraction snapshot ...: parent snapshot sha256:... does not exist". The
        second import finds the snapshot gone and unpacks the layer again."""
        failure = self._import_once(names)
        if failure is not None and "does not exist" in failure:
            print(f"importing into containerd again after: {failure}", file=sys.stderr)
            failure = self._import_once(names)
        if failure is not None:
            raise RuntimeError(f"importing {', '.join(names)} into containerd failed: {failure}")

    def _import_once(self, names: tuple[str, ...]) -> str | None:
        """One streamed import (_import); what failed, or None."""
        save = subprocess.Popen(
            ["podman", "save", "--quiet", "--format", "docker-archive", "--multi-image-archive",
             *names],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert save.stdout is not None
        try:
            imported = self.ctr("images", "import", "-", check=False, stdin=save.stdout)
        finally:
            save.stdout.close()
            saved = save.wait()
        if saved == 0 and imported.returncode == 0:
            return None
        stderr = save.stderr.read().decode(errors="replace") if save.stderr else ""
        return (
            f"podman save exited {saved} ({stderr.strip()}), ctr import {imported.returncode} "
            f"({imported.stderr.strip()})"
        )

    def load_image(self, short_name: str) -> str:
        """Imports localhost/langmerge-<short_name>:dev into containerd when podman's copy
        changed since the last import (a marker keeps the podman image id)."""
        return self.load_images(short_name)[0]

    def load_images(self, *short_names: str) -> list[str]:
        """load_image for several images, the changed ones in one stream (_import)."""
        present = set(self.ctr("images", "list", "--quiet").stdout.split())
        stale: dict[str, str] = {}
        for short_name in short_names:
            name = image(short_name)
            identity = subprocess.run(
                ["podman", "image", "inspect", "--format", "{{.Id}}", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            marker = STATE / "imported" / short_name
            if not (name in present and marker.exists() and marker.read_text() == identity):
                stale[short_name] = identity
        if stale:
            self._import(*(image(short_name) for short_name in stale))
            for short_name, identity in stale.items():
                marker = STATE / "imported" / short_name
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(identity)
            self._prune()
        return [image(short_name) for short_name in short_names]

    def _prune(self) -> None:
        """Frees what superseded versions of our images hold. An import records each image
        under its tag and under its id (`sha256:<id>`), and the id's record keeps a version
        alive after its tag moved on: records of ids that no current tag has are removed.
        Then the layers' archives go too (unpacked, a layer lives on as its snapshot, so the
        archive is a second copy: 6 GB for the trainer's and merger's shared layer)."""
        current = set()
        for reference in self.ctr("images", "list", "--quiet").stdout.split():
            if not reference.startswith("sha256:"):
                found = subprocess.run(
                    ["podman", "image", "inspect", "--format", "{{.Id}}", reference],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                current.add(f"sha256:{found.stdout.strip()}")
        for reference in self.ctr("images", "list", "--quiet").stdout.split():
            if reference.startswith("sha256:") and reference not in current:
                self.ctr("images", "remove", reference, check=False)
        self.ctr("content", "prune", "references")

    def _node_ready(self) -> bool:
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}\n{self.tails()}")
        got = self.plane.kubectl("get", "node", NODE, "-o", "json", check=False)
        if got.returncode != 0:
            return False
        conditions = json.loads(got.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def tails(self) -> str:
        return "\n".join(self.log_tail(n) for n in self._processes)

    # --- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Deletes every pod (so the CNI plugin releases its addresses), stops the processes
        and leaves no mount, network namespace or bridge behind."""
        if "kubelet" in self._processes:
            self.plane.kubectl(
                "delete", "pods", "--all", "--all-namespaces", "--grace-period=0", "--force",
                check=False,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while (
                time.monotonic() < deadline
                and self.ctr("tasks", "list", "-q", check=False).stdout.strip()
            ):
                time.sleep(1)
        for name in ("kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"):
            self._terminate(name)
        if self._proxy_binary is not None:  # kube-proxy's own removal of its iptables chains
            subprocess.run([str(self._proxy_binary), "--cleanup"], capture_output=True, check=False)
        for task in self.ctr("tasks", "list", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        time.sleep(1)
        for container in self.ctr("containers", "list", "-q", check=False).stdout.split():
            self.ctr("tasks", "delete", container, check=False)
            self.ctr("containers", "delete", container, check=False)
        self._terminate("containerd")
        release_host()

    def _terminate(self, name: str) -> None:
        stop_process(self._processes.pop(name, None), grace_s=30)


def release_host() -> None:
    """Leaves no mount, network namespace, bridge or address lease of a node behind."""
    _unmount_under(RUNTIME)
    _unmount_under(STATE / "kubelet")
    for namespace in subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout.splitlines():
        if namespace.startswith("cni-"):
            subprocess.run(["ip", "netns", "delete", namespace.split()[0]], check=False)
    for link in (BRIDGE, API_LINK):
        subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
    shutil.rmtree(STATE / "kubelet", ignore_errors=True)
    shutil.rmtree("/var/lib/cni/networks/langmerge", ignore_errors=True)


def _unmount_under(root: Path) -> None:
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(str(root))
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)


def _leftovers() -> dict[int, str]:
    """Processes of a node that no test run owns any more, by pid: containerd's shims (they
    outlive containerd by design) and what runs in the pods' cgroups (kubepods)."""
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(RUNTIME) in command or str(STATE) in command:
            found[int(proc.name)] = command.strip()[:80]
    for tasks in Path("/sys/fs/cgroup").glob("*/kubepods/**/cgroup.procs"):
        with contextlib.suppress(OSError):
            for pid in tasks.read_text().split():
                found.setdefault(int(pid), f"a pod's process ({tasks.parent.name})")
    return found


def clean_stale_node() -> None:
    """Before a node starts: kills what an earlier test run's node left running (its test
    process killed outright, say) and releases its mounts and links, saying so. Refuses while
    another test run's node is still running: they would share STATE, RUNTIME and BRIDGE."""
    holder = processes.live_owner("containerd")
    if holder is not None:
        raise RuntimeError(
            f"test run {holder} (still running) has this machine's e2e node; wait for it to end"
        )
    swept = processes.sweep()
    leftovers = _leftovers()
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stale = leftovers or any(name in ("containerd", "kubelet") for name in swept)
    if stale or (RUNTIME / "containerd").exists():
        if leftovers:
            print(
                f"stale e2e node: killed {len(leftovers)} processes an earlier run left: "
                + "; ".join(sorted(set(leftovers.values()))[:5]),
                file=sys.stderr,
                flush=True,
            )
        time.sleep(1)  # the killed shims' mounts are released once they are reaped
        release_host()
        shutil.rmtree(RUNTIME / "containerd", ignore_errors=True)


def serve(workdir: Path, storage_class: str = "langmerge-local", volumes: int = 4) -> None:
    """Runs a node until Ctrl-C, for poking at by hand or for the e2e against a KUBECONFIG
    (tests/support/target.py): prints the kubeconfig, the containerd socket images are
    imported through, and a StorageClass name whose static hostPath volumes bind claims."""
    import signal
    import sys
    import tempfile

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stops the node like Ctrl-C
    workdir.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(Path(tempfile.mkdtemp(dir=workdir)), pod_address=API_ADDRESS).start()
    node = Node(plane, Path(tempfile.mkdtemp(dir=workdir)))
    try:
        node.start()
        for number in range(volumes):
            folder = workdir / f"volume-{number}"
            folder.mkdir(exist_ok=True)
            shutil.chown(folder, 10001, 10001)  # the pods' user; hostPath ignores fsGroup
            plane.kubectl(
                "apply",
                "-f",
                "-",
                input=json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolume",
                        "metadata": {"name": f"{storage_class}-{number}"},
                        "spec": {
                            "capacity": {"storage": "1Gi"},
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": storage_class,
                            "persistentVolumeReclaimPolicy": "Retain",
                            "hostPath": {"path": str(folder), "type": "Directory"},
                        },
                    }
                ),
            )
        print(f"KUBECONFIG={plane.kubeconfig}", flush=True)
        print(f"CONTAINERD={node.socket}", flush=True)
        print(f"STORAGE_CLASS={storage_class}", flush=True)
        while True:
            time.sleep(3600)
    finally:
        node.stop()
        plane.stop()


if __name__ == "__main__":  # python -m tests.support.node WORKDIR
    import sys

    serve(Path(sys.argv[1]))
