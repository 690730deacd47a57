"""The Helm chart, with the helm built from the Go module proxy and the real API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from langmerge.operator.config import OperatorConfig
from tests.conftest import REPO
from tests.support.chart import ALL_TOGGLES, CHART, KUBE_VERSION, helm, render
from tests.support.control_plane import ControlPlane
from tests.support.trainjobs import install_trainer_crds


def test_chart_crds_are_byte_identical_to_crds() -> None:
    for generated in sorted((REPO / "crds").glob("*.yaml")):
        copy = CHART / "crds" / generated.name
        assert copy.exists() and copy.read_bytes() == generated.read_bytes(), (
            f"{copy} is stale: copy crds/"
        )
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == sorted(
        p.name for p in (REPO / "crds").glob("*.yaml")
    )


def test_helm_lint_passes(control_plane: ControlPlane) -> None:
    result = helm(control_plane, "lint", str(CHART), "--strict", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_defaults_render_a_restricted_operator_with_monitoring_off(
    control_plane: ControlPlane,
) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in render(control_plane)}
    assert ("Deployment", "lm-langmerge") in kinds and ("ClusterRole", "lm-langmerge") in kinds
    assert not {k for k, _ in kinds} & {"Service", "ServiceMonitor", "PrometheusRule"}
    deployment = next(d for d in render(control_plane) if d["kind"] == "Deployment")
    assert (
        deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"]
    assert (
        security["capabilities"]["drop"] == ["ALL"]
        and security["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize(
    "values",
    [
        [],
        ALL_TOGGLES,
        [
            "--set",
            "operator.rbac.clusterWide=false",
            "--set",
            "operator.rbac.namespaces={team-a,team-b}",
        ],
    ],
    ids=["defaults", "every-toggle", "namespaced"],
)
def test_every_rendered_object_is_accepted_by_the_api_server(
    control_plane: ControlPlane, tmp_path: Path, values: list[str]
) -> None:
    control_plane.kubectl(
        "apply", "--server-side", "-f", str(Path(__file__).parent / "monitoring-crds.yaml")
    )
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
        "--timeout=60s",
    )
    install_trainer_crds(control_plane.kubectl)  # the ClusterTrainingRuntime's, for real
    for namespace in ("langmerge-system", "team-a", "team-b", "monitoring"):
        control_plane.kubectl("create", "namespace", namespace, check=False)
    documents = render(control_plane, *values)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", str(manifest), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(documents)
    if values == ALL_TOGGLES:
        kinds = {d["kind"] for d in documents}
        assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Service"} <= kinds
        assert "ClusterTrainingRuntime" in kinds
        rule = next(d for d in documents if d["kind"] == "PrometheusRule")
        assert len(rule["spec"]["groups"][0]["rules"]) == 6


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "artifacts.storage=gcs"], "artifacts/storage"),
        (["--set", "artifacts.storage=s3"], "/artifacts/s3/uri"),
        (["--set", "operator.rbac.clusterWide=false"], "/operator/rbac/namespaces"),
        (["--set", "priceTable.prices.x.usdPerHour=1"], "source"),
        (["--set", "jobs.backoffLimit=-1"], "/jobs/backoffLimit"),
        (["--set", "opertor.image.tag=x"], "opertor"),
        (["--set", "trainer.image=registry/trainer:1"], "/trainer/image"),
        (["--set", "serviceAccount.create=false"], "serviceAccount.name"),
        (
            ["--set", "metrics.serviceMonitor.namespace=Bad_Name"],
            "/metrics/serviceMonitor/namespace",
        ),
    ],
)
def test_bad_values_fail_at_install_naming_the_value(
    control_plane: ControlPlane, values: list[str], message: str
) -> None:
    result = helm(
        control_plane,
        "template",
        "lm",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        *values,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def _of(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (document,) = [d for d in documents if d["kind"] == kind]
    return document


def test_helm_template_needs_no_kube_version(control_plane: ControlPlane) -> None:
    """helm is built with its client-go's Kubernetes version stamped, as released ones are."""
    result = helm(control_plane, "template", "lm", str(CHART), check=False)
    assert result.returncode == 0, result.stderr


