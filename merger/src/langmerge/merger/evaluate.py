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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langmerge.common import models as base_models
from langmerge.common import storage
from langmerge.common.cli import add_version, quiet_library_warnings
from langmerge.common.logits import logits_at, supported
from langmerge.common.prompts import prompt_ids, response_ids
from langmerge.common.summary import (
    EvaluationSummary,
    default_summary_path,
    failed,
    write_summary,
)
from langmerge.merger import statistics

CLASSIFICATION_MAX_LABELS = 16


def _load(base: Path, model: Path | None) -> Any:
    import torch
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


BATCH = 64


def _logprobs(model: Any, pad_id: int, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    """Summed log-probability of each tail after its head, in right-padded batches (a causal
    model never looks right, so the padding changes nothing before it). The output layer runs
    only at the positions that predict a tail's tokens (langmerge.common.logits)."""
    import torch

    out: list[float] = []
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start : start + BATCH]
        width = max(len(h) + len(t) for h, t in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        keep = torch.zeros((len(chunk), width), dtype=torch.bool)
        for row, (head, tail) in enumerate(chunk):
            ids[row, : len(head) + len(tail)] = torch.tensor(head + tail)
            mask[row, : len(head) + len(tail)] = 1
            keep[row, len(head) - 1 : len(head) + len(tail) - 1] = True
        with torch.no_grad():
            if supported(model):
                logits = logits_at(model, ids, mask, keep).float()
            else:
                logits = model(input_ids=ids, attention_mask=mask).logits.float()[keep]
        targets = torch.tensor([token for _, tail in chunk for token in tail])
        picked = torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1)
        out += [float(part.sum()) for part in picked.split([len(t) for _, t in chunk])]
    return out


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


@dataclass
class Scored:
    """One model on one language: the metrics, and for classification the per-example gold
    and predicted labels (the gate's paired comparison needs them)."""

    metrics: dict[str, float]
    gold: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)


