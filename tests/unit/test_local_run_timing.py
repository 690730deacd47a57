"""A local run's whole-process time is the run's own: the warm process's one-off start (its
imports, reported once per `langmerge up`) is not charged to whichever run came first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from langmerge.common.summary import TrainingSummary
from langmerge.operator.local import runner as runner_module
from langmerge.operator.local.runner import LocalRunner


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowStartLauncher:
    """Starting costs 100 s (once); each run 2 s."""

    kind = "warm"
    startup_seconds = 0.0

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.started = False

    def prepare(self) -> None:
        if not self.started:
            self.clock.now += 100.0
            self.startup_seconds, self.started = 100.0, True

    def run(
        self, argv: list[str], on_line: Callable[[str], None], stderr: IO[str], env: dict[str, str]
    ) -> int:
        self.prepare()
        self.clock.now += 2.0
        return 0

    def close(self) -> None:
        pass


def test_the_first_run_is_not_charged_the_launchers_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(runner_module.time, "monotonic", clock)
    launcher = SlowStartLauncher(clock)
    local = LocalRunner(tmp_path, tmp_path / "state", launcher)
    first = local._execute("first", ["langmerge-train"], TrainingSummary)
    second = local._execute("second", ["langmerge-train"], TrainingSummary)
    assert (first.seconds, second.seconds) == (2.0, 2.0)
    assert launcher.startup_seconds == 100.0  # reported once, apart
