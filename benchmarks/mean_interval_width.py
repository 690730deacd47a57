"""How much wider the joint interval of a model's mean over the languages is than the
per-language intervals combined as if the languages were independent (the research reading
before eb979df: half-width sqrt(sum of squared half-widths) / languages).

    python benchmarks/mean_interval_width.py STATE/report.json

Reads `langmerge up`'s report.json; prints, per task and model with a joint interval, both
half-widths and their ratio."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def independent_half_width(cells: list[dict[str, float]], metric: str) -> float:
    halves = [(c[f"{metric}High"] - c[f"{metric}Low"]) / 2 for c in cells]
    return math.sqrt(sum(h * h for h in halves)) / len(cells)


def main(report: Path) -> int:
    tasks = json.loads(report.read_text())["tasks"]
    print(f"{'task':<14} {'model':<22} {'joint +-':>9} {'independent +-':>15} {'ratio':>6}")
    for task, section in tasks.items():
        evaluation = section.get("evaluation")
        if not evaluation:
            continue
        metric = evaluation["metric"]
        for row in evaluation["rows"]:
            if "meanLow" not in row:  # INDV and chance: no one model's mean
                continue
            joint = (row["meanHigh"] - row["meanLow"]) / 2
            independent = independent_half_width(list(row["perLanguage"].values()), metric)
            ratio = f"{joint / independent:.2f}" if independent else "-"
            print(f"{task:<14} {row['name']:<22} {joint:>9.4f} {independent:>15.4f} {ratio:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
