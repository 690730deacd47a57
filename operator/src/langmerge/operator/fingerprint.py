"""Fingerprints: stable hashes of everything that changes a trained or merged result.

Labels, resources, output location and suspend never enter a fingerprint, so changing them
never retrains. Job names derive from fingerprints, so a restarted operator finds its Jobs."""

from __future__ import annotations

import hashlib
import json
import re
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
    inputs = {
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
    if spec.search is not None:  # only when set: models without one keep their fingerprints
        inputs["search"] = spec.search.to_wire()
    return _digest(inputs)


def job_name(object_name: str, role: str, fingerprint: str) -> str:
    """<name>-<role>-<fingerprint prefix>, within the 63 characters of a label value."""
    suffix = f"-{role}-{fingerprint[:10]}"
    return object_name[: 63 - len(suffix)].rstrip("-") + suffix


# A TrainJob's pods are named <trainjob>-node-0-<rank>-<5 random characters>, a DNS label of
# at most 63 characters; ranks have up to two digits (api.adapter.MAX_NODES).
TRAINJOB_NAME_LIMIT = 63 - len("-node-0-") - 2 - len("-abcde")


def trainjob_name(object_name: str, fingerprint: str) -> str:
    """<name>-train-<fingerprint prefix> as an RFC 1035 label (a letter first, no dots) that
    leaves room for its pods' names. A name that does not fit as it is becomes lm-<part of
    it>-<digest of it>, so two adapters never share a TrainJob."""
    suffix = f"-train-{fingerprint[:10]}"
    room = TRAINJOB_NAME_LIMIT - len(suffix)
    stem = object_name
    if len(stem) > room or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", stem):
        digest = hashlib.sha256(object_name.encode()).hexdigest()[:6]
        part = re.sub(r"[^a-z0-9-]", "-", object_name)[: room - len("lm--") - len(digest)]
        stem = f"lm-{part.strip('-')}-{digest}".replace("--", "-")
    return stem + suffix
