"""How the local loop runs a trainer / merger / evaluator command line: in a child forked
from one warm process that imported torch, transformers and peft once
(`langmerge.common.warm`), or, where that is not installed or LANGMERGE_WARM=0, as a plain
subprocess. Both give the command the same flags, the same summary file and the same exit
code; stdout lines (the trainer's progress) reach a callback, stderr goes to a log file."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

WARM_VARIABLE = "LANGMERGE_WARM"
READY_TIMEOUT_SECONDS = 600.0  # imports on a loaded 2-core machine; never a quiet-machine figure


def command(name: str) -> str:
    """A langmerge command from this environment (beside the running Python), else PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} is not installed here; install the trainer and merger (uv sync)"
        )
    return found


class Launcher(Protocol):
    kind: str  # "warm" or "cold"
    startup_seconds: float  # what starting the launcher itself cost, once (0 until used)

    def prepare(self) -> None:
        """Pays the launcher's one-off start before a run is timed."""

    def run(
        self, argv: list[str], on_line: Callable[[str], None], stderr: IO[str], env: dict[str, str]
    ) -> int: ...

    def close(self) -> None: ...


class ColdLauncher:
    """Every run a new process: what a Job's container does."""

    kind = "cold"
    startup_seconds = 0.0

    def prepare(self) -> None:
        pass

    def run(
        self, argv: list[str], on_line: Callable[[str], None], stderr: IO[str], env: dict[str, str]
    ) -> int:
        process = subprocess.Popen(
            [command(argv[0]), *argv[1:]],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **env},
        )
        assert process.stdout is not None
        for line in process.stdout:
            on_line(line)
        return process.wait()

    def close(self) -> None:
        pass


class WarmLauncher:
    """One warm process for the whole `langmerge up`, started by the first run (a pass with
    nothing to run pays no imports); each run is a forked child."""

    kind = "warm"

    def __init__(self) -> None:
        self.startup_seconds = 0.0
        self._server: subprocess.Popen[str] | None = None
        self._folder = ""
        self.socket_path = ""

    def prepare(self) -> None:
        if self._server is None:
            self._start()

    def _start(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="langmerge-warm-")
        self.socket_path = os.path.join(self._folder, "warm.sock")
        started = time.monotonic()
        self._server = subprocess.Popen(
            [sys.executable, "-m", "langmerge.common.warm", "--socket", self.socket_path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._server.stdout is not None
        line = self._server.stdout.readline()  # blocks until "ready" or the server dies
        if line.strip() != "ready":
            self._server.kill()
            error = self._server.stderr.read() if self._server.stderr else ""
            shutil.rmtree(self._folder, ignore_errors=True)
            self._server = None
            raise RuntimeError(f"the warm process did not start: {error.strip()[-2000:]}")
        self.startup_seconds = time.monotonic() - started

    @property
    def started(self) -> bool:
        return self._server is not None

    def run(
        self, argv: list[str], on_line: Callable[[str], None], stderr: IO[str], env: dict[str, str]
    ) -> int:
        self.prepare()
        read_end, write_end = os.pipe()
        request = {"command": argv[0], "argv": argv[1:], "cwd": os.getcwd(), "env": env}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(self.socket_path)
            try:
                socket.send_fds(
                    connection, [json.dumps(request).encode()], [write_end, stderr.fileno()]
                )
            finally:
                os.close(write_end)  # the child holds the only writer now
            with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as stdout:
                for line in stdout:
                    on_line(line)
            reply = b""
            while chunk := connection.recv(4096):
                reply += chunk
        if not reply:
            raise RuntimeError("the warm process ended during a run; see its log")
        return int(json.loads(reply)["returncode"])

    def close(self) -> None:
        if self._server is None:
            return
        if self._server.poll() is None:
            self._server.terminate()
            try:
                self._server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


def launcher(warm: bool | None = None) -> Launcher:
    """The warm launcher where the trainer and merger are installed here and not switched
    off (LANGMERGE_WARM=0); plain subprocesses otherwise."""
    if warm is None:
        warm = os.environ.get(WARM_VARIABLE, "1") != "0"
    if not warm:
        return ColdLauncher()
    try:
        import importlib.util

        if not all(importlib.util.find_spec(m) for m in ("langmerge.trainer", "langmerge.merger")):
            return ColdLauncher()
    except ModuleNotFoundError:
        return ColdLauncher()
    return WarmLauncher()
