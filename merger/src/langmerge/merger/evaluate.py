"""`langmerge-eval`: per-language evaluation of models (the base, LoRA adapters, merged
adapters or merged full weights) on held-out prompt/response data.

Three kinds of task, told apart by the data and one flag:
- classification (few distinct responses): each label is scored by its log-likelihood after
  the prompt, formatted exactly as in training; accuracy and macro precision/recall/F1;
- multiple choice (records with a `choices` list holding the response, e.g. COPA): each
  record's alternatives scored the same way, the likeliest chosen; accuracy (and macro
  F1 over the answer positions);
- generation (`--generation`): greedy decoding, in left-padded batches, of the text up to
  the first line break or the end of sequence; ROUGE-1/ROUGE-L F1 (characters for scripts
  written without spaces), each with a bootstrap 95 % interval over the examples.
Always: the mean token loss of the reference response. Writes one JSON report.

Records that name their group (`--group-field`, default `group`: the template, scenario or
text a record was written from) have their intervals resample whole groups, not records:
records written from one source are not independent draws (langmerge.merger.statistics).
Each model's mean over the languages (`means` in the report) has an interval of its own that
resamples the languages together: a group key names the same unit in every language (the
same scenario, translated), so one draw weights it everywhere.

`--precision bf16` holds the model's weights in bfloat16, an adapter's update folded into them
(W + scale * B @ A summed in float32, then rounded: langmerge.merger.folding), and takes the
log-probabilities in float32: faster where the CPU has AVX512-BF16 or on a GPU, and scores
that differ from fp32's by bf16's rounding; on a CPU without bf16 kernels it scores in fp32 and
says so (langmerge.common.precision). fp32, the default, is exact: peft's LoRA layers."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langmerge.common import jsonl, storage
from langmerge.common import models as base_models
from langmerge.common.cli import add_version, quiet_library_warnings
from langmerge.common.logits import decode, supported, target_logprobs
from langmerge.common.precision import effective_precision
from langmerge.common.prompts import prompt_ids, response_ids
from langmerge.common.summary import (
    EvaluationSummary,
    default_summary_path,
    failed,
    write_summary,
)
from langmerge.merger import decoding, folding, statistics
from langmerge.merger.names import EVAL_PRECISIONS

if TYPE_CHECKING:
    from langmerge.merger.output import HeldLora

CLASSIFICATION_MAX_LABELS = 16


@functools.cache
def _say_once(message: str) -> None:
    print(message, file=sys.stderr)


def _load(base: Path, model: Path | None, precision: str = "fp32") -> Any:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    computed, why = effective_precision(precision)  # bf16 without bf16 kernels: fp32
    if why:
        _say_once(f"scoring: {why}")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[computed]
    loaded: Any  # a transformers model, or the peft model round it
    if (
        model is not None
        and (model / "config.json").is_file()
        and not (model / "adapter_config.json").is_file()
    ):
        loaded = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)  # merged full weights
    elif model is not None and computed == "bf16" and (folded := _folded(base, model)):
        return folded
    else:
        loaded = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        if model is not None:  # peft keeps the adapter's weights in float32
            loaded = PeftModel.from_pretrained(loaded, model)
    return loaded.eval()


def _folded(base: Path, adapter: Path) -> Any:
    """The adapter folded into a bf16 base model (langmerge.merger.folding), or None where
    peft's layers must score it."""
    if not (adapter / "adapter_model.safetensors").is_file():
        return None
    config, weights = _lora_source([adapter])
    try:
        return folding.load(base, adapter.name, config, weights, keep=False).model
    except folding.UnfoldableError as why:
        _say_once(f"scoring: {why}; peft's layers score it, the base in bf16")
        return None


BATCH = 64  # rows a batch at most
# Rows of near one length go together (decoding.length_batches): in the given order, batches
# of 64 padded the research's held-out sets to 1.12-1.23x their positions
# (benchmarks/batching_bench.py). A batch more costs its passes' fixed part (the
# continuation's pass and the output layer's walk read every weight whatever the rows),
# counted as 256 positions: an estimate for Gemma 3 270M in bf16 on 2 cores, not a measurement.
BATCH_CHARGE = 256


