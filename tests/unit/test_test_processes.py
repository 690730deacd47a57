"""What the tests start does not outlive them (tests/support/processes.py): a process dies
with the test process that started it, and what escaped that (a child it forked) is killed by
the next run's sweep; a live run's processes are never touched. Each "test run" here is a
Python process of its own, killed with SIGKILL as a timeout of its caller would kill it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.control_plane import REPO
from tests.support.kube import eventually

RUN = textwrap.dedent(
    """
    import json, sys, time
    from tests.support import processes
    started = processes.spawn("sleeper", ["sh", "-c", "sleep 300 & echo $!; wait"],
                              sys.stderr.fileno())
    print(json.dumps({"child": started.pid}), flush=True)
    time.sleep(300)
    """
)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "registry"
    monkeypatch.setattr(processes, "REGISTRY", folder)
    yield folder


def start_run(registry: Path) -> tuple[subprocess.Popen[str], int, int]:
    """A test run that starts `sh` (which forks a `sleep`): the run, sh's pid, sleep's pid."""
    run = subprocess.Popen(
        [sys.executable, "-c", f"import tests.support.processes as p; from pathlib import Path; "
         f"p.REGISTRY = Path({str(registry)!r}); exec({RUN!r})"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert run.stdout is not None and run.stderr is not None
    child = json.loads(run.stdout.readline())["child"]
    grandchild = int(run.stderr.readline())
    return run, child, grandchild


def gone(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat")
    return not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_killed_test_run_takes_its_processes_along_and_the_next_sweep_the_rest(
    registry: Path,
) -> None:
    run, child, grandchild = start_run(registry)
    try:
        assert len(list(registry.glob("*.json"))) == 1
        run.send_signal(signal.SIGKILL)
        run.wait()
        eventually(lambda: gone(child), timeout_s=30, what="the run's own child to die with it")
        assert not gone(grandchild)  # forked by the child: nothing ties it to the run
        killed = processes.sweep()
        assert killed == [f"sleeper (pid {child}, left by run {run.pid})"]
        eventually(lambda: gone(grandchild), timeout_s=30, what="the sweep to kill the rest")
        assert list(registry.glob("*.json")) == []
        assert processes.sweep() == []  # nothing twice
    finally:
        for pid in (child, grandchild):
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_sweep_leaves_a_live_runs_processes_alone(registry: Path) -> None:
    run, child, grandchild = start_run(registry)
    try:
        assert processes.sweep() == []
        assert not gone(child) and not gone(grandchild)
        assert processes.live_owner("sleeper") == run.pid
    finally:
        run.kill()
        run.wait()
        processes.sweep()
        eventually(lambda: gone(grandchild), timeout_s=30, what="cleanup")


def test_a_recorded_pid_that_now_names_another_process_is_not_signalled(registry: Path) -> None:
    registry.mkdir()
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        started = processes.start_time(other.pid)
        assert started is not None
        entry = {"name": "etcd", "pid": other.pid, "started": started - 1, "owner": 1 << 22}
        (registry / f"{other.pid}.json").write_text(json.dumps({**entry, "ownerStarted": 1}))
        assert processes.sweep() == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
