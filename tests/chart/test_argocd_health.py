"""The Argo CD health check, executed by a real Lua runtime (lupa) against sample objects."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from lupa import LuaRuntime

from tests.conftest import REPO

SCRIPT = (REPO / "charts" / "langmerge" / "files" / "argocd" / "health.lua").read_text()


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT)
    return str(result["status"]), str(result["message"] or "")


def condition(kind: str, status: str, message: str = "") -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": kind,
        "message": message,
        "lastTransitionTime": "2026-11-26T10:00:00Z",
    }


BASE: dict[str, Any] = {
    "apiVersion": "langmerge.io/v1alpha1",
    "kind": "LanguageAdapter",
    "metadata": {"name": "sentiment-de", "namespace": "nlp", "generation": 3},
    "spec": {"language": "de", "suspend": False},
}


def with_status(*conditions: dict[str, str], observed: int = 3, **extra: Any) -> dict[str, Any]:
    obj = copy.deepcopy(BASE)
    obj["status"] = {"observedGeneration": observed, "conditions": list(conditions)}
    obj.update(extra)
    return obj


@pytest.mark.parametrize(
    ("obj", "expected", "message"),
    [
        (BASE, "Progressing", "waiting for the operator"),
        (
            with_status(condition("Ready", "True", "up to date"), observed=2),
            "Progressing",
            "latest spec",
        ),
        (
            with_status(
                condition("Ready", "True", "the adapter matches its spec"),
                condition("Training", "False"),
            ),
            "Healthy",
            "matches its spec",
        ),
        (
            with_status(
                condition("Ready", "False", "training for fingerprint x"),
                condition("Training", "True"),
            ),
            "Progressing",
            "training for fingerprint x",
        ),
        (
            with_status(
                condition("Ready", "True"), condition("Failed", "True", "OOMKilled (exit code 137)")
            ),
            "Degraded",
            "OOMKilled",
        ),
        (
            with_status(
                condition("Ready", "False"), condition("BudgetExceeded", "True", "spent $9 of $8")
            ),
            "Degraded",
            "spent $9 of $8",
        ),
        (with_status(condition("Ready", "True"), condition("Merging", "True")), "Progressing", ""),
    ],
    ids=["no-status", "stale-generation", "ready", "training", "failed", "over-budget", "merging"],
)
def test_health_follows_the_conditions(obj: dict[str, Any], expected: str, message: str) -> None:
    status, text = health(obj)
    assert status == expected
    assert message in text


def test_deletion_in_progress_is_progressing() -> None:
    obj = with_status(condition("Ready", "True"))
    obj["metadata"]["deletionTimestamp"] = "2026-11-26T10:00:00Z"
    assert health(obj)[0] == "Progressing"


def test_suspended_wins_over_ready() -> None:
    obj = with_status(condition("Ready", "True"))
    obj["spec"]["suspend"] = True
    assert health(obj) == ("Suspended", "spec.suspend is true: no new runs start")
