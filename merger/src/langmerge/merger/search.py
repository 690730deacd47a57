"""Merge search: a grid of candidate merges of one set of adapters, each scored on validation
data, the best chosen (the research's sweep of weighting and density, in one merge run).

The grid names each method with its own options, as mergekit names each method's: an entry
gives a method the densities, lambdas, weights and DARE seeds to try, and only the options
that method takes (a density for linear, which has nothing to trim, is refused rather than
ignored). Weights are a preset (`uniform`; `examples`, proportional to each adapter's
training examples) or a map from language to weight. This module is torch-free: it parses,
bounds and expands the grid, resolves weights and picks the winner; shared.py merges the
candidates with the work they share done once."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langmerge.merger.names import METHOD_NAMES, METHOD_OPTIONS

MAX_CANDIDATES = 64
MAX_VALUES = 16  # per option list of one grid entry
WEIGHT_PRESETS = ("uniform", "examples")
AGGREGATES = ("mean", "worst")
# metric -> True when higher is better
SELECTION_METRICS = {
    "f1": True,
    "accuracy": True,
    "precision": True,
    "recall": True,
    "rouge1": True,
    "rougeL": True,
    "loss": False,
}
DEFAULTS = {"density": 0.5, "lambda": 1.0, "seed": 0}


class SearchError(ValueError):
    """A search that cannot run; the message names the field (search.grid[i].densities) and
    the fix."""


Weights = str | tuple[tuple[str, float], ...]  # a preset, or (language, weight) pairs


@dataclass(frozen=True)
class Candidate:
    """One merge of the grid: its method and the values of its options."""

    index: int
    entry: int  # the grid entry it comes from
    method: str
    density: float | None
    lambda_: float
    weights: Weights
    seed: int | None

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.method, self.density, self.lambda_, self.weights, self.seed)

    def weights_label(self) -> str:
        if isinstance(self.weights, str):
            return self.weights
        return ",".join(f"{language}={weight:g}" for language, weight in self.weights)

    def label(self) -> str:
        parts = [self.method]
        if self.density is not None:
            parts.append(f"density={self.density:g}")
        parts.append(f"lambda={self.lambda_:g}")
        parts.append(f"weights={self.weights_label()}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return " ".join(parts)

    def parameters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "lambda": self.lambda_}
        if self.density is not None:
            out["density"] = self.density
        out["weights"] = self.weights_label()
        if self.seed is not None:
            out["seed"] = self.seed
        return out


@dataclass(frozen=True)
class Search:
    candidates: tuple[Candidate, ...]
    metric: str
    aggregate: str

    def higher_is_better(self) -> bool:
        return SELECTION_METRICS[self.metric]


def _list(
    entry: dict[str, Any], key: str, where: str, check: Any, default: list[Any] | None
) -> list[Any] | None:
    if key not in entry:
        return default
    values = entry[key]
    field = f"{where}.{key}"
    if not isinstance(values, list) or not values:
        raise SearchError(f"{field} must be a non-empty list, got {values!r}")
    if len(values) > MAX_VALUES:
        raise SearchError(f"{field} has {len(values)} values; at most {MAX_VALUES}")
    for position, value in enumerate(values):
        check(value, f"{field}[{position}]")
    return values


def _density(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise SearchError(f"{field} must be a number in (0, 1], got {value!r}")


def _lambda(value: Any, field: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise SearchError(f"{field} must be a number > 0, got {value!r}")


def _seed(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SearchError(f"{field} must be an integer >= 0, got {value!r}")


def _weights(value: Any, field: str) -> None:
    if isinstance(value, str):
        if value not in WEIGHT_PRESETS:
            raise SearchError(
                f"{field} is {value!r}; give a preset ({', '.join(WEIGHT_PRESETS)}) or a map "
                "from language to weight"
            )
        return
    if not isinstance(value, dict) or not value:
        raise SearchError(f"{field} must be a preset or a non-empty map language -> weight")
    for language, weight in value.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise SearchError(f"{field}.{language} must be a number >= 0, got {weight!r}")
    if not any(value.values()):
        raise SearchError(f"{field}: every weight is zero; at least one adapter must count")


ENTRY_KEYS = ("method", "densities", "lambdas", "weights", "seeds")
OPTION_OF = {"densities": "density", "seeds": "seed"}


def parse(spec: dict[str, Any]) -> Search:
    """The search a spec describes ({"grid": [...], "metric", "aggregate"}), expanded and
    bounded. Every refusal names its field under `search.`."""
    if not isinstance(spec, dict):
        raise SearchError(f"search must be an object with a grid, got {spec!r}")
    unknown = sorted(set(spec) - {"grid", "metric", "aggregate"})
    if unknown:
        raise SearchError(f"search.{unknown[0]} is not a field; give grid, metric, aggregate")
    metric = spec.get("metric", "f1")
    if metric not in SELECTION_METRICS:
        raise SearchError(f"search.metric is {metric!r}; one of {', '.join(SELECTION_METRICS)}")
    aggregate = spec.get("aggregate", "mean")
    if aggregate not in AGGREGATES:
        raise SearchError(
            f"search.aggregate is {aggregate!r}; mean (over the languages) or worst (the "
            "worst language)"
        )
    grid = spec.get("grid")
    if not isinstance(grid, list) or not grid:
        raise SearchError(
            "search.grid is empty; give at least one entry such as "
            '{"method": "knots-ties", "densities": [0.3, 0.5]}'
        )
    candidates: list[Candidate] = []
    seen: dict[tuple[Any, ...], Candidate] = {}
    for number, entry in enumerate(grid):
        where = f"search.grid[{number}]"
        for candidate in _expand(entry, where, number, len(candidates)):
            earlier = seen.get(candidate.key)
            if earlier is not None:
                raise SearchError(
                    f"{where}: the candidate {candidate.label()} repeats one of "
                    f"search.grid[{earlier.entry}]; give each candidate once"
                )
            seen[candidate.key] = candidate
            candidates.append(candidate)
            if len(candidates) > MAX_CANDIDATES:
                total = len(candidates) + sum(
                    _count(e) for e in grid[number + 1 :] if isinstance(e, dict)
                )
                raise SearchError(
                    f"search.grid makes more than {MAX_CANDIDATES} candidates (at least "
                    f"{total}); give fewer values"
                )
    return Search(tuple(candidates), metric, aggregate)


def _count(entry: dict[str, Any]) -> int:
    return math.prod(len(v) for k, v in entry.items() if k != "method" and isinstance(v, list))


def _expand(entry: Any, where: str, number: int, start: int) -> list[Candidate]:
    if not isinstance(entry, dict):
        raise SearchError(f"{where} must be an object with a method, got {entry!r}")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise SearchError(f"{where}.{unknown[0]} is not a field; give {', '.join(ENTRY_KEYS)}")
    method = entry.get("method")
    if method not in METHOD_NAMES:
        raise SearchError(f"{where}.method is {method!r}; one of {', '.join(METHOD_NAMES)}")
    takes = METHOD_OPTIONS[method]
    for key, option in OPTION_OF.items():
        if key in entry and option not in takes:
            users = sorted(m for m, o in METHOD_OPTIONS.items() if option in o)
            raise SearchError(
                f"{where}.{key}: {method} takes no {option} (only {', '.join(users)} do); remove it"
            )
    densities = _list(
        entry, "densities", where, _density, [DEFAULTS["density"]] if "density" in takes else None
    )
    lambdas = _list(entry, "lambdas", where, _lambda, [DEFAULTS["lambda"]])
    weights = _list(entry, "weights", where, _weights, ["uniform"])
    seeds = _list(entry, "seeds", where, _seed, [DEFAULTS["seed"]] if "seed" in takes else None)
    assert lambdas is not None and weights is not None
    out: list[Candidate] = []
    for density, lambda_, weight, seed in itertools.product(
        densities or [None], lambdas, weights, seeds or [None]
    ):
        frozen: Weights = (
            weight
            if isinstance(weight, str)
            else tuple(sorted((k, float(v)) for k, v in weight.items()))
        )
        out.append(
            Candidate(
                index=start + len(out),
                entry=number,
                method=method,
                density=None if density is None else float(density),
                lambda_=float(lambda_),
                weights=frozen,
                seed=seed,
            )
        )
    return out


def load(text: str) -> dict[str, Any]:
    """--search's value: JSON, or @FILE holding it."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise SearchError(f"--search is not JSON ({error}); give an object with a grid") from None
    if not isinstance(spec, dict):
        raise SearchError(f"--search must be a JSON object with a grid, got {spec!r}")
    return spec


