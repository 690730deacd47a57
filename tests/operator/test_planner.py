"""The planner, without any server: what must run, from specs and observed status."""

from __future__ import annotations

from typing import Any

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.common import Phase
from langmerge.operator.api.merged import MergedModel
from langmerge.operator.api.reasons import Reason
from langmerge.operator.conditions import adapter_conditions, phase_of
from langmerge.operator.fingerprint import adapter_fingerprint, job_name
from langmerge.operator.planner import (
    Action,
    MergePlan,
    plan_merge,
    plan_training,
    retrained_since,
)
from tests.support.objects import LANGUAGES, adapter_manifest, merged_manifest

TRAINER, MERGER = "trainer:1", "merger:1"


def adapter(
    language: str = "de", status: dict[str, Any] | None = None, **spec: Any
) -> LanguageAdapter:
    body = adapter_manifest(language, **spec)
    body["metadata"]["namespace"] = "ns"
    if status is not None:
        body["status"] = status
    return LanguageAdapter.model_validate(body)


def trained(a: LanguageAdapter) -> LanguageAdapter:
    fp = adapter_fingerprint(a.spec, TRAINER)
    body = a.model_dump(by_alias=True, mode="json", exclude_none=True)
    body["status"] = {
        "artifact": {"uri": f"/artifacts/{fp}", "sha256": "0" * 64, "fingerprint": fp}
    }
    return LanguageAdapter.model_validate(body)


def merged(status: dict[str, Any] | None = None, **spec: Any) -> MergedModel:
    body = merged_manifest(**spec)
    body["metadata"]["namespace"] = "ns"
    if status is not None:
        body["status"] = status
    return MergedModel.model_validate(body)


def test_a_new_adapter_needs_training() -> None:
    plan = plan_training(adapter(), TRAINER)
    assert plan.action == Action.RUN
    assert plan.job == job_name("sentiment-de", "train", plan.fingerprint)


def test_an_adapter_whose_artifact_matches_is_up_to_date() -> None:
    assert plan_training(trained(adapter()), TRAINER).action == Action.NONE


def test_result_fields_change_the_fingerprint() -> None:
    base = adapter_fingerprint(adapter().spec, TRAINER)
    changed = [
        adapter(dataset={"uri": "datasets/sentiment/de.jsonl", "revision": "v2"}),
        adapter(lora={"rank": 16}),
        adapter(training={"learningRate": 0.001}),
        adapter(baseModel={"name": "builtin:tiny", "revision": "other"}),
    ]
    for other in changed:
        assert adapter_fingerprint(other.spec, TRAINER) != base
    assert adapter_fingerprint(adapter().spec, "trainer:2") != base  # a new trainer image retrains


def test_labels_resources_output_and_suspend_never_retrain() -> None:
    ready = trained(adapter())
    body = ready.model_dump(by_alias=True, mode="json", exclude_none=True)
    body["metadata"]["labels"]["team"] = "nlp"
    body["spec"]["resources"] = {"gpus": 4, "gpuType": "nvidia-h100-80gb", "queueName": "q"}
    body["spec"]["output"] = {"uri": "s3://elsewhere/de"}
    body["spec"]["suspend"] = True
    assert plan_training(LanguageAdapter.model_validate(body), TRAINER).action == Action.NONE


def test_a_failed_run_is_not_retried_until_the_spec_changes() -> None:
    a = adapter()
    fp = adapter_fingerprint(a.spec, TRAINER)
    failed = adapter(
        status={
            "lastRun": {"job": "j", "fingerprint": fp, "result": "Failed", "reason": "OOMKilled"}
        }
    )
    plan = plan_training(failed, TRAINER)
    assert plan.action == Action.FAILED and "OOMKilled" in plan.message
    fixed = adapter(
        status={"lastRun": {"job": "j", "fingerprint": fp, "result": "Failed"}}, lora={"rank": 4}
    )
    assert plan_training(fixed, TRAINER).action == Action.RUN


def test_suspend_stops_new_runs() -> None:
    assert plan_training(adapter(suspend=True), TRAINER).action == Action.SUSPENDED


