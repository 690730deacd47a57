"""The arithmetic of cost: GPU-seconds, prices, the price table and its reload, updates."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from langmerge.operator.accounting import record_totals, update_record
from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.common import RunRecord
from langmerge.operator.cost import (
    CPU,
    DEFAULT_GPU,
    DEFAULT_PRICES,
    PriceBook,
    PriceTableError,
    cost_usd,
    gpu_seconds,
    load_price_table,
)
from tests.support.objects import adapter_manifest

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_gpu_seconds_are_wall_time_times_gpus() -> None:
    assert gpu_seconds(T0, T0 + timedelta(minutes=30), 4) == 7200
    assert gpu_seconds(T0, T0 - timedelta(seconds=5), 2) == 0  # clock skew never goes negative


def test_prices_by_gpu_type_with_fallbacks_and_overrides() -> None:
    assert DEFAULT_PRICES.price("nvidia-h100-80gb", 1).usd_per_hour == 6.90
    assert DEFAULT_PRICES.price("some-new-gpu", 1) == DEFAULT_PRICES.prices[DEFAULT_GPU]
    assert DEFAULT_PRICES.price("nvidia-h100-80gb", 0) == DEFAULT_PRICES.prices[CPU]  # CPU-only run
    assert all(p.source and p.as_of for p in DEFAULT_PRICES.prices.values())
    a100 = DEFAULT_PRICES.price("nvidia-a100-80gb", 1)
    assert cost_usd(7200, a100) == pytest.approx(6.80)
    assert cost_usd(7200, a100, override_usd_per_hour=2.0) == pytest.approx(4.0)


def test_a_price_table_overrides_the_defaults_and_names_a_bad_entry(tmp_path: Path) -> None:
    table = tmp_path / "prices.yaml"
    table.write_text(
        "prices:\n  nvidia-l4:\n    usdPerHour: 0.8\n    source: a list\n    asOf: 2026-11\n"
    )
    loaded = load_price_table(table)
    assert loaded.price("nvidia-l4", 1).usd_per_hour == 0.8
    assert loaded.price("nvidia-h100-80gb", 1).usd_per_hour == 6.90
    table.write_text("prices:\n  nvidia-l4:\n    usdPerHour: 0.8\n    asOf: 2026-11\n")
    with pytest.raises(PriceTableError, match=r"prices\.nvidia-l4\.source"):
        load_price_table(table)


def test_the_price_book_reloads_keeps_the_last_good_table_and_recovers(tmp_path: Path) -> None:
    table = tmp_path / "prices.yaml"
    table.write_text("prices:\n  gpu-x:\n    usdPerHour: 1.0\n    source: s\n    asOf: 2026-11\n")
    book = PriceBook(table)
    assert book.table().price("gpu-x", 1).usd_per_hour == 1.0 and book.error is None
    table.write_text("prices:\n  gpu-x:\n    usdPerHour: -3\n    source: s\n    asOf: 2026-11\n")
    os.utime(table, ns=(1, 10**18))
    assert book.table().price("gpu-x", 1).usd_per_hour == 1.0  # the last good table
    assert book.error is not None and "usdPerHour" in book.error
    table.write_text("prices:\n  gpu-x:\n    usdPerHour: 2.0\n    source: s\n    asOf: 2026-11\n")
    os.utime(table, ns=(1, 2 * 10**18))
    assert book.table().price("gpu-x", 1).usd_per_hour == 2.0 and book.error is None


def _run(fingerprint: str, seconds: float, cost: float, result: str = "Succeeded") -> RunRecord:
    return RunRecord(
        job="j", fingerprint=fingerprint, result=result, gpu_seconds=seconds, cost_usd=cost
    )


def _adapter(language: str, fingerprint: str, run: RunRecord) -> LanguageAdapter:
    body = adapter_manifest(language)
    body["status"] = {"lastRun": run.to_wire(), "fingerprint": fingerprint}
    return LanguageAdapter.model_validate(body)


def test_an_update_sums_its_retraining_and_merge_against_a_full_retrain() -> None:
    adapters = [
        _adapter(lang, f"fp-{lang}", _run(f"fp-{lang}", 3600, 3.4)) for lang in ("de", "fr", "ja")
    ]
    merge = _run("m", 600, 0.005)
    previous = {"sentiment-de": "old", "sentiment-fr": "fp-fr", "sentiment-ja": "fp-ja"}
    inputs = {"sentiment-de": "fp-de", "sentiment-fr": "fp-fr", "sentiment-ja": "fp-ja"}
    update = update_record(previous, inputs, adapters, merge)
    assert (
        update.retrained_adapters == ["sentiment-de"] and update.trigger == "adapters: sentiment-de"
    )
    assert update.gpu_seconds == 4200 and update.cost_usd == pytest.approx(3.405)
    assert update.full_retrain_estimate_usd == pytest.approx(10.2)
    assert update.savings_ratio == pytest.approx(1 - 3.405 / 10.2, abs=1e-4)
    measured = update_record(previous, inputs, adapters, merge, combined_cost_usd=8.0)
    assert measured.full_retrain_estimate_usd == 8.0  # a measured combined run wins
    first = update_record(None, inputs, adapters, merge)
    assert first.trigger == "initial merge" and len(first.retrained_adapters or []) == 3


def test_totals_count_each_run() -> None:
    totals = record_totals(None, _run("a", 100, 1.0))
    totals = record_totals(totals, _run("b", 50, 0.5, "Failed"))
    assert (totals.runs, totals.succeeded, totals.failed) == (2, 1, 1)
    assert totals.gpu_seconds == 150 and totals.cost_usd == 1.5


def test_budget_verdict_covers_selected_adapters_and_namespaces() -> None:
    from langmerge.operator.api.merged import MergedModel
    from langmerge.operator.budgets import budget_verdict
    from tests.support.objects import merged_manifest

    spent = _run("x", 3600, 3.4)
    spent = spent.model_copy(update={"finished_at": T0})
    adapters = []
    for language in ("de", "fr"):
        body = adapter_manifest(language)
        body["status"] = {
            "totals": record_totals(None, spent).to_wire(),
            "lastRun": spent.to_wire(),
        }
        adapters.append(LanguageAdapter.model_validate(body))
    model = MergedModel.model_validate(merged_manifest(budget={"monthlyUsd": 10}))
    verdict = budget_verdict([model], adapters, adapters[0], 3.4, None, "2026-11")
    assert verdict is not None and not verdict.allowed  # 6.80 spent + 3.40 > 10
    assert (
        "MergedModel default/sentiment has spent $6.80 of its $10.00 budget for 2026-11"
        in verdict.message
    )
    assert budget_verdict([model], adapters, adapters[0], 3.0, None, "2026-11").allowed  # type: ignore[union-attr]
    assert budget_verdict([model], adapters, adapters[0], 3.4, None, "2026-12").allowed  # type: ignore[union-attr]
    unbudgeted = MergedModel.model_validate(merged_manifest())
    assert budget_verdict([unbudgeted], adapters, adapters[0], 3.4, None, "2026-11") is None
    by_namespace = budget_verdict([unbudgeted], adapters, adapters[0], 1.0, 7.0, "2026-11")
    assert (
        by_namespace is not None
        and not by_namespace.allowed
        and "namespace default" in by_namespace.message
    )
