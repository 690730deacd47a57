"""Reads a demo's report.json and prints, target by target, what the run measured against
the product's thesis (issue 12's targets). It reports; it never edits a figure.

    python hack/thesis_check.py .langmerge-demo/state/report.json"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SHARED, CONTROL = "sentiment", "sentiment-isolated"


def _rows(report: dict[str, Any], task: str) -> dict[str, dict[str, Any]]:
    evaluation = report["tasks"][task]["evaluation"] or {"rows": []}
    return {row["name"].split(" ")[0]: row for row in evaluation["rows"]}


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Every language's interval of a overlaps b's."""
    return all(
        cell["f1Low"] <= b["perLanguage"][lang]["f1High"]
        and b["perLanguage"][lang]["f1Low"] <= cell["f1High"]
        for lang, cell in a["perLanguage"].items()
    )


def checks(report: dict[str, Any]) -> list[tuple[bool, str]]:
    rows = _rows(report, SHARED)
    comb, base = rows["COMB"], rows["BASE"]
    merged = [r for r in rows.values() if r["kind"] == "merged"]
    best = max(merged, key=lambda r: r["mean"])
    out = [
        (
            best["mean"] >= comb["mean"] - 0.02 and _overlaps(best, comb),
            f"best merged model {best['name']} mean F1 {best['mean']:.3f} vs COMB "
            f"{comb['mean']:.3f} (target >= COMB - 0.02, intervals overlapping: "
            f"{_overlaps(best, comb)})",
        )
    ]
    for row in merged:
        if row.get("method") == "knots-ties":
            out.append(
                (
                    row["mean"] >= comb["mean"] - 0.05,
                    f"{row['name']} (knots-ties) {row['mean']:.3f} (target >= COMB - 0.05)",
                )
            )
    out += [
        (
            row["mean"] > base["mean"] + 0.20,
            f"{row['name']} {row['mean']:.3f} vs BASE {base['mean']:.3f} (target > BASE + 0.20)",
        )
        for row in merged
    ]
    control = [r for r in _rows(report, CONTROL).values() if r["kind"] == "merged"]
    out += [
        (
            bool(row.get("gatedOut")),
            f"negative control {row['name']} gated out: {row.get('gatedOut')}",
        )
        for row in control
    ]
    update = report["tasks"][SHARED]["research"]["updateOneLanguage"]
    if update:
        compute = (
            update["merged"]["trainingComputeSeconds"]
            / update["combined"]["trainingComputeSeconds"]
        )
        cost = update["merged"]["costUsd"] / update["combined"]["costUsd"]
        out += [
            (
                compute <= 0.30,
                f"update training compute {compute:.1%} of retraining COMB (target <= 30 %)",
            ),
            (
                cost <= 0.50,
                f"update whole-process cost {cost:.1%} of retraining COMB (target <= 50 %)",
            ),
        ]
    return out


def main() -> int:
    report = json.loads(Path(sys.argv[1]).read_text())
    print("The thesis, measured by this run:")
    for ok, text in checks(report):
        print(f"  [{'met' if ok else 'NOT met'}] {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
