"""Builders of LanguageAdapter and MergedModel objects for tests."""

from __future__ import annotations

import copy
from typing import Any

GROUP, VERSION = "langmerge.io", "v1alpha1"
LANGUAGES = ("en", "de", "fr", "ja", "zh")


def adapter_manifest(
    language: str,
    name: str | None = None,
    task: str = "sentiment",
    revision: str = "v1",
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LanguageAdapter",
        "metadata": {"name": name or f"{task}-{language}", "labels": {"langmerge.io/task": task}},
        "spec": {
            "baseModel": {"name": "builtin:tiny"},
            "task": task,
            "language": language,
            "dataset": {"uri": f"datasets/{task}/{language}.jsonl", "revision": revision},
            "lora": {"rank": 8},
            "resources": {"gpus": 1, "gpuType": "nvidia-a100-80gb"},
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body


def merged_manifest(
    name: str = "sentiment", task: str = "sentiment", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MergedModel",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "builtin:tiny"},
            "task": task,
            "adapters": {"selector": {"matchLabels": {"langmerge.io/task": task}}},
            "method": "knots-ties",
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body
