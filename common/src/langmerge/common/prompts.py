"""How records become token ids, shared by training and evaluation so both see the same
text: prompt + response through the tokenizer's chat template (when it has one), chat
messages, or plain text. Works with any transformers tokenizer (duck-typed, no import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class PromptError(ValueError):
    """A field mapping that cannot work; the message names the flag and the fix."""


@dataclass(frozen=True)
class Fields:
    """Which columns hold the text: prompt + response, chat messages, or plain text."""

    prompt: str | None = None
    response: str | None = None
    messages: str | None = None
    text: str | None = None

    @property
    def style(self) -> str:
        styles = [
            name
            for name, on in (
                ("prompt-response", self.prompt is not None or self.response is not None),
                ("messages", self.messages is not None),
                ("text", self.text is not None),
            )
            if on
        ]
        if len(styles) != 1:
            raise PromptError(
                "set exactly one field style: --prompt-field and --response-field, "
                "--messages-field, or --text-field"
            )
        if styles[0] == "prompt-response" and (self.prompt is None or self.response is None):
            raise PromptError("--prompt-field and --response-field go together")
        return styles[0]

    def columns(self) -> list[str]:
        return [c for c in (self.prompt, self.response, self.messages, self.text) if c is not None]


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # -100 where no loss is taken (prompt, padding)


def _chat(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt
    )
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def encode(record: dict[str, Any], fields: Fields, tokenizer: Any, max_length: int) -> Example:
    """Token ids and labels of one record; the loss covers the response (or all plain text)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    has_template = bool(getattr(tokenizer, "chat_template", None))
    style = fields.style  # checks that the style's columns are named
    if style == "text":
        assert fields.text is not None
        ids = list(tokenizer(record[fields.text], add_special_tokens=False)["input_ids"]) + eos
        labels = list(ids)
    elif style == "messages":
        assert fields.messages is not None
        messages = record[fields.messages]
        if has_template:
            ids = _chat(tokenizer, messages, False) + eos
            prompt_len = len(_chat(tokenizer, messages[:-1], True)) if len(messages) > 1 else 0
        else:
            rendered = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
            ids = list(tokenizer(rendered, add_special_tokens=False)["input_ids"]) + eos
            prompt_len = 0
        labels = [-100] * prompt_len + ids[prompt_len:]
    else:
        assert fields.prompt is not None and fields.response is not None
        head = prompt_ids(record[fields.prompt], tokenizer)
        tail = response_ids(record[fields.response], tokenizer)
        ids = head + tail
        labels = [-100] * len(head) + tail
    return Example(ids[:max_length], labels[:max_length])


def prompt_ids(prompt: str, tokenizer: Any) -> list[int]:
    """The ids a model sees before it answers `prompt` (as in training's prompt-response style)."""
    if getattr(tokenizer, "chat_template", None):
        return _chat(tokenizer, [{"role": "user", "content": prompt}], True)
    return list(tokenizer(prompt + "\n", add_special_tokens=False)["input_ids"])


def response_ids(response: str, tokenizer: Any) -> list[int]:
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return list(tokenizer(response, add_special_tokens=False)["input_ids"]) + eos
