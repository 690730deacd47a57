"""The evaluator's three kinds of task on a real model (builtin:tiny): multiple choice scores
each record's own alternatives, batched greedy generation decodes what one-at-a-time
decoding does, and ROUGE carries intervals the gate can compare pairwise."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from langmerge.common import builtin
from langmerge.common.prompts import prompt_ids, response_ids
from langmerge.merger import decoding, evaluate, statistics
from langmerge.merger.gate import decide


@pytest.fixture(scope="module")
def model_and_tokenizer() -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = builtin.path()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def _logprob(model: Any, head: list[int], tail: list[int]) -> float:
    """Summed log-probability of tail after head, from the model's own full forward."""
    ids = torch.tensor([head + tail])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    picked = torch.log_softmax(logits[len(head) - 1 : -1], dim=-1)
    return float(picked.gather(1, torch.tensor(tail).unsqueeze(1)).sum())


def test_multiple_choice_picks_each_records_likeliest_alternative(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    model, tokenizer = model_and_tokenizer
    records = [
        {"prompt": "The glass fell. What happened?", "choices": ["It broke.", "It sang."]},
        {"prompt": "Review: the food was cold.", "choices": ["positive", "negative", "meh"]},
        {"prompt": "Das Essen war gut.", "choices": ["Ja.", "Nein, gar nicht."]},
        {"prompt": "It rained.", "choices": ["The street was dry.", "The street was wet."]},
    ]
    for record, right in zip(records, (0, 1, 1, 1), strict=True):
        record["response"] = record["choices"][right]
    scored = evaluate.evaluate(model, tokenizer, records, "prompt", "response", False)
    expected = []
    for record in records:
        head = prompt_ids(record["prompt"], tokenizer)
        scores = [_logprob(model, head, response_ids(c, tokenizer)) for c in record["choices"]]
        expected.append(str(max(range(len(scores)), key=scores.__getitem__) + 1))
    assert scored.predicted == expected
    assert scored.gold == ["1", "2", "2", "2"]
    hits = sum(p == g for p, g in zip(expected, scored.gold, strict=True))
    assert scored.metrics["accuracy"] == pytest.approx(hits / 4)
    assert scored.metrics["examples"] == 4


def _batches_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each batch of heads the evaluator reads from now on, in order."""
    rows: list[int] = []
    read_heads = decoding.read_heads

    def counted(model: Any, pad_id: int, heads: list[list[int]]) -> decoding.Prefix:
        rows.append(len(heads))
        return read_heads(model, pad_id, heads)

    monkeypatch.setattr(decoding, "read_heads", counted)
    return rows


def test_each_record_keeps_its_own_scores_when_batches_reorder_the_records(
    model_and_tokenizer: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records go through the model longest first, in batches cut by length
    (decoding.length_batches); each record's options and reference still get their own
    log-probabilities: a full forward of that record alone."""
    model, tokenizer = model_and_tokenizer
    monkeypatch.setattr(evaluate, "BATCH", 4)
    monkeypatch.setattr(evaluate, "BATCH_CHARGE", 10**6)  # 4 batches, of rows of several lengths
    words = ["hotel", "Essen", "film", "电影", "phone", "Zimmer", "livre"]
    prompts = [f"Review: the {words[i % 7]} " + "was " * (i * 3 % 5) for i in range(13)]
    heads = [prompt_ids(p, tokenizer) for p in prompts]
    lengths = [len(head) for head in heads]
    assert lengths != sorted(lengths, reverse=True) and len(set(lengths)) > 2
    options = [
        [response_ids(c, tokenizer) for c in ("good", f"bad {words[i % 7]}", "fine " * i)]
        for i in range(13)
    ]
    read = _batches_read(monkeypatch)
    pad_id = tokenizer.pad_token_id
    scored = evaluate._option_logprobs(model, pad_id, heads, options)
    assert len(read) > 3 and sum(read) == len(heads)
    for head, opts, mine in zip(heads, options, scored, strict=True):
        assert mine == pytest.approx([_logprob(model, head, o) for o in opts], abs=1e-4)
    pairs = [(head, opts[i % 3]) for i, (head, opts) in enumerate(zip(heads, options, strict=True))]
    loss = evaluate._logprobs(model, pad_id, pairs)
    assert loss == pytest.approx([_logprob(model, h, t) for h, t in pairs], abs=1e-4)


def test_a_response_outside_its_choices_is_refused(model_and_tokenizer: tuple[Any, Any]) -> None:
    model, tokenizer = model_and_tokenizer
    records = [{"prompt": "x", "response": "c", "choices": ["a", "b"]}]
    with pytest.raises(ValueError, match="'response' is not one of its 'choices'"):
        evaluate.evaluate(model, tokenizer, records, "prompt", "response", False)


def _languages() -> dict[str, list[dict[str, Any]]]:
    """Three languages, each with labels of its own and prompts of different lengths."""
    reviews = {
        "en": (["the room was clean", "the food was cold and late"], ["good", "bad"]),
        "de": (["das Zimmer war sauber", "das Essen war kalt"], ["gut", "schlecht"]),
        "fr": (["la chambre", "le repas était froid et tardif ce soir"], ["bon", "mauvais"]),
    }
    return {
        language: [
            {"prompt": f"Review: {text}\nSentiment:", "response": labels[i % 2]}
            for i, text in enumerate(texts * 3)
        ]
        for language, (texts, labels) in reviews.items()
    }


@pytest.mark.parametrize("kind", ["classification", "choice", "generation", "reference"])
def test_languages_scored_together_read_as_each_scored_alone(
    model_and_tokenizer: tuple[Any, Any], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every language's records go through the model in shared batches, and each language's
    Scored is its own records': the same labels, summaries and losses as when it is scored
    alone (the losses up to float summation order: batches of other widths)."""
    model, tokenizer = model_and_tokenizer
    datasets = _languages()
    if kind == "choice":
        for records in datasets.values():
            for i, record in enumerate(records):
                record["choices"] = ["yes", "no, not at all"] if i % 2 else ["no", "yes it was"]
                record["response"] = record["choices"][i % 2]
    rows = _batches_read(monkeypatch)
    generation = kind == "generation"
    if kind == "reference":  # more distinct responses than labels: the reference loss alone
        for records in datasets.values():
            for i, record in enumerate(records):
                record["response"] = f"{record['response']} {i}"
        monkeypatch.setattr(evaluate, "CLASSIFICATION_MAX_LABELS", 2)
    together = evaluate.evaluate_languages(
        model, tokenizer, datasets, "prompt", "response", generation
    )
    if kind != "reference":  # one reading of every language's prompts
        assert rows == [sum(len(records) for records in datasets.values())]
    for language, records in datasets.items():
        alone = evaluate.evaluate(model, tokenizer, records, "prompt", "response", generation)
        mine = together[language]
        assert (mine.gold, mine.predicted) == (alone.gold, alone.predicted)
        assert mine.values == alone.values
        assert mine.metrics == pytest.approx(alone.metrics, rel=1e-4)
        assert mine.metrics["examples"] == len(records)
        if kind == "classification":
            assert set(mine.gold) == {r["response"] for r in records}


def test_a_bad_record_of_one_language_is_refused_before_the_model_runs(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    _, tokenizer = model_and_tokenizer
    good = [{"prompt": "x", "response": "a", "choices": ["a", "b"]}]
    bad = [{"prompt": "y", "response": "c", "choices": ["a", "b"]}]
    with pytest.raises(ValueError, match="'response' is not one of its 'choices': 'c'"):
        # no model: any scoring before the refusal would fail otherwise
        evaluate.evaluate_languages(
            None, tokenizer, {"de": good, "fr": bad}, "prompt", "response", False
        )


def test_batched_generation_decodes_what_one_at_a_time_does(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    """Left padding must change nothing: each row of a batch of prompts of different lengths
    decodes as that prompt alone."""
    model, tokenizer = model_and_tokenizer
    prompts = [
        "Review: the hotel",
        "Das Essen war",
        "Le film",
        "这部电影很",
        "Review: this phone was",
    ]
    heads = [prompt_ids(p, tokenizer) for p in prompts]
    assert len({len(h) for h in heads}) > 1
    batched = evaluate.generate(model, tokenizer, heads, [8] * len(heads))
    alone = [evaluate.generate(model, tokenizer, [h], [8])[0] for h in heads]
    assert batched == alone
    assert all("\n" not in text for text in batched)


def test_generation_reads_each_prompt_once_for_its_summary_and_its_reference_loss(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    """One reading of the prompts serves the greedy summaries (as transformers' own greedy
    generate decodes them, over two batches of heads of different lengths) and the reference
    loss (as a full forward of prompt and reference computes it). A summary depends on its
    own record alone: scored alone, it reads the same as in its batch."""
    model, tokenizer = model_and_tokenizer
    words = ["hotel", "Essen", "film", "电影", "phone", "Zimmer", "service", "livre", "hat"]
    prompts = [f"Review {i}: the {words[i % len(words)]} " + "was " * (i % 4) for i in range(70)]
    heads = [prompt_ids(p, tokenizer) for p in prompts]
    tails = [response_ids(f"good {w} " * (1 + i % 3), tokenizer) for i, w in enumerate(prompts)]
    assert len(heads) > evaluate.GENERATION_BATCH and len({len(h) for h in heads}) > 1
    texts, logprobs = evaluate.generate_scored(model, tokenizer, heads, tails)
    assert texts == evaluate.generate(model, tokenizer, heads, [len(t) for t in tails])
    alone = [evaluate.generate_scored(model, tokenizer, [h], [t])[0][0] for h, t in zip(
        heads[:12], tails[:12], strict=True)]  # fmt: skip
    assert alone == texts[:12] and len({len(t) for t in tails[:12]}) > 1
    expected = [_logprob(model, head, tail) for head, tail in zip(heads, tails, strict=True)]
    assert logprobs == pytest.approx(expected, abs=1e-4)


def test_greedy_decoding_drops_a_row_at_its_stop_or_budget_and_ends_when_every_row_has(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    """A row that stops, or spends its own budget, leaves the batch; the rows still decoding
    continue as they would have beside it, token for token."""
    model, tokenizer = model_and_tokenizer
    heads = [prompt_ids(p, tokenizer) for p in ("Review: the hotel", "Das Essen war sehr")]

    def decoded(budgets: list[int], ends: Any) -> list[list[int]]:
        return decoding.greedy(model, decoding.read_heads(model, 0, heads), budgets, ends)

    free = decoded([6, 6], lambda ids: False)
    assert [len(row) for row in free] == [6, 6]
    assert decoded([2, 6], lambda ids: False) == [free[0][:2], free[1]]
    assert decoded([6, 1], lambda ids: False) == [free[0], free[1][:1]]
    first = free[0][0]
    stopped = decoded([6, 6], lambda ids: ids[-1] == first)
    assert stopped[0] == [first]
    ends = free[1].index(first) + 1 if first in free[1] else 6
    assert stopped[1] == free[1][:ends]
    assert decoded([6, 6], lambda ids: True) == [[free[0][0]], [free[1][0]]]


def test_a_summary_ends_at_a_line_break_after_text_or_at_the_end_of_sequence(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    """A generation is read stripped, up to its first line break: a leading line break does
    not end it."""
    model, tokenizer = model_and_tokenizer
    ends = evaluate.summary_ends(model, tokenizer)
    newline = tokenizer.encode("\n", add_special_tokens=False)
    words = tokenizer.encode("the food", add_special_tokens=False)
    assert len(newline) == 1 and set(newline) <= decoding.line_break_tokens(tokenizer)
    assert not ends(newline) and not ends(newline + words) and not ends(words)
    assert ends(newline + words + newline) and ends(words + newline)
    assert ends([*words, model.generation_config.eos_token_id])


def test_generation_scores_rouge_with_intervals(model_and_tokenizer: tuple[Any, Any]) -> None:
    model, tokenizer = model_and_tokenizer
    records = [{"prompt": f"Review: the food {i}", "response": "was good"} for i in range(6)]
    scored = evaluate.evaluate(model, tokenizer, records, "prompt", "response", True)
    for metric in ("rouge1", "rougeL"):
        assert len(scored.values[metric]) == 6
        assert scored.metrics[f"{metric}Low"] <= scored.metrics[metric]
        assert scored.metrics[metric] <= scored.metrics[f"{metric}High"]
        assert scored.metrics[metric] == pytest.approx(sum(scored.values[metric]) / 6, abs=1e-6)


def test_mean_interval_and_paired_mean_difference() -> None:
    values = [0.2, 0.4, 0.6, 0.8] * 25
    out = statistics.mean_with_interval("rougeL", values)
    assert out["rougeL"] == pytest.approx(0.5)
    assert out["rougeLLow"] < 0.5 < out["rougeLHigh"]
    shifted = [v - 0.1 for v in values]
    difference, low, high = statistics.paired_mean_difference(shifted, values)
    # Every example is 0.1 lower: the paired interval has no width left to doubt it.
    assert difference == pytest.approx(-0.1)
    assert low == pytest.approx(-0.1) and high == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="same, non-empty"):
        statistics.paired_mean_difference([0.1], [0.1, 0.2])


def test_gate_on_rouge_compares_per_example_scores() -> None:
    values = [0.2, 0.4, 0.6, 0.8] * 25
    theirs = evaluate.Scored({"rougeL": 0.5}, values={"rougeL": values})
    worse = [v - 0.1 for v in values]
    ours = evaluate.Scored({"rougeL": 0.4}, values={"rougeL": worse})
    verdict = decide({"de": ours}, {"de": theirs}, "rougeL", 0.05, "combined")
    assert not verdict.passed and "rougeL 0.400 is 0.100 below" in verdict.reason
    assert decide({"de": ours}, {"de": theirs}, "rougeL", 0.15, "combined").passed


def test_records_that_name_their_group_get_intervals_over_the_groups(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    model, tokenizer = model_and_tokenizer
    records = [
        {"prompt": f"Review: the {thing} was {word}.", "response": label, "scenario": thing}
        for thing in ("soup", "room", "film", "phone", "bed", "tea")
        for word, label in (("good", "positive"), ("bad", "negative"), ("fine", "positive"))
    ]
    grouped = evaluate.evaluate(
        model, tokenizer, records, "prompt", "response", False, group_field="scenario"
    )
    groups = [r["scenario"] for r in records]
    assert grouped.groups == groups
    assert grouped.metrics["groups"] == 6 and grouped.metrics["examples"] == 18
    expected = statistics.classification_metrics(grouped.gold, grouped.predicted, groups)
    for key, value in expected.items():
        assert grouped.metrics[key] == pytest.approx(value, abs=1e-6)
    # Without the field named, the same records are resampled one by one.
    alone = evaluate.evaluate(model, tokenizer, records, "prompt", "response", False)
    assert alone.groups is None and "groups" not in alone.metrics
    assert alone.predicted == grouped.predicted


def test_groups_named_by_some_records_only_are_refused_naming_the_dataset(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    _, tokenizer = model_and_tokenizer
    good = [{"prompt": "x", "response": "a", "group": "t1"}, {"prompt": "y", "response": "b"}]
    with pytest.raises(ValueError, match="dataset fr: record 2 has no 'group', while 1 of 2"):
        evaluate.evaluate_languages(None, tokenizer, {"fr": good}, "prompt", "response", False)
    odd = [{"prompt": "x", "response": "a", "group": ["t1"]}]
    with pytest.raises(ValueError, match=r"dataset de: record 1: 'group' is \['t1'\]; a group"):
        evaluate.evaluate_languages(None, tokenizer, {"de": odd}, "prompt", "response", False)


@pytest.mark.parametrize("kind", ["classification", "generation", "reference"])
def test_a_models_mean_over_languages_resamples_them_together(
    model_and_tokenizer: tuple[Any, Any], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's mean of a model: every language weighs alike, its interval from one
    resample of the units named alike in each language; a model scored by loss alone has
    none."""
    model, tokenizer = model_and_tokenizer
    datasets = _languages()
    for records in datasets.values():
        for i, record in enumerate(records):
            record["group"] = f"text {i % 2}"  # each text written in every language
            if kind == "reference":
                record["response"] = f"{record['response']} {i}"
    monkeypatch.setattr(evaluate, "CLASSIFICATION_MAX_LABELS", 2)
    scored = evaluate.evaluate_languages(
        model, tokenizer, datasets, "prompt", "response", kind == "generation"
    )
    mean = evaluate.mean_over_languages(scored)
    if kind == "reference":
        assert mean == {}
        return
    assert mean["languages"] == 3 and mean["units"] == 2
    for metric in ("accuracy", "f1") if kind == "classification" else ("rouge1", "rougeL"):
        per_language = [one.metrics[metric] for one in scored.values()]
        assert mean[metric] == pytest.approx(sum(per_language) / 3, abs=1e-6)
        assert mean[f"{metric}Low"] <= mean[f"{metric}High"]
