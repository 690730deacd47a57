"""Shared fixtures. Tests that need a component that is missing skip with the reason
locally and fail under CI=true, so a green CI always means the real thing ran."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.control_plane import ControlPlane, ControlPlaneMissingError, find_binaries

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI, when a real component is not available."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        binaries = find_binaries()
    except ControlPlaneMissingError as missing:
        require(False, str(missing))
        raise
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"), binaries=binaries)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
