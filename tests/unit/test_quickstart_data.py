"""The quickstart's datasets and builtin:tiny's pre-training reviews are what
hack/make_quickstart_data.py writes (one source of truth), and they keep the properties the
demo's reading depends on."""

from __future__ import annotations

import json
from types import ModuleType

import pytest

from langmerge.common import builtin
from tests.support import hack


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return hack.load("make_quickstart_data")


def _jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def test_committed_files_are_what_the_generator_writes(generator: ModuleType) -> None:
    stale = []
    for index, language in enumerate(generator.LANGUAGES):
        seed = 1000 + index
        for task, parts in generator.splits(language, seed).items():
            for name, rows in parts.items():
                path = generator.OUT / task / f"{language}-{name}.jsonl"
                if path.read_text(encoding="utf-8") != _jsonl(rows):
                    stale.append(path)
        if builtin.reviews()[language] != generator.pretraining_text(language, seed):
            stale.append(generator.PRETRAINING / f"{language}.txt")
    assert not stale, f"stale, run `python hack/make_quickstart_data.py`: {stale}"


def test_the_control_uses_words_the_base_model_never_read(generator: ModuleType) -> None:
    pretraining = "\n".join(builtin.pretraining_lines())
    for language, spec in generator.LANGUAGES.items():
        for kind in ("isolated_positive", "isolated_negative"):
            for words in spec[kind]:
                assert words not in pretraining, (language, words)
        for words in spec["positive"] + spec["negative"]:
            assert words in pretraining, (language, words)


def test_eval_sets_are_balanced_with_200_examples(generator: ModuleType) -> None:
    for task in ("sentiment", "sentiment-isolated"):
        for language in generator.LANGUAGES:
            path = generator.OUT / task / f"{language}-eval.jsonl"
            labels = [json.loads(line)["response"] for line in path.read_text().splitlines()]
            assert labels.count("positive") == labels.count("negative") == 100, path