def _logprobs(model: Any, pad_id: int, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    """Summed log-probability of each tail after its head, in right-padded batches (a causal
    model never looks right, so the padding changes nothing before it). The output layer runs
    only at the positions that predict a tail's tokens (langmerge.common.logits)."""
    import torch

    out = [0.0] * len(pairs)
    for rows in decoding.length_batches([len(h) + len(t) for h, t in pairs], BATCH, BATCH_CHARGE):
        chunk = [pairs[row] for row in rows]
        width = max(len(h) + len(t) for h, t in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        keep = torch.zeros((len(chunk), width), dtype=torch.bool)
        for row, (head, tail) in enumerate(chunk):
            ids[row, : len(head) + len(tail)] = torch.tensor(head + tail)
            mask[row, : len(head) + len(tail)] = 1
            keep[row, len(head) - 1 : len(head) + len(tail) - 1] = True
        targets = torch.tensor([token for _, tail in chunk for token in tail])
        with torch.no_grad():
            if supported(model):
                hidden = decode(model, ids, mask).last_hidden_state[keep]
                picked = target_logprobs(model, hidden, targets)
            else:
                logits = model(input_ids=ids, attention_mask=mask).logits.float()[keep]
                picked = torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1))
                picked = picked.squeeze(1)
        for row, part in zip(rows, picked.split([len(t) for _, t in chunk]), strict=True):
            out[row] = float(part.sum())
    return out


def is_multiple_choice(records: list[dict[str, Any]], choices_field: str) -> bool:
    """Every record names its own alternatives."""
    return all(isinstance(r.get(choices_field), list) for r in records)


def _option_logprobs(
    model: Any, pad_id: int, heads: list[list[int]], options: list[list[list[int]]]
) -> list[list[float]]:
    """Summed log-probability of each of a head's options (labels, or a record's
    alternatives) after it. Each batch of heads is read once (langmerge.merger.decoding) and
    every option continues from its rows of the cache, all options in one pass: labels
    after a 40-token review cost their own tokens, not the review again per label."""
    if not supported(model):  # no decoder to drive: each option with its head, in full
        pairs = [(h, o) for h, opts in zip(heads, options, strict=True) for o in opts]
        flat = iter(_logprobs(model, pad_id, pairs))
        return [[next(flat) for _ in opts] for opts in options]
    out: list[list[float]] = [[] for _ in heads]
    for rows in decoding.length_batches([len(head) for head in heads], BATCH, BATCH_CHARGE):
        prefix = decoding.read_heads(model, pad_id, [heads[row] for row in rows])
        tails = [(line, option) for line, row in enumerate(rows) for option in options[row]]
        flat = iter(decoding.continuation_logprobs(model, prefix, pad_id, tails))
        for row in rows:
            out[row] = [next(flat) for _ in options[row]]
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
    """One model on one language: the metrics, for classification and multiple choice the
    per-example gold and predicted labels, for generation the per-example scores (the gate's
    paired comparison needs them)."""

    metrics: dict[str, float]
    gold: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> per example
    groups: list[Hashable] | None = None  # each example's group, where the records name one


# Rows per decoding step. With each row leaving at its own end, 64 rather than 16 made the
# research's summaries 1.5x faster to score on a 2-core CPU (benchmarks/eval_compare.py).
GENERATION_BATCH = 64
# A generation batch more costs decoding steps of its own, each reading every weight whatever
# its rows (hence 64 rows, above): in effect the fewest batches, the rows sorted by length.
GENERATION_CHARGE = 4096
GENERATION_SLACK = 16  # new tokens beyond a row's reference


