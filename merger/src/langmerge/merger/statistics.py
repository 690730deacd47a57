"""Classification metrics and per-example means (ROUGE) with bootstrap 95 % intervals, and
the paired interval of a difference between two models on the same examples (what the
evaluation gate decides on).

Everything is vectorised over resamples with numpy and seeded, so the same predictions give
the same intervals on every run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 20260


def _codes(gold: Sequence[str], *predictions: Sequence[str]) -> tuple[np.ndarray, ...]:
    labels = sorted(set(gold))
    index = {label: i for i, label in enumerate(labels)}
    # A prediction outside the gold labels is a miss for every class (code -1).
    return tuple(
        np.array([index.get(v, -1) for v in values], dtype=np.int64)
        for values in (gold, *predictions)
    )


def _scores(gold: np.ndarray, predicted: np.ndarray, classes: int) -> dict[str, np.ndarray]:
    """Macro precision/recall/F1 and accuracy over the last axis (any leading batch axes)."""
    precisions, recalls, f1s = [], [], []
    for c in range(classes):
        is_gold, is_pred = gold == c, predicted == c
        tp = np.sum(is_gold & is_pred, axis=-1).astype(np.float64)
        fp = np.sum(~is_gold & is_pred, axis=-1)
        fn = np.sum(is_gold & ~is_pred, axis=-1)
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
        both = precision + recall
        f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
    return {
        "accuracy": np.mean(gold == predicted, axis=-1),
        "precision": np.mean(precisions, axis=0),
        "recall": np.mean(recalls, axis=0),
        "f1": np.mean(f1s, axis=0),
    }


def _resample(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))


def _bounds(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def classification_metrics(
    gold: Sequence[str], predicted: Sequence[str], seed: int = SEED
) -> dict[str, float]:
    """accuracy, macro precision/recall/F1, each with a bootstrap 95 % interval
    (`f1Low`, `f1High`, ...) over the examples; `examples` is n."""
    if not gold:
        raise ValueError("no examples to score")
    g, p = _codes(gold, predicted)
    classes = len(set(gold))
    point = _scores(g, p, classes)
    idx = _resample(len(g), seed)
    sampled = _scores(g[idx], p[idx], classes)
    out: dict[str, float] = {"examples": float(len(g))}
    for metric, value in point.items():
        out[metric] = float(value)
        out[f"{metric}Low"], out[f"{metric}High"] = _bounds(sampled[metric])
    return out


def paired_difference(
    gold: Sequence[str],
    candidate: Sequence[str],
    baseline: Sequence[str],
    metric: str,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """candidate - baseline on one metric, and its paired bootstrap 95 % interval: both models
    are scored on the same resampled examples, so the shared difficulty cancels."""
    g, c, b = _codes(gold, candidate, baseline)
    classes = len(set(gold))
    point = float(_scores(g, c, classes)[metric] - _scores(g, b, classes)[metric])
    idx = _resample(len(g), seed)
    samples = _scores(g[idx], c[idx], classes)[metric] - _scores(g[idx], b[idx], classes)[metric]
    low, high = _bounds(samples)
    return point, low, high


def mean_with_interval(metric: str, values: Sequence[float], seed: int = SEED) -> dict[str, float]:
    """The mean of per-example scores (ROUGE) with its bootstrap 95 % interval."""
    if not values:
        raise ValueError("no examples to score")
    v = np.asarray(values, dtype=np.float64)
    low, high = _bounds(v[_resample(len(v), seed)].mean(axis=1))
    return {metric: float(v.mean()), f"{metric}Low": low, f"{metric}High": high}


def paired_mean_difference(
    candidate: Sequence[float], baseline: Sequence[float], seed: int = SEED
) -> tuple[float, float, float]:
    """mean(candidate - baseline) of per-example scores on the same examples, and its
    paired bootstrap 95 % interval."""
    if len(candidate) != len(baseline) or not candidate:
        raise ValueError("paired scores need the same, non-empty examples")
    d = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    low, high = _bounds(d[_resample(len(d), seed)].mean(axis=1))
    return float(d.mean()), low, high


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
