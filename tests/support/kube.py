"""Helpers for tests that talk to the real API server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config

T = TypeVar("T")


def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def eventually(
    probe: Callable[[], T | None],
    timeout_s: float = 30,
    interval_s: float = 0.2,
    what: str = "condition",
) -> T:
    """Polls probe until it returns something truthy; fails with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def until(
    probe: Callable[[], T],
    accept: Callable[[T], bool],
    timeout_s: float = 30,
    what: str = "condition",
) -> T:
    """Polls probe until accept(value) holds; returns that value."""
    deadline = time.monotonic() + timeout_s
    value = probe()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s}s waiting for {what} (last: {value!r})"
            )
        time.sleep(0.2)
        value = probe()
    return value
