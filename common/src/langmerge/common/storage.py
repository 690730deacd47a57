"""Artifacts live at URIs: a local path, file://, or anything fsspec reaches (s3:// with
credentials from the environment). Readers never see half-written artifacts: a folder is
published by one rename locally, and remotely by uploading the config file last."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec

# Files whose presence marks a complete artifact; uploaded last to remote stores.
COMPLETION_FILES = ("adapter_config.json", "config.json", "langmerge.json")


class StorageError(RuntimeError):
    """An artifact cannot be read, written or is outside the allowed root."""


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def overlaps(first: str, second: str) -> bool:
    """Whether two local URIs are the same folder or one lies inside the other (after
    resolving symlinks); remote URIs compare as normalised strings."""
    if is_local(first) != is_local(second):
        return False
    if is_local(first):
        a, b = local_path(first).resolve(), local_path(second).resolve()
        return a == b or a in b.parents or b in a.parents
    x, y = first.rstrip("/") + "/", second.rstrip("/") + "/"
    return x.startswith(y) or y.startswith(x)


def check_under_root(uri: str, root: str | None, what: str) -> None:
    """Refuses local paths that escape root (through '..' or symlinks)."""
    if root is None or not is_local(uri):
        return
    resolved = local_path(uri).resolve()
    allowed = Path(root).resolve()
    if resolved != allowed and allowed not in resolved.parents:
        raise StorageError(
            f"{what} {uri!r} is outside the artifact root {root!r}; use a path under it"
        )


def sha256_dir(path: Path) -> str:
    """sha256 over a folder's files: relative names and contents, in sorted order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def fetch_dir(uri: str, scratch: Path) -> Path:
    """A local folder with the artifact's files: the folder itself when local, else a copy."""
    if is_local(uri):
        path = local_path(uri)
        if not path.is_dir():
            raise StorageError(f"{uri!r} is not a folder")
        return path
    target = scratch / uuid.uuid4().hex
    try:
        fs, root = fsspec.core.url_to_fs(uri)
        fs.get(root.rstrip("/") + "/", str(target), recursive=True)
    except Exception as error:  # fsspec raises backend-specific errors
        raise StorageError(f"cannot read {uri!r}: {error}") from error
    return target


def fetch_file(uri: str, scratch: Path) -> Path:
    if is_local(uri):
        path = local_path(uri)
        if not path.exists():
            raise StorageError(f"{uri!r} does not exist")
        return path
    target = scratch / (uuid.uuid4().hex + "-" + uri.rsplit("/", 1)[-1])
    try:
        with fsspec.open(uri, "rb") as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink)
    except Exception as error:
        raise StorageError(f"cannot read {uri!r}: {error}") from error
    return target


def staging_dir(uri: str) -> Path:
    """Where to build an artifact before publishing it to uri (same filesystem when local,
    so the publish is one rename)."""
    if is_local(uri):
        parent = local_path(uri).parent
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    return Path(tempfile.mkdtemp(prefix="langmerge-staging-"))


@contextmanager
def staging(uri: str) -> Iterator[Path]:
    """A folder to build an artifact for uri in; whatever is not published is removed, so a
    failure at any point leaves nothing half-written behind."""
    staged = staging_dir(uri)
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def publish_dir(staged: Path, uri: str) -> str:
    """Moves a finished folder to uri atomically (locally) or config-last (remotely) and returns
    its sha256 (sha256_dir)."""
    digest = sha256_dir(staged)
    if is_local(uri):
        target = local_path(uri)
        if target.exists():
            # Replace: the old artifact stays readable until the new one is in place.
            retired = target.with_name(f".retired-{target.name}-{uuid.uuid4().hex[:8]}")
            os.rename(target, retired)
            os.rename(staged, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staged, target)
        return digest
    try:
        fs, root = fsspec.core.url_to_fs(uri)
        files = sorted(p for p in staged.rglob("*") if p.is_file())
        last = [p for p in files if p.name in COMPLETION_FILES]
        for file in [p for p in files if p not in last] + last:
            fs.put_file(str(file), f"{root.rstrip('/')}/{file.relative_to(staged)}")
    except Exception as error:
        raise StorageError(f"cannot write {uri!r}: {error}") from error
    return digest
