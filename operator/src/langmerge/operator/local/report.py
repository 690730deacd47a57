"""The local loop's report: adapters, merged models with per-language evaluation, the last
update against a full retrain, and the research's table in miniature, from measured runs."""

from __future__ import annotations

from typing import Any

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.merged import MergedModel

PRIMARY_METRICS = ("f1", "accuracy", "rougeL", "loss")


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


def _ready(status: dict[str, Any]) -> str:
    for condition in status.get("conditions", []):
        if condition["type"] == "Ready":
            return "Ready" if condition["status"] == "True" else condition["reason"]
    return "-"


def _ratio(part: float, whole: float) -> str:
    """The change from the combined model to the merged one, as the research prints it
    (-35.3 % = the merged model needs 35.3 % less)."""
    return f"{(part / whole - 1) * 100:+.1f} %" if whole else "-"


def _research_table(state: Any, adapter_count: int) -> str:
    phases = state.phases
    initial = next((p for p in phases if len(p.trained) == adapter_count and p.combined), None)
    update = next(
        (p for p in reversed(phases) if 0 < len(p.trained) < adapter_count and p.combined), None
    )
    if initial is None:
        return (
            "(run with --compare-combined to measure the combined baseline: "
            "the research table needs "
            "both sides measured)"
        )
    rows = []
    for label, phase in (("Initial setup", initial), ("Update one language", update)):
        if phase is None:
            rows.append([label, "not measured yet (edit one adapter and run again)", "", "", ""])
            continue
        combined = next(iter(phase.combined.values()))
        merge = next(
            iter(phase.merges.values()),
            {"seconds": 0.0, "core_seconds": 0.0, "cost_usd": 0.0, "loop_seconds": 0.0},
        )
        ours_wall = phase.train_seconds + merge["seconds"]
        ours_loop = phase.train_loop_seconds + merge.get("loop_seconds", 0.0)
        ours_cost = phase.train_cost_usd + merge["cost_usd"]
        ran = f"{len(phase.trained)} adapter(s) + 1 merge"
        rows.append(
            [
                f"{label}, time",
                f"{combined['seconds']:.1f} s",
                f"{ours_wall:.1f} s",
                _ratio(ours_wall, combined["seconds"]),
                f"{ran}, whole processes",
            ]
        )
        loop = combined.get("loop_seconds", 0.0)
        rows.append(
            [
                f"{label}, training compute",
                f"{loop:.1f} s",
                f"{ours_loop:.1f} s",
                _ratio(ours_loop, loop),
                "training loops and merge only",
            ]
        )
        rows.append(
            [
                f"{label}, cost",
                f"${combined['cost_usd']:.6f}",
                f"${ours_cost:.6f}",
                _ratio(ours_cost, combined["cost_usd"]),
                "whole processes, per core-hour",
            ]
        )
    return _table(["Phase", "Combined model", "Merged model", "Change", "What ran"], rows)


def render_report(
    state: Any, adapters: list[LanguageAdapter], merged: list[MergedModel], adapter_count: int
) -> str:
    parts = ["## Adapters"]
    rows = []
    for adapter in sorted(adapters, key=lambda a: a.metadata.name):
        status = state.adapters.get(adapter.metadata.name, {})
        run = status.get("lastRun") or {}
        wall = (run.get("summary") or {}).get("wallSeconds")
        rows.append(
            [
                adapter.metadata.name,
                adapter.spec.language,
                _ready(status),
                f"{wall:.1f} s" if wall else "-",
                f"{(run.get('gpuSeconds') or 0) / 3600:.4f}",
                f"${(status.get('totals') or {}).get('costUsd', 0):.6f}",
            ]
        )
    parts.append(
        _table(["Adapter", "Lang", "Status", "Last run", "Core-hours", "Total cost"], rows)
    )
    for model in merged:
        status = state.merged.get(model.metadata.name, {})
        parts.append(f"\n## {model.metadata.name} ({model.spec.method}): {_ready(status)}")
        update = status.get("lastUpdate")
        if update:
            estimate = update.get("fullRetrainEstimateUsd")
            savings = update.get("savingsRatio")
            parts.append(
                f"last update: {update['trigger']}; cost ${update['costUsd']:.6f}"
                + (
                    f" vs ${estimate:.6f} retraining every language; savings {savings:.1%}"
                    if estimate and savings is not None
                    else ""
                )
            )
        gate = (status.get("evaluation") or {}).get("gate")
        if gate:
            parts.append(
                "evaluation gate: "
                + ("passed" if gate["passed"] else "FAILED: " + gate.get("reason", ""))
            )
    for task, report in state.evaluation.items():
        if not report:
            continue
        languages = sorted({lang for scores in report.values() for lang in scores})
        sample = next(iter(next(iter(report.values())).values()))
        metric = next(m for m in PRIMARY_METRICS if m in sample)
        parts.append(f"\n## Evaluation ({task}, {metric} on held-out splits)")
        rows = []
        indv = {
            name.split(" ", 1)[1]: scores
            for name, scores in report.items()
            if name.startswith("INDV ")
        }
        if indv:
            rows.append(
                [
                    "INDV (own language)",
                    *[
                        f"{indv[lang][lang][metric]:.3f}" if lang in indv else "-"
                        for lang in languages
                    ],
                ]
            )
        for name, scores in report.items():
            if not name.startswith("INDV "):
                rows.append([name, *[f"{scores[lang][metric]:.3f}" for lang in languages]])
        parts.append(_table(["Model", *languages], rows))
    parts.append("\n## The research table in miniature (measured on this machine)")
    parts.append(_research_table(state, adapter_count))
    parts.append(
        "\nA tiny model on a CPU shows the mechanics and the ratios, not production quality. "
        "Each run here is a new process whose start-up (imports, model load) takes seconds, as "
        "long as the training itself at this size: the training-compute row is the part that "
        "grows with the model. "
        "Adapters train one after another here; on a cluster they train in parallel. "
        "The evaluation gate's time inside merges is left out of this table."
    )
    return "\n".join(parts) + "\n"
