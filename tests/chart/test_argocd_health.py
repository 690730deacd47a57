"""The Argo CD health checks in Argo CD's own upstream format
(resource_customizations/<group>/<Kind>/health.lua, health_test.yaml, testdata/), run in the
engine Argo CD uses (gopher-lua, Lua 5.1 semantics, only the libraries Argo CD opens)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.conftest import REPO
from tests.support.argocd import CUSTOMIZATIONS, run_health_tests

KINDS = ("LanguageAdapter", "MergedModel")


def test_every_health_test_passes_in_argo_cds_lua_engine() -> None:
    result = run_health_tests(CUSTOMIZATIONS)
    assert result.returncode == 0, result.stdout + result.stderr
    for kind in KINDS:
        cases = yaml.safe_load(
            (CUSTOMIZATIONS / "langmerge.io" / kind / "health_test.yaml").read_text()
        )["tests"]
        statuses = {case["healthStatus"]["status"] for case in cases}
        assert {"Progressing", "Healthy", "Degraded"} <= statuses, kind
        assert result.stdout.count(f"langmerge.io/{kind} ") == len(cases)


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The runner really compares: one expectation changed, one failure reported."""
    copy = tmp_path / "resource_customizations"
    shutil.copytree(CUSTOMIZATIONS, copy)
    tests = copy / "langmerge.io" / "LanguageAdapter" / "health_test.yaml"
    tests.write_text(tests.read_text().replace("status: Healthy", "status: Degraded", 1))
    result = run_health_tests(copy)
    assert result.returncode == 1
    assert result.stdout.count("FAIL ") == 1 and "testdata/ready.yaml" in result.stdout


def test_the_chart_values_carry_the_same_scripts() -> None:
    """argocd.healthChecks (for argocd-cm) is what the tests above ran, byte for byte."""
    values = yaml.safe_load((REPO / "charts" / "langmerge" / "values.yaml").read_text())
    checks = values["argocd"]["healthChecks"]
    assert sorted(checks) == [f"resource.customizations.health.langmerge.io_{k}" for k in KINDS]
    for kind in KINDS:
        script = (CUSTOMIZATIONS / "langmerge.io" / kind / "health.lua").read_text()
        assert checks[f"resource.customizations.health.langmerge.io_{kind}"] == script
