"""Classification metrics and per-example means (ROUGE) with bootstrap 95 % intervals, and
the paired interval of a difference between two models on the same examples (what the
evaluation gate decides on).

The bootstrap resamples examples, or, where the records name their groups, whole groups:
examples written from one template, scenario or text are not independent draws (200
questions from 20 scenarios say about as much as the 20), and resampling them one by one
gives an interval too narrow for the data. A resample is a weight per example: how often
its group was drawn, so every metric is a weighted count or mean over the same examples.

The mean of a metric over languages has an interval of its own (mean_over_languages): the
languages are resampled together, the same draw of a group key weighting that unit in every
language that has it, since held-out sets written as translations of each other (the same
scenario, text or predicate in each language) fail or pass together; combining the
per-language intervals as independent would make the mean's interval too narrow.

Everything is vectorised over resamples with numpy and seeded, so the same predictions give
the same intervals on every run."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 20260

Groups = Sequence[Hashable] | None  # each example's group; None: each example its own
# A data set's metrics under resample weights (resamples x examples -> metric -> resamples).
Sampler = Callable[[np.ndarray], dict[str, np.ndarray]]


def _codes(gold: Sequence[str], *predictions: Sequence[str]) -> tuple[np.ndarray, ...]:
    labels = sorted(set(gold))
    index = {label: i for i, label in enumerate(labels)}
    # A prediction outside the gold labels is a miss for every class (code -1).
    return tuple(
        np.array([index.get(v, -1) for v in values], dtype=np.int64)
        for values in (gold, *predictions)
    )


def _scores(
    gold: np.ndarray, predicted: np.ndarray, classes: int, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Macro precision/recall/F1 and accuracy, one per row of `weights` (resamples x
    examples: how often each example counts)."""

    def count(hits: np.ndarray) -> np.ndarray:
        total: np.ndarray = np.sum(weights * hits, axis=-1)  # pairwise: alike on every run
        return total

    precisions, recalls, f1s = [], [], []
    for c in range(classes):
        is_gold, is_pred = gold == c, predicted == c
        tp = count(is_gold & is_pred)
        fp = count(~is_gold & is_pred)
        fn = count(is_gold & ~is_pred)
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
        both = precision + recall
        f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
    return {
        "accuracy": count(gold == predicted) / np.sum(weights, axis=-1),
        "precision": np.mean(precisions, axis=0),
        "recall": np.mean(recalls, axis=0),
        "f1": np.mean(f1s, axis=0),
    }


def _codes_of(n: int, groups: Groups) -> tuple[np.ndarray, list[Hashable]]:
    """Each example's group as an index into the groups in order of first appearance."""
    if groups is None:
        return np.arange(n), list(range(n))
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} examples")
    first: dict[Hashable, int] = {}
    codes = np.array([first.setdefault(g, len(first)) for g in groups], dtype=np.int64)
    return codes, list(first)


def _draw_counts(count: int, seed: int) -> np.ndarray:
    """RESAMPLES x count: how often each of `count` units is drawn, `count` draws each."""
    draws = np.random.default_rng(seed).integers(0, count, size=(RESAMPLES, count))
    offsets = (np.arange(RESAMPLES) * count)[:, None]
    drawn = np.bincount((draws + offsets).ravel(), minlength=RESAMPLES * count)
    return drawn.reshape(RESAMPLES, count).astype(np.float64)


def _resample(n: int, groups: Groups, seed: int) -> np.ndarray:
    """RESAMPLES x n weights: in each resample as many groups drawn with replacement as there
    are, and each example weighted by how often its group was drawn. Without groups this is
    the usual bootstrap over examples."""
    codes, units = _codes_of(n, groups)
    return _draw_counts(len(units), seed)[:, codes]


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    mean: np.ndarray = np.sum(weights * values, axis=-1) / np.sum(weights, axis=-1)
    return mean


