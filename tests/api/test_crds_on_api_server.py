"""The generated CRDs on a real kube-apiserver: installation, admission, defaults, status
subresource, printer columns and `kubectl explain`."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.merged import MergedModel
from tests.conftest import REPO
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client, eventually, load_documents

GROUP, VERSION = "langmerge.io", "v1alpha1"

VALID_ADAPTER: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "LanguageAdapter",
    "metadata": {"name": "sentiment-de"},
    "spec": {
        "baseModel": {"name": "builtin:tiny"},
        "task": "sentiment",
        "language": "de",
        "dataset": {"uri": "datasets/sentiment/de.jsonl"},
    },
}
VALID_MERGED: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "MergedModel",
    "metadata": {"name": "sentiment"},
    "spec": {
        "baseModel": {"name": "builtin:tiny"},
        "task": "sentiment",
        "adapters": {"names": ["sentiment-de", "sentiment-fr"]},
    },
}

_DELETE = object()


def _mutated(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = obj
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return obj


VALIDATION = {"de": "datasets/sentiment/de-validation.jsonl"}
# (case, spec.search, the field the API server's message names): a merge search's bad input
SEARCH_BAD: list[tuple[str, Any, str]] = [
    ("search with an empty grid", {"grid": [], "validation": VALIDATION}, "spec.search.grid"),
    (
        "search density for linear",
        {"grid": [{"method": "linear", "densities": [0.5]}], "validation": VALIDATION},
        "spec.search.grid[0].densities",
    ),
    (
        "search seeds for ties",
        {"grid": [{"method": "ties", "seeds": [1]}], "validation": VALIDATION},
        "spec.search.grid[0].seeds",
    ),
    (
        "search with more than 64 candidates",
        {
            "grid": [
                {
                    "method": "knots-ties",
                    "densities": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                    "lambdas": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
                }
            ],
            "validation": VALIDATION,
        },
        "spec.search.grid",
    ),
    (
        "search with a repeated density",
        {"grid": [{"method": "ties", "densities": [0.5, 0.5]}], "validation": VALIDATION},
        "spec.search.grid[0].densities",
    ),
    (
        "search without validation data",
        {"grid": [{"method": "ties"}]},
        "spec.search.validation",
    ),
    (
        "search weights both preset and languages",
        {
            "grid": [
                {"method": "ties", "weights": [{"preset": "uniform", "languages": {"de": 1}}]}
            ],
            "validation": VALIDATION,
        },
        "spec.search.grid[0].weights[0]",
    ),
    (
        "search weight key not a language",
        {
            "grid": [{"method": "ties", "weights": [{"languages": {"German": 1}}]}],
            "validation": VALIDATION,
        },
        "spec.search.grid[0].weights[0].languages",
    ),
    (
        "search by an unknown metric",
        {"grid": [{"method": "ties"}], "metric": "bleu", "validation": VALIDATION},
        "spec.search.metric",
    ),
]

# (object, dotted path to change, new value, text the API server's message must contain)
INVALID: list[tuple[str, dict[str, Any], str, Any, str]] = [
    ("rank zero", VALID_ADAPTER, "spec.lora.rank", 0, "spec.lora.rank"),
    ("rank too large", VALID_ADAPTER, "spec.lora.rank", 5000, "spec.lora.rank"),
    ("rank not a number", VALID_ADAPTER, "spec.lora.rank", "sixteen", "spec.lora.rank"),
    ("alpha zero", VALID_ADAPTER, "spec.lora.alpha", 0, "spec.lora.alpha"),
    ("dropout one", VALID_ADAPTER, "spec.lora.dropout", 1.0, "spec.lora.dropout"),
    ("no target modules", VALID_ADAPTER, "spec.lora.targetModules", [], "spec.lora.targetModules"),
    (
        "too many target modules",
        VALID_ADAPTER,
        "spec.lora.targetModules",
        [f"m{i}" for i in range(40)],
        "spec.lora.targetModules",
    ),
    ("language a word", VALID_ADAPTER, "spec.language", "German", "spec.language"),
    ("language one letter", VALID_ADAPTER, "spec.language", "d", "spec.language"),
    ("language underscore", VALID_ADAPTER, "spec.language", "de_DE", "spec.language"),
    ("dataset missing", VALID_ADAPTER, "spec.dataset", _DELETE, "spec.dataset"),
    ("dataset uri empty", VALID_ADAPTER, "spec.dataset.uri", "", "spec.dataset.uri"),
    ("dataset format unknown", VALID_ADAPTER, "spec.dataset.format", "xlsx", "spec.dataset.format"),
    (
        "prompt without response",
        VALID_ADAPTER,
        "spec.dataset.fields",
        {"prompt": "q"},
        "spec.dataset.fields",
    ),
    (
        "two text styles",
        VALID_ADAPTER,
        "spec.dataset.fields",
        {"text": "a", "messages": "b"},
        "spec.dataset.fields",
    ),
    (
        "base model name missing",
        VALID_ADAPTER,
        "spec.baseModel.name",
        _DELETE,
        "spec.baseModel.name",
    ),
    ("task missing", VALID_ADAPTER, "spec.task", _DELETE, "spec.task"),
    ("task with spaces", VALID_ADAPTER, "spec.task", "Sentiment Analysis", "spec.task"),
    (
        "precision unknown",
        VALID_ADAPTER,
        "spec.training.precision",
        "int4",
        "spec.training.precision",
    ),
    (
        "negative learning rate",
        VALID_ADAPTER,
        "spec.training.learningRate",
        -1,
        "spec.training.learningRate",
    ),
    ("batch size zero", VALID_ADAPTER, "spec.training.batchSize", 0, "spec.training.batchSize"),
    ("zero epochs", VALID_ADAPTER, "spec.training.epochs", 0, "spec.training.epochs"),
    ("negative gpus", VALID_ADAPTER, "spec.resources.gpus", -1, "spec.resources.gpus"),
    ("zero nodes", VALID_ADAPTER, "spec.resources.nodes", 0, "spec.resources.nodes"),
    ("65 nodes", VALID_ADAPTER, "spec.resources.nodes", 65, "spec.resources.nodes"),
    ("cpu not a quantity", VALID_ADAPTER, "spec.resources.cpu", "lots", "spec.resources.cpu"),
    ("suspend not a bool", VALID_ADAPTER, "spec.suspend", "yes", "spec.suspend"),
    (
        "both selector and names",
        VALID_MERGED,
        "spec.adapters.selector",
        {"matchLabels": {"task": "x"}},
        "spec.adapters",
    ),
    ("neither selector nor names", VALID_MERGED, "spec.adapters", {}, "spec.adapters"),
    ("empty names", VALID_MERGED, "spec.adapters.names", [], "spec.adapters.names"),
    (
        "bad adapter name",
        VALID_MERGED,
        "spec.adapters.names",
        ["Bad_Name"],
        "spec.adapters.names[0]",
    ),
    ("unknown method", VALID_MERGED, "spec.method", "magic", "spec.method"),
    (
        "negative weight",
        VALID_MERGED,
        "spec.parameters.weights",
        {"de": -1},
        "spec.parameters.weights",
    ),
    (
        "weight key not a language",
        VALID_MERGED,
        "spec.parameters.weights",
        {"German": 1},
        "spec.parameters.weights",
    ),
    ("density zero", VALID_MERGED, "spec.parameters.density", 0, "spec.parameters.density"),
    ("density above one", VALID_MERGED, "spec.parameters.density", 1.5, "spec.parameters.density"),
    ("lambda zero", VALID_MERGED, "spec.parameters.lambda", 0, "spec.parameters.lambda"),
    (
        "unknown sign rule",
        VALID_MERGED,
        "spec.parameters.majoritySign",
        "mean",
        "spec.parameters.majoritySign",
    ),
    ("unknown output format", VALID_MERGED, "spec.output.format", "onnx", "spec.output.format"),
    (
        "gate drop above one",
        VALID_MERGED,
        "spec.evaluation",
        {"gate": {"maxDrop": 2}},
        "spec.evaluation.gate.maxDrop",
    ),
    (
        "unknown gate baseline",
        VALID_MERGED,
        "spec.evaluation",
        {"gate": {"against": "yesterday"}},
        "spec.evaluation.gate.against",
    ),
    (
        "unknown weight normalization",
        VALID_MERGED,
        "spec.parameters",
        {"weightNormalization": "sum"},
        "spec.parameters.weightNormalization",
    ),
    ("negative budget", VALID_MERGED, "spec.budget", {"monthlyUsd": -5}, "spec.budget.monthlyUsd"),
    ("base model missing", VALID_MERGED, "spec.baseModel", _DELETE, "spec.baseModel"),
    *[(case, VALID_MERGED, "spec.search", search, field) for case, search, field in SEARCH_BAD],
]


@pytest.fixture(scope="module")
def plane_with_crds(control_plane: ControlPlane) -> ControlPlane:
    control_plane.install_crds()
    return control_plane


@pytest.fixture
def namespace(plane_with_crds: ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    plane_with_crds.kubectl("create", "namespace", name)
    yield name
    plane_with_crds.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def custom(plane_with_crds: ControlPlane) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client(plane_with_crds.kubeconfig))


def _plural(obj: dict[str, Any]) -> str:
    return {"LanguageAdapter": "languageadapters", "MergedModel": "mergedmodels"}[obj["kind"]]


def _create(custom: client.CustomObjectsApi, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    return custom.create_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, namespace, _plural(obj), obj, field_validation="Strict"
    )


def test_both_crds_become_established(plane_with_crds: ControlPlane) -> None:
    out = plane_with_crds.kubectl("get", "crd", "-o", "json").stdout
    established = {
        item["metadata"]["name"]
        for item in json.loads(out)["items"]
        if any(
            c["type"] == "Established" and c["status"] == "True"
            for c in item["status"]["conditions"]
        )
    }
    assert {"languageadapters.langmerge.io", "mergedmodels.langmerge.io"} <= established


def test_every_example_manifest_is_accepted(plane_with_crds: ControlPlane, namespace: str) -> None:
    manifests = sorted(REPO.glob("examples/**/*.yaml"))
    custom_resources = [
        path
        for path in manifests
        if any(doc.get("apiVersion") == f"{GROUP}/{VERSION}" for doc in load_documents(path))
    ]
    assert custom_resources, "examples/ holds no LanguageAdapter or MergedModel"
    for path in custom_resources:
        result = plane_with_crds.kubectl("apply", "-n", namespace, "-f", str(path), check=False)
        assert result.returncode == 0, f"{path.relative_to(REPO)} rejected:\n{result.stderr}"


def test_corpus_has_at_least_25_invalid_objects() -> None:
    assert len(INVALID) >= 25


@pytest.mark.parametrize(
    ("case", "base", "path", "value", "field"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_object_is_rejected_naming_the_field(
    custom: client.CustomObjectsApi,
    namespace: str,
    case: str,
    base: dict[str, Any],
    path: str,
    value: Any,
    field: str,
) -> None:
    with pytest.raises(ApiException) as rejected:
        _create(custom, namespace, _mutated(base, path, value))
    assert rejected.value.status == 422, rejected.value.body
    message = json.loads(rejected.value.body)["message"]
    assert field in message, f"{case}: the message does not name {field}: {message}"


# What passed admission before and made a Job the API server refuses (issue: "Specs that pass
# admission but make an invalid Job"): now refused at admission, by the API server and by the
# models the local loop uses, naming the field.
NEVER_A_VALID_JOB: list[tuple[str, str, Any, str]] = [
    ("name longer than a label value", "metadata.name", "a" * 70, "metadata.name"),
    ("name with a dot", "metadata.name", "h.fr", "metadata.name"),
    (
        "Exists toleration with a value",
        "spec.resources.tolerations",
        [{"key": "gpu", "operator": "Exists", "value": "yes"}],
        "spec.resources.tolerations[0].value",
    ),
    (
        "tolerationSeconds with NoSchedule",
        "spec.resources.tolerations",
        [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}],
        "spec.resources.tolerations[0].tolerationSeconds",
    ),
    (
        "toleration key with a space",
        "spec.resources.tolerations",
        [{"key": "bad key!", "operator": "Exists"}],
        "spec.resources.tolerations[0].key",
    ),
    ("queue name with a space", "spec.resources.queueName", "bad queue!", "queueName"),
    ("negative cpu", "spec.resources.cpu", "-1", "spec.resources.cpu"),
    ("negative cpu as a number", "spec.resources.cpu", -1, "spec.resources.cpu"),
    ("gpu type with a space", "spec.resources.gpuType", "NVIDIA A100", "gpuType"),
    ("node selector key", "spec.resources.nodeSelector", {"bad key!": "x"}, "nodeSelector"),
    ("node selector value", "spec.resources.nodeSelector", {"gpu": "a b"}, "nodeSelector"),
    (
        "priority class with an underscore",
        "spec.resources.priorityClassName",
        "High_Priority",
        "priorityClassName",
    ),
]


def test_search_validation_equal_to_evaluation_data_is_refused_naming_both_fields(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    obj = _mutated(
        VALID_MERGED, "spec.search", {"grid": [{"method": "ties"}], "validation": VALIDATION}
    )
    obj["spec"]["evaluation"] = {"datasets": {"de": VALIDATION["de"]}}
    with pytest.raises(ApiException) as rejected:
        _create(custom, namespace, obj)
    assert rejected.value.status == 422, rejected.value.body
    message = json.loads(rejected.value.body)["message"]
    assert "spec.search.validation" in message and "evaluation.datasets" in message, message
    with pytest.raises(ValidationError, match=r"evaluation\.datasets"):  # the local loop too
        MergedModel.model_validate({**obj, "metadata": {**obj["metadata"], "namespace": "x"}})
    obj["spec"]["evaluation"]["datasets"]["de"] = "datasets/sentiment/de-eval.jsonl"
    _create(custom, namespace, obj)  # held apart: accepted


@pytest.mark.parametrize(("case", "search", "field"), SEARCH_BAD, ids=[c[0] for c in SEARCH_BAD])
def test_the_local_loop_refuses_every_bad_search_too(case: str, search: Any, field: str) -> None:
    obj = _mutated(VALID_MERGED, "spec.search", search)
    with pytest.raises(ValidationError):
        MergedModel.model_validate({**obj, "metadata": {**obj["metadata"], "namespace": "x"}})


def test_a_candidate_repeated_across_grid_entries_is_refused_by_the_models() -> None:
    """The API server cannot compare candidates across entries; the operator's models refuse
    the object before any work (Failed, InvalidSpec), naming the entries."""
    grid = [{"method": "linear"}, {"method": "linear", "lambdas": [1.0]}]
    obj = _mutated(VALID_MERGED, "spec.search", {"grid": grid, "validation": VALIDATION})
    with pytest.raises(
        ValidationError, match=r"grid\[1\]: the candidate .* repeats one of grid\[0\]"
    ):
        MergedModel.model_validate({**obj, "metadata": {**obj["metadata"], "namespace": "x"}})


@pytest.mark.parametrize(
    ("case", "path", "value", "field"), NEVER_A_VALID_JOB, ids=[c[0] for c in NEVER_A_VALID_JOB]
)
def test_what_can_never_make_a_valid_job_is_refused_at_admission(
    custom: client.CustomObjectsApi, namespace: str, case: str, path: str, value: Any, field: str
) -> None:
    obj = _mutated(VALID_ADAPTER, path, value)
    with pytest.raises(ApiException) as rejected:
        _create(custom, namespace, obj)
    assert rejected.value.status == 422, rejected.value.body
    message = json.loads(rejected.value.body)["message"]
    assert field in message, f"{case}: the message does not name {field}: {message}"
    with pytest.raises(ValidationError):  # the local loop refuses it too
        LanguageAdapter.model_validate({**obj, "metadata": {**obj["metadata"], "namespace": "x"}})


def test_unknown_field_is_rejected_not_dropped(
    plane_with_crds: ControlPlane, namespace: str
) -> None:
    typo = _mutated(VALID_ADAPTER, "spec.lorra", {"rank": 8})
    result = plane_with_crds.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(typo), check=False
    )
    assert result.returncode != 0
    assert "spec.lorra" in result.stderr


def test_quantities_accept_both_forms(custom: client.CustomObjectsApi, namespace: str) -> None:
    adapter = _mutated(VALID_ADAPTER, "spec.resources", {"cpu": 4, "memory": "64Gi"})
    adapter = _mutated(adapter, "metadata.name", "quantities")
    stored = _create(custom, namespace, adapter)
    assert stored["spec"]["resources"]["cpu"] == 4
    assert stored["spec"]["resources"]["memory"] == "64Gi"
    millicores = _mutated(adapter, "spec.resources", {"cpu": "7500m"})
    millicores = _mutated(millicores, "metadata.name", "millicores")
    assert _create(custom, namespace, millicores)["spec"]["resources"]["cpu"] == "7500m"


def test_language_and_task_are_immutable(custom: client.CustomObjectsApi, namespace: str) -> None:
    _create(custom, namespace, VALID_ADAPTER)
    for path, value in (("language", "fr"), ("task", "summary")):
        with pytest.raises(ApiException) as rejected:
            custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "languageadapters",
                "sentiment-de",
                {"spec": {path: value}},
            )
        assert f"{path} is immutable" in json.loads(rejected.value.body)["message"]


def test_a_merged_models_task_is_immutable(custom: client.CustomObjectsApi, namespace: str) -> None:
    created = _create(custom, namespace, VALID_MERGED)
    with pytest.raises(ApiException) as rejected:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "mergedmodels",
            created["metadata"]["name"],
            {"spec": {"task": "summary"}},
        )
    assert "task is immutable" in json.loads(rejected.value.body)["message"]
    # other fields stay editable
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "mergedmodels",
        created["metadata"]["name"],
        {"spec": {"method": "ties"}},
    )


def test_defaults_are_applied(custom: client.CustomObjectsApi, namespace: str) -> None:
    adapter = _create(custom, namespace, VALID_ADAPTER)["spec"]
    assert adapter["lora"] == {
        "rank": 16,
        "alpha": 32,
        "dropout": 0.05,
        "useRslora": False,
        "targetModules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    }
    assert adapter["training"]["precision"] == "bf16"
    assert adapter["dataset"]["fields"] == {"prompt": "prompt", "response": "response"}
    assert adapter["dataset"]["format"] == "auto"
    assert adapter["baseModel"]["revision"] == "main"
    assert adapter["resources"]["gpus"] == 1
    assert adapter["suspend"] is False

    merged = _create(custom, namespace, VALID_MERGED)["spec"]
    assert merged["method"] == "knots-ties"
    assert merged["parameters"]["density"] == 0.5
    assert merged["parameters"]["lambda"] == 1.0
    assert merged["parameters"]["majoritySign"] == "total"
    assert merged["output"]["format"] == "lora"
    assert merged["resources"]["gpus"] == 0


def assert_contains(actual: Any, expected: Any, path: str = "status") -> None:
    """Every field of expected is in actual with the same value."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} was pruned"
            assert_contains(actual[key], value, f"{path}.{key}")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def _ready_status() -> dict[str, Any]:
    return {
        "observedGeneration": 1,
        "phase": "Ready",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "UpToDate",
                "message": "",
                "lastTransitionTime": "2026-11-26T10:00:00Z",
            },
            {
                "type": "Training",
                "status": "False",
                "reason": "Idle",
                "message": "",
                "lastTransitionTime": "2026-11-26T10:00:00Z",
            },
        ],
        "totals": {"runs": 1, "succeeded": 1, "failed": 0, "gpuSeconds": 3600, "costUsd": 4.1},
        "lastRun": {
            "job": "sentiment-de-train-abc",
            "fingerprint": "abc",
            "summary": {"tokensPerSecond": 1234.5},
        },
    }


