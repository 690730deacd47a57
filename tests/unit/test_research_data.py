"""The research quickstart's datasets are what hack/make_research_data.py writes, and they
keep the rules its reading depends on: no cue shared across languages tells a sentiment
label, no sentence is shared between train and eval, the validation split a merge search
chooses on holds no record of eval and no sentence of train, and the splits have the sizes
the research's intervals need."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from types import ModuleType

import pytest

from tests.support import hack

SPACED = ("en", "de", "fr")  # written with spaces between words; ja, zh are read by character


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return hack.load("make_research_data")


@pytest.fixture(scope="module")
def data(generator: ModuleType) -> dict[tuple[str, str, str], list[dict]]:
    """(task, language, split) -> records, as committed."""
    out = {}
    for task in generator.TASKS:
        for language in generator.LANGUAGES:
            for split in ("eval", "train", "train-v2", "valid"):
                path = generator.OUT / task / f"{language}-{split}.jsonl"
                out[task, language, split] = [
                    json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                ]
    return out


def test_committed_files_are_what_the_generator_writes(generator: ModuleType) -> None:
    stale = []
    for index, language in enumerate(generator.LANGUAGES):
        for task in generator.TASKS:
            for split, rows in generator.task_splits(task, language, 2000 + index).items():
                path = generator.OUT / task / f"{language}-{split}.jsonl"
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
                if path.read_text(encoding="utf-8") != text:
                    stale.append(path)
    for name, text in generator.manifests().items():
        if (generator.OUT.parent / name).read_text(encoding="utf-8") != text:
            stale.append(generator.OUT.parent / name)
    assert not stale, f"stale, run `python hack/make_research_data.py`: {stale}"


def test_sizes_and_balance(data: dict, generator: ModuleType) -> None:
    for language in generator.LANGUAGES:
        for task, wanted in (("sentiment", 200), ("reasoning", 200), ("summarisation", 100)):
            evaluation = data[task, language, "eval"]
            assert len(evaluation) == wanted, (task, language)
            assert len({json.dumps(r, sort_keys=True) for r in evaluation}) == wanted
            v1, v2 = data[task, language, "train"], data[task, language, "train-v2"]
            assert v2[: len(v1)] == v1 and len(v2) > len(v1), "v2 is v1 plus new examples"
        for split in ("eval", "train", "valid"):
            labels = Counter(r["response"] for r in data["sentiment", language, split])
            assert labels["positive"] == labels["negative"], (language, split, labels)
            # The right alternative is first as often as second: its place tells nothing.
            first = Counter(
                r["choices"][0] == r["response"] for r in data["reasoning", language, split]
            )
            assert first[True] == first[False], (language, split, first)
            assert all(r["response"] in r["choices"] for r in data["reasoning", language, split])


def _units(language: str, text: str) -> list[str]:
    if language in SPACED:
        words = re.findall(r"\w+", text.lower())
        marks = [c for c in text if not c.isalnum() and not c.isspace()]
        return words + marks
    return [c for c in text if not c.isspace()]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?。！？])\s*", text) if s.strip()]


def _content(task: str, record: dict) -> list[str]:
    """The sentences a record's author wrote (not the task's instruction lines)."""
    lines = record["prompt"].split("\n")
    if task == "sentiment":
        body = lines[0].split("：", 1)[-1] if "：" in lines[0] else lines[0].split(":", 1)[1]
        return _sentences(body)
    if task == "reasoning":
        return [*_sentences(lines[0])[:1], *record["choices"]]
    return [*_sentences(lines[1]), record["response"]]


def test_no_unit_shared_across_languages_tells_the_sentiment_label(
    data: dict, generator: ModuleType
) -> None:
    """Every word (en, de, fr) or character (ja, zh) that occurs in more than one language's
    reviews occurs about as often under either label; no digit, emoji or symbol anywhere."""
    per_language: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for language in generator.LANGUAGES:
        for split in ("eval", "train-v2"):
            for record in data["sentiment", language, split]:
                text = record["prompt"]
                assert not any(c.isdigit() for c in text), text
                assert not any(unicodedata.category(c).startswith("S") for c in text), text
                for unit in set(_units(language, text)):
                    per_language[language][unit, record["response"]] += 1
    units: dict[str, set[str]] = defaultdict(set)
    for language, counts in per_language.items():
        for unit, _ in counts:
            units[unit].add(language)
    telling = []
    for unit, languages in units.items():
        if len(languages) < 2:
            continue
        positive = sum(per_language[lang][unit, "positive"] for lang in languages)
        negative = sum(per_language[lang][unit, "negative"] for lang in languages)
        if positive + negative >= 20 and not 0.4 <= positive / (positive + negative) <= 0.6:
            telling.append((unit, sorted(languages), positive, negative))
    assert not telling, f"shared across languages and telling the label: {telling}"


def test_no_sentence_is_shared_between_train_and_eval(data: dict, generator: ModuleType) -> None:
    for task in generator.TASKS:
        for language in generator.LANGUAGES:
            train = {s for r in data[task, language, "train-v2"] for s in _content(task, r)}
            evaluation = {s for r in data[task, language, "eval"] for s in _content(task, r)}
            shared = train & evaluation
            assert not shared, (task, language, sorted(shared)[:5])


def test_the_validation_split_is_held_out(data: dict, generator: ModuleType) -> None:
    """No validation record is in eval; no validation sentence is in training; reasoning's
    validation comes from scenarios of its own, so it shares no sentence with eval either."""
    for task, wanted in generator.VALIDATION_SIZES.items():
        for language in generator.LANGUAGES:
            valid = data[task, language, "valid"]
            assert len({json.dumps(r, sort_keys=True) for r in valid}) == len(valid) == wanted
            evaluation = {json.dumps(r, sort_keys=True) for r in data[task, language, "eval"]}
            assert not {json.dumps(r, sort_keys=True) for r in valid} & evaluation
            sentences = {s for r in valid for s in _content(task, r)}
            train = {s for r in data[task, language, "train-v2"] for s in _content(task, r)}
            assert not sentences & train, (task, language, sorted(sentences & train)[:5])
            if task == "reasoning":
                held = {s for r in data[task, language, "eval"] for s in _content(task, r)}
                assert not sentences & held, (language, sorted(sentences & held)[:5])


def test_no_template_is_shared_between_train_and_eval(generator: ModuleType) -> None:
    """The skeletons the records are made from: forms, scenarios and frames of one split never
    appear in the other."""
    from research_data import copa, sentiment, summaries  # on sys.path via the generator

    for language, spec in sentiment.LANGUAGES.items():
        assert not set(spec["train_forms"]) & set(spec["eval_forms"]), language
    for items, cut in (
        (copa.SCENARIOS, copa.TRAIN_SCENARIOS),
        (summaries.FRAMES, summaries.TRAIN_FRAMES),
    ):
        for language in generator.LANGUAGES:
            train = {s for item in items[:cut] for s in item[language]}
            evaluation = {s for item in items[cut:] for s in item[language]}
            assert not train & evaluation, language


def test_held_out_records_name_the_unit_that_decides_them(
    data: dict, generator: ModuleType
) -> None:
    """Eval and validation records name their group (what the evaluator's intervals
    resample): for reasoning its scenario, for summarisation its news text, for sentiment
    the predicate that carries the label, so a group never holds both labels. A group is
    named alike in every language (the mean over languages resamples each unit once for
    all). Training records carry none."""
    from research_data import copa, sentiment, summaries  # on sys.path via the generator

    def predicate(language: str, group: str) -> str:
        """The words of `language` a sentiment group names ("positive: domain 2 predicate 1")."""
        label, _, place = group.partition(": ")
        spec, words = sentiment.LANGUAGES[language], place.split()
        at = spec["generic"] if words[0] == "generic" else spec["domains"][int(words[1]) - 1]
        return str(at[label][int(words[-1]) - 1])

    english = sentiment.LANGUAGES["en"]
    expected = {
        "reasoning": {f"scenario {i}" for i in range(copa.TRAIN_SCENARIOS, len(copa.SCENARIOS))},
        "summarisation": {
            f"text {i}" for i in range(summaries.TRAIN_FRAMES, len(summaries.FRAMES))
        },
        "sentiment": {
            f"{label}: {place} predicate {j}"
            for label in sentiment.LABELS
            for place, words in [
                *((f"domain {d}", domain[label]) for d, domain in enumerate(english["domains"], 1)),
                ("generic", english["generic"][label]),
            ]
            for j in range(1, len(words) + 1)
        },
    }
    for task in generator.TASKS:
        for language in generator.LANGUAGES:
            for split in ("train", "train-v2"):
                assert not any("group" in r for r in data[task, language, split])
            evaluation = data[task, language, "eval"]
            groups = {r["group"] for r in evaluation}
            assert groups == expected[task], (task, language)  # the same in every language
            if task == "sentiment":
                for r in evaluation:
                    assert r["group"].startswith(f"{r['response']}: "), r  # one label a group
                    assert predicate(language, r["group"]) in r["prompt"], (language, r)
            valid = {r["group"] for r in data[task, language, "valid"]}
            if task == "reasoning":
                assert valid == {f"validation scenario {i}" for i in range(3)}
            else:  # reviews and news texts of the eval templates
                assert valid <= groups, (task, language)
