"""Training data: read JSONL, Parquet, CSV or a saved `datasets` folder from any URI, check
the field mapping before a model is loaded, and turn records into token ids with labels that
train only on the response."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

from langmerge.common import jsonl, storage
from langmerge.common.prompts import Example, Fields, PromptError


class DataError(PromptError):
    """The dataset cannot be used; the message names it and the fix."""


def infer_format(uri: str, declared: str) -> str:
    if declared != "auto":
        return declared
    name = uri.rstrip("/").lower()
    for suffix, fmt in (
        (".jsonl", "jsonl"),
        (".json", "jsonl"),
        (".parquet", "parquet"),
        (".csv", "csv"),
    ):
        if name.endswith(suffix):
            return fmt
    if storage.is_local(uri) and storage.local_path(uri).is_dir():
        return "arrow"
    raise DataError(
        f"dataset {uri}: cannot tell the format from the name; set --dataset-format "
        "(jsonl, parquet, csv or arrow)"
    )


def read_records(uri: str, fmt: str, scratch: Path) -> tuple[list[dict[str, Any]], str]:
    """All records of a dataset and its sha256 (of the file, or of the folder's files)."""
    fmt = infer_format(uri, fmt)
    if fmt == "arrow":
        folder = storage.fetch_dir(uri, scratch)
        from datasets import load_from_disk

        try:
            loaded = load_from_disk(str(folder))
        except Exception as error:  # datasets raises several types for a bad folder
            raise DataError(f"dataset {uri}: not a saved datasets folder ({error})") from error
        if hasattr(loaded, "keys"):  # a DatasetDict: take its train split
            if "train" not in loaded:
                raise DataError(f"dataset {uri}: holds splits {list(loaded)}, none called train")
            loaded = loaded["train"]
        return list(loaded), storage.sha256_dir(folder)
    try:
        path = storage.fetch_file(uri, scratch)
    except storage.StorageError as error:
        raise DataError(f"dataset {uri}: {error}") from error
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(io.BytesIO(raw)).to_pylist(), digest
        except Exception as error:
            raise DataError(f"dataset {uri}: not a readable Parquet file ({error})") from error
    try:
        if fmt == "csv":
            return list(csv.DictReader(io.StringIO(jsonl.decode(raw, f"dataset {uri}")))), digest
        return jsonl.parse(raw, f"dataset {uri}"), digest
    except jsonl.JsonlError as error:
        raise DataError(str(error)) from error


def check_records(records: list[dict[str, Any]], fields: Fields, uri: str) -> None:
    """Fails fast, before any model is loaded, on an empty dataset or missing fields."""
    if not records:
        raise DataError(f"dataset {uri}: no records; point --dataset at a file with data")
    style = fields.style
    present = set(records[0])
    for column in fields.columns():
        if column not in present:
            flag = {
                fields.prompt: "--prompt-field",
                fields.response: "--response-field",
                fields.messages: "--messages-field",
                fields.text: "--text-field",
            }[column]
            raise DataError(
                f"dataset {uri}: field {column!r} not found (columns: {sorted(present)}); "
                f"set {flag} to one of them"
            )
    for number, record in enumerate(records, start=1):
        for column in fields.columns():
            value = record.get(column)
            if style == "messages":
                if not isinstance(value, list) or not all(
                    isinstance(m, dict) and "role" in m and "content" in m for m in value
                ):
                    raise DataError(
                        f"dataset {uri}: record {number} field {column!r} must be a list of "
                        "{role, content} messages"
                    )
            elif not isinstance(value, str) or (not value.strip() and column != fields.prompt):
                raise DataError(
                    f"dataset {uri}: record {number} field {column!r} is empty or not text"
                )


def pack(examples: list[Example], max_length: int) -> list[Example]:
    """Concatenates examples into sequences of max_length (packing): fewer pad tokens."""
    packed, ids, labels = [], [], []
    for example in examples:
        ids += example.input_ids
        labels += example.labels
        while len(ids) >= max_length:
            packed.append(Example(ids[:max_length], labels[:max_length]))
            ids, labels = ids[max_length:], labels[max_length:]
    if ids:
        packed.append(Example(ids, labels))
    return packed
