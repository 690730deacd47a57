"""The chart's documentation from one source, the `# --` comments in values.yaml:
charts/langmerge/README.md (helm-docs' values table) and the descriptions of those values in
values.schema.json (what `helm install` and editors show). Groups of values and the entries
of maps keep their descriptions in the schema itself.

helm-docs is built from the Go module proxy at HELM_DOCS_VERSION (hack/versions.env) into
~/.cache/langmerge/bin/, once per machine.

  python hack/chart_docs.py           regenerate README.md and the schema's descriptions
  python hack/chart_docs.py --check   exit 1 when either is stale, or a value has no description
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "langmerge"


def _pin(name: str) -> str:
    for line in (REPO / "hack" / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise SystemExit(f"{name} is not pinned in hack/versions.env")


def helm_docs() -> Path:
    version = _pin("HELM_DOCS_VERSION")
    binary = Path.home() / ".cache" / "langmerge" / "bin" / f"helm-docs-{version}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise SystemExit("the go command is missing: it builds helm-docs")
    with tempfile.TemporaryDirectory() as gobin:
        subprocess.run(
            [go, "install", f"github.com/norwoodj/helm-docs/cmd/helm-docs@{version}"],
            env={**os.environ, "GOBIN": gobin, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"},
            check=True,
            timeout=900,
        )
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(gobin) / "helm-docs"), binary)
    return binary


def _helm_docs(chart: Path, *args: str) -> str:
    """Runs helm-docs on one chart folder (it skips a chart it cannot read with only a
    warning: any warning is an error here)."""
    result = subprocess.run(
        [
            str(helm_docs()),
            "--chart-search-root",
            str(chart),
            "--sort-values-order",
            "file",
            "--skip-version-footer",
            "--log-level",
            "warning",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0 or "level=" in result.stderr:
        raise SystemExit(f"helm-docs failed:\n{result.stderr}")
    return result.stdout


def _descriptions(chart: Path) -> dict[str, str]:
    """Every value helm-docs lists with its `# --` description; one without is an error."""
    text = _helm_docs(chart, "--template-files", "descriptions.gotmpl", "--dry-run")
    pairs = (line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    found = {key: " ".join(description.split()) for key, description in pairs}
    undocumented = [key for key, description in found.items() if not description]
    if undocumented:
        raise SystemExit(f"values.yaml: no `# --` description for {', '.join(undocumented)}")
    return found


def _schema_node(schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    node = schema
    for part in key.split("."):
        node = (node.get("properties") or {}).get(part)
        if node is None:
            return None
    return node


def generate(chart: Path) -> None:
    """Writes chart/README.md and the value descriptions of chart/values.schema.json."""
    _helm_docs(chart, "--template-files", "README.md.gotmpl")
    schema_path = chart / "values.schema.json"
    schema = json.loads(schema_path.read_text())
    missing = []
    for key, description in _descriptions(chart).items():
        node = _schema_node(schema, key)
        if node is None:
            missing.append(key)
        else:
            node["description"] = description
    if missing:
        raise SystemExit(f"values.schema.json has no entry for: {', '.join(missing)}")
    schema_path.write_text(json.dumps(schema, indent=2) + "\n")


def undescribed(schema: dict[str, Any], path: str = "") -> list[str]:
    """Schema properties (at any depth, map entries included) without a description."""
    found = []
    for name, node in (schema.get("properties") or {}).items():
        where = f"{path}.{name}" if path else name
        if not node.get("description"):
            found.append(where)
        found += undescribed(node, where)
    for nested in ("additionalProperties", "items"):
        if isinstance(schema.get(nested), dict):
            found += undescribed(schema[nested], f"{path}[*]")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the docs are stale")
    args = parser.parse_args()
    if not args.check:
        generate(CHART)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "langmerge"
        shutil.copytree(CHART, copy)
        generate(copy)
        stale = []
        for name in ("README.md", "values.schema.json"):
            ours = (CHART / name).read_text() if (CHART / name).exists() else ""
            fresh = (copy / name).read_text()
            if ours != fresh:
                stale.append(name)
                sys.stdout.writelines(
                    difflib.unified_diff(
                        ours.splitlines(True), fresh.splitlines(True), name, f"{name} (fresh)"
                    )
                )
    gaps = undescribed(json.loads((CHART / "values.schema.json").read_text()))
    if stale:
        print(f"stale: {', '.join(stale)}; run `make chart-docs`")
    if gaps:
        print(f"values.schema.json: no description for {', '.join(gaps)}")
    return 1 if stale or gaps else 0


if __name__ == "__main__":
    raise SystemExit(main())
