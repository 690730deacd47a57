"""Fingerprints: stable hashes of everything that changes a trained or merged result.

Labels, resources, output location and suspend never enter a fingerprint, so changing them
never retrains. Job names derive from fingerprints, so a restarted operator finds its Jobs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from langmerge.operator.api.adapter import LanguageAdapterSpec
from langmerge.operator.api.merged import MergedModelSpec

LENGTH = 20  # hex characters: 80 bits, collision-free at any realistic number of runs


def _digest(payload: dict[str, Any]) -> str:
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:LENGTH]


def adapter_fingerprint(spec: LanguageAdapterSpec, trainer_image: str) -> str:
    return _digest(
        {
            "kind": "train",
            "baseModel": spec.base_model.to_wire(),
            "task": spec.task,
            "language": spec.language,
            "dataset": spec.dataset.to_wire(),
            "lora": spec.lora.to_wire(),
            "training": spec.training.to_wire(),
            "trainerImage": trainer_image,
        }
    )


def merge_fingerprint(spec: MergedModelSpec, adapters: dict[str, str], merger_image: str) -> str:
    """adapters: name -> fingerprint of the artifact that goes into the merge."""
    return _digest(
        {
            "kind": "merge",
            "baseModel": spec.base_model.to_wire(),
            "task": spec.task,
            "method": spec.method,
            "parameters": spec.parameters.to_wire(),
            "output": spec.output.to_wire(),
            "evaluation": spec.evaluation.to_wire() if spec.evaluation else None,
            "adapters": dict(sorted(adapters.items())),
            "mergerImage": merger_image,
        }
    )


def job_name(object_name: str, role: str, fingerprint: str) -> str:
    """<name>-<role>-<fingerprint prefix>, within the 63 characters of a label value."""
    suffix = f"-{role}-{fingerprint[:10]}"
    return object_name[: 63 - len(suffix)].rstrip("-") + suffix
