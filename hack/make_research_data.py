"""Generates examples/research/datasets deterministically: python hack/make_research_data.py

The research's three tasks in five languages (EN, DE, FR, JA, ZH), composed from the
vocabularies and templates in hack/research_data/ (each language in its own words):

- sentiment: reviews; the response is `positive` or `negative`, carried only by the meaning
  of the language's words (no marker, score or word shared across languages that tells it);
- reasoning: COPA-style cause / effect questions with two alternatives (`choices`); the
  response is the right alternative, scored by the alternatives' likelihood;
- summarisation: three-sentence news texts and a one-sentence summary.

It also writes the manifests beside them (examples/research/*.yaml). Train and eval are
drawn from disjoint templates (forms, scenarios, frames), so no template
and no sentence is shared between them. Per language: eval 200 / 200 / 100 examples, a v1
training set and a v2 (v1 plus new examples: "new data for one language"), and a validation
split (50 / 50 / 30) on which each task's merge search chooses: no record of it is in eval
or training; its reasoning scenarios are its own, its reviews and news texts come from the
eval templates (a development set from the test's distribution). It is drawn with a random
stream of its own, after the other splits, which it leaves as they were.

Eval and validation records name their `group`: the hand-written unit that decides their
answer (a review's predicate, a COPA scenario, a news text). Many records are written from
one such unit, so the evaluator's intervals resample the groups, not the records
(langmerge.merger.statistics). A unit is written in every language, and its group is named
alike in each ("scenario 3", "positive: domain 2 predicate 1"): the interval of a mean over
the languages draws each unit once for all of them. Training records carry no group."""

from __future__ import annotations

import itertools
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack"))

from research_data import copa, sentiment, summaries  # noqa: E402

OUT = ROOT / "examples" / "research" / "datasets"
LANGUAGES = ("en", "de", "fr", "ja", "zh")
TASKS = ("sentiment", "reasoning", "summarisation")
# task -> (eval, train v1, extra in v2)
SIZES = {"sentiment": (200, 160, 40), "reasoning": (200, 150, 30), "summarisation": (100, 120, 30)}
VALIDATION_SIZES = {"sentiment": 50, "reasoning": 50, "summarisation": 30}

Record = dict[str, object]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _subject(language: str, text: str) -> str:
    """A subject written as at a sentence's start, placed inside one. German nouns keep their
    capital; the article does not."""
    return _lower_first(text) if language in ("en", "de", "fr") else text


def sentiment_reviews(language: str, split: str, label: str) -> list[Record]:
    """Every review `split`'s forms make for `label`, grouped by subject."""
    spec = sentiment.LANGUAGES[language]
    # A predicate's group names its place in the vocabulary, alike in every language (its
    # translations): the evaluator's mean over languages resamples each such unit once.
    generic = [
        (p, f"{label}: generic predicate {j}") for j, p in enumerate(spec["generic"][label], 1)
    ]
    pairs = []  # (subject, predicate, its group)
    for d, domain in enumerate(spec["domains"], 1):
        own = [(p, f"{label}: domain {d} predicate {j}") for j, p in enumerate(domain[label], 1)]
        pairs += [(s, p, g) for s in domain["subjects"] for p, g in own + generic]
    texts: dict[str, tuple[str, str]] = {}
    for form in spec[f"{split}_forms"]:
        contexts = spec["contexts"] if "{c" in form.lower() else [""]
        for (subject, predicate, group), context in itertools.product(pairs, contexts):
            text = form.format(
                S=subject,
                s=_subject(language, subject),
                p=predicate,
                C=_upper_first(context),
                c=context,
            )
            texts[text] = (subject, group)
    return [
        {"text": text, "_group": subject, "group": group}
        for text, (subject, group) in sorted(texts.items())
    ]


def sentiment_records(language: str, split: str, count: int, rng: random.Random) -> list[Record]:
    """`count` reviews of `split`'s forms per label, every subject as often under each label
    (a subject such as "hotel" may be a word of two languages: it must not tell the label)."""
    prompt = sentiment.LANGUAGES[language]["prompt"]
    rows: list[Record] = []
    for label in sentiment.LABELS:
        picked = _spread(sentiment_reviews(language, split, label), count, rng)
        rows += [
            {"prompt": prompt.format(text=r["text"]), "response": label, "group": r["group"]}
            for r in picked
        ]
    return rows


