"""Intervals that resample groups: records written from one template, scenario or text are
not independent draws, so where the records name their groups the bootstrap draws whole
groups (langmerge.merger.statistics), in the metrics and in the gate's paired difference."""

from __future__ import annotations

import random

import pytest

from langmerge.merger import statistics
from langmerge.merger.evaluate import Scored
from langmerge.merger.gate import decide

LABELS = ("positive", "negative")


def _clustered(groups: int, size: int, seed: int) -> tuple[list[str], list[str], list[int]]:
    """`groups` groups of `size` records; a model right or wrong on a whole group at once."""
    rng = random.Random(seed)
    gold, predicted, group_of = [], [], []
    for g in range(groups):
        label, right = LABELS[g % 2], rng.random() < 0.7
        for _ in range(size):
            gold.append(label)
            predicted.append(label if right else LABELS[1 - g % 2])
            group_of.append(g)
    return gold, predicted, group_of


def _width(metrics: dict[str, float], metric: str) -> float:
    return metrics[f"{metric}High"] - metrics[f"{metric}Low"]


def test_every_record_its_own_group_is_the_bootstrap_over_records() -> None:
    gold, predicted, _ = _clustered(20, 10, 1)
    assert statistics.classification_metrics(
        gold, predicted, list(range(len(gold)))
    ) == statistics.classification_metrics(gold, predicted)
    values = [random.Random(2).random() for _ in range(50)]
    assert statistics.mean_with_interval("r", values, [f"g{i}" for i in range(50)]) == (
        statistics.mean_with_interval("r", values)
    )


def test_records_of_one_group_count_as_the_group_once() -> None:
    """Twenty records alike in each of ten groups say what the ten groups say: the grouped
    interval over the 200 records is the records' interval over the ten groups' means."""
    rng = random.Random(3)
    means = [rng.random() for _ in range(10)]
    records = [m for m in means for _ in range(20)]
    group_of = [g for g in range(10) for _ in range(20)]
    grouped = statistics.mean_with_interval("r", records, group_of)
    of_means = statistics.mean_with_interval("r", means)
    for key in ("r", "rLow", "rHigh"):
        assert grouped[key] == pytest.approx(of_means[key], abs=1e-12)
    by_record = statistics.mean_with_interval("r", records)
    assert grouped["rHigh"] - grouped["rLow"] > 3 * (by_record["rHigh"] - by_record["rLow"])


def test_grouped_classification_intervals_are_wider_and_hold_the_point() -> None:
    gold, predicted, group_of = _clustered(20, 10, 4)
    grouped = statistics.classification_metrics(gold, predicted, group_of)
    by_record = statistics.classification_metrics(gold, predicted)
    for metric in ("accuracy", "f1", "precision", "recall"):
        assert grouped[metric] == by_record[metric]  # the point is the records' own
        assert grouped[f"{metric}Low"] <= grouped[metric] <= grouped[f"{metric}High"]
        assert _width(grouped, metric) > 2 * _width(by_record, metric)
    assert grouped == statistics.classification_metrics(gold, predicted, group_of)  # seeded


def test_group_names_of_any_kind_and_order_resample_the_same_way() -> None:
    gold, predicted, group_of = _clustered(12, 5, 5)
    named = [f"scenario {g}" for g in group_of]
    assert statistics.classification_metrics(
        gold, predicted, named
    ) == statistics.classification_metrics(gold, predicted, group_of)
    with pytest.raises(ValueError, match="3 groups for 60 examples"):
        statistics.classification_metrics(gold, predicted, [0, 1, 2])


def test_the_gate_resamples_groups_and_lets_a_loss_on_few_groups_through() -> None:
    """A merge that loses two whole groups of twenty: over records the interval is sure of a
    loss beyond the margin; over the groups it is not, so the gate passes it."""
    gold, _, group_of = _clustered(20, 10, 6)
    baseline = list(gold)  # the baseline right everywhere
    candidate = [
        LABELS[1 - LABELS.index(g)] if group < 2 else g
        for g, group in zip(gold, group_of, strict=True)
    ]

    def scored(predicted: list[str], groups: list[int] | None) -> Scored:
        metrics = statistics.classification_metrics(gold, predicted, groups)
        return Scored(metrics, gold, predicted, groups=groups)

    by_record = decide(
        {"de": scored(candidate, None)}, {"de": scored(baseline, None)}, "f1", 0.02, "combined"
    )
    grouped = decide(
        {"de": scored(candidate, group_of)},
        {"de": scored(baseline, group_of)},
        "f1",
        0.02,
        "combined",
    )
    assert not by_record.passed
    assert grouped.passed
    assert grouped.comparisons["de"]["difference"] == by_record.comparisons["de"]["difference"]
    assert grouped.comparisons["de"]["low"] < by_record.comparisons["de"]["low"]


