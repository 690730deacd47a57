"""The model card (README.md) written beside every merged output, as mergekit writes one: what
was merged, how, from which exact inputs, and how it scored. Built from the same metadata as
langmerge.json, so the two never disagree."""

from __future__ import annotations

from typing import Any


def _yaml_list(items: list[str]) -> str:
    return "".join(f"\n- {item}" for item in items) if items else " []"


def model_card(metadata: dict[str, Any]) -> str:
    """metadata: what langmerge.json holds (method, format, baseModel, inputs, parameters and,
    when the merge was evaluated, evaluation)."""
    inputs: list[dict[str, Any]] = metadata["inputs"]
    parameters: dict[str, Any] = metadata["parameters"]
    weights = parameters.get("weights") or [1.0] * len(inputs)
    languages = sorted({str(i.get("language") or "") for i in inputs} - {""})
    lines = [
        "---",
        f"base_model: {metadata['baseModel']}",
        "library_name: " + ("peft" if metadata["format"] == "lora" else "transformers"),
        "tags:" + _yaml_list(["langmerge", "merge", str(metadata["method"])]),
        "language:" + _yaml_list(languages),
        "---",
        "",
        f"# Merged with langmerge ({metadata['method']})",
        "",
        f"One LoRA adapter per language, merged with **{metadata['method']}** into a "
        f"{'LoRA adapter' if metadata['format'] == 'lora' else 'full model'} for "
        f"`{metadata['baseModel']}`.",
        "",
        "## Inputs",
        "",
        "| Adapter | Language | Weight (as applied) | sha256 |",
        "|---|---|---|---|",
    ]
    for item, weight in zip(inputs, weights, strict=True):
        lines.append(
            f"| `{item['uri']}` | {item.get('language') or '-'} | {weight:g} | `{item['sha256']}` |"
        )
    lines += ["", "## Parameters", "", "| Parameter | Value |", "|---|---|"]
    for key, value in parameters.items():
        if key != "weights":
            lines.append(f"| {key} | {'-' if value is None else value} |")
    if metadata.get("search"):
        lines += _search(metadata["search"])
    evaluation = metadata.get("evaluation")
    if evaluation:
        lines += _evaluation(evaluation)
    if metadata.get("baseModelTerms"):  # the adapters' base model's terms travel with it
        lines += ["", "## Terms of the base model", "", str(metadata["baseModelTerms"])]
    lines += [
        "",
        "`langmerge.json` beside this file holds the same facts, machine-readable.",
        "",
    ]
    return "\n".join(lines)


def _evaluation(evaluation: dict[str, Any]) -> list[str]:
    metric = evaluation.get("metric", "f1")
    gate = evaluation.get("gate") or {}
    verdict = "passed" if gate.get("passed", True) else f"refused: {gate.get('reason') or ''}"
    lines = [
        "",
        "## Evaluation",
        "",
        f"Held-out {metric} per language against the {evaluation.get('against', '-')} "
        f"baseline; the gate {verdict}.",
        "",
        f"| Language | {metric} | 95 % interval | baseline |",
        "|---|---|---|---|",
    ]
    baseline = evaluation.get("baseline") or {}
    for language, metrics in sorted((evaluation.get("perLanguage") or {}).items()):
        value = metrics.get(metric)
        low, high = metrics.get(f"{metric}Low"), metrics.get(f"{metric}High")
        interval = f"{low:.3f}-{high:.3f}" if low is not None and high is not None else "-"
        base = (baseline.get(language) or {}).get(metric)
        lines.append(
            f"| {language} | {'-' if value is None else f'{value:.3f}'} | {interval} | "
            f"{'-' if base is None else f'{base:.3f}'} |"
        )
    return lines


def _search(search: dict[str, Any]) -> list[str]:
    """The sweep table: every candidate with its validation score per language."""
    rows = search["candidates"]
    languages = sorted({lang for r in rows for lang in r.get("perLanguage", {})})
    winner = search["winner"]
    lines = [
        "",
        "## Search",
        "",
        f"{len(rows)} candidates merged and scored on validation data; chosen: "
        f"**#{winner['index']}** ({winner['label']}), {winner['why']}.",
        "",
        f"| # | Method | Density | Lambda | Weights | Seed | {search['aggregate']} "
        f"{search['metric']} | " + " | ".join(languages) + " |",
        "|---" * (7 + len(languages)) + "|",
    ]
    for row in rows:
        cells = [
            f"**{row['index']}**" if row["index"] == winner["index"] else str(row["index"]),
            row["method"],
            _cell(row.get("density")),
            _cell(row.get("lambda")),
            str(row.get("weights", "-")),
            _cell(row.get("seed")),
            f"failed: {row['reason']}" if row.get("failed") else f"{row['score']:.3f}",
            *(_cell(row.get("perLanguage", {}).get(lang), ".3f") for lang in languages),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(value: Any, spec: str = "g") -> str:
    return "-" if value is None else format(value, spec)