def test_merge_waits_until_every_selected_adapter_is_ready() -> None:
    adapters = [trained(adapter(lang)) for lang in LANGUAGES[:4]] + [adapter("zh")]
    plan = plan_merge(merged(), adapters, TRAINER, MERGER)
    assert plan.action == Action.WAIT and plan.waiting_for == ("sentiment-zh",)
    adapters[-1] = trained(adapters[-1])
    plan = plan_merge(merged(), adapters, TRAINER, MERGER)
    assert plan.action == Action.RUN and len(plan.inputs) == 5


def test_merge_selects_by_label_or_by_name_within_the_namespace() -> None:
    others = [trained(adapter("de", task="summary")), trained(adapter("fr"))]
    plan = plan_merge(merged(), others, TRAINER, MERGER)
    assert [i.name for i in plan.inputs] == ["sentiment-fr"]
    by_name = merged(adapters={"names": ["sentiment-fr", "sentiment-it"]})
    plan = plan_merge(by_name, others, TRAINER, MERGER)
    assert plan.action == Action.WAIT and plan.reason == "AdaptersMissing"


def test_weights_are_taken_per_language() -> None:
    adapters = [trained(adapter(lang)) for lang in ("de", "ja")]
    plan = plan_merge(merged(parameters={"weights": {"ja": 1.5}}), adapters, TRAINER, MERGER)
    assert {i.language: i.weight for i in plan.inputs} == {"de": 1.0, "ja": 1.5}


def test_weights_for_a_language_no_selected_adapter_has_block_the_merge() -> None:
    adapters = [trained(adapter(lang)) for lang in ("de", "ja")]
    typo = merged(parameters={"weights": {"ja": 1.5, "dee": 2.0}})
    plan = plan_merge(typo, adapters, TRAINER, MERGER)
    assert plan.action == Action.BLOCKED and plan.reason == Reason.INCOMPATIBLE_ADAPTERS
    assert plan.message == (
        "spec.parameters.weights: no selected adapter has language dee (the adapters' "
        "languages: de, ja); weigh only those"
    )


def test_incompatible_adapters_block_the_merge_with_a_reason() -> None:
    other_base = trained(adapter("fr", baseModel={"name": "llama-3.1-8b"}))
    plan = plan_merge(merged(), [trained(adapter("de")), other_base], TRAINER, MERGER)
    assert (
        plan.action == Action.BLOCKED
        and "sentiment-fr" in plan.message
        and "baseModel" in plan.message
    )
    other_modules = trained(adapter("fr", lora={"rank": 8, "targetModules": ["q_proj"]}))
    plan = plan_merge(merged(), [trained(adapter("de")), other_modules], TRAINER, MERGER)
    assert plan.action == Action.BLOCKED and "targetModules" in plan.message


def test_one_merge_per_input_set() -> None:
    adapters = [trained(adapter(lang)) for lang in LANGUAGES]
    plan = plan_merge(merged(), adapters, TRAINER, MERGER)
    done = merged(
        status={"artifact": {"uri": "u", "sha256": "0" * 64, "fingerprint": plan.fingerprint}}
    )
    assert plan_merge(done, adapters, TRAINER, MERGER).action == Action.NONE
    # three adapters change together: while any retrains, no merge; then exactly one.
    changed = [adapter(lang, revision="v2") for lang in LANGUAGES[:3]] + adapters[3:]
    assert plan_merge(done, changed, TRAINER, MERGER).action == Action.WAIT
    partly = [trained(a) for a in changed[:2]] + changed[2:]
    assert plan_merge(done, partly, TRAINER, MERGER).action == Action.WAIT
    finished = [trained(a) for a in changed[:3]] + adapters[3:]
    again = plan_merge(done, finished, TRAINER, MERGER)
    assert again.action == Action.RUN and again.fingerprint != plan.fingerprint
    previous = {i.name: i.fingerprint for i in plan.inputs}
    current = {i.name: i.fingerprint for i in again.inputs}
    assert retrained_since(previous, current) == ["sentiment-de", "sentiment-en", "sentiment-fr"]


