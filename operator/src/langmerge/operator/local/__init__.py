"""The embedded default: `langmerge up -f DIR` runs the whole loop on this machine with the
same manifests (manifests.py), planner, command lines and ledger as the cluster (runner.py),
its runs in a warm process or as plain subprocesses (processes.py), its state typed as the
CRDs' status (state.py), and a report (report.py)."""

from langmerge.operator.local.manifests import ManifestError, load_manifests
from langmerge.operator.local.runner import up
from langmerge.operator.local.state import State

__all__ = ["ManifestError", "State", "load_manifests", "up"]
