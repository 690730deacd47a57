"""The embedded default: `langmerge up -f DIR` runs the whole loop on this machine with the
same manifests, planner, command lines and accounting as the cluster (runner.py), its runs
in a warm process or as plain subprocesses (processes.py), and a report (report.py)."""

from langmerge.operator.local.runner import ManifestError, State, load_manifests, up

__all__ = ["ManifestError", "State", "load_manifests", "up"]
