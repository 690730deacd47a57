"""`builtin:tiny`: a small Llama-architecture model for tests and the demo, built on this
machine with no model hub.

A byte-level BPE tokenizer is trained in memory on the shipped EN/DE/FR/JA/ZH text, and the
model is briefly pre-trained on it so that fine-tuning has something to adapt. The text is
parallel sentences (corpus/*.txt) and, per language, reviews each followed by a marker that
every language shares (corpus/reviews/, written by hack/make_quickstart_data.py): from the
co-occurrence of each language's sentiment words with the same markers the model comes to
represent sentiment alike across languages, in miniature what a multilingual LLM learns from
the web, and what merging per-language adapters relies on. It never reads a task template
or a label. The build is deterministic and cached outside the repo, keyed by a hash of the
text and the recipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TypedDict

NAME = "builtin:tiny"
LANGUAGES = ("en", "de", "fr", "ja", "zh")


class Recipe(TypedDict):
    version: int
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    num_hidden_layers: int
    max_position_embeddings: int
    pretrain_steps: int
    pretrain_batch: int
    pretrain_length: int
    learning_rate: float
    seed: int


RECIPE: Recipe = {
    "version": 2,
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "max_position_embeddings": 512,
    "pretrain_steps": 1000,
    "pretrain_batch": 16,
    "pretrain_length": 64,
    "learning_rate": 3e-3,
    "seed": 1234,
}
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = [
    "<|pad|>",
    "<|bos|>",
    "<|eos|>",
    "<|end|>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
]


def _read(subfolder: str) -> dict[str, str]:
    folder = resources.files("langmerge.common").joinpath("corpus", subfolder)
    return {
        language: (folder / f"{language}.txt").read_text(encoding="utf-8") for language in LANGUAGES
    }


def corpus() -> dict[str, str]:
    """Per language: its parallel sentences (17 lines each)."""
    return _read("")


def reviews() -> dict[str, str]:
    """Per language: its marked reviews (900 lines each)."""
    return _read("reviews")


def pretraining_lines() -> list[str]:
    return [
        line
        for texts in (corpus(), reviews())
        for text in texts.values()
        for line in text.splitlines()
        if line.strip()
    ]


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "langmerge" / "models"


def build_key() -> str:
    digest = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode())
    for texts in (corpus(), reviews()):
        for language, text in sorted(texts.items()):
            digest.update(language.encode() + text.encode())
    return digest.hexdigest()[:16]


def path() -> Path:
    """The folder of builtin:tiny, building it first when it is not cached yet."""
    target = cache_root() / f"builtin-tiny-{build_key()}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        _build(staging)
        try:
            os.rename(staging, target)
        except OSError:  # another process finished first: theirs is identical
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _train_tokenizer(texts: list[str]):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=RECIPE["vocab_size"],
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        eos_token="<|eos|>",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def _build(folder: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(RECIPE["seed"])
    lines = pretraining_lines()
    tokenizer = _train_tokenizer(lines)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=RECIPE["hidden_size"],
        intermediate_size=RECIPE["intermediate_size"],
        num_attention_heads=RECIPE["num_attention_heads"],
        num_key_value_heads=RECIPE["num_key_value_heads"],
        num_hidden_layers=RECIPE["num_hidden_layers"],
        max_position_embeddings=RECIPE["max_position_embeddings"],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    stream = torch.tensor(
        [t for line in lines for t in [*tokenizer(line)["input_ids"], tokenizer.eos_token_id]]
    )
    length, batch = RECIPE["pretrain_length"], RECIPE["pretrain_batch"]
    generator = torch.Generator().manual_seed(RECIPE["seed"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=RECIPE["learning_rate"])
    model.train()
    for _ in range(RECIPE["pretrain_steps"]):
        starts = torch.randint(0, len(stream) - length - 1, (batch,), generator=generator)
        ids = torch.stack([stream[s : s + length] for s in starts])
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "langmerge.json").write_text(
        json.dumps({"name": NAME, "key": build_key(), "finalPretrainLoss": loss.item()}, indent=2)
    )
