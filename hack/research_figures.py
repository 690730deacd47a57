"""The research run's figures, the way the paper presents them: per task, every model's
quality in each language with its 95 % interval; and the initial and update cost of both
paths (one adapter per language merged, against one combined model retrained). Read from
hack/research_report.py's reading; written as PNG beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a build machine

from matplotlib import pyplot
from matplotlib.figure import Figure

PHASES = (("initialSetup", "initial setup"), ("updateOneLanguage", "update of one language"))
COSTS = (
    ("trainingComputeSeconds", "training compute (s)"),
    ("criticalPathSeconds", "wall-clock, adapters in parallel (s)"),
)
PATHS = (("merged", "adapters + merge"), ("combined", "COMB retrained"))


def quality(task: str, reading: dict[str, Any]) -> Figure:
    """Grouped bars: a group per language, a bar per model, the interval as its error bar."""
    languages, models = reading["languages"], reading["models"]
    figure, axes = pyplot.subplots(figsize=(max(7.0, 1.8 * len(languages)), 4.8))
    width = 0.8 / max(1, len(models))
    for index, (name, model) in enumerate(models.items()):
        cells = [model["perLanguage"].get(language) for language in languages]
        heights = [c["value"] if c else 0.0 for c in cells]
        below = [c["value"] - c["low"] if c else 0.0 for c in cells]
        above = [c["high"] - c["value"] if c else 0.0 for c in cells]
        offsets = [i + (index - (len(models) - 1) / 2) * width for i in range(len(languages))]
        axes.bar(offsets, heights, width, yerr=[below, above], capsize=2, label=name)
    axes.set_xticks(range(len(languages)), languages)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel(reading["metric"])
    axes.set_title(f"{task}: {reading['metric']} by model and language, 95 % intervals")
    figure.legend(fontsize="small", ncols=3, loc="lower center")
    figure.tight_layout(rect=(0, 0.12, 1, 1))  # the legend below the bars, never over them
    return figure


def cost(reading: dict[str, dict[str, Any]]) -> Figure:
    """Rows: training compute and critical path; columns: initial setup and update; a pair
    of bars (both paths) per task."""
    tasks = list(reading)
    figure, grid = pyplot.subplots(len(COSTS), len(PHASES), figsize=(10, 7), squeeze=False)
    for row, (cost_key, cost_label) in enumerate(COSTS):
        for column, (phase_key, phase_label) in enumerate(PHASES):
            axes = grid[row][column]
            for index, (path_key, path_label) in enumerate(PATHS):
                # A phase not run yet (no update) is recorded as null: no bar.
                heights = [
                    ((reading[t]["research"].get(phase_key) or {}).get(path_key) or {}).get(
                        cost_key, 0.0
                    )
                    for t in tasks
                ]
                offsets = [i + (index - 0.5) * 0.4 for i in range(len(tasks))]
                axes.bar(offsets, heights, 0.4, label=path_label)
            axes.set_xticks(range(len(tasks)), tasks)
            axes.set_title(f"{phase_label}: {cost_label}", fontsize="medium")
            if row == column == 0:
                axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def write(reading: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    figures = {f"{task}-quality.png": quality(task, r) for task, r in reading.items()}
    figures["cost.png"] = cost(reading)
    written = []
    for name, figure in figures.items():
        figure.savefig(folder / name, dpi=120)
        pyplot.close(figure)
        written.append(folder / name)
    return written