def test_merge_settings_change_the_merge_fingerprint_but_not_resources() -> None:
    adapters = [trained(adapter(lang)) for lang in ("de", "fr")]
    base = plan_merge(merged(), adapters, TRAINER, MERGER).fingerprint
    assert plan_merge(merged(method="ties"), adapters, TRAINER, MERGER).fingerprint != base
    assert (
        plan_merge(merged(parameters={"density": 0.3}), adapters, TRAINER, MERGER).fingerprint
        != base
    )
    assert plan_merge(merged(resources={"gpus": 1}), adapters, TRAINER, MERGER).fingerprint == base


def test_job_names_fit_a_label_and_are_stable() -> None:
    name = job_name("a" * 80, "train", "0123456789abcdef0123")
    assert len(name) <= 63 and name.endswith("-train-0123456789")
    assert name == job_name("a" * 80, "train", "0123456789abcdef0123")


def test_status_patches_remove_what_is_gone() -> None:
    from langmerge.operator.kube import merge_patch

    before = {
        "activeJob": {"name": "j"},
        "artifact": {"uri": "a", "trainedAt": "t"},
        "totals": {"runs": 1},
    }
    after = {"artifact": {"uri": "b"}, "totals": {"runs": 1}}
    assert merge_patch(before, after) == {
        "activeJob": None,
        "artifact": {"uri": "b", "trainedAt": None},
    }
    assert merge_patch(after, after) == {}


def test_the_phase_summarises_each_outcome_in_one_word() -> None:
    new, ready = adapter(), trained(adapter())
    assert phase_of(plan_training(new, TRAINER), Phase.TRAINING, True, None) == Phase.QUEUED
    assert phase_of(plan_training(new, TRAINER), Phase.TRAINING, False, None) == Phase.TRAINING
    assert phase_of(plan_training(new, TRAINER), Phase.TRAINING, False, "over") == Phase.BLOCKED
    assert phase_of(plan_training(ready, TRAINER), Phase.TRAINING, False, None) == Phase.READY
    suspended = adapter(suspend=True)
    assert phase_of(plan_training(suspended, TRAINER), Phase.TRAINING, False, None) == (
        Phase.SUSPENDED
    )
    waiting = plan_merge(merged(), [new], TRAINER, MERGER)
    assert phase_of(waiting, Phase.MERGING, False, None) == Phase.PENDING


def test_a_gate_refusal_blocks_and_a_failed_run_fails() -> None:
    inputs = [trained(adapter("de")), trained(adapter("fr"))]
    fingerprint = plan_merge(merged(), inputs, TRAINER, MERGER).fingerprint

    def after(reason: str) -> MergePlan:
        last = {"job": "j", "fingerprint": fingerprint, "result": "Failed", "reason": reason}
        return plan_merge(merged(status={"lastRun": last}), inputs, TRAINER, MERGER)

    gated = after("evaluation gate: de f1 0.4 is 0.4 below the combined model's")
    assert gated.reason == "GateRefused"
    assert phase_of(gated, Phase.MERGING, False, None) == Phase.BLOCKED
    crashed = after("OOMKilled (exit code 137)")
    assert crashed.reason == "MergeFailed"
    assert phase_of(crashed, Phase.MERGING, False, None) == Phase.FAILED


def test_ready_says_why_a_run_has_not_started() -> None:
    plan = plan_training(adapter(), TRAINER)
    (pending,) = [
        c for c in adapter_conditions(None, plan, None, 1, pending=True) if c.type == "Ready"
    ]
    assert pending.reason == "JobPending" and plan.job in pending.message
    queued = {c.type: c for c in adapter_conditions(None, plan, None, 1, pending=True)}
    assert (queued["Training"].status, queued["Training"].reason) == ("False", "JobPending")
    running = {c.type: c for c in adapter_conditions(None, plan, None, 1, pending=False)}
    assert (running["Training"].status, running["Training"].reason) == ("True", "JobRunning")
    conditions = adapter_conditions(None, plan, None, 1, blocked="would exceed the budget")
    (held,) = [c for c in conditions if c.type == "Ready"]
    assert (held.reason, held.message) == ("BudgetExceeded", "would exceed the budget")