def _summary(tokenizer: Any, ids: list[int]) -> str:
    """What a generation is read as: its text, stripped, up to its first line break."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return str(text.strip().split("\n", 1)[0].strip())


def summary_ends(model: Any, tokenizer: Any) -> Callable[[list[int]], bool]:
    """Whether a generation has ended, by its tokens so far: at the model's end of sequence,
    or at a line break after some text (a leading one is stripped, so decoding goes on)."""
    eos = model.generation_config.eos_token_id
    stops = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    breaks = decoding.line_break_tokens(tokenizer)

    def ends(ids: list[int]) -> bool:
        last = ids[-1]
        if last in stops:
            return True
        return last in breaks and "\n" in tokenizer.decode(ids, skip_special_tokens=True).lstrip()

    return ends


def generate_scored(
    model: Any, tokenizer: Any, heads: list[list[int]], tails: list[list[int]]
) -> tuple[list[str], list[float]]:
    """Greedy continuations of each head (its reference tail's length plus some slack at
    most), each cut at its first line break, and the summed log-probability of each
    reference tail: both from one reading of the heads. A row stops at its line break: a
    summary is one line, and a model that does not stop (the base) is read the same way as
    one that does. What a row generates depends on its own record alone, not on the batch."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if not supported(model):
        texts = generate(model, tokenizer, heads, [len(t) for t in tails])
        return texts, _logprobs(model, pad_id, list(zip(heads, tails, strict=True)))
    ends = summary_ends(model, tokenizer)
    texts = [""] * len(heads)
    logprobs = [0.0] * len(heads)
    for rows in decoding.length_batches(
        [len(head) for head in heads], GENERATION_BATCH, GENERATION_CHARGE
    ):
        batch = [tails[row] for row in rows]
        prefix = decoding.read_heads(model, pad_id, [heads[row] for row in rows])
        scores = decoding.continuation_logprobs(model, prefix, pad_id, list(enumerate(batch)))
        budgets = [len(tail) + GENERATION_SLACK for tail in batch]
        generated = decoding.greedy(model, prefix, budgets, ends)
        for row, score, ids in zip(rows, scores, generated, strict=True):
            logprobs[row], texts[row] = score, _summary(tokenizer, ids)
    return texts, logprobs