def test_status_is_written_only_through_the_subresource(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    _create(custom, namespace, VALID_ADAPTER)
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "languageadapters", "sentiment-de", {"status": _ready_status()}
    )
    unchanged = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "languageadapters", "sentiment-de"
    )
    assert "status" not in unchanged

    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "languageadapters", "sentiment-de", {"status": _ready_status()}
    )
    stored = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "languageadapters", "sentiment-de"
    )
    # Everything the operator writes survives: nothing pruned (the server may add defaults).
    assert_contains(stored["status"], _ready_status())


def test_printer_columns_show_the_phase_the_ready_reason_and_cost(
    plane_with_crds: ControlPlane, custom: client.CustomObjectsApi, namespace: str
) -> None:
    _create(custom, namespace, VALID_ADAPTER)
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "languageadapters", "sentiment-de", {"status": _ready_status()}
    )
    table = plane_with_crds.kubectl("get", "la", "-n", namespace).stdout.splitlines()
    assert table[0].split()[:6] == ["NAME", "LANGUAGE", "TASK", "PHASE", "REASON", "COST"]
    assert table[1].split()[:6] == ["sentiment-de", "de", "sentiment", "Ready", "UpToDate", "4.1"]
    listed = plane_with_crds.kubectl("get", "langmerge", "-n", namespace, "-o", "name").stdout
    assert "languageadapter.langmerge.io/sentiment-de" in listed  # the category works


def test_kubectl_explain_shows_field_descriptions(plane_with_crds: ControlPlane) -> None:
    def explained() -> str | None:
        result = plane_with_crds.kubectl("explain", "languageadapter.spec.lora", check=False)
        return result.stdout if result.returncode == 0 else None

    text = eventually(explained, what="kubectl explain to find the published schema")
    assert "LoRA rank r." in text
    assert "Names of the linear modules that get adapters." in text
    merged = plane_with_crds.kubectl("explain", "mergedmodel.spec.parameters.density").stdout
    assert "in (0, 1]" in merged
