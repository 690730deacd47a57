"""JSON Lines as the trainer and the merger read them: UTF-8, one JSON object per line, blank
lines skipped. A bad file is refused with its name, the line and the fix, never with a bare
decoder message."""

from __future__ import annotations

import json
from typing import Any


class JsonlError(ValueError):
    """A file that is not JSON Lines of objects; the message names the file and the line."""


def decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise JsonlError(
            f"{name}: line {line} is not UTF-8 text; re-encode the file as UTF-8"
        ) from error


def parse(raw: bytes, name: str) -> list[dict[str, Any]]:
    """The records of a JSON Lines file; name is how messages call it."""
    records = []
    for number, line in enumerate(decode(raw, name).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise JsonlError(f"{name}: line {number} is not valid JSON ({error.msg})") from error
        if not isinstance(record, dict):
            raise JsonlError(f"{name}: line {number} is not a JSON object")
        records.append(record)
    return records