def generate(model: Any, tokenizer: Any, heads: list[list[int]], budgets: list[int]) -> list[str]:
    """transformers' greedy `generate` of each head, in left-padded batches, each cut at its
    own budget (plus the slack) and at its first line break: for models the decoding module
    cannot drive."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    texts = [""] * len(heads)
    for rows in decoding.length_batches(
        [len(head) for head in heads], GENERATION_BATCH, GENERATION_CHARGE
    ):
        ids, mask = decoding.left_padded([heads[row] for row in rows], pad_id)
        width = ids.shape[1]
        kept = [budgets[row] + GENERATION_SLACK for row in rows]
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max(kept),
                do_sample=False,
                pad_token_id=pad_id,
            )
        for row, generated, n in zip(rows, out, kept, strict=True):
            texts[row] = _summary(tokenizer, generated[width : width + n].tolist())
    return texts


@dataclass
class _Read:
    """One data set's records, read for scoring: how they are scored (`kind`: "options" for
    classification and multiple choice, "generation", "reference" for the loss alone) and the
    token ids the model takes."""

    kind: str
    choose: bool
    heads: list[list[int]]
    tails: list[list[int]]
    references: list[str]
    options: list[list[str]]  # each record's labels or alternatives ("options" only)
    encoded: list[list[list[int]]]
    groups: list[Hashable] | None


def _groups(records: list[dict[str, Any]], group_field: str) -> list[Hashable] | None:
    """Each record's group, or None where no record names one. Some records with a group and
    some without is refused: the interval would mix two units."""
    named = [group_field in record for record in records]
    if not any(named):
        return None
    if not all(named):
        row = named.index(False) + 1
        raise ValueError(
            f"record {row} has no {group_field!r}, while {sum(named)} of {len(records)} "
            f"records name one: the intervals resample whole groups only when every record "
            f"names its group; give every record a {group_field!r} (the template, scenario or "
            f"text it was written from), or none"
        )
    groups: list[Hashable] = []
    for row, record in enumerate(records, start=1):
        value = record[group_field]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(
                f"record {row}: {group_field!r} is {value!r}; a group is a string or an integer"
            )
        groups.append(value)
    return groups


def _read(
    tokenizer: Any,
    records: list[dict[str, Any]],
    prompt_field: str,
    response_field: str,
    generation: bool,
    choices_field: str,
    group_field: str = "group",
) -> _Read:
    groups = _groups(records, group_field)
    labels = sorted({r[response_field] for r in records})
    choose = not generation and is_multiple_choice(records, choices_field)
    classify = not generation and not choose and len(labels) <= CLASSIFICATION_MAX_LABELS
    heads = [prompt_ids(r[prompt_field], tokenizer) for r in records]
    references = [r[response_field] for r in records]
    tails = [response_ids(reference, tokenizer) for reference in references]
    kind = "options" if classify or choose else "generation" if generation else "reference"
    options: list[list[str]] = []
    encoded: list[list[list[int]]] = []
    if kind == "options":
        # Classification: every record's options are the labels; multiple choice: its own.
        options = [list(r[choices_field]) if choose else labels for r in records]
        for record, choices in zip(records, options, strict=True):
            if record[response_field] not in choices:
                raise ValueError(
                    f"a record's {response_field!r} is not one of its {choices_field!r}: "
                    f"{record[response_field]!r}"
                )
        ids = {c: response_ids(c, tokenizer) for c in {c for cs in options for c in cs}}
        encoded = [[ids[c] for c in choices] for choices in options]
    return _Read(kind, choose, heads, tails, references, options, encoded, groups)


def _through_model(model: Any, tokenizer: Any, kind: str, read: list[_Read]) -> list[Any]:
    """Each record's outcome, for data sets of one kind taken together: its options'
    log-probabilities, its (summary, reference log-probability), or its reference's."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    heads = [head for one in read for head in one.heads]
    if kind == "options":
        return _option_logprobs(model, pad_id, heads, [o for one in read for o in one.encoded])
    tails = [tail for one in read for tail in one.tails]
    if kind == "generation":
        return list(zip(*generate_scored(model, tokenizer, heads, tails), strict=True))
    return _logprobs(model, pad_id, list(zip(heads, tails, strict=True)))


def _scored(read: _Read, outcomes: list[Any]) -> Scored:
    """The metrics of one data set from its records' outcomes (_through_model)."""
    gold: list[str] = []
    predicted: list[str] = []
    texts: list[str] = []
    if read.kind == "options":
        reference_logprobs = []
        for choices, reference, here in zip(read.options, read.references, outcomes, strict=True):
            best = max(range(len(choices)), key=lambda k: here[k])
            right = choices.index(reference)
            reference_logprobs.append(here[right])
            if read.choose:  # answer positions: the metrics read them as labels
                gold.append(str(right + 1))
                predicted.append(str(best + 1))
            else:
                gold.append(reference)
                predicted.append(choices[best])
    elif read.kind == "generation":
        texts = [text for text, _ in outcomes]
        reference_logprobs = [logprob for _, logprob in outcomes]
    else:
        reference_logprobs = outcomes
    tokens = sum(len(t) for t in read.tails)
    examples = float(len(read.heads))
    metrics = {"loss": -sum(reference_logprobs) / max(tokens, 1), "examples": examples}
    if read.groups is not None:  # what the intervals resample
        metrics["groups"] = float(len(set(read.groups)))
    if read.kind == "options":
        metrics.update(statistics.classification_metrics(gold, predicted, read.groups))
        rounded = {k: round(v, 6) for k, v in metrics.items()}
        return Scored(rounded, gold, predicted, groups=read.groups)
    values: dict[str, list[float]] = {}
    if read.kind == "generation":
        pairs = [rouge(t, r) for t, r in zip(texts, read.references, strict=True)]
        values = {"rouge1": [p[0] for p in pairs], "rougeL": [p[1] for p in pairs]}
        for metric, per_example in values.items():
            metrics.update(statistics.mean_with_interval(metric, per_example, read.groups))
    rounded = {k: round(v, 6) for k, v in metrics.items()}
    return Scored(rounded, values=values, groups=read.groups)