def evaluate(
    model: Any,
    tokenizer: Any,
    records: list[dict[str, str]],
    prompt_field: str,
    response_field: str,
    generation: bool,
) -> Scored:
    labels = sorted({r[response_field] for r in records})
    classify = not generation and len(labels) <= CLASSIFICATION_MAX_LABELS
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    heads = [prompt_ids(r[prompt_field], tokenizer) for r in records]
    references = [r[response_field] for r in records]
    tails = [response_ids(reference, tokenizer) for reference in references]
    if classify:  # the reference is one of the labels: one batched pass per label
        label_ids = {label: response_ids(label, tokenizer) for label in labels}
        scores = {
            label: _logprobs(model, pad_id, [(head, ids) for head in heads])
            for label, ids in label_ids.items()
        }
        reference_logprobs = [scores[ref][i] for i, ref in enumerate(references)]
        predicted = [max(labels, key=lambda label: scores[label][i]) for i in range(len(heads))]
    else:
        reference_logprobs = _logprobs(model, pad_id, list(zip(heads, tails, strict=True)))
    tokens = sum(len(t) for t in tails)
    metrics = {"loss": -sum(reference_logprobs) / max(tokens, 1), "examples": float(len(records))}
    if classify:
        metrics.update(statistics.classification_metrics(references, predicted))
        return Scored({k: round(v, 6) for k, v in metrics.items()}, references, predicted)
    import torch

    rouges = []
    for head, reference in zip(heads, references, strict=True):
        with torch.no_grad():
            out = model.generate(
                input_ids=torch.tensor([head]),
                max_new_tokens=len(response_ids(reference, tokenizer)) + 32,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        text = tokenizer.decode(out[0, len(head) :], skip_special_tokens=True)
        rouges.append(rouge(text, reference))
    if rouges:
        metrics["rouge1"] = sum(r[0] for r in rouges) / len(rouges)
        metrics["rougeL"] = sum(r[1] for r in rouges) / len(rouges)
    return Scored({k: round(v, 6) for k, v in metrics.items()})


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        if "=" not in value:
            raise ValueError(f"{flag} takes NAME=VALUE, got {value!r}")
        name, _, rest = value.partition("=")
        pairs[name] = rest
    return pairs


def load_records(uri: str, scratch: Path, flag: str) -> list[dict[str, str]]:
    text = storage.fetch_file(uri, scratch).read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not records:
        raise ValueError(f"{flag} {uri}: no records")
    return records


def load_base(name_or_uri: str, scratch: Path) -> Path:
    """The base model's folder (langmerge.common.models: built-ins, GGUF, folders)."""
    return base_models.resolve(name_or_uri, scratch)


def score_models(
    base: Path,
    models: dict[str, Path | None],
    datasets: dict[str, list[dict[str, str]]],
    generation: bool = False,
    prompt_field: str = "prompt",
    response_field: str = "response",
) -> dict[str, dict[str, Scored]]:
    """model name -> language -> Scored; a model of None is the base model alone."""
    from transformers import AutoTokenizer

    from langmerge.common.reproducible import deterministic

    deterministic()
    tokenizer = AutoTokenizer.from_pretrained(base)
    scored: dict[str, dict[str, Scored]] = {}
    for name, path in models.items():
        model = _load(base, path)
        scored[name] = {
            language: evaluate(model, tokenizer, records, prompt_field, response_field, generation)
            for language, records in datasets.items()
        }
    return scored


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="langmerge-eval", description=__doc__)
    parser.add_argument(
        "--base-model", required=True, help="builtin:tiny, or a model folder / file:// / s3:// URI"
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=URI",
        help="a LoRA adapter or merged model to evaluate; NAME= (no URI) is the base model "
        "alone (repeat; default: the base model only)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="LANG=URI",
        help="held-out JSONL per language (repeat)",
    )
    parser.add_argument(
        "--prompt-field", default="prompt", help="field holding the prompt (default: prompt)"
    )
    parser.add_argument(
        "--response-field",
        default="response",
        help="field holding the reference answer (default: response)",
    )
    parser.add_argument(
        "--generation", action="store_true", help="score by generation (ROUGE) (default: off)"
    )
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        help='the JSON report: {"models": model -> language -> metrics, "chance": language -> '
        "metrics}",
    )
    parser.add_argument(
        "--summary-file",
        type=Path,
        default=default_summary_path(),
        help="where to write the summary JSON (default: /dev/termination-log if present)",
    )
    add_version(parser, "langmerge-merger")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_library_warnings()
    try:
        models = _pairs(args.model, "--model") or {"base": ""}
        datasets = _pairs(args.dataset, "--dataset")
        with tempfile.TemporaryDirectory(prefix="langmerge-eval-") as scratch_name:
            scratch = Path(scratch_name)
            base = load_base(args.base_model, scratch)
            data = {
                language: load_records(uri, scratch, f"--dataset {language}=")
                for language, uri in datasets.items()
            }
            paths = {
                name: storage.fetch_dir(uri, scratch) if uri else None
                for name, uri in models.items()
            }
            scored = score_models(
                base, paths, data, args.generation, args.prompt_field, args.response_field
            )
    except (ValueError, KeyError, storage.StorageError) as error:
        print(f"langmerge-eval: {error}", file=sys.stderr)
        write_summary(failed(str(error)), args.summary_file)
        return 1
    report = {
        "models": {
            name: {language: s.metrics for language, s in per_language.items()}
            for name, per_language in scored.items()
        },
        "chance": {}
        if args.generation
        else {
            language: statistics.chance([r[args.response_field] for r in records])
            for language, records in data.items()
        },
    }
    args.output.write_text(json.dumps(report, indent=2))
    write_summary(
        EvaluationSummary(result="Succeeded", models=list(scored), languages=list(datasets)),
        args.summary_file,
    )
    print(f"langmerge-eval: {len(scored)} models x {len(datasets)} languages -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
