"""The langmerge-merge command line the cluster's Job and the local loop build from a
MergedModel: the weight convention and the evaluation gate reach the merger as specified."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.merged import MergedModel
from langmerge.operator.fingerprint import adapter_fingerprint
from langmerge.operator.jobs import merge_args
from langmerge.operator.planner import Action, plan_merge
from tests.support.objects import adapter_manifest, merged_manifest

TRAINER, MERGER = "trainer:1", "merger:1"
EVALUATION = {"datasets": {"de": "/e/de.jsonl", "fr": "/e/fr.jsonl"}, "metrics": ["f1"]}


def _trained(language: str) -> LanguageAdapter:
    body = adapter_manifest(language)
    body["metadata"]["namespace"] = "ns"
    adapter = LanguageAdapter.model_validate(body)
    fp = adapter_fingerprint(adapter.spec, TRAINER)
    body["status"] = {"artifact": {"uri": f"/a/{language}", "sha256": "0" * 64, "fingerprint": fp}}
    return LanguageAdapter.model_validate(body)


def _args(*, current: str | None = None, combined: str | None = None, **spec: Any) -> list[str]:
    body = merged_manifest(adapters={"names": ["sentiment-de", "sentiment-fr"]}, **spec)
    body["metadata"]["namespace"] = "ns"
    merged = MergedModel.model_validate(body)
    plan = plan_merge(merged, [_trained("de"), _trained("fr")], TRAINER, MERGER)
    assert plan.action == Action.RUN
    return merge_args(merged.spec, plan, "/out", None, "cpu", current, combined)


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_weights_are_relative_by_default_and_raw_weights_are_named_as_such() -> None:
    assert _flag(_args(), "--weight-normalization") == "sum-to-one"
    raw = _args(parameters={"weightNormalization": "none", "weights": {"de": 2.0}})
    assert _flag(raw, "--weight-normalization") == "none"
    assert _flag(raw, "--weights") == "2.0,1.0"  # in adapter order: de, fr


def test_a_gate_against_the_combined_model_names_its_baseline() -> None:
    gate = {"against": "combined", "maxDrop": 0.05, "combinedModelUri": "/a/comb"}
    args = _args(evaluation={**EVALUATION, "gate": gate})
    assert _flag(args, "--gate-against") == "combined"
    assert _flag(args, "--gate-max-drop") == "0.05"
    assert _flag(args, "--gate-baseline") == "/a/comb"
    # without a URI in the spec, the caller's own COMB (the local loop's) is used
    gate.pop("combinedModelUri")
    local = _args(evaluation={**EVALUATION, "gate": gate}, combined="/state/comb")
    assert _flag(local, "--gate-baseline") == "/state/comb"


def test_a_gate_against_the_current_model_passes_it_only_once_there_is_one() -> None:
    gate = {"against": "current", "maxDrop": 0.02}
    assert _flag(_args(evaluation={**EVALUATION, "gate": gate}), "--gate-baseline") is None
    later = _args(evaluation={**EVALUATION, "gate": gate}, current="/a/merged-1")
    assert _flag(later, "--gate-baseline") == "/a/merged-1"


def test_a_gate_against_individual_adapters_needs_no_baseline() -> None:
    args = _args(evaluation={**EVALUATION, "gate": {"against": "individual"}})
    assert _flag(args, "--gate-against") == "individual" and "--gate-baseline" not in args


def test_only_knots_ties_is_given_a_top_k_scope() -> None:
    assert _flag(_args(method="knots-ties"), "--topk-scope") == "model"
    assert _flag(
        _args(method="knots-ties", parameters={"topkScope": "module"}), "--topk-scope"
    ) == ("module")
    assert "--topk-scope" not in _args(method="ties")


SEARCH = {
    "grid": [
        {"method": "knots-ties", "densities": [0.3, 0.5], "weights": [{"preset": "examples"}]},
        {"method": "ties", "lambdas": [1, 1.5]},
        {"method": "knots-dare-ties", "seeds": [0, 7], "weights": [{"languages": {"de": 2}}]},
    ],
    "metric": "accuracy",
    "aggregate": "worst",
    "validation": {"de": "/v/de.jsonl", "fr": "/v/fr.jsonl"},
}


def test_a_search_reaches_the_merger_as_its_grid_and_validation_data() -> None:
    from langmerge.merger import cli

    args = _args(search=SEARCH, evaluation=EVALUATION)
    assert json.loads(_flag(args, "--search") or "") == {
        "grid": [
            {"method": "knots-ties", "densities": [0.3, 0.5], "weights": ["examples"]},
            {"method": "ties", "lambdas": [1.0, 1.5]},
            {"method": "knots-dare-ties", "seeds": [0, 7], "weights": [{"de": 2.0}]},
        ],
        "metric": "accuracy",
        "aggregate": "worst",
    }
    assert [a for a in args if a.startswith("--validate")] == [
        "--validate=de=/v/de.jsonl",
        "--validate=fr=/v/fr.jsonl",
    ]
    for single in ("--method", "--density", "--lambda", "--seed", "--weights"):
        assert single not in args  # the grid sets them per candidate
    assert _flag(args, "--topk-scope") == "model"  # a knots-ties candidate takes it
    assert _flag(args, "--base-model") == "builtin:tiny"  # candidates are scored
    # The merger accepts the command line as built: its checks, before any work.
    parsed = cli.build_parser().parse_args(args)
    cli._candidate_flags(parsed)
    search = cli._search(parsed)
    assert search is not None and len(search.candidates) == 6


def test_search_weights_for_a_language_no_adapter_has_block_the_merge() -> None:
    body = merged_manifest(adapters={"names": ["sentiment-de", "sentiment-fr"]})
    body["metadata"]["namespace"] = "ns"
    body["spec"]["search"] = {
        "grid": [
            {"method": "linear", "weights": [{"preset": "uniform"}, {"languages": {"ja": 2}}]}
        ],
        "validation": {"de": "/v/de.jsonl"},
    }
    plan = plan_merge(
        MergedModel.model_validate(body), [_trained("de"), _trained("fr")], TRAINER, MERGER
    )
    assert plan.action == Action.BLOCKED
    assert plan.message.startswith("spec.search.grid[0].weights[1].languages: no selected")
    assert "language ja" in plan.message and "de, fr" in plan.message


def test_a_search_is_part_of_the_merge_fingerprint_and_absent_changes_nothing() -> None:
    from langmerge.operator.fingerprint import merge_fingerprint

    body = merged_manifest(adapters={"names": ["sentiment-de"]})
    body["metadata"]["namespace"] = "ns"
    plain = MergedModel.model_validate(body).spec
    body["spec"]["search"] = SEARCH
    searched = MergedModel.model_validate(body).spec
    inputs = {"sentiment-de": "f" * 64}
    # What the operator computed before searches existed: an upgrade re-merges nothing.
    assert merge_fingerprint(plain, inputs, MERGER) == "3c99640f48e7f2e95c2f"
    assert merge_fingerprint(plain, inputs, MERGER) != merge_fingerprint(searched, inputs, MERGER)
    body["spec"]["search"] = {**SEARCH, "aggregate": "mean"}
    other = MergedModel.model_validate(body).spec
    assert merge_fingerprint(other, inputs, MERGER) != merge_fingerprint(searched, inputs, MERGER)


def test_the_scoring_precision_reaches_the_merger_and_unset_keeps_the_fingerprint() -> None:
    from langmerge.operator.fingerprint import merge_fingerprint

    assert "--eval-precision" not in _args(evaluation=EVALUATION)  # the merger's default, fp32
    bf16 = _args(evaluation={**EVALUATION, "precision": "bf16"})
    assert _flag(bf16, "--eval-precision") == "bf16"
    # a search is scored in it too, with no gate datasets
    searched = _args(evaluation={"precision": "bf16"}, search=SEARCH)
    assert _flag(searched, "--eval-precision") == "bf16"
    # nothing is scored: nothing to pass
    assert "--eval-precision" not in _args(evaluation={"precision": "bf16"})

    body = merged_manifest(adapters={"names": ["sentiment-de"]}, evaluation=EVALUATION)
    body["metadata"]["namespace"] = "ns"
    unset = MergedModel.model_validate(body).spec
    body["spec"]["evaluation"] = {**EVALUATION, "precision": "bf16"}
    other = MergedModel.model_validate(body).spec
    inputs = {"sentiment-de": "f" * 64}
    assert merge_fingerprint(unset, inputs, MERGER) != merge_fingerprint(other, inputs, MERGER)
    body["spec"]["evaluation"] = {**EVALUATION, "precision": "fp16"}
    with pytest.raises(ValidationError, match="precision"):
        MergedModel.model_validate(body)