def test_paired_mean_difference_over_groups() -> None:
    rng = random.Random(7)
    shifts = [rng.uniform(-0.2, 0.1) for _ in range(8)]
    candidate = [0.5 + shifts[g] for g in range(8) for _ in range(12)]
    baseline = [0.5] * len(candidate)
    group_of = [g for g in range(8) for _ in range(12)]
    point, low, high = statistics.paired_mean_difference(candidate, baseline, group_of)
    assert point == pytest.approx(sum(shifts) / 8)
    _, record_low, record_high = statistics.paired_mean_difference(candidate, baseline)
    assert low <= point <= high
    assert high - low > 2 * (record_high - record_low)


def _languages(
    data: dict[str, tuple[list[str], list[str], list[object] | None]],
) -> dict[str, tuple[statistics.Sampler, int, statistics.Groups]]:
    return {
        language: (statistics.classification_sampler(gold, predicted), len(gold), groups)
        for language, (gold, predicted, groups) in data.items()
    }


def test_translations_of_one_unit_are_drawn_once_for_every_language() -> None:
    """Five languages written from the same ten scenarios, a model right or wrong on a
    scenario in every language alike: the mean over the languages says what one language
    says, and its interval is that language's; combined as independent languages it would be
    about sqrt(5) times narrower."""
    gold, predicted, group_of = _clustered(10, 8, 8)
    named = [f"scenario {g}" for g in group_of]
    one = statistics.classification_metrics(gold, predicted, named)
    mean = statistics.mean_over_languages(
        _languages({language: (gold, predicted, named) for language in "abcde"})
    )
    assert mean["languages"] == 5 and mean["units"] == 10
    for metric in ("accuracy", "f1", "precision", "recall"):
        for key in (metric, f"{metric}Low", f"{metric}High"):
            assert mean[key] == pytest.approx(one[key], abs=1e-12)
    independent = _width(one, "f1") / 5**0.5  # sqrt(sum of five squared half-widths) / 5
    assert _width(mean, "f1") > 2 * independent


def test_languages_of_units_of_their_own_average_out() -> None:
    """Records without groups, or groups named differently in each language, are units of
    their own language: the mean's interval narrows as independent languages' would."""
    per_language = {language: _clustered(10, 1, seed) for seed, language in enumerate("abcde")}
    for named in (False, True):
        data = {
            language: (gold, predicted, [f"{language}{g}" for g in group_of] if named else None)
            for language, (gold, predicted, group_of) in per_language.items()
        }
        mean = statistics.mean_over_languages(_languages(data))
        assert mean["units"] == 50
        ones = [statistics.classification_metrics(g, p) for g, p, _ in data.values()]
        assert mean["accuracy"] == pytest.approx(sum(o["accuracy"] for o in ones) / 5)
        assert mean["accuracyLow"] <= mean["accuracy"] <= mean["accuracyHigh"]
        widest = max(_width(o, "accuracy") for o in ones)
        assert _width(mean, "accuracy") < 0.7 * widest


def test_the_mean_of_per_example_scores_over_languages() -> None:
    rng = random.Random(9)
    shared = [rng.random() for _ in range(6)]  # six texts, each as hard in every language
    languages = {
        language: (
            statistics.mean_sampler({"rougeL": [s + shift for s in shared for _ in range(3)]}),
            18,
            [f"text {t}" for t in range(6) for _ in range(3)],
        )
        for language, shift in (("en", 0.0), ("de", 0.1))
    }
    mean = statistics.mean_over_languages(languages)
    assert mean["rougeL"] == pytest.approx(sum(shared) / 6 + 0.05)
    one = statistics.mean_with_interval("rougeL", shared)  # the six texts' own interval
    assert mean["rougeLLow"] == pytest.approx(one["rougeLLow"] + 0.05, abs=1e-12)
    assert mean["rougeLHigh"] == pytest.approx(one["rougeLHigh"] + 0.05, abs=1e-12)
    assert mean == statistics.mean_over_languages(languages)  # seeded
    with pytest.raises(ValueError, match="no languages"):
        statistics.mean_over_languages({})
