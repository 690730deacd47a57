"""`langmerge-merge`: the merger image's entrypoint. Flags in; the merged artifact and one
summary JSON (<= 4 KiB) out. Exits non-zero with the reason in the summary on failure."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langmerge.common import models, storage
from langmerge.common.cli import add_version, quiet_library_warnings
from langmerge.common.scoring import GENERATION_METRICS
from langmerge.common.summary import (
    MergeSummary,
    Output,
    default_summary_path,
    failed,
    peak_rss_bytes,
    write_summary,
)
from langmerge.merger.card import model_card
from langmerge.merger.names import METHOD_NAMES

# torch and the merge maths load after the flags parse: `--help` and bad flags stay instant.
if TYPE_CHECKING:
    from langmerge.merger.adapters import LoraAdapter
    from langmerge.merger.methods import MergeSettings


class UsageError(ValueError):
    """A flag value that cannot work; the message names the flag and the fix."""


class GateFailedError(ValueError):
    """The merge worked but failed its evaluation gate: nothing is published."""

    def __init__(self, evaluation: dict[str, Any], rejected_output: str | None) -> None:
        super().__init__(f"evaluation gate: {evaluation['gate']['reason']}")
        self.evaluation = evaluation
        self.rejected_output = rejected_output


# The summary keeps, per language, the gate's metric with its interval (the artifact's
# langmerge.json keeps every metric): five languages fit the 4 KiB termination message.
SUMMARY_METRIC_KEYS = ("examples",)


def _compact(evaluation: dict[str, Any]) -> dict[str, Any]:
    metric = evaluation.get("metric", "f1")
    keys = (metric, f"{metric}Low", f"{metric}High", *SUMMARY_METRIC_KEYS)
    per_language = {
        language: {k: v for k, v in metrics.items() if k in keys}
        for language, metrics in evaluation["perLanguage"].items()
    }
    baseline = {
        language: {k: v for k, v in metrics.items() if k == metric}
        for language, metrics in evaluation["baseline"].items()
    }
    return {**evaluation, "perLanguage": per_language, "baseline": baseline}


def _evaluate(
    args: argparse.Namespace, adapters: list[LoraAdapter], staged: Path, scratch: Path
) -> dict[str, Any]:
    """Scores of the merged model per language, and the gate's verdict against the combined
    model, the individual adapters (each on its own language) or the current merged model."""
    from langmerge.merger import evaluate, gate

    base = evaluate.load_base(args.base_model, scratch)
    datasets = {}
    for pair in args.evaluate:
        language, _, uri = pair.partition("=")
        datasets[language] = evaluate.load_records(uri, scratch, f"--evaluate {language}=")
    models: dict[str, Path | None] = {"candidate": staged}
    if args.gate_against == "individual":
        models.update({f"individual {a.language}": a.path for a in adapters if a.language})
    elif args.gate_baseline:
        models["baseline"] = storage.fetch_dir(args.gate_baseline, scratch)
    scored = evaluate.score_models(
        base, models, datasets, generation=args.gate_metric in GENERATION_METRICS
    )
    candidate = scored.pop("candidate")
    if args.gate_against == "individual":
        baseline = {
            language: scored[f"individual {language}"][language]
            for language in datasets
            if f"individual {language}" in scored
        }
    else:
        baseline = scored.get("baseline", {})
    verdict = gate.Verdict(passed=True)
    if args.gate_max_drop is not None and baseline:
        verdict = gate.decide(
            candidate, baseline, args.gate_metric, args.gate_max_drop, args.gate_against
        )
    return {
        "perLanguage": {language: s.metrics for language, s in candidate.items()},
        "baseline": {language: s.metrics for language, s in baseline.items()},
        "against": args.gate_against,
        "metric": args.gate_metric,
        "gate": verdict.to_summary(),
        "comparisons": verdict.comparisons,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="langmerge-merge", description=__doc__)
    parser.add_argument(
        "--adapter",
        action="append",
        required=True,
        metavar="URI",
        help="a peft LoRA folder: path, file://, or s3:// (repeat per adapter)",
    )
    parser.add_argument(
        "--adapter-sha256",
        action="append",
        default=[],
        metavar="HEX",
        help="expected sha256 of each adapter, in --adapter order (verified first)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="comma-separated weight per adapter, in --adapter order (default: 1 each); "
        "normalised to sum to 1 unless --weight-normalization none",
    )
    parser.add_argument(
        "--weight-normalization",
        choices=["sum-to-one", "none"],
        default="sum-to-one",
        help="sum-to-one (default): weights are relative, so equal weights average the "
        "adapters' updates; none: weights are used as given, so weight 1 each SUMS the "
        "updates (task arithmetic). TIES-family methods divide by the agreeing weights and "
        "are unaffected",
    )
    parser.add_argument(
        "--method",
        choices=METHOD_NAMES,
        default="knots-ties",
        help="how the adapters' updates are combined (default: knots-ties)",
    )
    parser.add_argument(
        "--density",
        type=float,
        default=0.5,
        help="fraction of entries kept by TIES trimming / DARE dropping, in (0, 1] "
        "(default: 0.5). TIES keeps, per task, every entry at least as large as the "
        "(n - int(density*n))-th smallest magnitude: int(density*n)+1 entries without ties, "
        "the TIES authors' topk_values_mask (mergekit keeps int(density*n))",
    )
    parser.add_argument(
        "--lambda",
        dest="lambda_",
        metavar="LAMBDA",
        type=float,
        default=1.0,
        help="scale of the merged update (default: 1.0)",
    )
    parser.add_argument(
        "--majority-sign",
        choices=["total", "frequency"],
        default="total",
        help="TIES sign election by the sum of values or by count (default: total)",
    )
    parser.add_argument(
        "--topk-scope",
        choices=["model", "module"],
        default=None,
        help="knots-ties only: its TIES top-k over the whole model (the reference's, the "
        "default) or per module; ties always trims each module by itself",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of DARE's random drop (default: 0)"
    )
    parser.add_argument(
        "--output-format",
        choices=["lora", "full"],
        default="lora",
        help="lora: a peft adapter; full: merged weights (needs --base-model) (default: lora)",
    )
    parser.add_argument("--output", required=True, metavar="URI", help="where to write the result")
    parser.add_argument(
        "--rank",
        type=int,
        default=None,
        help="rank a dense method's result (ties, dare-ties, dare-linear) is compressed to in a "
        "LoRA output; linear, cat and knots-* stay exact (default: the sum of the input ranks)",
    )
    parser.add_argument(
        "--base-model",
        default=None,
        metavar="URI",
        help="base model folder (safetensors), needed for --output-format full",
    )
    parser.add_argument(
        "--artifact-root",
        default=None,
        help="refuse local paths outside this folder (default: no limit)",
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="where to merge (default: cpu)"
    )
    gate = parser.add_argument_group("evaluation gate (needs --base-model)")
    gate.add_argument(
        "--evaluate",
        action="append",
        default=[],
        metavar="LANG=URI",
        help="held-out prompt/response JSONL per language; the result is not published "
        "unless it passes the gate",
    )
    gate.add_argument(
        "--gate-metric",
        default="f1",
        help="f1, accuracy, precision, recall, rouge1, rougeL (scored by generation) or loss "
        "(default: f1)",
    )
    gate.add_argument(
        "--gate-max-drop",
        type=float,
        default=None,
        help="margin in metric points (0.05 = 5 points): the merge is not published when, in "
        "some language, the 95 %% interval of (merged - baseline) lies wholly below "
        "-MAX_DROP (default: evaluate only, no gate)",
    )
    gate.add_argument(
        "--gate-against",
        choices=["combined", "individual", "current"],
        default="individual",
        help="the baseline: the combined model (needs --gate-baseline), each language's own "
        "adapter, or the current merged model (--gate-baseline; none yet: no gate) "
        "(default: individual)",
    )
    gate.add_argument(
        "--rejected-output",
        default=None,
        metavar="URI",
        help="where a merge that fails its gate is written for inspection (never served; "
        "default: nowhere)",
    )
    gate.add_argument(
        "--gate-baseline",
        default=None,
        metavar="URI",
        help="the combined or current model the gate compares against",
    )
    parser.add_argument(
        "--summary-file",
        type=Path,
        default=default_summary_path(),
        help="where to write the summary JSON (default: /dev/termination-log if present)",
    )
    add_version(parser, "langmerge-merger")
    return parser


def _settings(args: argparse.Namespace, n: int) -> MergeSettings:
    import torch

    from langmerge.merger.methods import METHODS, MergeSettings

    for uri in args.adapter:
        if not uri.strip():
            raise UsageError("--adapter is empty; give the folder or URI of a LoRA adapter")
        for flag, target in (
            ("--output", args.output),
            ("--rejected-output", args.rejected_output),
        ):
            if target and storage.overlaps(uri, target):
                raise UsageError(
                    f"{flag} {target} overlaps the input --adapter {uri}: writing there would "
                    "destroy the input; choose an output outside every input"
                )
    if not 0 < args.density <= 1:
        raise UsageError(f"--density must be in (0, 1], got {args.density}")
    if args.lambda_ <= 0:
        raise UsageError(f"--lambda must be > 0, got {args.lambda_}")
    if args.rank is not None and not 1 <= args.rank <= 4096:
        raise UsageError(f"--rank must be between 1 and 4096, got {args.rank}")
    weights = [1.0] * n
    if args.weights:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError as error:
            raise UsageError(
                f"--weights must be comma-separated numbers, got {args.weights!r}"
            ) from error
        if len(weights) != n:
            raise UsageError(
                f"--weights has {len(weights)} values for {n} adapters; give one per --adapter"
            )
        if any(not w >= 0 for w in weights):  # also refuses NaN
            raise UsageError(f"--weights must all be >= 0, got {args.weights!r}")
        if sum(weights) == 0:
            raise UsageError("--weights are all zero; at least one adapter must count")
    if args.adapter_sha256 and len(args.adapter_sha256) != n:
        raise UsageError(
            f"--adapter-sha256 given {len(args.adapter_sha256)} times for {n} adapters"
        )
    if args.output_format == "full" and not args.base_model:
        raise UsageError(
            "--output-format full needs --base-model (the folder with the base weights)"
        )
    if args.evaluate and not args.base_model:
        raise UsageError("--evaluate needs --base-model to load the merged model for evaluation")
    if args.gate_max_drop is not None and not 0 <= args.gate_max_drop <= 1:
        raise UsageError(f"--gate-max-drop must be in [0, 1], got {args.gate_max_drop}")
    if args.gate_against == "combined" and args.evaluate and not args.gate_baseline:
        raise UsageError(
            "--gate-against combined needs --gate-baseline URI (the combined model's adapter)"
        )
    if args.weight_normalization == "sum-to-one":
        total = sum(weights)
        weights = [w / total for w in weights]
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is visible")
    return MergeSettings(
        method=METHODS[args.method],
        weights=tuple(weights),
        density=args.density,
        lambda_=args.lambda_,
        majority_sign=args.majority_sign,
        topk_scope=_topk_scope(args.method, args.topk_scope),
        seed=args.seed,
        rank=args.rank,
        device=args.device,
    )


def _topk_scope(method: str, requested: str | None) -> str | None:
    """What the method's TIES trimming actually spans: recorded as such in the summary."""
    if method == "knots-ties":
        return requested or "model"
    if method == "ties":
        if requested == "model":
            raise UsageError(
                "--topk-scope model applies to knots-ties; ties trims each module's dense "
                "update by itself (omit the flag, or use knots-ties for a model-wide top-k)"
            )
        return "module"
    return None  # no top-k: linear, cat and the DARE methods


