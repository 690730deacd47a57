"""One merge run, from its inputs to a published artifact: the adapters read and verified once;
one merge, or a search's candidates merged and scored on validation data with the best kept;
the result evaluated against the gate; published, or kept apart when the gate refuses it
(the last good artifact is never touched). cli.py parses the flags and calls run()."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langmerge.common import models, storage
from langmerge.common.scoring import GENERATION_METRICS
from langmerge.common.summary import MergeSummary, Output, peak_rss_bytes
from langmerge.merger import search as grid
from langmerge.merger.card import model_card

if TYPE_CHECKING:  # torch loads only once a run starts
    from langmerge.merger.adapters import LoraAdapter
    from langmerge.merger.methods import MergeSettings, TopkScope
    from langmerge.merger.shared import Written


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
SUMMARY_SEARCH_ROWS = 3
AGGREGATE_WORDS = {
    "mean": "mean (over the languages)",
    "worst": "worst-language",
}  # the best few candidates; langmerge.json and the card keep them all


def topk_scope(method: str, requested: str | None) -> TopkScope | None:
    """What the method's TIES trimming actually spans: recorded as such in the summary."""
    if method == "knots-ties":
        return "module" if requested == "module" else "model"
    if method == "ties":
        if requested == "model":
            raise UsageError(
                "--topk-scope model applies to knots-ties; ties trims each module's dense "
                "update by itself (omit the flag, or use knots-ties for a model-wide top-k)"
            )
        return "module"
    return None  # no top-k: linear, cat and the DARE methods


def normalised(weights: tuple[float, ...], normalization: str) -> tuple[float, ...]:
    if normalization == "sum-to-one":
        total = sum(weights)
        return tuple(w / total for w in weights)
    return weights


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


# The MergedModel field behind each dataset flag: the executors show the merger's errors as
# the model's failure, so a message names both.
DATASET_FIELDS = {"--evaluate": "spec.evaluation.datasets", "--validate": "spec.search.validation"}


def _datasets(pairs: list[str], flag: str, scratch: Path) -> dict[str, list[dict[str, Any]]]:
    from langmerge.merger import evaluate

    datasets = {}
    for pair in pairs:
        language, _, uri = pair.partition("=")
        name = f"{flag} {language}={uri} ({DATASET_FIELDS[flag]}.{language})"
        datasets[language] = evaluate.load_records(uri, scratch, name)
    return datasets


