"""The three images, built from their Dockerfiles (hack/images.sh) and run with podman + runc
under the constraints of the Jobs the operator generates: uid 10001, read-only root, all
capabilities dropped, emptyDir /tmp and /cache, the artifacts volume, the termination message
where the operator reads it. The operator image runs the operator against the real API
server. Prints `RESULT image_size_mb_<name>=N`."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from langmerge.common import builtin
from langmerge.common.summary import MergeSummary, TrainingSummary, parse_summary
from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.merged import MergedModel
from langmerge.operator.config import OperatorConfig
from langmerge.operator.jobs import merge_job, training_job
from langmerge.operator.planner import Action, plan_merge, plan_training
from tests.conftest import require
from tests.support.containers import (
    ULIMITS,
    build_images,
    image,
    missing_tools,
    run_pod,
)
from tests.support.control_plane import REPO, ControlPlane, free_port
from tests.support.kube import api_client, eventually
from tests.support.objects import adapter_manifest, merged_manifest

QUICKSTART = REPO / "examples" / "quickstart" / "datasets" / "sentiment"
NAMESPACE = "images"
FS_GROUP = 10001


@pytest.fixture(scope="module")
def sizes() -> dict[str, int]:
    missing = missing_tools()
    require(not missing, f"building images needs {', '.join(missing)} (or root with apt-get)")
    sizes = build_images()
    for name, megabytes in sorted(sizes.items()):
        print(f"RESULT image_size_mb_{name}={megabytes}")
    return sizes


@pytest.fixture(scope="module")
def config() -> OperatorConfig:
    return OperatorConfig(trainer_image=image("trainer"), merger_image=image("merger"))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artifacts volume: writable by the pods' fsGroup, as the PVC is in a cluster."""
    root = tmp_path_factory.mktemp("artifacts")
    data = root / "datasets"
    data.mkdir()
    for language in ("de", "fr"):  # a slice of the quickstart keeps the runs short
        lines = (QUICKSTART / f"{language}-train.jsonl").read_text().splitlines()[:32]
        (data / f"{language}.jsonl").write_text("\n".join(lines) + "\n")
    for path in [root, *root.rglob("*")]:
        shutil.chown(path, group=FS_GROUP)
        path.chmod(0o2775 if path.is_dir() else 0o664)
    return root


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The host's builtin:tiny, readable by uid 10001 and mounted read-only into /cache: the
    pods would build the same model (same recipe, same key) in 90 s each."""
    built = builtin.path()
    copy = tmp_path_factory.mktemp("models") / built.name
    shutil.copytree(built, copy)
    for path in [copy.parent, copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ["--volume", f"{copy}:/cache/langmerge/models/{copy.name}:ro"]


def test_the_operator_image_has_no_torch(sizes: dict[str, int]) -> None:
    find_torch = "import importlib.util as u; print(u.find_spec('torch'))"
    probe = subprocess.run(
        ["podman", "run", "--runtime", "runc", "--rm", *ULIMITS, "--entrypoint", "python",
         image("operator"), "-c", find_torch],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "None"
    assert sizes["operator"] < 1000 < sizes["trainer"]


def test_trainer_and_merger_images_run_the_operators_jobs(
    sizes: dict[str, int],
    config: OperatorConfig,
    artifacts: Path,
    model_cache: list[str],
    tmp_path: Path,
) -> None:
    trained = []
    for language in ("de", "fr"):
        body = adapter_manifest(
            language,
            dataset={"uri": f"/artifacts/datasets/{language}.jsonl"},
            resources={"gpus": 0, "memory": "3Gi"},
            training={"epochs": 1, "batchSize": 8, "maxSeqLength": 64},
        )
        body["metadata"]["namespace"] = NAMESPACE
        adapter = LanguageAdapter.model_validate(body)
        plan = plan_training(adapter, config.trainer_image)
        job = training_job(config, adapter, plan)
        pod = job["spec"]["template"]["spec"]
        done = run_pod(pod, tmp_path, {"artifacts": artifacts}, model_cache)
        assert done.code == 0, done.output[-3000:]
        summary = parse_summary(done.termination_message, TrainingSummary)
        assert summary is not None and summary.output is not None, done.termination_message
        uri = summary.output.uri
        assert (artifacts / Path(uri).relative_to("/artifacts") / "adapter_config.json").is_file()
        body["status"] = {
            "artifact": {
                "uri": uri,
                "sha256": summary.output.sha256,
                "fingerprint": plan.fingerprint,
            }
        }
        trained.append(LanguageAdapter.model_validate(body))

    body = merged_manifest(
        adapters={"names": ["sentiment-de", "sentiment-fr"]}, resources={"gpus": 0, "memory": "3Gi"}
    )
    body["metadata"]["namespace"] = NAMESPACE
    merged = MergedModel.model_validate(body)
    plan = plan_merge(merged, trained, config.trainer_image, config.merger_image)
    assert plan.action == Action.RUN, plan
    pod = merge_job(config, merged, plan)["spec"]["template"]["spec"]
    done = run_pod(pod, tmp_path, {"artifacts": artifacts}, model_cache)
    assert done.code == 0, done.output[-3000:]
    summary = parse_summary(done.termination_message, MergeSummary)
    assert summary is not None and summary.output is not None, done.termination_message
    output = artifacts / Path(summary.output.uri).relative_to("/artifacts")

    from peft import PeftModel  # the published merge loads with peft, outside the image
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(builtin.path())
    assert isinstance(PeftModel.from_pretrained(base, output), PeftModel)
    meta = json.loads((output / "langmerge.json").read_text())
    assert meta["method"] == "knots-ties" and len(meta["inputs"]) == 2


def test_a_memory_limit_too_small_kills_the_trainer_as_the_kubelet_would_see_it(
    sizes: dict[str, int], config: OperatorConfig, artifacts: Path, tmp_path: Path
) -> None:
    body = adapter_manifest(
        "de",
        dataset={"uri": "/artifacts/datasets/de.jsonl"},
        resources={"gpus": 0, "memory": "64Mi"},
    )
    body["metadata"]["namespace"] = NAMESPACE
    adapter = LanguageAdapter.model_validate(body)
    pod = training_job(config, adapter, plan_training(adapter, config.trainer_image))
    done = run_pod(pod["spec"]["template"]["spec"], tmp_path, {"artifacts": artifacts})
    assert done.oom_killed and done.code == 137, (done.code, done.output[-2000:])


@pytest.fixture
def operator_container(
    sizes: dict[str, int], control_plane: ControlPlane, tmp_path: Path
) -> Iterator[str]:
    control_plane.install_crds()
    flat = control_plane.kubectl("config", "view", "--raw", "--flatten").stdout
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(flat)
    kubeconfig.chmod(0o644)
    name = f"langmerge-operator-{uuid.uuid4().hex[:8]}"
    environment = {
        "KUBECONFIG": "/etc/langmerge/kubeconfig",
        "LANGMERGE_TRAINER_IMAGE": image("trainer"),
        "LANGMERGE_MERGER_IMAGE": image("merger"),
        "LANGMERGE_METRICS_PORT": str(free_port()),
    }
    # The host's network (the test API server listens on loopback): free ports, not the
    # image's defaults, for the liveness probe and /metrics.
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    subprocess.run(
        [
            "podman", "run", "--runtime", "runc", "--detach", "--name", name,
            "--network", "host", *ULIMITS,
            "--read-only", "--user", "10001:10001", "--cap-drop", "ALL",
            "--mount", "type=tmpfs,destination=/tmp,tmpfs-mode=1777",
            "--volume", f"{kubeconfig}:/etc/langmerge/kubeconfig:ro",
            *(flag for key, value in environment.items() for flag in ("--env", f"{key}={value}")),
            # The image's own entrypoint with arguments in the chart's shape.
            image("operator"), "operator", "--liveness", liveness, "--namespace", NAMESPACE,
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield name
    logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, check=False)
    print(logs.stdout[-3000:], logs.stderr[-3000:])
    subprocess.run(["podman", "rm", "--force", name], capture_output=True, check=False)


def test_the_operator_image_reconciles_against_the_api_server(
    control_plane: ControlPlane, operator_container: str
) -> None:
    api = api_client(control_plane.kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except client.exceptions.ApiException as exists:
        assert exists.status == 409
    started = time.monotonic()
    custom.create_namespaced_custom_object(
        "langmerge.io", "v1alpha1", NAMESPACE, "languageadapters", adapter_manifest("ja")
    )

    def job_image() -> str | None:
        jobs = client.BatchV1Api(api).list_namespaced_job(NAMESPACE).items
        return jobs[0].spec.template.spec.containers[0].image if jobs else None

    assert eventually(job_image, timeout_s=120, what="the Job") == image("trainer")
    print(f"RESULT operator_image_apply_to_job_seconds={time.monotonic() - started:.1f}")