def copa_items(
    language: str, scenario: dict[str, tuple[str, str, str, str]], group: str
) -> list[Record]:
    """Each question of a scenario once per name, the right alternative first (`_alternate`
    places it); `group` names the scenario."""
    cause, effect, wrong_cause, wrong_effect = scenario[language]
    items = []
    for name in copa.NAMES[language]:
        fill = [s.format(n=name) for s in (cause, effect, wrong_cause, wrong_effect)]
        for kind, premise, right, wrong in (
            ("cause", fill[1], fill[0], fill[2]),
            ("effect", fill[0], fill[1], fill[3]),
        ):
            items.append({"kind": kind, "premise": premise, "choices": [right, wrong]})
    unique = {json.dumps(i, ensure_ascii=False, sort_keys=True): i for i in items}
    return [{**unique[k], "group": group} for k in sorted(unique)]


def _alternate(language: str, items: list[Record]) -> list[Record]:
    """COPA records with the right alternative first in every other one: its place tells
    nothing."""
    rows = []
    for i, item in enumerate(items):
        right, wrong = item["choices"]
        choices = [right, wrong] if i % 2 == 0 else [wrong, right]
        prompt = copa.PROMPTS[language][item["kind"]].format(
            premise=item["premise"], a=choices[0], b=choices[1]
        )
        rows.append(
            {"prompt": prompt, "response": right, "choices": choices, "group": item["group"]}
        )
    return rows


def summary_items(language: str, frame: dict[str, tuple[str, str]], group: str) -> list[Record]:
    """Every filling of one news text's slots; `group` names the text."""
    prompt, (text, summary) = summaries.PROMPTS[language], frame[language]
    return [
        {
            "prompt": prompt.format(text=text.format(**slots)),
            "response": summary.format(**slots),
            "group": group,
        }
        for town, person, day in itertools.product(
            summaries.TOWNS[language], summaries.PEOPLE[language], summaries.DAYS[language]
        )
        for slots in [{"town": town, "person": person, "day": day}]
    ]


def _spread(items: list[Record], count: int, rng: random.Random) -> list[Record]:
    """`count` distinct items, spread as evenly as can be over the templates they come from
    (items arrive grouped by template): a round robin over the shuffled groups."""
    groups: dict[str, list[Record]] = {}
    for item in items:
        groups.setdefault(str(item.get("_group", "")), []).append(item)
    for group in groups.values():
        rng.shuffle(group)
    order: Iterator[Record] = (
        g[i] for i in range(max(map(len, groups.values()))) for g in groups.values() if i < len(g)
    )
    picked = list(itertools.islice(order, count))
    if len(picked) < count:
        raise ValueError(f"only {len(picked)} distinct items, {count} wanted")
    return [{k: v for k, v in item.items() if k != "_group"} for item in picked]


def _grouped(items_by_group: list[list[Record]]) -> list[Record]:
    return [{**item, "_group": i} for i, group in enumerate(items_by_group) for item in group]


