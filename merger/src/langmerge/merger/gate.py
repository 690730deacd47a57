"""The evaluation gate: is the merged model worse than a baseline beyond a margin, per
language, by more than the evaluation's own uncertainty can explain?

Baselines: `combined` (the COMB model trained on every language: the research's claim is
parity with it), `individual` (each language's own adapter, on its own language) or
`current` (the merged model served now). For a classification metric the gate takes the
paired bootstrap 95 % interval of (merged - baseline) over the same held-out examples, or
their groups where the records name them (for ROUGE, of the mean per-example difference) and
blocks the merge when the whole interval lies below -max_drop: the evidence says the merge
lost more than the margin. A difference that the interval cannot tell from the margin
passes, so the gate does not flap on evaluation noise. For `loss` (no per-example labels)
the point values are compared: blocked when merged loss > baseline loss + max_drop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langmerge.merger.evaluate import Scored
from langmerge.merger.statistics import paired_difference, paired_mean_difference

AGAINST = ("combined", "individual", "current")
WHO = {
    "combined": "the combined model (COMB)",
    "individual": "its individual adapter",
    "current": "the current merged model",
}


@dataclass
class Verdict:
    passed: bool
    reason: str = ""
    # language -> {"difference", "low", "high"} of merged - baseline on the gate's metric
    comparisons: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_summary(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason or None}


def decide(
    candidate: dict[str, Scored],
    baseline: dict[str, Scored],
    metric: str,
    max_drop: float,
    against: str,
) -> Verdict:
    """Every language of the candidate against the same language of the baseline."""
    verdict = Verdict(passed=True)
    blocked_languages: list[tuple[float, str, str]] = []  # (how much worse, language, detail)
    for language in sorted(candidate):
        ours, theirs = candidate[language], baseline.get(language)
        if theirs is None or metric not in ours.metrics or metric not in theirs.metrics:
            continue
        if metric == "loss":
            difference = ours.metrics["loss"] - theirs.metrics["loss"]
            verdict.comparisons[language] = {
                "difference": round(difference, 6),
                "low": round(difference, 6),
                "high": round(difference, 6),
            }
            blocked = difference > max_drop
            detail = (
                f"loss {ours.metrics['loss']:.3f} is {difference:.3f} above {WHO[against]}'s "
                f"{theirs.metrics['loss']:.3f}"
            )
        else:
            if metric in ours.values and metric in theirs.values:  # per-example means (ROUGE)
                difference, low, high = paired_mean_difference(
                    ours.values[metric], theirs.values[metric], ours.groups
                )
            else:
                difference, low, high = paired_difference(
                    ours.gold, ours.predicted, theirs.predicted, metric, ours.groups
                )
            verdict.comparisons[language] = {
                "difference": round(difference, 6),
                "low": round(low, 6),
                "high": round(high, 6),
            }
            blocked = high < -max_drop
            detail = (
                f"{metric} {ours.metrics[metric]:.3f} is {-difference:.3f} below"
                if difference < 0
                else f"{metric} {ours.metrics[metric]:.3f} vs"
            )
            detail += (
                f" {WHO[against]}'s {theirs.metrics[metric]:.3f} "
                f"(95 % interval of the difference {low:+.3f}..{high:+.3f})"
            )
        if blocked:
            worse = difference if metric == "loss" else -difference
            blocked_languages.append((worse, language, detail))
    if blocked_languages:
        # The reason leads with the language that lost most, then names every blocked one.
        _, language, detail = max(blocked_languages)
        names = ", ".join(sorted(name for _, name, _ in blocked_languages))
        verdict.passed = False
        verdict.reason = (
            f"{language} {detail}; blocked in {len(blocked_languages)} of "
            f"{len(verdict.comparisons)} languages ({names}): the merge is worse by more than "
            f"the allowed {max_drop:.3f} beyond the evaluation's uncertainty"
        )
    return verdict