def resolve_weights(
    candidate: Candidate,
    languages: Sequence[str | None],
    examples: Sequence[int | None],
    names: Sequence[str],
) -> tuple[float, ...]:
    """The candidate's weight per adapter, in adapter order, before normalisation."""
    where = f"search.grid[{candidate.entry}].weights"
    if candidate.weights == "uniform":
        return tuple(1.0 for _ in languages)
    if candidate.weights == "examples":
        for name, count in zip(names, examples, strict=True):
            if not count:
                raise SearchError(
                    f"{where}: 'examples' weighs each adapter by its training examples, but "
                    f"adapter {name} does not record them (langmerge.json 'examples', written "
                    "by langmerge-train); retrain it or give explicit weights"
                )
        return tuple(float(count or 0) for count in examples)
    assert not isinstance(candidate.weights, str)
    given = dict(candidate.weights)
    known = {language for language in languages if language}
    for language in given:
        if language not in known:
            raise SearchError(
                f"{where}: no adapter has language {language!r} (the adapters' languages: "
                f"{', '.join(sorted(known)) or 'none recorded'}); weigh only those"
            )
    # A language the map leaves out keeps weight 1: a map says what differs from uniform.
    return tuple(given.get(language or "", 1.0) for language in languages)


def aggregate(values: dict[str, float], how: str, higher_is_better: bool) -> float:
    """One score over the languages: their mean, or the worst language's."""
    if how == "mean":
        return sum(values.values()) / len(values)
    return min(values.values()) if higher_is_better else max(values.values())


def winner(scores: dict[int, float], higher_is_better: bool) -> int:
    """The best candidate by score; ties go to the earlier candidate (its grid order)."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1] if higher_is_better else kv[1], kv[0]))
    return ranked[0][0]
