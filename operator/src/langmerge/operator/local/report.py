"""The local loop's report, as data (report.json) and as text (report.md): per task, every
model's per-language scores with bootstrap 95 % intervals (BASE, chance, INDV, COMB and
every merged model, gated-out ones marked) and its mean over the languages (with the
evaluator's interval, which resamples the languages together), the transfer matrix (each
language's adapter scored on every language), the gate's verdicts, and the research's table
in miniature: training compute and whole-process cost of the merged path against one
combined model, for the initial setup and for the update of one language."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.merged import MergedModel, MergedModelStatus
from langmerge.operator.local.state import Phase, RunFigures, State, ready_reason

PRIMARY_METRICS = ("f1", "accuracy", "rougeL", "loss")


# --- data ----------------------------------------------------------------------------------------
def _cell(metrics: dict[str, float], metric: str) -> dict[str, float]:
    keys = ("f1", "accuracy", metric, "precision", "recall", "rouge1")
    cell = {
        k: metrics[k] for base in keys for k in (base, f"{base}Low", f"{base}High") if k in metrics
    }
    if "loss" in metrics:
        cell["loss"] = metrics["loss"]
    if "examples" in metrics:
        cell["n"] = metrics["examples"]
    if "groups" in metrics:  # the records named their groups: the intervals resample those
        cell["groups"] = metrics["groups"]
    return cell


def _row(
    name: str,
    kind: str,
    per_language: dict[str, dict[str, float]],
    metric: str,
    mean: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One model's cells; `mean` the evaluator's mean over the languages, whose interval
    resamples them together (absent for rows that are no one model: INDV, chance)."""
    cells = {language: _cell(m, metric) for language, m in sorted(per_language.items())}
    values = [c[metric] for c in cells.values() if metric in c]
    row = {
        "name": name,
        "kind": kind,
        "perLanguage": cells,
        "mean": round(sum(values) / len(values), 6) if values else None,
    }
    if mean and f"{metric}Low" in mean:
        row["meanLow"], row["meanHigh"] = mean[f"{metric}Low"], mean[f"{metric}High"]
    return row


def _group_span(cells: list[dict[str, float]]) -> str | None:
    """How many groups a language's intervals resample: "10", or "9-10" where languages
    differ; None where the records name none."""
    counts = sorted({int(c["groups"]) for c in cells if "groups" in c})
    if not counts:
        return None
    return f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else str(counts[0])


def _evaluation(task: str, state: State, merged: list[MergedModel]) -> dict[str, Any] | None:
    report = state.evaluation.get(task)
    scores = report.models if report else {}
    if report is None or not scores:
        return None
    languages = sorted({language for per in scores.values() for language in per})
    sample = next(iter(next(iter(scores.values())).values()))
    declared = [  # the task's own primary metric: the first its merged models name
        metric
        for model in merged
        if model.spec.task == task and model.spec.evaluation
        for metric in model.spec.evaluation.metrics or []
    ]
    metric = next(m for m in (*declared, *PRIMARY_METRICS) if m in sample)
    rows = []
    means = report.means
    if "BASE" in scores:
        rows.append(_row("BASE (no adapter)", "base", scores["BASE"], metric, means.get("BASE")))
    if report.chance:
        rows.append(_row("chance (uniform guess)", "chance", report.chance, metric))
    individual = {
        name.split(" ", 1)[1]: per for name, per in scores.items() if name.startswith("INDV ")
    }
    if individual:
        own = {lang: individual[lang][lang] for lang in languages if lang in individual}
        rows.append(_row("INDV (own language)", "individual", own, metric))
    if "COMB" in scores:
        rows.append(_row("COMB", "combined", scores["COMB"], metric, means.get("COMB")))
    gated = set(report.gated_out)
    for model in merged:
        name = model.metadata.name
        if model.spec.task == task and name in scores:
            row = _row(name, "merged", scores[name], metric, means.get(name))
            row["method"] = str(model.spec.method)
            row["gatedOut"] = name in gated
            status = state.merged.get(name)
            if status and status.evaluation and status.evaluation.gate:
                row["gate"] = status.evaluation.gate.to_wire()
            rows.append(row)
    transfer = {
        adapter: {language: per[language][metric] for language in languages if language in per}
        for adapter, per in sorted(individual.items())
    }
    cells = [c for row in rows if row["kind"] != "chance" for c in row["perLanguage"].values()]
    return {
        "metric": metric,
        "languages": languages,
        "examplesPerLanguage": max((int(c.get("n", 0)) for c in cells), default=0),
        "groupsPerLanguage": _group_span(cells),
        "rows": rows,
        "transfer": transfer,
    }


