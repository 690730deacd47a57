"""`langmerge-train`: the trainer image's entrypoint. Trains one LoRA adapter (or, given
several datasets, one combined adapter: the COMB baseline) and writes it with its metadata;
one summary JSON (<= 4 KiB) goes to the termination message. Exits non-zero with the reason
in the summary on failure; bad input fails before any model is loaded."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langmerge.common import models, storage
from langmerge.common.cli import add_version, quiet_library_warnings
from langmerge.common.precision import PrecisionSettingError
from langmerge.common.prompts import Example, Fields, PromptError, encode
from langmerge.common.summary import (
    Output,
    RunSummary,
    TrainingSummary,
    default_summary_path,
    failed,
    write_summary,
)
from langmerge.trainer import distributed
from langmerge.trainer.data import check_records, pack, read_records

# torch loads after the flags parse and the data checks pass: `--help` stays instant.
if TYPE_CHECKING:
    from langmerge.trainer.train import TrainConfig


class UsageError(ValueError):
    """A flag value that cannot work; the message names the flag and the fix."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="langmerge-train",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model = p.add_argument_group("base model")
    model.add_argument(
        "--base-model",
        required=True,
        help="builtin:tiny, builtin:gemma-3-270m, a folder (path, file:// or s3://), a .gguf "
        "file or a folder holding one (converted once, cached), or a model-hub id",
    )
    model.add_argument(
        "--base-model-revision", default="main", help="hub revision (branch, tag or commit)"
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="URI",
        help="JSONL, Parquet, CSV or a saved datasets folder; repeat for a combined adapter",
    )
    data.add_argument("--language", action="append", default=[], help="BCP-47 tag per --dataset")
    data.add_argument("--task", required=True, help="the task name, stored in the metadata")
    data.add_argument(
        "--dataset-format",
        default="auto",
        choices=["auto", "jsonl", "parquet", "csv", "arrow"],
        help="auto: from the file's extension",
    )
    data.add_argument("--prompt-field", help="prompt column (with --response-field)")
    data.add_argument("--response-field", help="response column; the loss covers it only")
    data.add_argument("--messages-field", help="chat messages column (role/content list)")
    data.add_argument("--text-field", help="plain text column (loss on all of it)")
    data.add_argument(
        "--eval-dataset",
        action="append",
        default=[],
        metavar="URI",
        help="held-out data whose loss goes into the summary (repeat)",
    )
    lora = p.add_argument_group("LoRA")
    lora.add_argument("--lora-rank", type=int, default=16, help="LoRA rank r, 1..1024")
    lora.add_argument("--lora-alpha", type=float, default=32, help="LoRA alpha (scale alpha/r)")
    lora.add_argument("--lora-dropout", type=float, default=0.05, help="dropout on the LoRA path")
    lora.add_argument(
        "--target-modules",
        default="q_proj,k_proj,v_proj,o_proj",
        help="comma-separated linear layers to adapt",
    )
    lora.add_argument("--rslora", action="store_true", help="rank-stabilised scale alpha/sqrt(r)")
    run = p.add_argument_group("training")
    run.add_argument("--epochs", type=float, default=1.0, help="passes over the data")
    run.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop after this many steps (overrides --epochs)",
    )
    run.add_argument("--learning-rate", type=float, default=2e-4, help="AdamW learning rate")
    run.add_argument(
        "--scheduler",
        default="linear",
        choices=["linear", "cosine", "constant", "constant_with_warmup"],
        help="learning-rate schedule after the warmup",
    )
    run.add_argument(
        "--warmup-ratio", type=float, default=0.0, help="fraction of steps warming up, [0, 1)"
    )
    run.add_argument("--batch-size", type=int, default=8, help="examples per micro-batch")
    run.add_argument(
        "--gradient-accumulation", type=int, default=1, help="micro-batches per optimiser step"
    )
    run.add_argument(
        "--max-seq-length", type=int, default=1024, help="tokens per example (longer is cut)"
    )
    run.add_argument("--packing", action="store_true", help="pack examples into full sequences")
    run.add_argument(
        "--precision",
        default="fp32",
        choices=["bf16", "fp16", "fp32"],
        help="mixed precision of the forward/backward pass",
    )
    run.add_argument(
        "--logits",
        choices=["response", "all"],
        default="response",
        help="where the output layer runs: only at the trained (response) positions, or at "
        "every position as the model's own forward does (the same loss, slower on a large "
        "vocabulary; for comparison)",
    )
    run.add_argument(
        "--attention",
        choices=["auto", "sdpa"],
        default="auto",
        help="auto: on a CPU, short rows' attention as plain products with float32 scores "
        "(faster than SDPA's backward there, no less exact; Llama and Gemma 3), SDPA for the "
        "rest; sdpa: SDPA everywhere, as transformers loads the model",
    )
    run.add_argument(
        "--gradient-checkpointing", action="store_true", help="trade compute for memory"
    )
    run.add_argument(
        "--seed", type=int, default=42, help="seeds the data order and the LoRA initialisation"
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--output", required=True, metavar="URI", help="where the adapter is published"
    )
    out.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="local folder for checkpoints; a restart with the same flags resumes",
    )
    out.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints")
    out.add_argument("--log-every", type=int, default=10, help="steps between progress lines")
    out.add_argument(
        "--fingerprint", default="", help="the caller's fingerprint, stored in the metadata"
    )
    out.add_argument("--artifact-root", default=None, help="refuse local paths outside this folder")
    out.add_argument(
        "--summary-file",
        type=Path,
        default=default_summary_path(),
        help="where the summary JSON goes",
    )
    add_version(p, "langmerge-trainer")
    return p


