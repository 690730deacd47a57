"""The local loop's input: the LanguageAdapter and MergedModel manifests of a folder, validated
by the same models as the cluster's API. Other kinds (a Namespace, say) are skipped."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from langmerge.operator.api.adapter import LanguageAdapter
from langmerge.operator.api.merged import MergedModel

NAMESPACE = "local"
KINDS: dict[str, type[LanguageAdapter] | type[MergedModel]] = {
    "LanguageAdapter": LanguageAdapter,
    "MergedModel": MergedModel,
}


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the object, the field and the fix."""


def _describe(kind: str, name: str, source: Path, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        got = f", got {item['input']!r}" if not isinstance(item.get("input"), dict | list) else ""
        problems.append(f"{where}: {item['msg']}{got}")
    return (
        f"{kind} {name} ({source.name}): "
        + "; ".join(problems)
        + "; fix the manifest and run again"
    )


def load_manifests(directory: Path) -> tuple[list[LanguageAdapter], list[MergedModel]]:
    """Every LanguageAdapter and MergedModel in the folder's YAML files (multi-document)."""
    adapters: list[LanguageAdapter] = []
    merged: list[MergedModel] = []
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise ManifestError(f"{directory}: no .yaml manifests found")
    for source in files:
        try:
            documents = [d for d in yaml.safe_load_all(source.read_text(encoding="utf-8")) if d]
        except yaml.YAMLError as error:
            raise ManifestError(f"{source}: not valid YAML ({error})") from error
        for raw in documents:
            kind = raw.get("kind")
            if kind not in KINDS:
                continue  # other objects (a Namespace, say) are the cluster's business
            name = (raw.get("metadata") or {}).get("name", "<no name>")
            document = {
                **raw,
                "metadata": {**raw.get("metadata", {}), "namespace": NAMESPACE},
            }
            try:
                parsed = KINDS[kind].model_validate(document)
            except ValidationError as error:
                raise ManifestError(_describe(kind, name, source, error)) from error
            (adapters if isinstance(parsed, LanguageAdapter) else merged).append(parsed)  # type: ignore[arg-type]
    for group in (adapters, merged):
        names = [r.metadata.name for r in group]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ManifestError(
                f"{group[0].KIND} {duplicates[0]} is defined twice; names must be unique"
            )
    return adapters, merged
