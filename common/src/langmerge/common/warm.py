"""A warm process for the local loop: imports torch, transformers and peft once, then runs
each trainer / merger / evaluator command line in a forked child.

The child runs the command's own console-script entry point with the same flags, writes the
same summary file, prints to the caller's stdout/stderr (passed over the socket with
SCM_RIGHTS) and exits with the same code, so the contract with the cluster's Jobs stays
identical; only the seconds of imports (about 15 s for peft here) are paid once per
`langmerge up` instead of once per run.

Protocol, one connection per run: the client sends one JSON request
{"command", "argv", "cwd", "env"} with two file descriptors (stdout, stderr); the server
forks, waits for the child and answers {"returncode": N}.

Run: python -m langmerge.common.warm --socket PATH (prints "ready" once it listens)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import sys
from importlib.metadata import entry_points
from typing import Any

# What the commands import before they do anything; loaded once in the parent.
PRELOAD = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "numpy",
    "langmerge.trainer.train",
    "langmerge.merger.methods",
    "langmerge.merger.evaluate",
)
COMMANDS = ("langmerge-train", "langmerge-merge", "langmerge-eval")
MAX_REQUEST = 1 << 20
PR_SET_PDEATHSIG = 1  # prctl(2)


def entry_point(command: str) -> Any:
    """The function a console script calls, from this environment's package metadata."""
    found = entry_points(group="console_scripts", name=command)
    if not found:
        raise LookupError(f"{command} is not installed in this environment")
    return next(iter(found)).load()


def _die_with_parent(signal_number: int) -> bool:
    """Linux: have the kernel send signal_number to this process when its parent ends, so
    that a `langmerge up` killed outright (no chance to close its launcher) leaves no warm
    server and no run behind. False when the parent has already gone."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal_number, 0, 0, 0)
    return os.getppid() == parent and parent != 1


def _child(request: dict[str, Any], stdout: int, stderr: int) -> int:
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.close(stdout)
    os.close(stderr)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.update(request.get("env") or {})
    sys.argv = [request["command"], *request["argv"]]
    try:
        code = entry_point(request["command"])(request["argv"])
    except SystemExit as exit_:  # argparse and friends
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return int(code or 0)


def _serve_one(connection: socket.socket) -> None:
    message, fds, _, _ = socket.recv_fds(connection, MAX_REQUEST, 2)
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        connection.sendall(b'{"returncode": 2, "error": "expected stdout and stderr"}\n')
        return
    request = json.loads(message)
    if request.get("command") not in COMMANDS:
        for fd in fds:
            os.close(fd)
        reply = {"returncode": 2, "error": f"unknown command {request.get('command')!r}"}
        connection.sendall(json.dumps(reply).encode() + b"\n")
        return
    pid = os.fork()
    if pid == 0:  # the child: never returns into the server loop
        code = 1
        try:
            connection.close()
            if _die_with_parent(signal.SIGKILL):  # a run never outlives its server
                code = _child(request, *fds)
        finally:
            os._exit(code)
    for fd in fds:  # the caller sees EOF on stdout once the child exits
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    connection.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode())


def serve(path: str) -> None:
    if not _die_with_parent(signal.SIGTERM):
        return
    for module in PRELOAD:
        importlib.import_module(module)
    for command in COMMANDS:
        entry_point(command)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    try:
        while True:
            connection, _ = listener.accept()
            with connection:
                _serve_one(connection)
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m langmerge.common.warm", description=__doc__)
    parser.add_argument("--socket", required=True, help="the Unix socket path to listen on")
    serve(parser.parse_args(argv).socket)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