def _config(args: argparse.Namespace) -> TrainConfig:
    from langmerge.trainer.train import TrainConfig

    checks = [
        (
            1 <= args.lora_rank <= 1024,
            f"--lora-rank must be between 1 and 1024, got {args.lora_rank}",
        ),
        (args.lora_alpha > 0, f"--lora-alpha must be > 0, got {args.lora_alpha}"),
        (0 <= args.lora_dropout < 1, f"--lora-dropout must be in [0, 1), got {args.lora_dropout}"),
        (args.epochs > 0, f"--epochs must be > 0, got {args.epochs}"),
        (
            args.max_steps is None or args.max_steps >= 1,
            f"--max-steps must be >= 1, got {args.max_steps}",
        ),
        (
            0 < args.learning_rate <= 1,
            f"--learning-rate must be in (0, 1], got {args.learning_rate}",
        ),
        (args.batch_size >= 1, f"--batch-size must be >= 1, got {args.batch_size}"),
        (
            args.gradient_accumulation >= 1,
            f"--gradient-accumulation must be >= 1, got {args.gradient_accumulation}",
        ),
        (
            8 <= args.max_seq_length <= 131072,
            f"--max-seq-length must be between 8 and 131072, got {args.max_seq_length}",
        ),
        (
            args.checkpoint_every >= 1,
            f"--checkpoint-every must be >= 1, got {args.checkpoint_every}",
        ),
        (0 <= args.warmup_ratio < 1, f"--warmup-ratio must be in [0, 1), got {args.warmup_ratio}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    if args.language and len(args.language) != len(args.dataset):
        raise UsageError(
            f"--language given {len(args.language)} times for {len(args.dataset)} --dataset; "
            "give one each"
        )
    modules = [m.strip() for m in args.target_modules.split(",") if m.strip()]
    if not modules:
        raise UsageError(
            "--target-modules is empty; name the linear layers to adapt, e.g. q_proj,v_proj"
        )
    return TrainConfig(
        rank=args.lora_rank,
        alpha=args.lora_alpha,
        dropout=args.lora_dropout,
        target_modules=modules,
        rslora=args.rslora,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        scheduler=args.scheduler,
        warmup_ratio=args.warmup_ratio,
        batch_size=args.batch_size,
        gradient_accumulation=args.gradient_accumulation,
        max_seq_length=args.max_seq_length,
        packing=args.packing,
        precision=args.precision,
        logits=args.logits,
        attention=args.attention,
        gradient_checkpointing=args.gradient_checkpointing,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
    )


def _fields(args: argparse.Namespace) -> Fields:
    if not any((args.prompt_field, args.response_field, args.messages_field, args.text_field)):
        return Fields(prompt="prompt", response="response")
    return Fields(args.prompt_field, args.response_field, args.messages_field, args.text_field)


def _model_dir(args: argparse.Namespace, scratch: Path) -> Path:
    try:
        return models.resolve(
            args.base_model, scratch, args.base_model_revision, args.artifact_root
        )
    except models.ModelError as error:
        raise UsageError(str(error)) from error


def _check_target_modules(model_dir: Path, target_modules: list[str]) -> None:
    """Refuses a name in target_modules that matches no module of the base model. peft adapts
    the names that match and skips the others without a word, so a typo in one name would
    train fewer layers than asked. The model is built on the meta device: no weights read."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    modules = dict(model.named_modules())
    # peft's rule for a list of names: a module's full name or its last dotted parts
    unmatched = [
        target
        for target in target_modules
        if not any(name == target or name.endswith(f".{target}") for name in modules)
    ]
    if unmatched:
        linear = {
            n.rsplit(".", 1)[-1] for n, m in modules.items() if isinstance(m, torch.nn.Linear)
        }
        raise UsageError(
            f"--target-modules: {', '.join(unmatched)} "
            f"{'matches' if len(unmatched) == 1 else 'match'} no module of the base model "
            f"(its linear layers: {', '.join(sorted(linear - {'lm_head'}))}); name those "
            "(a LanguageAdapter's spec.lora.targetModules)"
        )


def _check_responses_fit(examples: list[Example], name: str, max_seq_length: int) -> None:
    """Refuses data whose every response lies beyond --max-seq-length (cut off, no token would
    train: the run would "succeed" with a loss of 0 and an adapter that changes nothing), and
    says how many records lose their whole response when some do."""
    lost = [
        n
        for n, e in enumerate(examples, start=1)
        if all(x == distributed.IGNORED for x in e.labels)
    ]
    fix = (
        "raise --max-seq-length (a LanguageAdapter's spec.training.maxSeqLength) "
        "or shorten the prompts"
    )
    if lost and len(lost) == len(examples):
        raise UsageError(
            f"{name}: every record's response begins after token {max_seq_length}, where "
            f"--max-seq-length cuts it off: no response token is left to train on or score; {fix}"
        )
    if lost:
        print(
            f"langmerge-train: {name}: {len(lost)} of {len(examples)} records (the first: "
            f"record {lost[0]}) lose their whole response to --max-seq-length {max_seq_length} "
            f"and count for nothing; {fix}",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> TrainingSummary:
    from langmerge.trainer.train import run_key, train

    config = _config(args)
    fields = _fields(args)
    fields.style  # noqa: B018 (raises on a bad mapping before anything is read)
    storage.check_under_root(args.output, args.artifact_root, "--output")
    with tempfile.TemporaryDirectory(prefix="langmerge-train-") as scratch_name:
        scratch = Path(scratch_name)
        records, digests = [], []
        for uri in args.dataset:
            storage.check_under_root(uri, args.artifact_root, "--dataset")
            rows, digest = read_records(uri, args.dataset_format, scratch)
            check_records(rows, fields, uri)
            records.append(rows)
            digests.append(digest)
        eval_records = []
        for uri in args.eval_dataset:
            rows, _ = read_records(uri, args.dataset_format, scratch)
            check_records(rows, fields, uri)
            eval_records += rows
        model_dir = _model_dir(args, scratch)  # only now: bad input has failed already
        _check_target_modules(model_dir, config.target_modules)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        examples = []
        for uri, rows in zip(args.dataset, records, strict=True):
            encoded = [encode(r, fields, tokenizer, config.max_seq_length) for r in rows]
            _check_responses_fit(encoded, f"dataset {uri}", config.max_seq_length)
            examples += encoded
        trained_records = len(examples)  # before packing: a merge search weighs adapters by it
        if config.packing:
            examples = pack(examples, config.max_seq_length)
        evals = [encode(r, fields, tokenizer, config.max_seq_length) for r in eval_records]
        if evals:
            _check_responses_fit(evals, "--eval-dataset", config.max_seq_length)
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id
        inputs = {
            "baseModel": args.base_model,
            "revision": args.base_model_revision,
            "datasets": digests,
            "fields": asdict(fields),
            "languages": args.language,
        }
        key = run_key(config, inputs)
        if not distributed.is_main():  # another rank of a data-parallel run: rank 0 publishes
            figures = train(model_dir, examples, pad_id, config, key, args.checkpoint_dir, scratch)
            return _summary(args, figures, output=None)
        with storage.staging(args.output) as staged:
            figures = train(
                model_dir, examples, pad_id, config, key, args.checkpoint_dir, staged, evals or None
            )
            metadata = {
                "kind": "adapter",
                "baseModel": args.base_model,
                "baseModelRevision": args.base_model_revision,
                "task": args.task,
                "language": args.language[0] if len(args.language) == 1 else None,
                "languages": args.language,
                "datasetSha256": digests,
                "examples": trained_records,
                "fingerprint": args.fingerprint,
                "settings": asdict(config),
                "fields": asdict(fields),
                "baseModelTerms": models.notice(args.base_model, model_dir),
            }
            (staged / "langmerge.json").write_text(json.dumps(metadata, indent=2))
            if metadata["baseModelTerms"] and (staged / "README.md").is_file():  # peft's card
                with (staged / "README.md").open("a") as card:
                    card.write(f"\n## Terms of the base model\n\n{metadata['baseModelTerms']}\n")
            digest = storage.publish_dir(staged, args.output)
    return _summary(args, figures, output=Output(uri=args.output, sha256=digest))


def _summary(
    args: argparse.Namespace, figures: dict[str, Any], output: Output | None
) -> TrainingSummary:
    return TrainingSummary(
        result="Succeeded",
        task=args.task,
        languages=args.language,
        fingerprint=args.fingerprint,
        output=output,
        **figures,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_library_warnings()
    started = time.monotonic()
    try:
        summary = run(args)
    except (UsageError, PromptError, PrecisionSettingError, storage.StorageError) as error:
        print(f"langmerge-train: {error}", file=sys.stderr)
        return _finish(failed(str(error)), args, code=1)
    except Exception as error:  # unexpected: trace to the log, reason to the summary
        traceback.print_exc()
        return _finish(failed(f"internal error: {error!r}"), args, code=1)
    summary.wallSeconds = round(time.monotonic() - started, 3)
    languages = ", ".join(args.language) or "no language given"
    if summary.output is None:
        print(f"langmerge-train: rank {distributed.rank()} done; rank 0 writes the adapter")
    else:  # before the summary: without --summary-file it must stay stdout's last line
        print(
            f"langmerge-train: adapter for {args.task} ({languages}) written to {args.output} "
            f"(sha256 {summary.output.sha256[:12]})"
        )
    return _finish(summary, args, code=0)


def _finish(summary: RunSummary, args: argparse.Namespace, code: int) -> int:
    """Rank 0 writes the run's one summary: the processes of one pod share its termination
    message file. Other ranks' failures are in their log (stderr) only."""
    if distributed.is_main():
        write_summary(summary, args.summary_file)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