def test_kube_prometheus_stack_finds_the_servicemonitor(control_plane: ControlPlane) -> None:
    """kube-prometheus-stack's defaults: ServiceMonitors selected by {release: <its release>},
    in any namespace; the ServiceMonitor alone brings the Service it scrapes."""
    documents = render(
        control_plane,
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.additionalLabels.release=kps",
        "--set", "metrics.serviceMonitor.namespace=monitoring",
    )  # fmt: skip
    monitor, service = _of(documents, "ServiceMonitor"), _of(documents, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["langmerge-system"]}
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True  # `namespace` stays the object's namespace
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_names_service_account_pod_and_image_values(control_plane: ControlPlane) -> None:
    documents = render(
        control_plane,
        "--set", "fullnameOverride=ml-operator",
        "--set", "serviceAccount.create=false",
        "--set", "serviceAccount.name=platform-sa",
        "--set", "podAnnotations.a=b",
        "--set", "podLabels.team=ml",
        "--set", "priorityClassName=high",
        "--set", "trainer.image.pullPolicy=Always",
    )  # fmt: skip
    assert not [d for d in documents if d["kind"] == "ServiceAccount"]
    binding = _of(documents, "ClusterRoleBinding")
    assert binding["metadata"]["name"] == "ml-operator"
    assert binding["subjects"][0]["name"] == "platform-sa"
    deployment = _of(documents, "Deployment")
    pod = deployment["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == "platform-sa"
    assert pod["spec"]["priorityClassName"] == "high"
    assert pod["metadata"]["annotations"]["a"] == "b"
    assert pod["metadata"]["labels"]["team"] == "ml"
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    container = pod["spec"]["containers"][0]
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container["image"] == f"ghcr.io/langmerge/operator:{app_version}"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LANGMERGE_TRAINER_IMAGE"] == f"ghcr.io/langmerge/trainer:{app_version}"
    assert env["LANGMERGE_TRAINER_PULL_POLICY"] == "Always"
    assert "LANGMERGE_MERGER_PULL_POLICY" not in env  # Kubernetes' default for the tag


def test_every_toggles_job_settings_reach_the_operators_configuration(
    control_plane: ControlPlane,
) -> None:
    """The Deployment's environment, as rendered, parsed by the operator's own config."""
    documents = render(control_plane, *ALL_TOGGLES)
    container = _of(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    config = OperatorConfig.from_env({e["name"]: e["value"] for e in container["env"]})
    assert config.job_service_account == "langmerge-jobs"
    assert (config.hf_token_secret, config.hf_token_key) == ("hf-token", "hf")
    assert config.model_cache_pvc == "model-cache" and config.checkpoint_pvc == "checkpoints"
    assert config.shm_size == "16Gi"
    assert config.namespace_budget("nlp") == 500
    runtime = _of(documents, "ClusterTrainingRuntime")
    assert config.train_jobs and config.training_runtime == runtime["metadata"]["name"]
    node = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]
    (trainer,) = node["template"]["spec"]["containers"]
    assert trainer["image"] == "registry.example.com/langmerge/trainer:1.2.3"
    assert trainer["imagePullPolicy"] == "Always"
    defaults = render(control_plane)
    container = _of(defaults, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    config = OperatorConfig.from_env({e["name"]: e["value"] for e in container["env"]})
    assert config.hf_token_secret is None and config.model_cache_pvc is None
    assert config.job_service_account is None and config.shm_size == "8Gi"
    assert not config.train_jobs
    assert "ClusterTrainingRuntime" not in {d["kind"] for d in defaults}


def test_the_chart_works_as_a_subchart(control_plane: ControlPlane, tmp_path: Path) -> None:
    """A parent chart that depends on this one, passes `global` values and sets ours under
    its key: the schema accepts `global`, and every object is accepted by the API server."""
    parent = tmp_path / "platform"
    (parent / "charts").mkdir(parents=True)
    (parent / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "platform",
                "version": "1.0.0",
                "dependencies": [
                    {"name": "langmerge", "version": "0.1.0", "repository": f"file://{CHART}"}
                ],
            }
        )
    )
    (parent / "values.yaml").write_text(
        yaml.safe_dump(
            {
                "global": {"imageRegistry": "registry.example.com", "team": "ml"},
                "langmerge": {"metrics": {"serviceMonitor": {"enabled": True}}},
            }
        )
    )
    helm(control_plane, "dependency", "build", str(parent))
    out = helm(
        control_plane, "template", "platform", str(parent), "--namespace", "langmerge-system"
    ).stdout
    documents = [d for d in yaml.safe_load_all(out) if d]
    assert {"Deployment", "ServiceMonitor", "Service"} <= {d["kind"] for d in documents}
    control_plane.kubectl(
        "apply", "--server-side", "-f", str(Path(__file__).parent / "monitoring-crds.yaml")
    )
    control_plane.kubectl("create", "namespace", "langmerge-system", check=False)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", str(manifest), check=False)
    assert result.returncode == 0, result.stderr
