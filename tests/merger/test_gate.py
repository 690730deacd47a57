"""The evaluation gate the merger applies before publishing (in the cluster and locally)."""

from __future__ import annotations

from langmerge.merger.evaluate import classification_metrics, gate, rouge, worsening


def test_worsening_knows_that_lower_loss_is_better() -> None:
    assert abs(worsening("f1", 0.6, 0.8) - 0.25) < 1e-12
    assert abs(worsening("loss", 1.2, 1.0) - 0.2) < 1e-12
    assert worsening("loss", 0.8, 1.0) < 0


def test_gate_names_the_language_and_the_margin() -> None:
    baselines = {"de": {"f1": 0.8}, "fr": {"f1": 0.6}}
    passed, reason = gate(
        {"de": {"f1": 0.78}, "fr": {"f1": 0.4}}, baselines, "f1", 0.1, "individual"
    )
    assert not passed and reason.startswith(
        "fr f1 0.400 is 33% worse than its individual adapter's 0.600"
    )
    assert gate({"de": {"f1": 0.78}, "fr": {"f1": 0.58}}, baselines, "f1", 0.1, "individual") == (
        True,
        "",
    )


def test_classification_metrics_are_macro_averaged() -> None:
    metrics = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert metrics["accuracy"] == 0.75
    assert abs(metrics["precision"] - (1.0 + 2 / 3) / 2) < 1e-9
    assert abs(metrics["recall"] - (0.5 + 1.0) / 2) < 1e-9


def test_rouge_counts_words_or_characters() -> None:
    assert rouge("the cat sat", "the cat sat") == (1.0, 1.0)
    assert rouge("猫が座った", "猫が座った") == (1.0, 1.0)
    assert rouge("", "x") == (0.0, 0.0)