def _side(runs: list[RunFigures]) -> dict[str, float]:
    return {
        "seconds": round(sum(r.seconds for r in runs), 3),
        "trainingComputeSeconds": round(sum(r.loop_seconds for r in runs), 3),
        "costUsd": round(sum(r.cost_usd for r in runs), 8),
    }


def _change(ours: float, theirs: float) -> float | None:
    """The research's way of printing a change: -35.3 % = the merged path needs 35.3 % less."""
    return round(ours / theirs - 1, 6) if theirs else None


def _comparison(phase: Phase, task: str, merge_name: str | None) -> dict[str, Any] | None:
    combined = [r for r in phase.combined if r.task == task]
    if not combined:
        return None
    trained = [r for r in phase.trained if r.task == task]
    merges = [r for r in phase.merges if r.task == task and r.name == merge_name]
    ours, theirs = _side([*trained, *merges]), _side(combined)
    # Wall-clock when the adapters train in parallel (as Jobs on a cluster): the slowest
    # adapter, then the merge.
    ours["criticalPathSeconds"] = round(
        max((r.seconds for r in trained), default=0.0) + sum(r.seconds for r in merges), 3
    )
    theirs["criticalPathSeconds"] = theirs["seconds"]
    return {
        "merged": ours,
        "combined": theirs,
        "change": {key: _change(ours[key], theirs[key]) for key in ours},
        "mergedRan": f"{len(trained)} adapter(s) ({', '.join(r.name for r in trained)})"
        + (f" + 1 merge ({merge_name})" if merges else ""),
        "combinedRan": f"1 combined training ({combined[0].name})",
        "launcher": phase.launcher,
        "launcherStartupSeconds": phase.launcher_startup_seconds,
    }


def _research(
    task: str, state: State, adapters: list[LanguageAdapter], merge_name: str | None
) -> dict[str, Any]:
    members = {a.metadata.name for a in adapters if a.spec.task == task}
    initial = update = None
    for phase in state.phases:
        trained = {r.name for r in phase.trained if r.task == task}
        has_comb = any(r.task == task for r in phase.combined)
        if initial is None and has_comb and trained == members:
            initial = phase
        elif has_comb and 0 < len(trained) < len(members):
            update = phase
    return {
        "initialSetup": _comparison(initial, task, merge_name) if initial else None,
        "updateOneLanguage": _comparison(update, task, merge_name) if update else None,
    }


def report_data(
    state: State, adapters: list[LanguageAdapter], merged: list[MergedModel]
) -> dict[str, Any]:
    """Everything the report shows, machine-readable (report.json)."""
    tasks = sorted({a.spec.task for a in adapters} | {m.spec.task for m in merged})
    out: dict[str, Any] = {"tasks": {}}
    for task in tasks:
        # The research table's merged path is the task's first merged model (manifest order).
        first = next((m.metadata.name for m in merged if m.spec.task == task), None)
        out["tasks"][task] = {
            "evaluation": _evaluation(task, state, merged),
            "research": _research(task, state, adapters, first),
            "researchMergedModel": first,
        }
    return out


# --- text ----------------------------------------------------------------------------------------
def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, rule, *body])


def _score(cell: dict[str, float], metric: str) -> str:
    if metric not in cell:
        return "-"
    low, high = cell.get(f"{metric}Low"), cell.get(f"{metric}High")
    return f"{cell[metric]:.3f}" + (f" [{low:.2f}-{high:.2f}]" if low is not None else "")


def _percent(value: float | None) -> str:
    return f"{value * 100:+.1f} %" if value is not None else "-"