def read_languages(
    tokenizer: Any,
    datasets: dict[str, list[dict[str, Any]]],
    prompt_field: str,
    response_field: str,
    generation: bool,
    choices_field: str = "choices",
    group_field: str = "group",
) -> dict[str, _Read]:
    """Every language's records read for scoring, once for however many models score them;
    a bad record is refused here, before any model runs, naming its dataset."""
    read = {}
    for language, records in datasets.items():
        try:
            read[language] = _read(
                tokenizer,
                records,
                prompt_field,
                response_field,
                generation,
                choices_field,
                group_field,
            )
        except ValueError as error:
            raise ValueError(f"dataset {language}: {error}") from error
    return read


def score_languages(model: Any, tokenizer: Any, read: dict[str, _Read]) -> dict[str, Scored]:
    """language -> Scored. Records of one kind go through the model together, so batches fill
    across languages: a search's validation sets hold a few dozen records a language, less
    than a batch (benchmarks/search_bench.py). Each language's metrics are its own records'."""
    outcomes: dict[str, list[Any]] = {}
    for kind in dict.fromkeys(one.kind for one in read.values()):
        languages = [language for language, one in read.items() if one.kind == kind]
        together = iter(_through_model(model, tokenizer, kind, [read[x] for x in languages]))
        for language in languages:
            outcomes[language] = [next(together) for _ in read[language].heads]
    return {language: _scored(one, outcomes[language]) for language, one in read.items()}


def evaluate_languages(
    model: Any,
    tokenizer: Any,
    datasets: dict[str, list[dict[str, Any]]],
    prompt_field: str,
    response_field: str,
    generation: bool,
    choices_field: str = "choices",
    group_field: str = "group",
) -> dict[str, Scored]:
    """language -> Scored for one model (read_languages, then score_languages)."""
    read = read_languages(
        tokenizer, datasets, prompt_field, response_field, generation, choices_field, group_field
    )
    return score_languages(model, tokenizer, read)


def mean_over_languages(scored: dict[str, Scored]) -> dict[str, float]:
    """One model's metrics averaged over its languages, with the interval of the mean from one
    resample of the languages together (statistics.mean_over_languages); {} where the
    languages were scored by loss alone."""
    languages: dict[str, tuple[statistics.Sampler, int, statistics.Groups]] = {}
    for language, one in scored.items():
        if one.gold:
            sampler = statistics.classification_sampler(one.gold, one.predicted)
            languages[language] = (sampler, len(one.gold), one.groups)
        elif one.values:
            n = len(next(iter(one.values.values())))
            languages[language] = (statistics.mean_sampler(one.values), n, one.groups)
        else:
            return {}
    return {k: round(v, 6) for k, v in statistics.mean_over_languages(languages).items()}


def evaluate(
    model: Any,
    tokenizer: Any,
    records: list[dict[str, Any]],
    prompt_field: str,
    response_field: str,
    generation: bool,
    choices_field: str = "choices",
    group_field: str = "group",
) -> Scored:
    """One data set's Scored (evaluate_languages)."""
    one = {"records": records}
    scored = evaluate_languages(
        model, tokenizer, one, prompt_field, response_field, generation, choices_field, group_field
    )
    return scored["records"]


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        if "=" not in value:
            raise ValueError(f"{flag} takes NAME=VALUE, got {value!r}")
        name, _, rest = value.partition("=")
        pairs[name] = rest
    return pairs


def load_records(uri: str, scratch: Path, name: str) -> list[dict[str, Any]]:
    """The records of a JSON Lines dataset; name is how errors call it (the flag and field)."""
    try:
        raw = storage.fetch_file(uri, scratch).read_bytes()
    except storage.StorageError as error:
        raise jsonl.JsonlError(f"{name}: {error}") from error
    records = jsonl.parse(raw, name)
    if not records:
        raise jsonl.JsonlError(f"{name}: no records; point it at a file with data")
    return records


