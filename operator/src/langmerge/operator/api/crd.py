"""Generates the CustomResourceDefinitions from the pydantic models.

The models are the single source of truth; this module turns their JSON schema into an
apiextensions.k8s.io/v1 structural schema: references inlined, Optional collapsed, bounds in
OpenAPI v3 form, defaults (including default factories) filled in, CEL rules carried over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.common import DNS_LABEL, GROUP, VERSION
from langmerge.operator.api.merged import MergedModel

RESOURCES: tuple[type[LanguageAdapter] | type[MergedModel], ...] = (LanguageAdapter, MergedModel)
CATEGORY = "langmerge"


class _KubernetesSchema(GenerateJsonSchema):
    """JSON schema with defaults from default factories, dumped the way the API stores them."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return schema.get("default", NoDefault)

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, BaseModel):
            return dft.model_dump(by_alias=True, exclude_none=True, mode="json")
        return super().encode_default(dft)


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrites one JSON-schema node (recursively) into the Kubernetes structural dialect."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node

    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # a field's own description and default win over the type's

    any_of = node.get("anyOf")
    if any_of is not None:
        non_null = [s for s in any_of if s != {"type": "null"}]
        if len(non_null) == 1:  # Optional[X]: "absent" is how Kubernetes spells null
            del node["anyOf"]
            inner = non_null[0]
            if "$ref" in inner:
                inner = {**defs[inner["$ref"].rsplit("/", 1)[-1]]}
            node = {**inner, **{k: v for k, v in node.items() if k != "title"}}
            return _structural(node, defs)

    for drop in ("title", "$defs"):
        node.pop(drop, None)
    if node.get("default", 0) is None:
        del node["default"]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node.get(bound), bool):
            node[inclusive] = node[bound]
            node[bound] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if (
        node.get("type") == "object"
        and "properties" not in node
        and "additionalProperties" not in node
    ):
        node.setdefault("x-kubernetes-preserve-unknown-fields", True)

    for key in ("properties",):
        if key in node:
            node[key] = {name: _structural(sub, defs) for name, sub in node[key].items()}
    for key in ("items", "additionalProperties", "anyOf"):
        if key in node and node[key] is not True:
            node[key] = _structural(node[key], defs)
    return node


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural openAPIV3Schema of one custom resource model."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_KubernetesSchema)
    defs = raw.get("$defs", {})
    schema: dict[str, Any] = _structural(raw, defs)
    schema["description"] = model.DESCRIPTION  # type: ignore[attr-defined]
    # The API server owns the envelope: declare it the way built-in CRDs do.
    schema["properties"] |= {
        "apiVersion": {"type": "string", "description": "APIVersion of this object."},
        "kind": {"type": "string", "description": "Kind of this object."},
        "metadata": {"type": "object"},
    }
    schema["x-kubernetes-validations"] = [
        {
            "rule": f"self.metadata.name.size() <= 63 && self.metadata.name.matches('{DNS_LABEL}')",
            "message": "metadata.name must be a DNS label (lowercase letters, digits and '-', "
            "at most 63 characters): it labels the object's Jobs",
        }
    ]
    schema["properties"]["status"]["description"] = "Observed state, written by the operator only."
    schema["properties"]["spec"]["description"] = "Desired state."
    return schema


def custom_resource_definition(model: type[LanguageAdapter] | type[MergedModel]) -> dict[str, Any]:
    singular = model.KIND.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{model.PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": model.KIND,
                "listKind": f"{model.KIND}List",
                "plural": model.PLURAL,
                "singular": singular,
                "shortNames": model.SHORT_NAMES,
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": model.PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                }
            ],
        },
    }


def render(model: type[LanguageAdapter] | type[MergedModel]) -> str:
    header = "# Generated from langmerge.operator.api by `make crds`; do not edit.\n"
    body = yaml.safe_dump(custom_resource_definition(model), sort_keys=True, width=100)
    return header + body


def crd_filename(model: type[LanguageAdapter] | type[MergedModel]) -> str:
    return f"{GROUP}_{model.PLURAL}.yaml"


def write_crds(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in RESOURCES:
        path = directory / crd_filename(model)
        path.write_text(render(model))
        written.append(path)
    return written


def stale_crds(directory: Path) -> list[str]:
    """Files under directory that differ from what the models generate (names, for messages)."""
    stale = []
    for model in RESOURCES:
        path = directory / crd_filename(model)
        if not path.exists() or path.read_text() != render(model):
            stale.append(str(path))
    return stale
