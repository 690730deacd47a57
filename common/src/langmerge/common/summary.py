"""The run summary: one JSON object, at most 4 KiB, written to the container's termination
message (where the operator reads it) or to a file."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

TERMINATION_LOG = Path("/dev/termination-log")
LIMIT_BYTES = 4096


def default_summary_path() -> Path | None:
    return TERMINATION_LOG if TERMINATION_LOG.exists() else None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fit(summary: dict[str, Any], limit: int = LIMIT_BYTES) -> str:
    """The summary as compact JSON within limit bytes: long lists and strings are shortened
    (marked with 'truncated'), never the scalar figures."""
    text = json.dumps(summary, separators=(",", ":"), default=str)
    if len(text.encode()) <= limit:
        return text
    shrunk = dict(summary)
    shrunk["truncated"] = True
    for key, value in sorted(summary.items(), key=lambda kv: -len(json.dumps(kv[1], default=str))):
        if isinstance(value, list):
            shrunk[key] = value[:3]
        elif isinstance(value, dict):
            shrunk[key] = {k: v for k, v in list(value.items())[:8]}
        elif isinstance(value, str) and len(value) > 512:
            shrunk[key] = value[:500] + "..."
        text = json.dumps(shrunk, separators=(",", ":"), default=str)
        if len(text.encode()) <= limit:
            return text
    return json.dumps({"truncated": True, "reason": str(summary.get("reason", ""))[:1000]})


def write_summary(summary: dict[str, Any], path: Path | None) -> None:
    """Writes the summary to path (or stdout's last line when there is none)."""
    text = fit(summary)
    if path is None:
        print(text, file=sys.stdout, flush=True)
        return
    path.write_text(text)
