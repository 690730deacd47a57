"""`langmerge-merge`: the merger image's entrypoint. Flags in; the merged artifact and one
summary JSON (<= 4 KiB) out. Exits non-zero with the reason in the summary on failure.
This module is the parser and its checks; run.py does the run."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from langmerge.common import storage
from langmerge.common.cli import add_version, quiet_library_warnings
from langmerge.common.summary import (
    MergeSummary,
    default_summary_path,
    failed,
    write_summary,
)
from langmerge.merger import search as grid
from langmerge.merger.names import EVAL_PRECISIONS, METHOD_NAMES
from langmerge.merger.run import GateFailedError, UsageError, normalised, run, topk_scope

# torch and the merge maths load after the flags parse: `--help` and bad flags stay instant.
if TYPE_CHECKING:
    from langmerge.merger.methods import MergeSettings

__all__ = ["GateFailedError", "UsageError", "build_parser", "main"]

# Flags a search's grid sets per candidate, and their values without one.
CANDIDATE_DEFAULTS = {"method": "knots-ties", "density": 0.5, "lambda_": 1.0, "seed": 0}


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
        default=None,
        help="how the adapters' updates are combined (default: knots-ties)",
    )
    parser.add_argument(
        "--density",
        type=float,
        default=None,
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
        default=None,
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
        "--seed", type=int, default=None, help="seed of DARE's random drop (default: 0)"
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
        "--eval-precision",
        choices=EVAL_PRECISIONS,
        default="fp32",
        help="the model's weights in every scoring of this run (the gate's and the search's): "
        "fp32 (exact) or bf16 (faster on CPUs with AVX512-BF16 and on GPUs; an adapter's update "
        "folded into the weights in float32, then rounded) (default: fp32)",
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
    search = parser.add_argument_group("merge search (needs --base-model)")
    search.add_argument(
        "--search",
        default=None,
        metavar="JSON|@FILE",
        help="a grid of candidate merges, each scored on --validate, the best published: "
        '{"grid": [{"method": "knots-ties", "densities": [0.3, 0.5], "lambdas": [1, 1.5], '
        '"weights": ["uniform", "examples", {"en": 2}]}, {"method": "knots-dare-ties", '
        '"seeds": [0, 1]}], "metric": "f1", "aggregate": "mean"}. Each entry takes the '
        "options of its method only (densities: the trimming and DARE methods; seeds: DARE); "
        f"weights: uniform, examples (proportional to each adapter's training examples) or a "
        f"map language -> weight (a language left out weighs 1); at most "
        f"{grid.MAX_CANDIDATES} candidates; aggregate: mean over the languages or the worst "
        "language. Replaces --method, --density, --lambda, --weights and --seed",
    )
    search.add_argument(
        "--validate",
        action="append",
        default=[],
        metavar="LANG=URI",
        help="validation prompt/response JSONL per language, on which the search chooses "
        "(repeat); must differ from every --evaluate dataset, which judges the winner",
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
    _candidate_flags(args)
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
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is visible")
    return MergeSettings(
        method=METHODS[args.method],
        weights=normalised(tuple(weights), args.weight_normalization),
        density=args.density,
        lambda_=args.lambda_,
        majority_sign=args.majority_sign,
        topk_scope=topk_scope(args.method, args.topk_scope),
        seed=args.seed,
        rank=args.rank,
        device=args.device,
    )


def _candidate_flags(args: argparse.Namespace) -> None:
    """The flags a search's grid sets per candidate are refused beside --search (one would be
    silently overridden) and take their defaults without it."""
    given = [name for name in (*CANDIDATE_DEFAULTS, "weights") if getattr(args, name) is not None]
    if args.search is not None and given:
        flags = ", ".join("--" + name.rstrip("_").replace("_", "-") for name in given)
        raise UsageError(
            f"{flags} cannot be given with --search: its grid sets each candidate's method "
            "and parameters; put them in the grid"
        )
    for name, value in CANDIDATE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def _search(args: argparse.Namespace) -> grid.Search | None:
    """The search --search describes, checked before any work, with its data flags."""
    if args.search is None:
        if args.validate:
            raise UsageError("--validate is the data a --search chooses on; give --search too")
        return None
    search = grid.parse(grid.load(args.search))
    if not args.validate:
        raise UsageError(
            "--search needs --validate LANG=URI: validation data to choose the winner on "
            "(held apart from --evaluate's, which judges it)"
        )
    if not args.base_model:
        raise UsageError("--search needs --base-model to score its candidates")
    validation = {pair.partition("=")[2] for pair in args.validate}
    for pair in args.evaluate:
        if pair.partition("=")[2] in validation:
            raise UsageError(
                f"--evaluate {pair} is also a --validate dataset: the gate would judge the "
                "winner on the data it was chosen on; give held-out data that differs"
            )
    return search


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_library_warnings()
    try:
        settings = _settings(args, len(args.adapter))
        summary = run(args, settings, _search(args))
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