def _evaluation_text(task: str, evaluation: dict[str, Any]) -> list[str]:
    metric, languages = evaluation["metric"], evaluation["languages"]
    n, span = evaluation["examplesPerLanguage"], evaluation["groupsPerLanguage"]
    over = f", resampling {span} groups a language" if span else ""
    parts = [
        f"\n## Evaluation ({task}: {metric} with bootstrap 95 % interval, "
        f"n = {n or '?'} per language{over}; the mean's interval resamples the languages "
        "together)"
    ]
    rows = []
    for row in evaluation["rows"]:
        label = row["name"] + (" (gated out)" if row.get("gatedOut") else "")
        cells = [_score(row["perLanguage"].get(lang, {}), metric) for lang in languages]
        mean = "-" if row["mean"] is None else _score(row, "mean")  # meanLow/meanHigh
        rows.append([label, *cells, mean])
    parts.append(_table(["Model", *languages, "mean"], rows))
    if evaluation["transfer"]:
        parts.append(
            f"\nTransfer ({task}): each language's adapter (row) scored on every language "
            f"(column), {metric}. Merging keeps what the adapters share: high off-diagonal "
            "scores are the precondition."
        )
        transfer = evaluation["transfer"]
        parts.append(
            _table(
                ["Adapter", *languages],
                [
                    [adapter, *[f"{per.get(lang, 0.0):.3f}" for lang in languages]]
                    for adapter, per in transfer.items()
                ],
            )
        )
    return parts


def _research_text(task: str, research: dict[str, Any], merge_name: str | None) -> list[str]:
    parts = [f"\n## The research table in miniature ({task}; merged path: {merge_name})"]
    rows = []
    launcher = None
    for label, key in (
        ("Initial setup", "initialSetup"),
        ("Update one language", "updateOneLanguage"),
    ):
        comparison = research.get(key)
        if comparison is None:
            rows.append([label, "not measured yet", "", "", ""])
            continue
        launcher = launcher or comparison
        ours, theirs, change = comparison["merged"], comparison["combined"], comparison["change"]
        rows.append(
            [
                f"{label}, training compute",
                f"{theirs['trainingComputeSeconds']:.1f} s",
                f"{ours['trainingComputeSeconds']:.1f} s",
                _percent(change["trainingComputeSeconds"]),
                "training loops and the merge, nothing else",
            ]
        )
        rows.append(
            [
                f"{label}, whole-process time",
                f"{theirs['seconds']:.1f} s",
                f"{ours['seconds']:.1f} s",
                _percent(change["seconds"]),
                f"{comparison['mergedRan']} vs {comparison['combinedRan']}",
            ]
        )
        rows.append(
            [
                f"{label}, wall-clock (critical path)",
                f"{theirs['criticalPathSeconds']:.1f} s",
                f"{ours['criticalPathSeconds']:.1f} s",
                _percent(change["criticalPathSeconds"]),
                "adapters in parallel, as Jobs on a cluster: the slowest, then the merge",
            ]
        )
        rows.append(
            [
                f"{label}, cost",
                f"${theirs['costUsd']:.6f}",
                f"${ours['costUsd']:.6f}",
                _percent(change["costUsd"]),
                "whole processes, per core-hour",
            ]
        )
    parts.append(_table(["Phase", "Combined model", "Merged path", "Change", "What ran"], rows))
    if launcher:
        how = (
            f"each run forked from one warm process (its imports, "
            f"{launcher['launcherStartupSeconds']:.1f} s, are paid once per `langmerge up` and "
            "counted on neither side)"
            if launcher["launcher"] == "warm"
            else "each run a new process (imports and model load counted on both sides)"
        )
        parts.append(
            f"Whole-process figures: {how}. Adapters train one after another here; on a "
            "cluster they train in parallel. The gate's evaluation inside merges is left out."
        )
    return parts