def task_splits(task: str, language: str, seed: int) -> dict[str, list[Record]]:
    """split (eval, train, train-v2, valid) -> records. train-v2 is train plus new
    examples."""
    rng = random.Random(f"{seed}-{task}")
    n_eval, n_train, n_extra = SIZES[task]
    if task == "sentiment":
        evaluation = sentiment_records(language, "eval", n_eval // 2, rng)
        training = sentiment_records(language, "train", (n_train + n_extra) // 2, rng)
        half, extra = n_train // 2, n_extra // 2
        per_label = [training[: len(training) // 2], training[len(training) // 2 :]]
        v1 = [r for rows in per_label for r in rows[:half]]
        new = [r for rows in per_label for r in rows[half : half + extra]]
    else:
        if task == "reasoning":
            cut = copa.TRAIN_SCENARIOS
            scenarios = [
                copa_items(language, s, f"scenario {i}") for i, s in enumerate(copa.SCENARIOS)
            ]
            train_groups, eval_groups = scenarios[:cut], scenarios[cut:]
        else:
            cut = summaries.TRAIN_FRAMES
            texts = [
                summary_items(language, f, f"text {i}") for i, f in enumerate(summaries.FRAMES)
            ]
            train_groups, eval_groups = texts[:cut], texts[cut:]
        evaluation = _spread(_grouped(eval_groups), n_eval, rng)
        training = _spread(_grouped(train_groups), n_train + n_extra, rng)
        v1, new = training[:n_train], training[n_train:]
    for rows in (evaluation, v1, new):
        rng.shuffle(rows)
    if task == "reasoning":
        evaluation, v1, new = (_alternate(language, rows) for rows in (evaluation, v1, new))
    validation = validation_records(task, language, evaluation, random.Random(f"{seed}-{task}-v"))
    v1, new = _ungrouped(v1), _ungrouped(new)  # a group is what evaluation resamples
    return {"eval": evaluation, "train": v1, "train-v2": v1 + new, "valid": validation}


def _ungrouped(rows: list[Record]) -> list[Record]:
    return [{k: v for k, v in row.items() if k != "group"} for row in rows]


def validation_records(
    task: str, language: str, evaluation: list[Record], rng: random.Random
) -> list[Record]:
    """The validation split: reasoning from its own scenarios, reviews and news texts from
    the eval templates' records that eval does not hold."""
    count = VALIDATION_SIZES[task]
    held = {str(r["prompt"]) for r in evaluation}
    if task == "sentiment":
        prompt = sentiment.LANGUAGES[language]["prompt"]
        rows: list[Record] = []
        for label in sentiment.LABELS:
            pool = [
                r
                for r in sentiment_reviews(language, "eval", label)
                if prompt.format(text=r["text"]) not in held
            ]
            picked = _spread(pool, count // 2, rng)
            rows += [
                {"prompt": prompt.format(text=r["text"]), "response": label, "group": r["group"]}
                for r in picked
            ]
    elif task == "reasoning":
        groups = [
            copa_items(language, s, f"validation scenario {i}")
            for i, s in enumerate(copa.VALIDATION_SCENARIOS)
        ]
        rows = _spread(_grouped(groups), count, rng)
    else:
        frames = summaries.FRAMES[summaries.TRAIN_FRAMES :]
        groups = [
            [i for i in summary_items(language, f, f"text {n}") if str(i["prompt"]) not in held]
            for n, f in enumerate(frames, start=summaries.TRAIN_FRAMES)
        ]
        rows = _spread(_grouped(groups), count, rng)
    rng.shuffle(rows)
    return _alternate(language, rows) if task == "reasoning" else rows


# Training per task on Gemma 3 270M (the same for every language and for COMB): LoRA r8 on
# every linear layer; the longest record of a task fits its maxSeqLength. Epochs by one rule,
# read off the adapters' training loss, not off any merge's score: train until it leaves
# chance. After one epoch the sentiment adapters sat at 0.07-0.34 (0.35 is a coin flip on the
# label) and three brought them to 0.001-0.012; reasoning (0.004-0.033) and summarisation
# (0.002-0.05) had learned their format in one, and three overfit summarisation.
TRAINING = {
    "sentiment": {"maxSeqLength": 64, "epochs": 3},
    "reasoning": {"maxSeqLength": 128, "epochs": 1},
    "summarisation": {"maxSeqLength": 128, "epochs": 1},
}
METRICS = {
    "sentiment": ["f1", "precision", "recall", "accuracy"],
    "reasoning": ["accuracy"],
    "summarisation": ["rougeL", "rouge1"],
}
# Three merge methods per task: the research's TIES and KnOTS, and linear, the mean of the
# updates.
MERGES = {
    "knots": ("knots-ties", "density: 0.7\n    lambda: 1.0"),
    "ties": ("ties", "density: 0.7\n    lambda: 1.0"),
    "linear": ("linear", "weightNormalization: sum-to-one"),
}
BASE_MODEL = "builtin:gemma-3-270m"


def adapter_manifest(task: str, language: str) -> str:
    return f"""apiVersion: langmerge.io/v1alpha1
kind: LanguageAdapter
metadata:
  name: {task}-{language}
  labels:
    langmerge.io/task: {task}
spec:
  baseModel:
    name: {BASE_MODEL}
  task: {task}
  language: {language}
  dataset:
    uri: datasets/{task}/{language}-train.jsonl
    revision: v1
    evalUri: datasets/{task}/{language}-eval.jsonl
  lora:
    rank: 8
    alpha: 16
    dropout: 0.0
    targetModules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]
  training:
    epochs: {TRAINING[task]["epochs"]}
    learningRate: 0.001
    batchSize: 8
    maxSeqLength: {TRAINING[task]["maxSeqLength"]}
    precision: fp32
  resources:
    gpus: 0
    cpu: 2
"""


def _merged_head(task: str, name: str) -> str:
    """A MergedModel of the task's adapters, up to its method."""
    return f"""apiVersion: langmerge.io/v1alpha1
kind: MergedModel
metadata:
  name: {name}
spec:
  baseModel:
    name: {BASE_MODEL}
  task: {task}
  adapters:
    selector:
      matchLabels:
        langmerge.io/task: {task}
"""


# Above the fixed merges' evaluation: what scores them.
EVALUATION_NOTE = """\
  # Scored by the local loop on each adapter's evalUri (BASE, INDV, COMB and every merge);
  # add datasets and a gate to have the merge Job refuse a merge that loses quality.
"""


def _merged_tail(task: str, note: str = "") -> str:
    return f"""  output:
    format: lora
{note}  evaluation:
    metrics: [{", ".join(METRICS[task])}]
  resources:
    gpus: 0
    cpu: 2
"""


def merged_manifests(task: str) -> str:
    parts = []
    for suffix, (method, parameters) in MERGES.items():
        body = f"  method: {method}\n  parameters:\n    {parameters}\n"
        parts.append(
            _merged_head(task, f"{task}-{suffix}") + body + _merged_tail(task, EVALUATION_NOTE)
        )
    parts.append(search_manifest(task))
    return "---\n".join(parts)


# The research's sweep, per task: knots-ties at four densities and two lambdas (eight merged
# models, the default task-knots among them), chosen by the task's metric on the validation
# split; the local loop evaluates the winner on eval beside the others.
PRIMARY = {"sentiment": "f1", "reasoning": "accuracy", "summarisation": "rougeL"}


def search_manifest(task: str) -> str:
    validation = "".join(
        f"\n      {language}: datasets/{task}/{language}-valid.jsonl" for language in LANGUAGES
    )
    search = f"""\
  # Eight candidates merged and scored on the validation split in one loaded model; the
  # best mean {PRIMARY[task]} over the languages is kept. {task}-knots is the candidate at
  # density 0.7 and lambda 1.0.
  search:
    grid:
      - method: knots-ties
        densities: [0.3, 0.5, 0.7, 0.9]
        lambdas: [1.0, 1.5]
    metric: {PRIMARY[task]}
    aggregate: mean
    validation:{validation}
"""
    return _merged_head(task, f"{task}-search") + search + _merged_tail(task)


def manifests() -> dict[str, str]:
    """file name -> text: one LanguageAdapter per task and language (an update edits one
    file), and each task's merged models."""
    header = "# Written by hack/make_research_data.py.\n"
    out = {}
    for task in TASKS:
        for language in LANGUAGES:
            out[f"{task}-{language}.yaml"] = header + adapter_manifest(task, language)
        out[f"{task}-merged.yaml"] = header + merged_manifests(task)
    return out


def write(path: Path, rows: list[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def main() -> None:
    for index, language in enumerate(LANGUAGES):
        for task in TASKS:
            for split, rows in task_splits(task, language, 2000 + index).items():
                write(OUT / task / f"{language}-{split}.jsonl", rows)
    for name, text in manifests().items():
        (OUT.parent / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
