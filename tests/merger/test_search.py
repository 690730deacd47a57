"""The merge search: its grid's expansion and bounds, candidates that are exactly the separate
merges with the same parameters, scoring in one loaded model that equals a fresh load, the
winner chosen on validation data only and then judged by the gate, and bad input refused
before any work with the field named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from langmerge.common import builtin
from langmerge.common.precision import FORCE_VARIABLE
from langmerge.merger import evaluate
from langmerge.merger import search as grid
from langmerge.merger.adapters import load_adapter
from langmerge.merger.cli import main
from langmerge.merger.methods import METHODS, MergeSettings
from langmerge.merger.output import HeldLora, join_lora
from langmerge.merger.run import candidate_settings
from langmerge.merger.shared import (
    SharedKnots,
    default_hold_bytes,
    lora_bytes,
    merge_candidates,
)
from langmerge.operator.ledger import search_result
from tests.support.tiny_llama import save_peft_adapter

LANGUAGES = ("de", "en", "fr")
GRID = {
    "grid": [
        {"method": "knots-ties", "densities": [0.3, 0.7], "lambdas": [1, 1.5]},
        {"method": "knots-ties", "weights": ["examples", {"en": 3}]},
        {"method": "knots-dare-ties", "densities": [0.6], "seeds": [0, 1]},
        {"method": "ties", "densities": [0.4]},
        {"method": "dare-linear", "seeds": [3]},
        {"method": "linear", "lambdas": [0.5]},
    ],
    "metric": "f1",
}


def _records(language: str, offset: int, count: int) -> str:
    rows = [
        {"prompt": f"{language} review {offset + i}", "response": ("good", "bad")[i % 2]}
        for i in range(count)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("search")
    base = builtin.path()  # scoring needs a tokenizer: builtin:tiny has one
    adapters = []
    for i, language in enumerate(LANGUAGES):
        path = save_peft_adapter(base, root / f"adapter-{language}", seed=30 + i, alpha=1)
        metadata = {"language": language, "baseModel": builtin.NAME, "examples": 40 * (i + 1)}
        (path / "langmerge.json").write_text(json.dumps(metadata))
        adapters.append(path)
    data = {}
    for split, offset in (("validation", 0), ("evaluation", 1000)):
        for language in LANGUAGES:
            path = root / f"{language}-{split}.jsonl"
            path.write_text(_records(language, offset, 12))
            data[split, language] = path
    return {"root": root, "adapters": adapters, "data": data}


def _run(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    summary = tmp_path / f"summary-{len(list(tmp_path.glob('summary-*')))}.json"
    code = main([*args, "--summary-file", str(summary)])
    return code, json.loads(summary.read_text())


def _search_args(tiny: dict[str, Any], spec: dict[str, Any], out: Path) -> list[str]:
    args = [arg for p in tiny["adapters"] for arg in ("--adapter", str(p))]
    args += ["--base-model", builtin.NAME, "--output", str(out), "--search", json.dumps(spec)]
    args += [f"--validate={lang}={tiny['data']['validation', lang]}" for lang in LANGUAGES]
    return args


# --- the grid ------------------------------------------------------------------------------
def test_the_grid_expands_each_method_with_its_own_options() -> None:
    search = grid.parse(GRID)
    labels = [c.label() for c in search.candidates]
    assert labels == [
        "knots-ties density=0.3 lambda=1 weights=uniform",
        "knots-ties density=0.3 lambda=1.5 weights=uniform",
        "knots-ties density=0.7 lambda=1 weights=uniform",
        "knots-ties density=0.7 lambda=1.5 weights=uniform",
        "knots-ties density=0.5 lambda=1 weights=examples",
        "knots-ties density=0.5 lambda=1 weights=en=3",
        "knots-dare-ties density=0.6 lambda=1 weights=uniform seed=0",
        "knots-dare-ties density=0.6 lambda=1 weights=uniform seed=1",
        "ties density=0.4 lambda=1 weights=uniform",
        "dare-linear density=0.5 lambda=1 weights=uniform seed=3",
        "linear lambda=0.5 weights=uniform",
    ]
    assert [c.index for c in search.candidates] == list(range(11))
    assert (search.metric, search.aggregate) == ("f1", "mean")


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"grid": []}, "search.grid is empty"),
        ({}, "search.grid is empty"),
        ({"grid": [{"method": "linear", "densities": [0.5]}]}, "search.grid[0].densities: linear"),
        ({"grid": [{"method": "ties", "seeds": [1]}]}, "search.grid[0].seeds: ties takes no seed"),
        ({"grid": [{"method": "slerp"}]}, "search.grid[0].method is 'slerp'"),
        ({"grid": [{"method": "ties", "densities": [0]}]}, "search.grid[0].densities[0]"),
        ({"grid": [{"method": "ties", "lambdas": [-1]}]}, "search.grid[0].lambdas[0]"),
        ({"grid": [{"method": "ties", "weights": ["loud"]}]}, "search.grid[0].weights[0]"),
        ({"grid": [{"method": "ties", "weights": [{"en": 0}]}]}, "every weight is zero"),
        ({"grid": [{"method": "ties", "rank": [4]}]}, "search.grid[0].rank is not a field"),
        ({"grid": [{"method": "ties"}], "metric": "bleu"}, "search.metric is 'bleu'"),
        ({"grid": [{"method": "ties"}], "aggregate": "median"}, "search.aggregate"),
        (
            {"grid": [{"method": "ties", "densities": [0.5, 0.5]}]},
            "search.grid[0]: the candidate ties density=0.5",
        ),
        (
            {"grid": [{"method": "linear"}, {"method": "linear", "lambdas": [1.0]}]},
            "repeats one of search.grid[0]",
        ),
        (
            {
                "grid": [
                    {
                        "method": "ties",
                        "densities": [0.1 * i for i in range(1, 9)],
                        "lambdas": [1, 2, 3, 4, 5, 6, 7, 8, 9],
                    }
                ]
            },
            "more than 64 candidates (at least 65)",
        ),
    ],
)
def test_a_bad_grid_is_refused_naming_the_field(spec: dict[str, Any], named: str) -> None:
    with pytest.raises(grid.SearchError, match=None) as refused:
        grid.parse(spec)
    assert named in str(refused.value)


def test_weights_resolve_against_the_adapters_languages_and_examples() -> None:
    search = grid.parse(
        {"grid": [{"method": "linear", "weights": ["uniform", "examples", {"en": 3}, {"xx": 1}]}]}
    )
    languages, names = ["de", "en", "fr"], ["a", "b", "c"]
    resolve = [
        lambda c: grid.resolve_weights(c, languages, [40, 80, 120], names),
    ][0]
    assert resolve(search.candidates[0]) == (1.0, 1.0, 1.0)
    assert resolve(search.candidates[1]) == (40.0, 80.0, 120.0)
    assert resolve(search.candidates[2]) == (1.0, 3.0, 1.0)  # a language left out weighs 1
    with pytest.raises(grid.SearchError, match=r"weights: no adapter has language 'xx'"):
        resolve(search.candidates[3])
    with pytest.raises(grid.SearchError, match="adapter b does not record them"):
        grid.resolve_weights(search.candidates[1], languages, [40, None, 120], names)


def test_the_winner_is_the_best_aggregate_and_ties_go_to_the_earlier_candidate() -> None:
    assert grid.aggregate({"de": 0.5, "en": 0.9}, "mean", True) == pytest.approx(0.7)
    assert grid.aggregate({"de": 0.5, "en": 0.9}, "worst", True) == 0.5
    assert grid.aggregate({"de": 2.0, "en": 1.0}, "worst", False) == 2.0  # loss: the highest
    assert grid.winner({0: 0.5, 1: 0.7, 2: 0.7}, True) == 1
    assert grid.winner({0: 2.0, 1: 1.0, 2: 1.0}, False) == 1


# --- candidates equal separate merges ------------------------------------------------------
@pytest.mark.parametrize("hold", ["memory", "scratch", "both"])
def test_each_candidate_is_exactly_the_separate_merge_with_its_parameters(
    tiny: dict[str, Any], tmp_path: Path, hold: str
) -> None:
    adapters = [load_adapter(str(p), p) for p in tiny["adapters"]]
    search = grid.parse(GRID)
    common = MergeSettings(method=METHODS["knots-ties"], weights=(1.0,) * 3, rank=None)
    settings = candidate_settings(search, common, adapters, "sum-to-one", None)
    shared = SharedKnots(adapters, common.knots_tolerance)
    # "both": room for the basis and a few candidates; the rest go to scratch.
    one = lora_bytes(adapters, None, "A") + lora_bytes(adapters, None, "B")
    budget = {"memory": 1 << 40, "scratch": 0, "both": 2 * one}[hold]
    written = merge_candidates(adapters, settings, tmp_path / "c", 12, shared, budget)
    assert [w.failure for w in written] == [None] * len(written)
    held = [w.held is not None for w in written]
    assert held == {"memory": [True] * len(written), "scratch": [False] * len(written)}.get(
        hold, held
    )
    if hold == "both":
        assert any(held) and not all(held)
    # A KnOTS candidate in scratch has its lora_A beside the basis U (its lora_B), written
    # once; nothing held is on disk.
    basis = tmp_path / "c" / "basis"
    assert [w.parts[1:] for w in written] == [
        [basis] if c.method.startswith("knots") and w.held is None else []
        for c, w in zip(search.candidates, written, strict=True)
    ]
    assert [bool(w.parts) for w in written] == [not h for h in held]
    if hold == "memory":  # nothing of a held search reaches the disk
        scratch = tmp_path / "c"
        assert not scratch.exists() or not any(scratch.rglob("*"))
    # Each module aligned once for every KnOTS candidate (3 modules x 2 layers), however many.
    assert shared.alignments == len(adapters[0].modules)
    for candidate, result in zip(search.candidates, written, strict=True):
        weights = grid.resolve_weights(
            candidate, LANGUAGES, [40, 80, 120], [str(p) for p in tiny["adapters"]]
        )
        flags = ["--method", candidate.method, "--lambda", str(candidate.lambda_)]
        flags += ["--weights", ",".join(str(w) for w in weights), "--rank", "12"]
        if candidate.density is not None:
            flags += ["--density", str(candidate.density)]
        if candidate.seed is not None:
            flags += ["--seed", str(candidate.seed)]
        alone = tmp_path / "alone" / str(candidate.index)
        adapter_flags = [arg for p in tiny["adapters"] for arg in ("--adapter", str(p))]
        code, _ = _run(tmp_path, *adapter_flags, *flags, "--output", str(alone))
        assert code == 0
        joined = tmp_path / "joined" / str(candidate.index)
        joined.mkdir(parents=True)
        result.publish(joined)
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            assert (joined / name).read_bytes() == (alone / name).read_bytes(), (
                candidate.label(),
                name,
            )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_scoring_in_one_loaded_model_equals_a_fresh_load_per_adapter(
    tiny: dict[str, Any], tmp_path: Path, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FORCE_VARIABLE, "force")  # bf16 even on a CPU without bf16 kernels
    base = builtin.path()
    datasets = {
        lang: evaluate.load_records(str(tiny["data"]["validation", lang]), base, "test")
        for lang in LANGUAGES
    }
    # The trained adapters (one config: their weights swapped into one slot), then a search's
    # candidates in their parts (KnOTS: lora_A beside the shared basis, another config, so a
    # new slot, then swaps), then a linear one (another rank again).
    loaded = [load_adapter(str(p), p) for p in tiny["adapters"]]
    spec = {"grid": [{"method": "knots-ties", "densities": [0.3, 0.7]}, {"method": "linear"}]}
    common = MergeSettings(method=METHODS["knots-ties"], weights=(1.0,) * 3)
    settings = candidate_settings(grid.parse(spec), common, loaded, "sum-to-one", None)
    shared = SharedKnots(loaded, common.knots_tolerance)
    # The first candidate held in memory (with the basis), the others in scratch: both kinds
    # are swapped in.
    budget = lora_bytes(loaded, None, "A") + lora_bytes(loaded, None, "B")
    written = merge_candidates(loaded, settings, tmp_path / "c", None, shared, budget)
    assert [w.held is not None for w in written] == [True, False, False]
    adapters: dict[str, list[Path] | HeldLora] = {p.name: [p] for p in tiny["adapters"]}
    fresh_paths: dict[str, Path | None] = {p.name: p for p in tiny["adapters"]}
    for index, result in enumerate(written):
        adapters[f"candidate-{index}"] = result.lora()
        fresh_paths[f"candidate-{index}"] = joined = tmp_path / "joined" / str(index)
        joined.mkdir(parents=True)
        result.publish(joined)
    in_place = evaluate.score_adapters_in_place(base, adapters, datasets, precision=precision)
    fresh = evaluate.score_models(base, fresh_paths, datasets, precision=precision)
    for name in adapters:
        for lang in LANGUAGES:
            assert in_place[name][lang].metrics == fresh[name][lang].metrics, (name, lang)
            assert in_place[name][lang].predicted == fresh[name][lang].predicted
    # The adapters differ, so equal scores are not a stale first adapter scored again.
    losses = {in_place[name]["de"].metrics["loss"] for name in adapters}
    assert len(losses) == len(adapters)


def test_bf16_scoring_folds_the_adapter_into_bf16_weights_and_stays_near_fp32(
    tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setenv(FORCE_VARIABLE, "force")
    base, adapter = builtin.path(), tiny["adapters"][0]
    dtypes = {n: p.dtype for n, p in evaluate._load(base, adapter, "bf16").named_parameters()}
    assert not [n for n in dtypes if "lora_" in n]  # folded (tests/merger/test_folding.py)
    assert set(dtypes.values()) == {torch.bfloat16}
    datasets = {
        lang: evaluate.load_records(str(tiny["data"]["validation", lang]), base, "test")
        for lang in LANGUAGES
    }
    models: dict[str, Path | None] = {"base": None, "adapter": adapter}
    exact = evaluate.score_models(base, models, datasets)
    rounded = evaluate.score_models(base, models, datasets, precision="bf16")
    for name in models:
        for lang in LANGUAGES:
            ours, theirs = rounded[name][lang].metrics["loss"], exact[name][lang].metrics["loss"]
            assert ours != theirs  # scored in bf16 indeed
            assert abs(ours - theirs) < 0.05 * theirs, (name, lang, ours, theirs)


def test_bf16_scoring_on_a_cpu_without_bf16_kernels_scores_in_fp32_and_says_so_once(
    tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    monkeypatch.setattr("langmerge.common.precision.cpu_has_bf16_kernels", lambda: False)
    evaluate._say_once.cache_clear()
    base, adapter = builtin.path(), tiny["adapters"][0]
    for _ in range(2):
        loaded = evaluate._load(base, adapter, "bf16")
        assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert capsys.readouterr().err.count("no bfloat16 kernels") == 1
    datasets = {
        lang: evaluate.load_records(str(tiny["data"]["validation", lang]), base, "test")
        for lang in LANGUAGES
    }
    models: dict[str, Path | None] = {"adapter": adapter}
    asked = evaluate.score_models(base, models, datasets, precision="bf16")
    exact = evaluate.score_models(base, models, datasets)
    for lang in LANGUAGES:
        assert asked["adapter"][lang].metrics == exact["adapter"][lang].metrics, lang


def test_a_candidate_without_its_basis_is_refused_when_joined_and_when_scored(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    loaded = [load_adapter(str(p), p) for p in tiny["adapters"]]
    settings = candidate_settings(
        grid.parse({"grid": [{"method": "knots-ties"}]}),
        MergeSettings(method=METHODS["knots-ties"], weights=(1.0,) * 3),
        loaded,
        "sum-to-one",
        None,
    )
    written = merge_candidates(
        loaded, settings, tmp_path / "c", None, SharedKnots(loaded, 1e-5), hold_bytes=0
    )
    datasets = {"de": [{"prompt": "de review 1", "response": "good"}]}
    with pytest.raises(ValueError, match=r"no part of .* holds .*lora_B.weight"):
        join_lora(written[0].parts[:1], tmp_path)
    with pytest.raises(ValueError, match=r"adapter lonely .* missing \['base_model"):
        evaluate.score_adapters_in_place(
            builtin.path(),
            {"lonely": written[0].parts[:1]},
            datasets,  # no basis: no lora_B
        )


# --- the run ---------------------------------------------------------------------------------
def test_a_search_publishes_the_validation_winner_with_its_sweep(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "merged"
    spec = {
        "grid": [
            {"method": "knots-ties", "densities": [0.3, 0.7], "lambdas": [0.5, 1.0]},
            {"method": "linear", "lambdas": [1, 1e300]},  # the second overflows float32
        ],
        "metric": "loss",
        "aggregate": "worst",
    }
    evaluation = [f"--evaluate={lang}={tiny['data']['evaluation', lang]}" for lang in LANGUAGES]
    code, summary = _run(tmp_path, *_search_args(tiny, spec, out), *evaluation)
    assert code == 0, summary
    record = json.loads((out / "langmerge.json").read_text())["search"]
    rows = record["candidates"]
    assert [r["index"] for r in rows] == list(range(6))
    failed = [r for r in rows if r.get("failed")]
    assert [r["index"] for r in failed] == [5] and "not finite" in failed[0]["reason"]
    scored = {r["index"]: r["score"] for r in rows if not r.get("failed")}
    for row in rows:  # the aggregate is the worst language's validation loss
        if not row.get("failed"):
            assert row["score"] == pytest.approx(max(row["perLanguage"].values()), abs=1e-6)
    best = min(scored, key=lambda i: (scored[i], i))
    assert record["winner"]["index"] == best
    assert summary["search"]["winner"]["index"] == best
    assert summary["search"]["evaluated"] == 6 and summary["search"]["failed"] == 1
    assert summary["method"] == rows[best]["method"]
    assert summary["parameters"]["lambda"] == rows[best]["lambda"]
    card = (out / "README.md").read_text()
    assert "## Search" in card and f"**#{best}**" in card and "failed: " in card
    # the winner, then judged on the evaluation data (no gate asked: scored only)
    assert set(summary["evaluation"]["perLanguage"]) == set(LANGUAGES)
    assert len(json.dumps(summary)) <= 4096
    # The contract: the operator's ledger reads the real summary into status.search.
    status = search_result(summary)
    assert status is not None and (status.evaluated, status.failed) == (6, 1)
    assert status.winner.index == best and status.best and status.best[0].index == best
    assert status.winner.method == rows[best]["method"] and status.why


def test_the_choice_depends_on_the_validation_data_only(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    spec = {"grid": [{"method": "knots-ties", "lambdas": [0.25, 0.5, 1, 2]}], "metric": "loss"}
    winners = set()
    for index, offset in enumerate((2000, 3000)):
        evaluation = []
        for lang in LANGUAGES:
            path = tmp_path / f"{lang}-eval-{index}.jsonl"
            path.write_text(_records(lang, offset, 8 + 4 * index))
            evaluation.append(f"--evaluate={lang}={path}")
        out = tmp_path / f"merged-{index}"
        code, summary = _run(tmp_path, *_search_args(tiny, spec, out), *evaluation)
        assert code == 0, summary
        winners.add(summary["search"]["winner"]["index"])
        scores = json.loads((out / "langmerge.json").read_text())["search"]["candidates"]
        assert summary["search"]["winner"]["score"] == min(r["score"] for r in scores)
    assert len(winners) == 1


def test_a_winner_refused_by_the_gate_publishes_nothing(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    current = tmp_path / "current"
    adapter_flags = [arg for p in tiny["adapters"] for arg in ("--adapter", str(p))]
    code, _ = _run(
        tmp_path,
        *adapter_flags,
        "--method",
        "linear",
        "--lambda",
        "0.001",
        "--output",
        str(current),
    )
    assert code == 0
    current_bytes = (current / "adapter_model.safetensors").read_bytes()
    out = tmp_path / "merged"
    spec = {"grid": [{"method": "linear", "lambdas": [20, 40]}], "metric": "loss"}
    gate = ["--gate-metric", "loss", "--gate-against", "current", "--gate-baseline", str(current)]
    gate += ["--gate-max-drop", "0"]
    evaluation = [f"--evaluate={lang}={tiny['data']['evaluation', lang]}" for lang in LANGUAGES]
    code, summary = _run(tmp_path, *_search_args(tiny, spec, out), *evaluation, *gate)
    assert code == 1 and summary["result"] == "Failed", summary
    assert summary["reason"].startswith("evaluation gate:")
    assert not out.exists()
    assert (current / "adapter_model.safetensors").read_bytes() == current_bytes


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--method", "ties"], "--method cannot be given with --search"),
        (["--density", "0.3", "--seed", "1"], "--density, --seed cannot be given with --search"),
        (["--evaluate", "VALIDATION_DE"], "is also a --validate dataset"),
    ],
)
def test_bad_search_flags_are_refused_before_any_work(
    tiny: dict[str, Any], tmp_path: Path, extra: list[str], named: str
) -> None:
    out = tmp_path / "merged"
    extra = [f"de={tiny['data']['validation', 'de']}" if e == "VALIDATION_DE" else e for e in extra]
    code, summary = _run(tmp_path, *_search_args(tiny, GRID, out), *extra)
    assert code == 1 and named in summary["reason"], summary
    assert not out.exists()


def test_weights_for_a_language_no_adapter_has_are_refused_before_merging(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "merged"
    spec = {"grid": [{"method": "linear", "weights": ["uniform", {"ja": 2}]}]}
    code, summary = _run(tmp_path, *_search_args(tiny, spec, out))
    assert code == 1
    assert "search.grid[0].weights: no adapter has language 'ja'" in summary["reason"]
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b'{"prompt": "a", "response": "b"}\n{"prompt": \n', "line 2 is not valid JSON"),
        (b'{"prompt": "a", "response": "b"}\n["a", "b"]\n', "line 2 is not a JSON object"),
        (b'{"prompt": "Caf\xe9", "response": "b"}\n', "line 1 is not UTF-8 text"),
        (b"\n", "no records"),
        (None, "does not exist"),
    ],
)
def test_a_bad_dataset_is_refused_before_any_merge_naming_the_flag_and_field(
    tiny: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: bytes | None,
    named: str,
) -> None:
    def merged(*_: Any, **__: Any) -> None:
        raise AssertionError("merged before the datasets were read")

    monkeypatch.setattr("langmerge.merger.shared.merge_candidates", merged)
    bad = tmp_path / "ja.jsonl"
    if content is not None:
        bad.write_bytes(content)
    out = tmp_path / "merged"
    for flag, field in (
        ("--validate", "spec.search.validation"),
        ("--evaluate", "spec.evaluation.datasets"),
    ):
        code, summary = _run(tmp_path, *_search_args(tiny, GRID, out), f"{flag}=ja={bad}")
        assert code == 1, summary
        assert summary["reason"].startswith(f"{flag} ja={bad} ({field}.ja): "), summary
        assert named in summary["reason"]
        assert not out.exists()


def test_a_search_without_validation_data_is_refused(tiny: dict[str, Any], tmp_path: Path) -> None:
    args = [a for a in _search_args(tiny, GRID, tmp_path / "m") if not a.startswith("--validate")]
    code, summary = _run(tmp_path, *args)
    assert code == 1 and "--search needs --validate" in summary["reason"]


def test_the_memory_budget_is_a_quarter_of_the_lower_of_available_and_the_limit(
    tmp_path: Path,
) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  16000000 kB\nMemAvailable:   8000000 kB\n")
    cgroup = tmp_path / "memory.max"
    cgroup.write_text("max\n")  # no container limit
    assert default_hold_bytes(meminfo, cgroup) == 8000000 * 1024 // 4
    cgroup.write_text(f"{4 << 30}\n")  # a lower container limit wins
    assert default_hold_bytes(meminfo, cgroup) == (4 << 30) // 4
    cgroup.write_text(f"{64 << 30}\n")  # a higher one does not
    assert default_hold_bytes(meminfo, cgroup) == 8000000 * 1024 // 4
    missing = tmp_path / "absent"
    assert default_hold_bytes(missing, missing) == 2 << 30  # the OS says nothing
    assert default_hold_bytes(missing, cgroup) == (64 << 30) // 4
