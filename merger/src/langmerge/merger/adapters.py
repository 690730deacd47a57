"""Reading peft LoRA adapters lazily, one module at a time, and refusing sets of adapters
that cannot be merged."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
METADATA = "langmerge.json"
LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<factor>[AB])(?:\.(?P<adapter>[^.]+))?\.weight$")


class AdapterError(ValueError):
    """An adapter, or a set of adapters, that cannot be merged; the message names it."""


def lora_scale(config: dict[str, Any], module: str, rank: int) -> float:
    """The factor peft multiplies a module's B @ A by: alpha/r, or alpha/sqrt(r) with rsLoRA;
    alpha_pattern's per-module override (the rank, rank_pattern's included, is the factors')."""
    alpha = float(config.get("lora_alpha", rank))
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if re.fullmatch(rf"(.*\.)?{pattern}", module):
            alpha = float(value)
    if config.get("use_rslora"):
        return alpha / math.sqrt(rank)
    return alpha / rank


def lora_factors(keys: Iterable[str], name: str) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Each module's (key of lora_A, key of lora_B), and the keys that are no LoRA factor.
    Raises AdapterError, naming the adapter and the missing key, for a factor without its
    pair."""
    parts: dict[str, dict[str, str]] = {}
    strays = []
    for key in keys:
        match = LORA_KEY.match(key)
        if match is None:
            strays.append(key)
        else:
            parts.setdefault(match["module"], {})[match["factor"]] = key
    missing = [
        f"{module}.lora_{'B' if 'A' in pair else 'A'}.weight"
        for module, pair in parts.items()
        if len(pair) != 2
    ]
    if missing:
        raise AdapterError(
            f"adapter {name} does not fit its config: missing {sorted(missing)[:2]} (a LoRA "
            "factor without its pair)"
        )
    return {module: (pair["A"], pair["B"]) for module, pair in parts.items()}, strays


@dataclass
class LoraAdapter:
    """One adapter on disk: its config, its modules and the scale of each (alpha/r or rsLoRA)."""

    name: str
    path: Path
    config: dict[str, Any]
    metadata: dict[str, Any]
    modules: dict[str, tuple[str, str]]  # module -> (key of A, key of B)
    _handle: Any = field(default=None, repr=False)

    @property
    def language(self) -> str | None:
        return self.metadata.get("language")

    @property
    def base_model(self) -> tuple[str | None, str | None]:  # None: the adapter does not say
        return (
            self.metadata.get("baseModel", self.config.get("base_model_name_or_path")),
            self.metadata.get("baseModelRevision", self.config.get("revision")),
        )

    def rank(self, module: str) -> int:
        return int(self.factor_shape(module, "A")[0])

    def scale(self, module: str) -> float:
        return lora_scale(self.config, module, self.rank(module))

    def factor_shape(self, module: str, factor: str) -> tuple[int, ...]:
        key = self.modules[module][0 if factor == "A" else 1]
        return tuple(self.handle.get_slice(key).get_shape())

    @property
    def handle(self) -> Any:
        if self._handle is None:
            self._handle = safe_open(str(self.path / WEIGHTS), framework="pt")
        return self._handle

    def factors(
        self, module: str, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(A of shape r x in, B of shape out x r with the scale folded in)."""
        key_a, key_b = self.modules[module]
        a = self.handle.get_tensor(key_a).to(device=device, dtype=dtype)
        b = self.handle.get_tensor(key_b).to(device=device, dtype=dtype) * self.scale(module)
        for factor, tensor in (("lora_A", a), ("lora_B", b)):
            if not torch.isfinite(tensor).all():
                raise AdapterError(
                    f"adapter {self.name}: {module}.{factor} contains NaN or Inf values"
                )
        return a, b


def load_adapter(name: str, path: Path) -> LoraAdapter:
    """Reads the config and the tensor index of a peft LoRA folder (no tensor data yet)."""
    config_file, weights_file = path / CONFIG, path / WEIGHTS
    if not config_file.is_file():
        raise AdapterError(
            f"adapter {name}: {CONFIG} is missing in {path}; is it a peft LoRA adapter?"
        )
    if not weights_file.is_file():
        raise AdapterError(f"adapter {name}: {WEIGHTS} is missing in {path}")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdapterError(f"adapter {name}: {CONFIG} is not valid JSON ({error})") from error
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(
            f"adapter {name}: peft_type is {config.get('peft_type')}, only LORA merges"
        )
    if config.get("use_dora"):
        raise AdapterError(f"adapter {name}: use_dora is set; DoRA adapters cannot be merged here")
    metadata = json.loads((path / METADATA).read_text()) if (path / METADATA).is_file() else {}
    try:
        with safe_open(str(weights_file), framework="pt") as handle:
            keys = list(handle.keys())
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise AdapterError(f"adapter {name}: {WEIGHTS} is unreadable ({error})") from error
    modules, strays = lora_factors(keys, name)
    if strays:
        raise AdapterError(
            f"adapter {name}: tensor {strays[0]!r} is not a LoRA factor (embeddings, DoRA "
            "magnitudes and extra trained modules cannot be merged)"
        )
    if not modules:
        raise AdapterError(f"adapter {name}: {WEIGHTS} holds no LoRA factors")
    adapter = LoraAdapter(name=name, path=path, config=config, metadata=metadata, modules=modules)
    for module in modules:
        a_shape, b_shape = adapter.factor_shape(module, "A"), adapter.factor_shape(module, "B")
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
            raise AdapterError(
                f"adapter {name}: {module} has lora_A {list(a_shape)} and lora_B {list(b_shape)}; "
                "expected [r, in] and [out, r]"
            )
    return adapter


def check_compatible(adapters: list[LoraAdapter]) -> None:
    """All adapters must share base model, modules and module shapes (ranks may differ)."""
    first = adapters[0]
    for other in adapters[1:]:
        if other.base_model[0] != first.base_model[0]:
            raise AdapterError(
                f"adapter {other.name}: base model {other.base_model[0]!r} differs from "
                f"{first.name}'s {first.base_model[0]!r}; merge adapters of one base model"
            )
        if (
            first.base_model[1]
            and other.base_model[1]
            and other.base_model[1] != first.base_model[1]
        ):
            raise AdapterError(
                f"adapter {other.name}: base model revision {other.base_model[1]!r} differs from "
                f"{first.name}'s {first.base_model[1]!r}"
            )
        if set(other.modules) != set(first.modules):
            missing = sorted(set(first.modules) - set(other.modules))[:3]
            extra = sorted(set(other.modules) - set(first.modules))[:3]
            raise AdapterError(
                f"adapter {other.name}: target modules differ from {first.name}'s "
                f"(missing {missing}, extra {extra}); train both with the same lora.targetModules"
            )
        for module in first.modules:
            mine = (first.factor_shape(module, "B")[0], first.factor_shape(module, "A")[1])
            theirs = (other.factor_shape(module, "B")[0], other.factor_shape(module, "A")[1])
            if mine != theirs:
                raise AdapterError(
                    f"adapter {other.name}: {module} updates a {theirs[0]}x{theirs[1]} weight, "
                    f"{first.name} a {mine[0]}x{mine[1]} one; the base models differ"
                )
