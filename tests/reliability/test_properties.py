"""Property-based: generated LanguageAdapters and MergedModels, valid and invalid, sent to the
real API server with the operator running. The API server and the pydantic models (the one
source of truth) agree on every object; invalid ones are rejected naming the field; the
operator never crashes and its reconcile errors settle."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from pydantic import ValidationError

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.merged import MergedModel
from tests.support.control_plane import ControlPlane
from tests.support.kube import api_client
from tests.support.objects import GROUP, VERSION
from tests.support.operator import OperatorProcess

EXAMPLES = 60
languages = st.sampled_from(["de", "en", "zh-Hans", "pt-BR", "German", "d", "de_DE", "", "x" * 40])
numbers = st.one_of(st.integers(-5, 5000), st.floats(-2, 3, allow_nan=False), st.just("eight"))

adapter_specs = st.fixed_dictionaries(
    {
        "baseModel": st.just({"name": "builtin:tiny"}),
        "task": st.sampled_from(["sentiment", "Bad Task", "s"]),
        "language": languages,
        "dataset": st.just({"uri": "datasets/x.jsonl"}),
    },
    optional={
        "lora": st.fixed_dictionaries(
            {}, optional={"rank": numbers, "alpha": numbers, "dropout": numbers}
        ),
        "training": st.fixed_dictionaries(
            {},
            optional={
                "batchSize": numbers,
                "learningRate": numbers,
                "precision": st.sampled_from(["bf16", "int4"]),
            },
        ),
        "suspend": st.sampled_from([True, False, "yes"]),
    },
)
merged_specs = st.fixed_dictionaries(
    {
        "baseModel": st.just({"name": "builtin:tiny"}),
        "task": st.just("sentiment"),
        "adapters": st.sampled_from(
            [
                {"names": ["a-de"]},
                {"selector": {"matchLabels": {"t": "s"}}},
                {},
                {"names": []},
                {"names": ["a"], "selector": {}},
            ]
        ),
    },
    optional={
        "method": st.sampled_from(["knots-ties", "ties", "cat", "magic"]),
        "parameters": st.fixed_dictionaries(
            {},
            optional={
                "density": numbers,
                "lambda": numbers,
                "weights": st.sampled_from([{"de": 1.5}, {"de": -1}, {"German": 1}]),
            },
        ),
    },
)


def _locally_valid(model: type[LanguageAdapter] | type[MergedModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate({**body, "metadata": {**body["metadata"], "namespace": "x"}})
    except ValidationError:
        return False
    return True


def test_generated_objects(control_plane: ControlPlane, tmp_path: Path) -> None:
    control_plane.install_crds()
    api = api_client(control_plane.kubeconfig)
    custom = client.CustomObjectsApi(api)
    namespace = f"prop-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    operator = OperatorProcess(control_plane, tmp_path).start()
    tried = {"valid": 0, "invalid": 0}

    def send(
        kind: str,
        plural: str,
        model: type[LanguageAdapter] | type[MergedModel],
        spec: dict[str, Any],
    ) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": f"g-{uuid.uuid4().hex[:10]}"},
            "spec": spec,
        }
        expected = _locally_valid(model, body)
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
            accepted, message = True, ""
        except client.exceptions.ApiException as error:
            assert error.status == 422, error.body
            accepted, message = False, json.loads(error.body)["message"]
        assert accepted == expected, (
            f"API server {'accepted' if accepted else 'rejected'} {spec}: {message}"
        )
        if not accepted:
            assert re.search(r"spec\.[A-Za-z]", message), message  # the field is named
        tried["valid" if accepted else "invalid"] += 1

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(spec=adapter_specs)
    def adapters(spec: dict[str, Any]) -> None:
        send("LanguageAdapter", "languageadapters", LanguageAdapter, spec)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(spec=merged_specs)
    def merged(spec: dict[str, Any]) -> None:
        send("MergedModel", "mergedmodels", MergedModel, spec)

    try:
        adapters()
        merged()

        def errors() -> float:
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in operator.metrics().splitlines()
                if line.startswith("langmerge_reconcile_errors_total{")
            )

        settled = errors()
        time.sleep(5)
        assert errors() == settled, "reconcile errors keep growing"
        assert operator.process is not None and operator.process.poll() is None, operator.tail()
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "languageadapters")[
            "items"
        ]
        conditioned = [i for i in items if (i.get("status") or {}).get("conditions")]
        assert len(conditioned) == len(items), "every accepted adapter reaches a condition"
    finally:
        operator.stop()
    print(f"property cases: {tried}")
    assert tried["valid"] > 5 and tried["invalid"] > 5