def load_base(name_or_uri: str, scratch: Path) -> Path:
    """The base model's folder (langmerge.common.models: built-ins, GGUF, folders)."""
    return base_models.resolve(name_or_uri, scratch)


def score_models(
    base: Path,
    models: dict[str, Path | None],
    datasets: dict[str, list[dict[str, Any]]],
    generation: bool = False,
    prompt_field: str = "prompt",
    response_field: str = "response",
    choices_field: str = "choices",
    precision: str = "fp32",
    group_field: str = "group",
) -> dict[str, dict[str, Scored]]:
    """model name -> language -> Scored; a model of None is the base model alone."""
    from transformers import AutoTokenizer

    from langmerge.common.reproducible import deterministic

    deterministic()
    tokenizer = AutoTokenizer.from_pretrained(base)
    read = read_languages(
        tokenizer, datasets, prompt_field, response_field, generation, choices_field, group_field
    )
    scored: dict[str, dict[str, Scored]] = {}
    for name, path in models.items():
        scored[name] = score_languages(_load(base, path, precision), tokenizer, read)
    return scored


def _described(source: list[Path] | HeldLora) -> str:
    return ", ".join(map(str, source)) if isinstance(source, list) else "held in memory"


def _lora_source(source: list[Path] | HeldLora) -> tuple[dict[str, Any], dict[str, Any]]:
    """An adapter's config and tensors: read from its folders, or as held in memory."""
    from safetensors.torch import load_file

    if not isinstance(source, list):
        return source.config, dict(source.tensors)
    config = json.loads((source[0] / "adapter_config.json").read_text(encoding="utf-8"))
    weights: dict[str, Any] = {}
    for part in source:
        weights.update(load_file(str(part / "adapter_model.safetensors")))
    return config, weights


def score_adapters_in_place(
    base: Path,
    adapters: dict[str, list[Path] | HeldLora],
    datasets: dict[str, list[dict[str, Any]]],
    generation: bool = False,
    precision: str = "fp32",
) -> dict[str, dict[str, Scored]]:
    """adapter name -> language -> Scored, with the base model loaded once. An adapter is given
    as the folders whose adapter_model.safetensors together hold its tensors (a search's
    KnOTS candidates share their lora_B in one), its config the first folder's, or held in
    memory (output.HeldLora: a search's candidates that fit its memory budget). Each adapter's
    weights are copied into the parameters of the one adapter slot (peft's
    set_peft_model_state_dict) when its config is the slot's; one with another config (other
    ranks) gets a slot of its own, and the slot before is deleted. In bf16 each adapter is
    folded into the one model's weights instead (langmerge.merger.folding.refold; a model load
    again where it targets other layers). So a search's candidates cost their own weights,
    not a model load each. Scores equal a fresh load's."""
    from transformers import AutoTokenizer

    from langmerge.common.reproducible import deterministic

    deterministic()
    tokenizer = AutoTokenizer.from_pretrained(base)
    read = read_languages(tokenizer, datasets, "prompt", "response", generation)
    fold = effective_precision(precision)[0] == "bf16"
    folded: folding.Folded | None = None
    model: Any = None
    slot: tuple[str, dict[str, Any]] | None = None  # the slot's adapter name and config
    scored: dict[str, dict[str, Scored]] = {}
    for name, source in adapters.items():
        stored, weights = _lora_source(source)
        scoring: Any = None
        if fold:
            try:
                if folded is None or not folding.refold(folded, name, stored, weights):
                    folded = None  # its originals go before the next model's come
                    folded = folding.load(base, name, stored, weights, keep=True)
                scoring = folded.model
            except folding.UnfoldableError as why:
                _say_once(f"scoring: {why}; peft's layers score it, the base in bf16")
            except ValueError as error:
                raise ValueError(f"{error} ({_described(source)})") from error
        if scoring is None:
            model, slot = _into_slot(base, model, slot, name, stored, weights, source, precision)
            scoring = model
        scored[name] = score_languages(scoring, tokenizer, read)
    return scored


