"""The long-lived processes the tests start (etcd, kube-apiserver, the node's parts, the
operator, Prometheus), kept from outliving the test run however it ends.

Each one runs in a process group of its own, dies with the test process (the parent-death
signal, set by util-linux's setpriv before the command execs), and is recorded in a pidfile
until it is stopped. A test process killed outright runs no finalizer and a grandchild
(containerd's shims, say) has no parent to die with, so the next run sweeps what the
registry still names: a process whose recording run is gone is killed with its group, and
the sweep says so. Entries of a run that is still alive (a second pytest beside this one)
are left alone; a pid the kernel has given to another process since is recognised by its
start time and never signalled."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

REGISTRY = Path(tempfile.gettempdir()) / "langmerge-test-processes"
SETPRIV = shutil.which("setpriv")


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), None when
    it is gone: with the pid it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command (field 2) is in parentheses and may itself hold spaces or parentheses
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(pid: int, started: int | None) -> bool:
    return started is not None and start_time(pid) == started


def spawn(
    name: str,
    command: Sequence[str],
    log: IO[bytes] | int | None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Starts the command in its own process group, tied to this process's life and recorded
    until forget() (stop_process calls it)."""
    prefix = [SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []
    process = subprocess.Popen(
        [*prefix, *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    REGISTRY.mkdir(parents=True, exist_ok=True)
    entry = {
        "name": name,
        "pid": process.pid,
        "started": start_time(process.pid),
        "owner": os.getpid(),
        "ownerStarted": start_time(os.getpid()),
    }
    (REGISTRY / f"{process.pid}.json").write_text(json.dumps(entry))
    return process


def forget(process: subprocess.Popen[Any]) -> None:
    (REGISTRY / f"{process.pid}.json").unlink(missing_ok=True)


def _entries() -> list[tuple[Path, dict[str, Any]]]:
    entries = []
    for path in sorted(REGISTRY.glob("*.json")) if REGISTRY.is_dir() else []:
        try:
            entries.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    return entries


def live_owner(name: str) -> int | None:
    """The pid of another test run, still running, whose process of that name runs."""
    for _, entry in _entries():
        owned_elsewhere = entry["owner"] != os.getpid() and entry["name"] == name
        if (
            owned_elsewhere
            and alive(entry["owner"], entry["ownerStarted"])
            and alive(entry["pid"], entry["started"])
        ):
            return int(entry["owner"])
    return None


def sweep(say: IO[str] = sys.stderr) -> list[str]:
    """Kills the process groups that earlier, ended test runs left running; what it killed,
    as `name (pid N, left by test run M)`."""
    killed = []
    for path, entry in _entries():
        if alive(entry["owner"], entry["ownerStarted"]):
            continue  # another test run, still going: its processes are its own
        path.unlink(missing_ok=True)
        now = start_time(entry["pid"])
        if now is not None and now != entry["started"]:
            continue  # the pid is another process's now: the one recorded is long gone
        # The group outlives its leader while any member lives (a forked child, say), and the
        # kernel gives out no pid that a live group still has as its id.
        try:
            os.killpg(entry["pid"], signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(f"{entry['name']} (pid {entry['pid']}, left by run {entry['owner']})")
    if killed:
        print(f"stale test processes killed: {', '.join(killed)}", file=say, flush=True)
    return killed
