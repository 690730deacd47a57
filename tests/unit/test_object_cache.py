"""The operator's in-memory view (cache.py): the rules that keep a reconcile from reading an
object older than the operator last wrote it, and from holding one that is gone."""

from __future__ import annotations

from typing import Any

from langmerge.operator.cache import ObjectCache
from langmerge.operator.outcome import job_cpus, job_essentials, job_finished, job_gpus

KIND = "languageadapters"


def body(name: str, version: int, labels: dict[str, str] | None = None, **status: Any) -> Any:
    return {
        "metadata": {
            "name": name,
            "namespace": "nlp",
            "resourceVersion": str(version),
            "labels": labels or {},
            "managedFields": [{"manager": "kubectl"}],
        },
        "status": status,
    }


def test_a_late_watch_event_never_hides_a_newer_write() -> None:
    cache = ObjectCache()
    cache.observe(KIND, body("de", 12, phase="Ready"))  # the reply to our own status patch
    cache.observe(KIND, body("de", 11, phase="Training"))  # the watch event, arriving late
    held = cache.get(KIND, "nlp", "de")
    assert held is not None and held["status"] == {"phase": "Ready"}
    assert "managedFields" not in held["metadata"]  # nothing here reads it
    cache.observe(KIND, body("de", 13, phase="Failed"))
    assert cache.get(KIND, "nlp", "de")["status"] == {"phase": "Failed"}  # type: ignore[index]


def test_a_deletion_removes_the_object_unless_it_was_recreated_since() -> None:
    cache = ObjectCache()
    cache.observe(KIND, body("de", 5))
    cache.forget(KIND, body("de", 6))
    assert cache.get(KIND, "nlp", "de") is None
    cache.observe(KIND, body("fr", 9))  # recreated (a new version) ...
    cache.forget(KIND, body("fr", 7))  # ... before the old one's deletion arrived
    assert cache.get(KIND, "nlp", "fr") is not None


def test_a_list_drops_what_it_lacks_but_keeps_what_was_created_after_it() -> None:
    cache = ObjectCache()
    for name, version in (("de", 3), ("fr", 4), ("ja", 20)):
        cache.observe(KIND, body(name, version))
    # A LIST at version 10 found only de: fr was deleted unseen; ja is newer than the list.
    cache.sweep(KIND, "nlp", {("nlp", "de")}, "10")
    assert sorted(b["metadata"]["name"] for b in cache.objects(KIND, "nlp")) == ["de", "ja"]
    assert cache.size(KIND) == 2
    cache.sweep(KIND, "other", set(), "30")  # another namespace's list leaves this one alone
    assert cache.size(KIND) == 2


def test_the_label_index_follows_every_change() -> None:
    cache = ObjectCache()
    cache.observe(KIND, body("de", 1, {"task": "sentiment", "tier": "a"}))
    cache.observe(KIND, body("fr", 2, {"task": "sentiment"}))
    cache.observe(KIND, body("ja", 3, {"task": "qa"}))

    def names(labels: dict[str, str]) -> list[str]:
        return sorted(b["metadata"]["name"] for b in cache.select(KIND, "nlp", labels))

    assert names({"task": "sentiment"}) == ["de", "fr"]
    assert names({"task": "sentiment", "tier": "a"}) == ["de"]
    assert names({}) == ["de", "fr", "ja"]  # an empty selector selects everything
    assert names({"task": "missing"}) == []
    cache.observe(KIND, body("de", 4, {"task": "qa"}))  # relabelled
    assert names({"task": "sentiment"}) == ["fr"] and names({"task": "qa"}) == ["de", "ja"]
    cache.forget(KIND, body("fr", 5))
    assert names({"task": "sentiment"}) == []
    cache.sweep(KIND, "nlp", {("nlp", "de")}, "10")
    assert names({"task": "qa"}) == ["de"]
    assert cache.select(KIND, "elsewhere", {"task": "qa"}) == []


def test_a_job_is_held_as_what_the_operator_reads_of_it() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "de-train-1",
            "namespace": "nlp",
            "resourceVersion": "7",
            "labels": {"langmerge.io/name": "de"},
            "annotations": {"langmerge.io/inputs": "{}"},
            "managedFields": [{"manager": "langmerge"}],
        },
        "spec": {
            "backoffLimit": 2,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "command": ["langmerge-train", "--many", "arguments"],
                            "resources": {
                                "requests": {"cpu": "500m"},
                                "limits": {"nvidia.com/gpu": "2"},
                            },
                        }
                    ],
                    "volumes": [{"name": "artifacts"}],
                }
            },
        },
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    cache = ObjectCache(trim={"jobs": job_essentials})
    cache.observe("jobs", job)
    held = cache.get("jobs", "nlp", "de-train-1")
    assert held is not None
    for read in (job_cpus, job_gpus, job_finished):
        assert read(held) == read(job)
    assert held["metadata"]["annotations"] == job["metadata"]["annotations"]
    assert "managedFields" not in held["metadata"] and "volumes" not in str(held)
