"""The running training's progress in status: read from the trainer's own progress lines,
written only when the step moved and at most every PROGRESS_REFRESH_SECONDS (so the reconcile
our own status write causes writes nothing), and gone when nothing runs."""

from __future__ import annotations

from datetime import timedelta

from langmerge.operator.api.adapter import LanguageAdapter, LanguageAdapterStatus
from langmerge.operator.api.common import ActiveJob
from langmerge.operator.clock import now
from langmerge.operator.ledger import (
    PROGRESS_REFRESH_SECONDS,
    apply_progress,
    progress_due,
    settle_adapter,
)
from langmerge.operator.outcome import progress_line
from langmerge.operator.planner import plan_training
from tests.support.objects import adapter_manifest

LOG = """loading builtin:tiny
{"step": 10, "totalSteps": 500, "loss": 2.5, "tokensPerSecond": 900.0, "etaSeconds": 49.0}
{"event": "checkpoint", "step": 10}
{"step": 20, "totalSteps": 500, "loss": 2.1, "tokensPerSecond": 950.0, "etaSeconds": 40.4}
{"step": 30, "totalSteps": 5
"""


def _running() -> LanguageAdapterStatus:
    return LanguageAdapterStatus(active_job=ActiveJob(name="j", fingerprint="f"))


def test_the_last_complete_progress_line_is_read() -> None:
    line = progress_line(LOG)  # the cut-off last line is skipped
    assert line is not None and (line["step"], line["totalSteps"]) == (20, 500)
    assert progress_line("no progress yet\n") is None and progress_line(None) is None


def test_progress_is_written_when_the_step_moves_and_not_more_often() -> None:
    status = _running()
    apply_progress(status, {"step": 20, "totalSteps": 500, "loss": 2.1, "etaSeconds": 40.4})
    first = status.progress
    assert first is not None and (first.step, first.total_steps, first.eta_seconds) == (
        20,
        500,
        40.4,
    )
    apply_progress(status, {"step": 20, "totalSteps": 500, "loss": 2.1, "etaSeconds": 40.4})
    assert status.progress is first  # the same line: nothing to write
    apply_progress(status, {"step": 30, "totalSteps": 500, "loss": 2.0, "etaSeconds": 30.0})
    assert status.progress is first  # moved, but written moments ago
    assert first.observed_at is not None
    first.observed_at -= timedelta(seconds=PROGRESS_REFRESH_SECONDS + 1)
    apply_progress(status, {"step": 30, "totalSteps": 500, "loss": 2.0, "etaSeconds": 30.0})
    assert status.progress is not first and status.progress.step == 30
    assert status.progress.observed_at is not None and status.progress.observed_at <= now()


def test_progress_goes_when_nothing_runs() -> None:
    body = adapter_manifest("de")
    body["metadata"]["namespace"] = "nlp"
    adapter = LanguageAdapter.model_validate(body)
    status = _running()
    apply_progress(status, {"step": 20, "totalSteps": 500})
    status.active_job = None  # the run finished
    settle_adapter(status, plan_training(adapter, "trainer:1"), generation=1)
    assert status.progress is None
    idle = LanguageAdapterStatus()
    apply_progress(idle, {"step": 20, "totalSteps": 500})
    assert idle.progress is None  # no active run, no progress


def test_the_log_is_read_only_when_a_refresh_is_due() -> None:
    """The reconciler asks progress_due before reading a pod's log: no log read on the
    reconcile that our own progress write causes."""
    assert not progress_due(LanguageAdapterStatus())  # nothing runs
    status = _running()
    assert progress_due(status)  # nothing shown yet
    apply_progress(status, {"step": 20, "totalSteps": 500})
    assert not progress_due(status)  # just written
    assert status.progress is not None and status.progress.observed_at is not None
    status.progress.observed_at -= timedelta(seconds=PROGRESS_REFRESH_SECONDS)
    assert progress_due(status)