def _load_inputs(args: argparse.Namespace, scratch: Path) -> list[LoraAdapter]:
    from langmerge.merger.adapters import AdapterError, check_compatible, load_adapter

    adapters = []
    for index, uri in enumerate(args.adapter):
        storage.check_under_root(uri, args.artifact_root, f"--adapter {uri}")
        path = storage.fetch_dir(uri, scratch)
        if args.adapter_sha256:
            actual = storage.sha256_dir(path)
            if actual != args.adapter_sha256[index]:
                raise AdapterError(
                    f"adapter {uri}: sha256 is {actual}, expected {args.adapter_sha256[index]}; "
                    "the artifact is corrupt or was changed after training"
                )
        adapters.append(load_adapter(uri, path))
    check_compatible(adapters)
    return adapters


def run(args: argparse.Namespace) -> MergeSummary:
    from langmerge.merger.methods import Merger
    from langmerge.merger.output import write_full, write_lora

    started = time.monotonic()
    settings = _settings(args, len(args.adapter))
    storage.check_under_root(args.output, args.artifact_root, "--output")
    if args.rejected_output:
        storage.check_under_root(args.rejected_output, args.artifact_root, "--rejected-output")
    with tempfile.TemporaryDirectory(prefix="langmerge-merge-") as scratch_name:
        scratch = Path(scratch_name)
        adapters = _load_inputs(args, scratch)
        # The inputs' digests (for the provenance record) are read while the merge computes:
        # hashing releases the GIL, and the merge's own reads are of the same files.
        hashing = ThreadPoolExecutor(1, thread_name_prefix="input-digests")
        digests = hashing.map(storage.sha256_dir, [a.path for a in adapters])
        hashing.shutdown(wait=False)
        with storage.staging(args.output) as staged:
            merger = Merger(adapters, settings)
            merger.prepare()
            if args.output_format == "lora":
                # Dense results are compressed; by default to the inputs' summed rank (the
                # most a sum of their updates can need), never to full rank.
                rank = settings.rank or sum(int(a.config.get("r", 0)) for a in adapters) or None
                figures = write_lora(merger, adapters[0], staged, rank)
            else:
                base = models.resolve(args.base_model, scratch, artifact_root=args.artifact_root)
                figures = write_full(merger, base, staged)
            inputs = [
                {"uri": a.name, "sha256": digest, "language": a.language}
                for a, digest in zip(adapters, digests, strict=True)
            ]
            metadata = {
                "kind": "merged",
                "method": settings.method.name,
                "format": args.output_format,
                "baseModel": adapters[0].base_model[0],
                "baseModelTerms": adapters[0].metadata.get("baseModelTerms"),
                "inputs": inputs,
                "parameters": _parameters(settings),
            }
            evaluating = time.monotonic()
            evaluation = _evaluate(args, adapters, staged, scratch) if args.evaluate else None
            evaluation_seconds = time.monotonic() - evaluating
            if evaluation is not None:
                metadata["evaluation"] = evaluation
            (staged / "langmerge.json").write_text(json.dumps(metadata, indent=2))
            (staged / "README.md").write_text(model_card(metadata))
            if evaluation is not None and not evaluation["gate"]["passed"]:
                if args.rejected_output:  # kept for inspection, never served
                    with storage.staging(args.rejected_output) as rejected:
                        shutil.copytree(staged, rejected, dirs_exist_ok=True)
                        storage.publish_dir(rejected, args.rejected_output)
                raise GateFailedError(_compact(evaluation), args.rejected_output)
            digest = storage.publish_dir(staged, args.output)
    return MergeSummary(
        result="Succeeded",
        method=settings.method.name,
        parameters=_parameters(settings),
        inputs=[{"sha256": i["sha256"], "language": i["language"]} for i in inputs],
        output=Output(uri=args.output, sha256=digest, format=args.output_format),
        **{k: v for k, v in figures.items() if k != "bytes"},
        wallSeconds=round(time.monotonic() - started, 3),
        peakRssBytes=peak_rss_bytes(),
        device=args.device,
        evaluation=_compact(evaluation) if evaluation is not None else None,
        evaluationSeconds=round(evaluation_seconds, 3),
    )


