"""The evaluation gate the merger applies before publishing (in the cluster and locally), and
the statistics it decides on."""

from __future__ import annotations

import random

from langmerge.merger.evaluate import Scored, rouge
from langmerge.merger.gate import decide
from langmerge.merger.statistics import chance, classification_metrics, paired_difference


def _scored(gold: list[str], predicted: list[str]) -> Scored:
    return Scored(classification_metrics(gold, predicted), gold, predicted)


def _noisy(gold: list[str], error_rate: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    flip = {"positive": "negative", "negative": "positive"}
    return [flip[g] if rng.random() < error_rate else g for g in gold]


GOLD = ["positive", "negative"] * 100  # 200 balanced examples, as in the quickstart


def test_classification_metrics_are_macro_averaged_with_an_interval() -> None:
    metrics = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert metrics["accuracy"] == 0.75 and metrics["examples"] == 4
    assert abs(metrics["precision"] - (1.0 + 2 / 3) / 2) < 1e-9
    assert abs(metrics["recall"] - (0.5 + 1.0) / 2) < 1e-9
    scored = classification_metrics(GOLD, _noisy(GOLD, 0.2, 1))
    assert scored["f1Low"] < scored["f1"] < scored["f1High"]
    assert 0.05 < scored["f1High"] - scored["f1Low"] < 0.2  # about +-5 points at n = 200
    assert classification_metrics(GOLD, _noisy(GOLD, 0.2, 1)) == scored  # seeded


def test_chance_is_the_expected_score_of_a_uniform_guess() -> None:
    assert chance(GOLD)["f1"] == 0.5 and chance(GOLD)["accuracy"] == 0.5
    rng = random.Random(7)
    guesses = [
        classification_metrics(GOLD, [rng.choice(["positive", "negative"]) for _ in GOLD])["f1"]
        for _ in range(200)
    ]
    assert abs(sum(guesses) / len(guesses) - 0.5) < 0.01


def test_paired_difference_is_narrower_than_the_two_intervals() -> None:
    baseline = _noisy(GOLD, 0.1, 2)
    rng = random.Random(8)  # the candidate mends a few of the baseline's mistakes
    candidate = [g if rng.random() < 0.3 else b for g, b in zip(GOLD, baseline, strict=True)]
    point, low, high = paired_difference(GOLD, candidate, baseline, "f1")
    assert 0 < low <= point <= high  # the mends are a real, resolvable improvement
    single = classification_metrics(GOLD, candidate)
    assert high - low < single["f1High"] - single["f1Low"]


def test_gate_blocks_a_drop_the_interval_cannot_explain_and_names_it() -> None:
    comb = {lang: _scored(GOLD, _noisy(GOLD, 0.02, 3)) for lang in ("de", "fr")}
    at_chance = {
        "de": _scored(GOLD, _noisy(GOLD, 0.03, 4)),
        "fr": _scored(GOLD, _noisy(GOLD, 0.5, 5)),
    }
    verdict = decide(at_chance, comb, "f1", 0.05, "combined")
    assert not verdict.passed
    assert verdict.reason.startswith("fr f1 ")
    assert "the combined model (COMB)" in verdict.reason and "95 % interval" in verdict.reason
    assert verdict.comparisons["fr"]["high"] < -0.05 <= verdict.comparisons["de"]["high"]


def test_gate_reason_leads_with_the_worst_language_and_names_every_blocked_one() -> None:
    comb = {lang: _scored(GOLD, GOLD) for lang in ("de", "ja", "zh")}
    merged = {
        "de": _scored(GOLD, _noisy(GOLD, 0.3, 9)),  # blocked, alphabetically first
        "ja": _scored(GOLD, _noisy(GOLD, 1.0, 10)),  # at chance: the worst
        "zh": _scored(GOLD, GOLD),
    }
    verdict = decide(merged, comb, "f1", 0.02, "combined")
    assert not verdict.passed
    assert verdict.reason.startswith("ja f1 ")
    assert "blocked in 2 of 3 languages (de, ja)" in verdict.reason


def test_gate_passes_a_difference_within_the_margin_or_the_noise() -> None:
    comb = {"de": _scored(GOLD, _noisy(GOLD, 0.02, 3))}
    close = {"de": _scored(GOLD, _noisy(GOLD, 0.06, 6))}  # about 4 points worse
    assert decide(close, comb, "f1", 0.05, "combined").passed
    better = {"de": _scored(GOLD, GOLD)}
    assert decide(better, comb, "f1", 0.0, "combined").passed


def test_gate_on_loss_compares_the_values() -> None:
    ours = {"de": Scored({"loss": 1.30})}
    theirs = {"de": Scored({"loss": 1.00})}
    verdict = decide(ours, theirs, "loss", 0.1, "current")
    assert not verdict.passed and "the current merged model's 1.000" in verdict.reason
    assert decide(ours, theirs, "loss", 0.5, "current").passed


def test_rouge_counts_words_or_characters() -> None:
    assert rouge("the cat sat", "the cat sat") == (1.0, 1.0)
    assert rouge("猫が座った", "猫が座った") == (1.0, 1.0)
    assert rouge("", "x") == (0.0, 0.0)
