"""`langmerge-eval`: per-language evaluation of models (the base, LoRA adapters, merged
adapters or merged full weights) on held-out prompt/response data.

Classification (few distinct responses): each label is scored by its log-likelihood after the
prompt, formatted exactly as in training; accuracy and macro precision/recall/F1. Generation:
greedy decoding and ROUGE-1/ROUGE-L F1 (characters for scripts written without spaces).
Always: the mean token loss of the reference response. Writes one JSON report."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from langmerge.common import builtin, storage
from langmerge.common.prompts import prompt_ids, response_ids
from langmerge.common.summary import default_summary_path, write_summary

CLASSIFICATION_MAX_LABELS = 16


def _load(base: Path, model: Path | None) -> Any:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if (
        model is not None
        and (model / "config.json").is_file()
        and not (model / "adapter_config.json").is_file()
    ):
        loaded = AutoModelForCausalLM.from_pretrained(
            model, dtype=torch.float32
        )  # merged full weights
    else:
        loaded = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        if model is not None:
            loaded = PeftModel.from_pretrained(loaded, model)
    return loaded.eval()


def _response_logprob(model: Any, head: list[int], tail: list[int]) -> tuple[float, int]:
    ids = torch.tensor([head + tail])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(head) - 1 : -1]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    picked = logprobs.gather(1, torch.tensor(tail).unsqueeze(1)).squeeze(1)
    return float(picked.sum()), len(tail)


def _units(text: str) -> list[str]:
    words = text.split()
    return (
        words
        if len(words) > 1 or not text or text.isascii()
        else [c for c in text if not c.isspace()]
    )


def _lcs(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        previous = 0
        for j, y in enumerate(b, start=1):
            current = row[j]
            row[j] = previous + 1 if x == y else max(row[j], row[j - 1])
            previous = current
    return row[-1]


def _f1(overlap: int, predicted: int, reference: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / predicted, overlap / reference
    return 2 * precision * recall / (precision + recall)


def rouge(prediction: str, reference: str) -> tuple[float, float]:
    """ROUGE-1 and ROUGE-L F1 of one prediction."""
    p, r = _units(prediction), _units(reference)
    if not p or not r:
        return 0.0, 0.0
    overlap = sum((Counter(p) & Counter(r)).values())
    return _f1(overlap, len(p), len(r)), _f1(_lcs(p, r), len(p), len(r))


def classification_metrics(gold: list[str], predicted: list[str]) -> dict[str, float]:
    labels = sorted(set(gold))
    precisions, recalls, f1s = [], [], []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    n = len(labels)
    return {
        "accuracy": accuracy,
        "precision": sum(precisions) / n,
        "recall": sum(recalls) / n,
        "f1": sum(f1s) / n,
    }


def evaluate(
    model: Any,
    tokenizer: Any,
    records: list[dict[str, str]],
    prompt_field: str,
    response_field: str,
    generation: bool,
) -> dict[str, float]:
    labels = sorted({r[response_field] for r in records})
    classify = not generation and len(labels) <= CLASSIFICATION_MAX_LABELS
    label_ids = {label: response_ids(label, tokenizer) for label in labels}
    gold, predicted, total_loss, total_tokens, rouges = [], [], 0.0, 0, []
    for record in records:
        head = prompt_ids(record[prompt_field], tokenizer)
        reference = record[response_field]
        logprob, count = _response_logprob(model, head, response_ids(reference, tokenizer))
        total_loss -= logprob
        total_tokens += count
        if classify:
            scores = {
                label: _response_logprob(model, head, ids)[0] for label, ids in label_ids.items()
            }
            gold.append(reference)
            predicted.append(max(scores, key=lambda label: scores[label]))
        else:
            with torch.no_grad():
                out = model.generate(
                    input_ids=torch.tensor([head]),
                    max_new_tokens=len(label_ids.get(reference, [])) + 32,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            text = tokenizer.decode(out[0, len(head) :], skip_special_tokens=True)
            rouges.append(rouge(text, reference))
    metrics = {"loss": total_loss / max(total_tokens, 1), "examples": float(len(records))}
    if classify:
        metrics.update(classification_metrics(gold, predicted))
    elif rouges:
        metrics["rouge1"] = sum(r[0] for r in rouges) / len(rouges)
        metrics["rougeL"] = sum(r[1] for r in rouges) / len(rouges)
    return {k: round(v, 6) for k, v in metrics.items()}


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        if "=" not in value:
            raise ValueError(f"{flag} takes NAME=VALUE, got {value!r}")
        name, _, rest = value.partition("=")
        pairs[name] = rest
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="langmerge-eval", description=__doc__)
    parser.add_argument("--base-model", required=True, help="builtin:tiny or a model folder / URI")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=URI",
        help="a LoRA adapter or merged model to evaluate (NAME= for the base model)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="LANG=URI",
        help="held-out JSONL per language",
    )
    parser.add_argument("--prompt-field", default="prompt")
    parser.add_argument("--response-field", default="response")
    parser.add_argument("--generation", action="store_true", help="score by generation (ROUGE)")
    parser.add_argument(
        "--output", required=True, type=Path, help="the JSON report: model -> language -> metric"
    )
    parser.add_argument("--summary-file", type=Path, default=default_summary_path())
    args = parser.parse_args(argv)
    try:
        models = _pairs(args.model, "--model") or {"base": ""}
        datasets = _pairs(args.dataset, "--dataset")
        with tempfile.TemporaryDirectory(prefix="langmerge-eval-") as scratch_name:
            scratch = Path(scratch_name)
            base = (
                builtin.path()
                if args.base_model == builtin.NAME
                else storage.fetch_dir(args.base_model, scratch)
            )
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(base)
            data = {}
            for language, uri in datasets.items():
                text = storage.fetch_file(uri, scratch).read_text(encoding="utf-8")
                data[language] = [json.loads(line) for line in text.splitlines() if line.strip()]
                if not data[language]:
                    raise ValueError(f"--dataset {language}={uri}: no records")
            report: dict[str, dict[str, dict[str, float]]] = {}
            for name, uri in models.items():
                model = _load(base, storage.fetch_dir(uri, scratch) if uri else None)
                report[name] = {
                    language: evaluate(
                        model,
                        tokenizer,
                        records,
                        args.prompt_field,
                        args.response_field,
                        args.generation,
                    )
                    for language, records in data.items()
                }
    except (ValueError, KeyError, storage.StorageError) as error:
        print(f"langmerge-eval: {error}", file=sys.stderr)
        write_summary({"result": "Failed", "reason": str(error)}, args.summary_file)
        return 1
    args.output.write_text(json.dumps(report, indent=2))
    write_summary(
        {"result": "Succeeded", "models": list(report), "languages": list(datasets)},
        args.summary_file,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def worsening(metric: str, value: float, baseline: float) -> float:
    """Relative worsening against a baseline: lower is better for loss, higher for the rest."""
    if baseline <= 0:
        return 0.0
    return (value - baseline) / baseline if metric == "loss" else (baseline - value) / baseline


def gate(
    scores: dict[str, dict[str, float]],
    baselines: dict[str, dict[str, float]],
    metric: str,
    max_drop: float,
    against: str,
) -> tuple[bool, str]:
    """Every language within max_drop of its baseline on metric: (passed, reason)."""
    for language, values in sorted(scores.items()):
        baseline = baselines.get(language, {}).get(metric)
        if baseline is None or metric not in values:
            continue
        drop = worsening(metric, values[metric], baseline)
        if drop > max_drop:
            who = "its individual adapter's" if against == "individual" else "the current model's"
            return False, (
                f"{language} {metric} {values[metric]:.3f} is {drop:.0%} worse than {who} "
                f"{baseline:.3f} (at most {max_drop:.0%} allowed)"
            )
    return True, ""


def evaluate_candidates(
    base: Path,
    candidate: Path,
    datasets: dict[str, list[dict[str, str]]],
    baselines: dict[str, Path],
    own_language_only: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scores of the candidate on every language, and of each baseline model (on its own
    language when own_language_only, as individual adapters are)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = _load(base, candidate)
    scores = {
        lang: evaluate(model, tokenizer, records, "prompt", "response", False)
        for lang, records in datasets.items()
    }
    reference: dict[str, Any] = {}
    for key, path in baselines.items():
        model = _load(base, path)
        for lang, records in datasets.items():
            if not own_language_only or lang == key:
                reference[lang] = evaluate(model, tokenizer, records, "prompt", "response", False)
    return scores, reference