def _parameters(settings: MergeSettings) -> dict[str, Any]:
    return {
        "weights": [round(w, 6) for w in settings.weights],
        "density": settings.density,
        "lambda": settings.lambda_,
        "majoritySign": settings.majority_sign,
        "topkScope": settings.topk_scope,
        "seed": settings.seed,
        "rank": settings.rank,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_library_warnings()
    try:
        summary = run(args)
    except GateFailedError as gated:
        print(f"langmerge-merge: {gated}", file=sys.stderr)
        refused = MergeSummary(
            result="Failed",
            reason=str(gated),
            evaluation=gated.evaluation,
            rejectedOutput=gated.rejected_output,
        )
        write_summary(refused, args.summary_file)
        return 1
    except (UsageError, storage.StorageError, ValueError, FileNotFoundError) as error:
        print(f"langmerge-merge: {error}", file=sys.stderr)
        write_summary(failed(str(error)), args.summary_file)
        return 1
    except Exception as error:  # an unexpected fault: keep the trace in the log, reason in summary
        traceback.print_exc()
        write_summary(failed(f"internal error: {error!r}"), args.summary_file)
        return 1
    print(  # before the summary: without --summary-file it must stay stdout's last line
        f"langmerge-merge: {summary.method} of {len(args.adapter)} adapters written to "
        f"{args.output} (sha256 {summary.output.sha256[:12] if summary.output else '-'})"
    )
    write_summary(summary, args.summary_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