def _search_text(status: MergedModelStatus) -> list[str]:
    """The served model's search: every candidate from its artifact's langmerge.json (a local
    folder), else the best few that status keeps."""
    search = status.search
    assert search is not None
    winner = search.winner
    lines = [
        f"search: {search.evaluated} candidates merged and scored on validation data "
        f"({search.failed} failed); winner #{winner.index} ({winner.method}"
        + (f", density {winner.density:g}" if winner.density is not None else "")
        + (f", lambda {winner.lambda_:g}" if winner.lambda_ is not None else "")
        + f", weights {winner.weights}"
        + (f", seed {winner.seed}" if winner.seed is not None else "")
        + f"): {search.why}"
    ]
    record = status.artifact.uri if status.artifact else None
    rows: list[dict[str, Any]] = []
    if record and (Path(record) / "langmerge.json").is_file():
        rows = (
            json.loads((Path(record) / "langmerge.json").read_text())
            .get("search", {})
            .get("candidates", [])
        )
    if not rows:
        rows = [c.to_wire() for c in search.best or []]
    table = []
    for row in rows:
        score = f"failed: {row.get('reason')}" if row.get("failed") else f"{row['score']:.3f}"
        table.append(
            [
                ("*" if row["index"] == winner.index else "") + str(row["index"]),
                str(row.get("method")),
                "-" if row.get("density") is None else f"{row['density']:g}",
                "-" if row.get("lambda") is None else f"{row['lambda']:g}",
                str(row.get("weights") or "-"),
                "-" if row.get("seed") is None else str(row["seed"]),
                score,
            ]
        )
    headers = ["#", "Method", "Density", "Lambda", "Weights", "Seed"]
    lines.append(_table([*headers, f"{search.aggregate} {search.metric}"], table))
    return lines


def render_report(state: State, adapters: list[LanguageAdapter], merged: list[MergedModel]) -> str:
    data = report_data(state, adapters, merged)
    parts = ["## Adapters"]
    rows = []
    for adapter in sorted(adapters, key=lambda a: a.metadata.name):
        status = state.adapters.get(adapter.metadata.name)
        run = status.last_run if status else None
        summary = (run.summary if run else None) or {}
        wall, loop = summary.get("wallSeconds"), summary.get("trainSeconds")
        cost = status.totals.cost_usd if status and status.totals else 0.0
        rows.append(
            [
                adapter.metadata.name,
                adapter.spec.language,
                ready_reason(status.conditions if status else None),
                f"{loop:.1f} s" if loop else "-",
                f"{wall:.1f} s" if wall else "-",
                f"${cost:.6f}",
            ]
        )
    parts.append(
        _table(["Adapter", "Lang", "Status", "Training loop", "Last run", "Total cost"], rows)
    )
    for model in merged:
        merged_status = state.merged.get(model.metadata.name)
        ready = ready_reason(merged_status.conditions if merged_status else None)
        how = f"search of {model.spec.search.count()}" if model.spec.search else model.spec.method
        parts.append(f"\n## {model.metadata.name} ({how}): {ready}")
        if merged_status and merged_status.search:
            parts += _search_text(merged_status)
        update = merged_status.last_update if merged_status else None
        if update:
            estimate = update.full_retrain_estimate_usd
            savings = update.savings_ratio
            parts.append(
                f"last update: {update.trigger}; cost ${update.cost_usd:.6f}"
                + (
                    f" vs ${estimate:.6f} retraining every language; savings {savings:.1%}"
                    if estimate and savings is not None
                    else ""
                )
            )
        evaluation = merged_status.evaluation if merged_status else None
        gate = evaluation.gate if evaluation else None
        if gate:
            parts.append(
                "evaluation gate: "
                + ("passed" if gate.passed else "BLOCKED: " + (gate.reason or ""))
            )
    for task, section in data["tasks"].items():
        if section["evaluation"]:
            parts += _evaluation_text(task, section["evaluation"])
        research = section["research"]
        if research["initialSetup"] or research["updateOneLanguage"]:
            parts += _research_text(task, research, section["researchMergedModel"])
        elif state.phases and section["evaluation"]:
            parts.append(
                f"\n({task}: run with --compare-combined to measure the combined baseline; "
                "the research table needs both sides measured)"
            )
    return "\n".join(parts) + "\n"