def _bounds(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def classification_metrics(
    gold: Sequence[str], predicted: Sequence[str], groups: Groups = None, seed: int = SEED
) -> dict[str, float]:
    """accuracy, macro precision/recall/F1, each with a bootstrap 95 % interval
    (`f1Low`, `f1High`, ...) over the examples, or over their groups; `examples` is n."""
    if not gold:
        raise ValueError("no examples to score")
    g, p = _codes(gold, predicted)
    classes = len(set(gold))
    point = _scores(g, p, classes, np.ones((1, len(g))))
    sampled = _scores(g, p, classes, _resample(len(g), groups, seed))
    out: dict[str, float] = {"examples": float(len(g))}
    for metric, value in point.items():
        out[metric] = float(value[0])
        out[f"{metric}Low"], out[f"{metric}High"] = _bounds(sampled[metric])
    return out


def paired_difference(
    gold: Sequence[str],
    candidate: Sequence[str],
    baseline: Sequence[str],
    metric: str,
    groups: Groups = None,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """candidate - baseline on one metric, and its paired bootstrap 95 % interval: both models
    are scored on the same resampled examples (or groups), so the shared difficulty
    cancels."""
    g, c, b = _codes(gold, candidate, baseline)
    classes = len(set(gold))
    once = np.ones((1, len(g)))
    point = float(_scores(g, c, classes, once)[metric][0] - _scores(g, b, classes, once)[metric][0])
    weights = _resample(len(g), groups, seed)
    samples = _scores(g, c, classes, weights)[metric] - _scores(g, b, classes, weights)[metric]
    low, high = _bounds(samples)
    return point, low, high


def mean_with_interval(
    metric: str, values: Sequence[float], groups: Groups = None, seed: int = SEED
) -> dict[str, float]:
    """The mean of per-example scores (ROUGE) with its bootstrap 95 % interval over the
    examples, or over their groups."""
    if not values:
        raise ValueError("no examples to score")
    v = np.asarray(values, dtype=np.float64)
    low, high = _bounds(_weighted_mean(v, _resample(len(v), groups, seed)))
    return {metric: float(v.mean()), f"{metric}Low": low, f"{metric}High": high}


def paired_mean_difference(
    candidate: Sequence[float], baseline: Sequence[float], groups: Groups = None, seed: int = SEED
) -> tuple[float, float, float]:
    """mean(candidate - baseline) of per-example scores on the same examples, and its
    paired bootstrap 95 % interval (over the examples, or over their groups)."""
    if len(candidate) != len(baseline) or not candidate:
        raise ValueError("paired scores need the same, non-empty examples")
    d = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    low, high = _bounds(_weighted_mean(d, _resample(len(d), groups, seed)))
    return float(d.mean()), low, high


def classification_sampler(gold: Sequence[str], predicted: Sequence[str]) -> Sampler:
    """accuracy and macro precision/recall/F1 of one data set under resample weights."""
    g, p = _codes(gold, predicted)
    classes = len(set(gold))
    return lambda weights: _scores(g, p, classes, weights)


def mean_sampler(values: Mapping[str, Sequence[float]]) -> Sampler:
    """The mean of each per-example score (metric -> one score per example) under weights."""
    arrays = {metric: np.asarray(v, dtype=np.float64) for metric, v in values.items()}
    return lambda weights: {metric: _weighted_mean(v, weights) for metric, v in arrays.items()}


def mean_over_languages(
    languages: Mapping[str, tuple[Sampler, int, Groups]], seed: int = SEED
) -> dict[str, float]:
    """Each metric's mean over the languages (language -> its sampler, examples and groups;
    every language weighs alike) with a bootstrap 95 % interval that resamples the languages
    together: the units are the group keys of every language pooled (a key names the same
    unit in each language that has it, e.g. "scenario 3" and its translations; ungrouped
    records are units of their own language), each resample draws as many units as there
    are, and weights each example by how often its unit was drawn. A resample that leaves a
    language without any example (possible only where its units are few of the pool) is
    left out. `languages` counts the languages, `units` the units drawn from."""
    if not languages:
        raise ValueError("no languages to average")
    first: dict[Hashable, int] = {}
    codes = {}
    for language, (_, n, groups) in languages.items():
        own, keys = _codes_of(n, groups)
        # ungrouped records are their own units, never another language's
        pooled = keys if groups is not None else [(language, k) for k in keys]
        index = np.array([first.setdefault(key, len(first)) for key in pooled], dtype=np.int64)
        codes[language] = index[own]
    counts = _draw_counts(len(first), seed)
    weights = {language: counts[:, code] for language, code in codes.items()}
    kept = np.all([w.sum(axis=-1) > 0 for w in weights.values()], axis=0)
    point: dict[str, list[np.ndarray]] = {}
    sampled: dict[str, list[np.ndarray]] = {}
    for language, (sampler, n, _) in languages.items():
        for metric, value in sampler(np.ones((1, n))).items():
            point.setdefault(metric, []).append(value)
        for metric, value in sampler(weights[language][kept]).items():
            sampled.setdefault(metric, []).append(value)
    out = {"languages": float(len(languages)), "units": float(len(first))}
    for metric, values in point.items():
        out[metric] = float(np.mean(values))
        low, high = _bounds(np.mean(sampled[metric], axis=0))
        out[f"{metric}Low"], out[f"{metric}High"] = low, high
    return out


def chance(gold: Sequence[str]) -> dict[str, float]:
    """Expected scores of guessing uniformly at random among the gold labels: accuracy 1/k;
    class c has precision = its share of the data and recall 1/k."""
    labels = sorted(set(gold))
    k = len(labels)
    shares = [sum(g == label for g in gold) / len(gold) for label in labels]
    f1s = [2 * s * (1 / k) / (s + 1 / k) for s in shares]
    return {
        "accuracy": 1 / k,
        "precision": sum(shares) / k,
        "recall": 1 / k,
        "f1": sum(f1s) / k,
        "examples": float(len(gold)),
    }