def _into_slot(
    base: Path,
    model: Any,
    slot: tuple[str, dict[str, Any]] | None,
    name: str,
    stored: dict[str, Any],
    weights: dict[str, Any],
    source: list[Path] | HeldLora,
    precision: str,
) -> tuple[Any, tuple[str, dict[str, Any]]]:
    """The peft model with the adapter's weights in its one slot (a new slot, and the model
    loaded if there is none yet, when the adapter's config is not the slot's)."""
    from peft import LoraConfig, PeftModel, set_peft_model_state_dict

    config = LoraConfig.from_peft_type(**LoraConfig.check_kwargs(**stored))
    config.inference_mode = True
    if model is None:
        model = PeftModel(_load(base, None, precision), config, adapter_name=name)
        slot = (name, config.to_dict())
    elif slot is None or config.to_dict() != slot[1]:
        model.add_adapter(name, config)
        model.set_adapter(name)
        if slot is not None:
            model.delete_adapter(slot[0])
        slot = (name, config.to_dict())
    assert slot is not None
    # torch's (missing_keys, unexpected_keys), which peft's annotation leaves untyped
    loaded: Any = set_peft_model_state_dict(model, weights, adapter_name=slot[0])
    missing = [k for k in loaded.missing_keys if "lora_" in k and f".{slot[0]}." in k]
    if loaded.unexpected_keys or missing:
        raise ValueError(
            f"adapter {name} ({_described(source)}) does not fit its config: "
            f"unexpected {loaded.unexpected_keys[:2]}, missing {missing[:2]}"
        )
    return model.eval(), slot


def _gold_labels(records: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """What a uniform guess is scored against: the labels, or the answer positions of
    multiple-choice records."""
    if is_multiple_choice(records, args.choices_field):
        return [str(r[args.choices_field].index(r[args.response_field]) + 1) for r in records]
    return [r[args.response_field] for r in records]


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
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="score the first N records of each dataset (a quick look; the report's n says "
        "so) (default: all)",
    )
    parser.add_argument(
        "--choices-field",
        default="choices",
        help="field holding a record's alternatives (multiple choice: the response is one "
        "of them) (default: choices)",
    )
    parser.add_argument(
        "--group-field",
        default="group",
        help="field naming the group a record was written from (its template, scenario or "
        "text): where every record has one, the intervals resample whole groups; where none "
        "has, single records. A name used in two languages is one unit (a scenario and its "
        "translation): the interval of a model's mean over the languages draws it once for "
        "both (default: group)",
    )
    parser.add_argument(
        "--generation", action="store_true", help="score by generation (ROUGE) (default: off)"
    )
    parser.add_argument(
        "--precision",
        choices=EVAL_PRECISIONS,
        default="fp32",
        help="the model's weights while scoring: fp32 (exact) or bf16 (faster on CPUs with "
        "AVX512-BF16 and on GPUs; an adapter's update folded into the weights in float32, "
        "then rounded) (default: fp32)",
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
            if args.limit is not None and args.limit < 1:
                raise ValueError(f"--limit {args.limit}: give at least 1, or leave it out")
            data = {
                language: load_records(uri, scratch, f"--dataset {language}={uri}")[: args.limit]
                for language, uri in datasets.items()
            }
            paths = {
                name: storage.fetch_dir(uri, scratch) if uri else None
                for name, uri in models.items()
            }
            scored = score_models(
                base,
                paths,
                data,
                args.generation,
                args.prompt_field,
                args.response_field,
                args.choices_field,
                args.precision,
                args.group_field,
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
        # each model's mean over the languages, its interval resampling them together
        "means": {name: mean_over_languages(per_language) for name, per_language in scored.items()},
        "chance": {}
        if args.generation
        else {
            language: statistics.chance(_gold_labels(records, args))
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
