"""A budget's refusal and its owner's status agree the moment the refusal is written: the
adapter's BudgetExceeded names a spend, and the MergedModel whose budget it is shows that
spend already. The reconciler runs here in the test process against the real API server,
without the batch of adapter changes that reconciles MergedModels a moment later, so nothing
but the refusal's own reconcile can bring the model's status up to date."""

from __future__ import annotations

import pytest

from langmerge.operator.accounting import period_of
from langmerge.operator.cache import ObjectCache
from langmerge.operator.config import OperatorConfig
from langmerge.operator.cost import PriceBook
from langmerge.operator.kube import Kube
from langmerge.operator.metrics import Metrics
from langmerge.operator.reconcile import ADAPTERS, MERGED, Reconciler
from tests.support.cluster import Cluster
from tests.support.control_plane import ControlPlane
from tests.support.objects import GROUP, VERSION, adapter_manifest, merged_manifest


def spent_this_month(cluster: Cluster, name: str, usd: float) -> None:
    """Status as the ledger leaves it after one finished training run of `usd`."""
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        cluster.ns,
        ADAPTERS,
        name,
        {
            "status": {
                "lastRun": {"job": f"{name}-1", "fingerprint": "f" * 16, "costUsd": usd},
                "totals": {
                    "runs": 1,
                    "succeeded": 1,
                    "costUsd": usd,
                    "period": period_of(None),
                    "monthCostUsd": usd,
                },
            }
        },
    )


def test_a_budget_refusal_and_the_models_budget_status_show_the_same_spend(
    control_plane: ControlPlane,
) -> None:
    cluster = Cluster.in_new_namespace(control_plane, "budget")
    api, namespace = cluster.api, cluster.ns
    names = ["sentiment-de", "sentiment-fr"]
    cluster.apply(merged_manifest(adapters={"names": names}, budget={"monthlyUsd": 8}))
    for language, name in zip(("de", "fr"), names, strict=True):
        cluster.apply(adapter_manifest(language))
        spent_this_month(cluster, name, 3.4)

    kube = Kube(api, ObjectCache())
    for plural in (ADAPTERS, MERGED):
        kube.relist(plural, namespace)
    kube.relist_jobs(namespace)
    reconciler = Reconciler(kube, OperatorConfig(), PriceBook(None), Metrics())
    reconciler.reconcile_adapter(namespace, "sentiment-de")  # another $3.40 would make $10.20

    refused = cluster.condition("LanguageAdapter", "sentiment-de", "BudgetExceeded")
    assert refused is not None and refused["status"] == "True", refused
    assert "has spent $6.80 of its $8.00 budget" in refused["message"]
    assert cluster.jobs("sentiment-de") == []
    budget = cluster.get("MergedModel", "sentiment")["status"]["budget"]
    assert budget["limitUsd"] == 8 and budget["spentUsd"] == pytest.approx(6.8)