def _evaluate(
    args: argparse.Namespace,
    adapters: list[LoraAdapter],
    datasets: dict[str, list[dict[str, Any]]],
    staged: Path,
    scratch: Path,
) -> dict[str, Any]:
    """Scores of the merged model per language, and the gate's verdict against the combined
    model, the individual adapters (each on its own language) or the current merged model."""
    from langmerge.merger import evaluate, gate

    base = evaluate.load_base(args.base_model, scratch)
    models: dict[str, Path | None] = {"candidate": staged}
    if args.gate_against == "individual":
        models.update({f"individual {a.language}": a.path for a in adapters if a.language})
    elif args.gate_baseline:
        models["baseline"] = storage.fetch_dir(args.gate_baseline, scratch)
    scored = evaluate.score_models(
        base,
        models,
        datasets,
        generation=args.gate_metric in GENERATION_METRICS,
        precision=args.eval_precision,
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


def candidate_settings(
    search: grid.Search,
    base: MergeSettings,
    adapters: list[LoraAdapter],
    normalization: str,
    requested_topk_scope: str | None,
) -> list[MergeSettings]:
    """Each candidate's settings: the grid's method and values on the run's common settings
    (majority sign, rank, device), its weights resolved against the adapters."""
    from langmerge.merger.methods import METHODS

    languages = [a.language for a in adapters]
    examples = [a.metadata.get("examples") for a in adapters]
    names = [a.name for a in adapters]
    out = []
    for candidate in search.candidates:
        weights = grid.resolve_weights(candidate, languages, examples, names)
        out.append(
            replace(
                base,
                method=METHODS[candidate.method],
                weights=normalised(weights, normalization),
                density=candidate.density if candidate.density is not None else base.density,
                lambda_=candidate.lambda_,
                # --topk-scope is knots-ties's option: ties in the same grid trims per module
                topk_scope=topk_scope(
                    candidate.method,
                    requested_topk_scope if candidate.method == "knots-ties" else None,
                ),
                seed=candidate.seed if candidate.seed is not None else base.seed,
            )
        )
    return out


def _run_search(
    args: argparse.Namespace,
    search: grid.Search,
    base_settings: MergeSettings,
    adapters: list[LoraAdapter],
    rank: int | None,
    validation: dict[str, list[dict[str, Any]]],
    scratch: Path,
) -> tuple[int, list[MergeSettings], list[dict[str, Any]], dict[str, float], Written]:
    """Merges and scores every candidate; returns the winner's index, every candidate's
    settings, the table of candidates, the seconds spent, and the winner's LoRA (held, or in
    scratch)."""
    from langmerge.merger import evaluate
    from langmerge.merger.shared import SharedKnots, merge_candidates

    settings = candidate_settings(
        search, base_settings, adapters, args.weight_normalization, args.topk_scope
    )
    base = evaluate.load_base(args.base_model, scratch)
    merging = time.monotonic()
    # The shared alignment lives only while the candidates are made: scoring needs the memory.
    shared = SharedKnots(adapters, base_settings.knots_tolerance, base_settings.device)
    written = merge_candidates(adapters, settings, scratch / "candidates", rank, shared)
    del shared
    merge_seconds = time.monotonic() - merging
    scoring = time.monotonic()
    usable = {str(i): w.lora() for i, w in enumerate(written) if w.failure is None}
    scored = (
        evaluate.score_adapters_in_place(
            base,
            usable,
            validation,
            generation=search.metric in GENERATION_METRICS,
            precision=args.eval_precision,
        )
        if usable
        else {}
    )
    validate_seconds = time.monotonic() - scoring
    rows: list[dict[str, Any]] = []
    scores: dict[int, float] = {}
    for candidate, result in zip(search.candidates, written, strict=True):
        row: dict[str, Any] = {"index": candidate.index, **candidate.parameters()}
        per_language = {
            language: s.metrics.get(search.metric)
            for language, s in scored.get(str(candidate.index), {}).items()
        }
        failure = result.failure
        if failure is None and any(v is None or math.isnan(v) for v in per_language.values()):
            failure = f"its validation {search.metric} is not a number"
        if failure is not None:
            row.update(failed=True, reason=failure)
        else:
            values = {k: float(v) for k, v in per_language.items() if v is not None}
            score = grid.aggregate(values, search.aggregate, search.higher_is_better())
            scores[candidate.index] = score
            row.update(score=round(score, 6), perLanguage=values)
        rows.append(row)
    if not scores:
        reasons = "; ".join(f"#{r['index']}: {r['reason']}" for r in rows[:3])
        raise ValueError(f"search: every candidate failed ({reasons}); nothing is published")
    best = grid.winner(scores, search.higher_is_better())
    seconds = {"merge": round(merge_seconds, 3), "validate": round(validate_seconds, 3)}
    return best, settings, rows, seconds, written[best]


def _search_record(
    search: grid.Search, rows: list[dict[str, Any]], best: int, seconds: dict[str, float]
) -> dict[str, Any]:
    """The search as langmerge.json and the model card keep it: every candidate."""
    winner = search.candidates[best]
    return {
        "metric": search.metric,
        "aggregate": search.aggregate,
        "candidates": rows,
        "failed": sum(1 for r in rows if r.get("failed")),
        "winner": {
            "index": best,
            "label": winner.label(),
            "score": next(r["score"] for r in rows if r["index"] == best),
            "why": f"the best {AGGREGATE_WORDS[search.aggregate]} validation {search.metric} "
            f"of {len(rows) - sum(1 for r in rows if r.get('failed'))} scored candidates",
        },
        "seconds": seconds,
    }


def _search_summary(record: dict[str, Any], higher_is_better: bool) -> dict[str, Any]:
    """The summary's share of the search (4 KiB in all): the winner and why, the counts, the
    best few candidates with their parameters, the seconds."""
    scored = [r for r in record["candidates"] if not r.get("failed")]
    scored.sort(key=lambda r: (-r["score"] if higher_is_better else r["score"], r["index"]))
    brief = [{k: v for k, v in r.items() if k != "perLanguage"} for r in scored]
    return {
        "metric": record["metric"],
        "aggregate": record["aggregate"],
        "evaluated": len(record["candidates"]),
        "failed": record["failed"],
        "winner": next(r for r in brief if r["index"] == record["winner"]["index"]),
        "why": record["winner"]["why"],
        "best": brief[:SUMMARY_SEARCH_ROWS],
        "seconds": record["seconds"],
    }


def run(
    args: argparse.Namespace, settings: MergeSettings, search: grid.Search | None = None
) -> MergeSummary:
    """The run; `settings` are the flags' (with a search: its candidates' common settings)."""
    from langmerge.merger.methods import Merger
    from langmerge.merger.output import write_full, write_lora

    started = time.monotonic()
    storage.check_under_root(args.output, args.artifact_root, "--output")
    if args.rejected_output:
        storage.check_under_root(args.rejected_output, args.artifact_root, "--rejected-output")
    search_record: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="langmerge-merge-") as scratch_name:
        scratch = Path(scratch_name)
        adapters = _load_inputs(args, scratch)
        # The datasets are read before any work: a bad one fails the run before the merge.
        evaluation_data = _datasets(args.evaluate or [], "--evaluate", scratch)
        validation = _datasets(args.validate or [], "--validate", scratch) if search else {}
        # The inputs' digests (for the provenance record) are read while the merge computes:
        # hashing releases the GIL, and the merge's own reads are of the same files.
        hashing = ThreadPoolExecutor(1, thread_name_prefix="input-digests")
        digests = hashing.map(storage.sha256_dir, [a.path for a in adapters])
        hashing.shutdown(wait=False)
        # Dense results are compressed in a LoRA output; by default to the inputs' summed
        # rank (the most a sum of their updates can need), never to full rank.
        rank = settings.rank or sum(int(a.config.get("r", 0)) for a in adapters) or None
        chosen: Written | None = None
        if search is not None:
            best, candidates, rows, seconds, chosen = _run_search(
                args, search, settings, adapters, rank, validation, scratch
            )
            settings = candidates[best]
            search_record = _search_record(search, rows, best, seconds)
        with storage.staging(args.output) as staged:
            merger = Merger(adapters, settings)
            if args.output_format == "lora" and chosen is not None:
                # The winner is already made (held, or its parts), exactly as a merge with its
                # settings writes it.
                chosen.publish(staged)
                figures = dict(chosen.figures or {})
            elif args.output_format == "lora":
                merger.prepare()
                figures = write_lora(merger, adapters[0], staged, rank)
            else:
                merger.prepare()
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
                "parameters": parameters(settings),
            }
            if search_record is not None:
                metadata["search"] = search_record
            evaluating = time.monotonic()
            evaluation = (
                _evaluate(args, adapters, evaluation_data, staged, scratch)
                if args.evaluate
                else None
            )
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
    figures_shown: dict[str, Any] = {k: v for k, v in figures.items() if k != "bytes"}
    return MergeSummary(
        result="Succeeded",
        method=settings.method.name,
        parameters=parameters(settings),
        inputs=[{"sha256": i["sha256"], "language": i["language"]} for i in inputs],
        output=Output(uri=args.output, sha256=digest, format=args.output_format),
        **figures_shown,
        wallSeconds=round(time.monotonic() - started, 3),
        peakRssBytes=peak_rss_bytes(),
        device=args.device,
        evaluation=_compact(evaluation) if evaluation is not None else None,
        evaluationSeconds=round(evaluation_seconds, 3),
        search=_search_summary(search_record, search.higher_is_better())
        if search is not None and search_record is not None
        else None,
    )


def parameters(settings: MergeSettings) -> dict[str, Any]:
    return {
        "weights": [round(w, 6) for w in settings.weights],
        "density": settings.density,
        "lambda": settings.lambda_,
        "majoritySign": settings.majority_sign,
        "topkScope": settings.topk_scope,
        "seed": settings.seed,
        "rank": settings.rank,
    }
