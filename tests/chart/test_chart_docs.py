"""The chart's documentation has one source, the `# --` comments of values.yaml: every value
has one, and the chart's README.md (helm-docs) and the schema's descriptions are what
`make chart-docs` makes of them now."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import REPO, require


def test_the_chart_readme_and_schema_descriptions_are_fresh() -> None:
    require(shutil.which("go") is not None, "the go command is missing (it builds helm-docs)")
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "chart_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
