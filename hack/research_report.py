"""The research run's reading: from `langmerge up`'s report.json, per task the research's
quality table (every model's mean over the five languages with a 95 % interval), the
targets of issue 27 met or missed, and the cost of the two paths; research.md,
research.json and figures/*.png (hack/research_figures.py) beside report.json.

    python hack/research_report.py .langmerge-research/state

The interval of a model's mean over the languages is the evaluator's: one bootstrap that
resamples the languages together (langmerge.merger.statistics.mean_over_languages), since
the held-out units (scenarios, texts, predicates) are translations of each other and a hard
one is hard in every language. INDV, five models each on its own language, has none."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from research_figures import write as write_figures  # hack/, beside this script

PARITY = 0.02  # the research's parity: the best merge within 2 points of COMB
UPDATE_SHARE = 0.30  # an update's training compute at most 30 % of retraining COMB
# The default merge a task's search is read against: TASK-knots's parameters
# (hack/make_research_data.py), one of the search's candidates.
DEFAULT = {"method": "knots-ties", "density": 0.7, "lambda": 1.0}


def task_reading(task: str, section: dict[str, Any]) -> dict[str, Any]:
    evaluation = section["evaluation"]
    metric = evaluation["metric"]
    models = {}
    for row in evaluation["rows"]:
        if row["kind"] == "chance":
            continue
        if row["mean"] is not None:
            models[row["name"]] = {
                "kind": row["kind"],
                "mean": row["mean"],
                "low": row.get("meanLow"),
                "high": row.get("meanHigh"),
                "perLanguage": {
                    language: {
                        "value": c[metric],
                        "low": c.get(f"{metric}Low", c[metric]),
                        "high": c.get(f"{metric}High", c[metric]),
                    }
                    for language, c in row["perLanguage"].items()
                    if metric in c
                },
            }
    merges = {name: m for name, m in models.items() if m["kind"] == "merged"}
    base = next((m for m in models.values() if m["kind"] == "base"), None)
    comb = models.get("COMB")
    targets: dict[str, Any] = {}
    if merges and comb:
        best_name = max(merges, key=lambda n: merges[n]["mean"])
        best = merges[best_name]
        targets["bestMergeWithinParityOfComb"] = {
            "met": best["mean"] >= comb["mean"] - PARITY and best["high"] >= comb["low"],
            "detail": f"best merge {best_name} {best['mean']:.3f} "
            f"[{best['low']:.3f}-{best['high']:.3f}] vs COMB {comb['mean']:.3f} "
            f"[{comb['low']:.3f}-{comb['high']:.3f}]; parity: >= COMB - {PARITY} with the "
            "intervals overlapping",
        }
    if merges and base:
        below = [n for n, m in merges.items() if m["low"] <= base["high"]]
        targets["everyMergeAboveBase"] = {
            "met": not below,
            "detail": f"BASE {base['mean']:.3f} [{base['low']:.3f}-{base['high']:.3f}]; "
            + (
                f"not clear of it: {', '.join(below)}"
                if below
                else "every merge's interval lies above BASE's"
            ),
        }
    update = section["research"].get("updateOneLanguage")
    if update:
        share = (
            update["merged"]["trainingComputeSeconds"]
            / update["combined"]["trainingComputeSeconds"]
        )
        targets["updateComputeShare"] = {
            "met": share <= UPDATE_SHARE,
            "detail": f"the update's training compute is {share:.1%} of retraining COMB "
            f"(target <= {UPDATE_SHARE:.0%}; the research: 26.3 %)",
        }
    return {
        "metric": metric,
        "models": models,
        "targets": targets,
        "research": section["research"],
        "transfer": evaluation["transfer"],
        "languages": evaluation["languages"],
        "examplesPerLanguage": evaluation["examplesPerLanguage"],
        "groupsPerLanguage": evaluation["groupsPerLanguage"],
    }


def search_reading(task: str, state: Path, models: dict[str, Any]) -> dict[str, Any] | None:
    """TASK-search's choice against the default merge: both on validation (the winner's and
    the default candidate's scores from the artifact's langmerge.json, every candidate there)
    and on eval (the searched model's row beside TASK-knots's)."""
    from langmerge.operator.local import State

    status = State.load(state / "state.json").merged.get(f"{task}-search")
    if status is None or status.search is None or status.artifact is None:
        return None
    record = Path(status.artifact.uri) / "langmerge.json"
    candidates = json.loads(record.read_text()).get("search", {}).get("candidates", [])
    default = next((c for c in candidates if all(c.get(k) == v for k, v in DEFAULT.items())), None)
    winner = status.search.winner
    reading: dict[str, Any] = {
        "metric": status.search.metric,
        "aggregate": status.search.aggregate,
        "winner": {"index": winner.index, "density": winner.density, "lambda": winner.lambda_},
        "winnerValidation": winner.score,
        "defaultValidation": None if default is None else default.get("score"),
        "candidates": candidates,
    }
    for key, name in (("winnerTest", f"{task}-search"), ("defaultTest", f"{task}-knots")):
        row = models.get(name)
        reading[key] = None if row is None else {k: row[k] for k in ("mean", "low", "high")}
    return reading


def search_target(reading: dict[str, Any]) -> dict[str, Any]:
    """Issue 28's target: the searched winner >= the default merge on validation; its test
    score reported beside it."""
    ours, theirs = reading["winnerValidation"], reading["defaultValidation"]
    met = ours is not None and theirs is not None and ours >= theirs
    winner = reading["winner"]
    detail = (
        f"winner #{winner['index']} (density {winner['density']}, lambda {winner['lambda']}) "
        f"{reading['aggregate']} {reading['metric']} on validation "
        + ("-" if ours is None else f"{ours:.3f}")
        + " vs the default (density 0.7, lambda 1.0) "
        + ("-" if theirs is None else f"{theirs:.3f}")
    )
    tests = [
        (label, reading[key])
        for label, key in (("searched", "winnerTest"), ("default", "defaultTest"))
    ]
    if all(test for _, test in tests):
        detail += "; on eval " + ", ".join(
            f"{label} {t['mean']:.3f} [{t['low']:.3f}-{t['high']:.3f}]" for label, t in tests
        )
    return {"met": met, "detail": detail}


def render(reading: dict[str, Any]) -> str:
    parts = ["# The research in miniature: Gemma 3 270M, three tasks, five languages"]
    for task, r in reading.items():
        metric, groups = r["metric"], r["groupsPerLanguage"]
        # where the records name their groups (scenarios, texts, ...) the intervals resample those
        over = f", intervals over {groups} groups a language" if groups else ""
        parts.append(
            f"\n## {task} ({metric}, mean over {len(r['languages'])} languages, "
            f"n = {r['examplesPerLanguage']} per language{over})\n"
        )
        parts.append("| Model | mean | 95 % interval |\n|---|---|---|")
        for name, m in r["models"].items():
            interval = "-" if m["low"] is None else f"{m['low']:.3f}-{m['high']:.3f}"
            parts.append(f"| {name} | {m['mean']:.3f} | {interval} |")
        parts.append("")
        for key, target in r["targets"].items():
            parts.append(f"- {key}: {'met' if target['met'] else 'NOT met'}: {target['detail']}")
        for label, key in (("initial setup", "initialSetup"), ("update", "updateOneLanguage")):
            side = r["research"].get(key)
            if not side:
                continue
            ours, theirs = side["merged"], side["combined"]
            parts.append(
                f"- {label}: training compute {ours['trainingComputeSeconds']:.0f} s merged "
                f"path vs {theirs['trainingComputeSeconds']:.0f} s COMB; wall-clock with "
                f"adapters in parallel {ours['criticalPathSeconds']:.0f} s vs "
                f"{theirs['criticalPathSeconds']:.0f} s; whole-process cost "
                f"${ours['costUsd']:.5f} vs ${theirs['costUsd']:.5f}"
            )
    return "\n".join(parts) + "\n"


def main(state: Path) -> int:
    report = json.loads((state / "report.json").read_text())
    reading: dict[str, Any] = {}
    for task, section in report["tasks"].items():
        if not section.get("evaluation"):
            continue
        reading[task] = task_reading(task, section)
        search = search_reading(task, state, reading[task]["models"])
        if search is not None:
            reading[task]["search"] = search
            reading[task]["targets"]["searchedWinnerAtLeastDefault"] = search_target(search)
    (state / "research.json").write_text(json.dumps(reading, indent=2))
    text = render(reading)
    (state / "research.md").write_text(text)
    print(text)
    for path in write_figures(reading, state / "figures"):
        print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
