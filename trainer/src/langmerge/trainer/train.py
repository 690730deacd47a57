"""The LoRA training loop: accelerate for devices and precision, a checkpoint every N steps
that a restarted pod resumes from, and progress as a bar or one JSON line per logging step.

Data parallel (distributed.py): `accelerate launch --num_processes <gpus> -m
langmerge.trainer.cli ...` (the operator's Job uses this line when resources.gpus > 1) or
torchrun; the processes split each global batch of --batch-size rows."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from langmerge.common.logits import response_loss, supported
from langmerge.common.precision import effective_precision
from langmerge.common.prompts import Example
from langmerge.common.summary import peak_rss_bytes
from langmerge.trainer import attention, distributed, norms

CHECKPOINT = "checkpoint"


@dataclass
class TrainConfig:
    rank: int = 16
    alpha: float = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    rslora: bool = False
    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float = 2e-4
    scheduler: str = "linear"
    warmup_ratio: float = 0.0
    batch_size: int = 8
    gradient_accumulation: int = 1
    max_seq_length: int = 1024
    packing: bool = False
    precision: str = "fp32"
    # "response": the output layer only at the trained positions (langmerge.common.logits);
    # "all": the model's own forward, logits at every position (the same loss, slower)
    logits: str = "response"
    # "auto": short rows' attention as plain products on a CPU (langmerge.trainer.attention);
    # "sdpa": the model's default everywhere
    attention: str = "auto"
    gradient_checkpointing: bool = False
    seed: int = 42
    checkpoint_every: int = 50
    log_every: int = 10


def run_key(config: TrainConfig, inputs: dict[str, Any]) -> str:
    """What must match for a checkpoint to be resumed: the settings and the inputs."""
    payload = json.dumps({"config": asdict(config), "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _batches(
    examples: list[Example], batch_size: int, pad_id: int, order: list[int]
) -> list[dict[str, torch.Tensor]]:
    batches = []
    for start in range(0, len(order), batch_size):
        chosen = [examples[i] for i in order[start : start + batch_size]]
        width = max(len(e.input_ids) for e in chosen)
        ids = torch.full((len(chosen), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chosen), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, example in enumerate(chosen):
            n = len(example.input_ids)
            ids[row, :n] = torch.tensor(example.input_ids)
            labels[row, :n] = torch.tensor(example.labels)
            mask[row, :n] = 1
        batches.append({"input_ids": ids, "labels": labels, "attention_mask": mask})
    return batches


class CausalLoss(torch.nn.Module):
    """The training loss as one module, so that accelerate's wrappers (DDP across processes,
    autocast) go round the whole computation, the output layer applied only where the loss
    needs it (response_only) or everywhere, as the model's own forward does."""

    def __init__(self, model: Any, response_only: bool) -> None:
        super().__init__()
        self.model, self.response_only = model, response_only

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        num_items_in_batch: float | None = None,
    ) -> torch.Tensor:
        if self.response_only:
            return response_loss(self.model, input_ids, attention_mask, labels, num_items_in_batch)
        scale = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
        output = self.model(
            input_ids=input_ids, attention_mask=attention_mask, labels=labels, **scale
        )
        return output.loss  # type: ignore[no-any-return]


def keep_lora_inputs_in_bf16(model: Any, dropout: float) -> bool:
    """Under autocast with a bf16 base, lets each LoRA layer take its bf16 input as it is.
    peft copies the input to float32 (its LoRA weights' dtype) and autocast copies it back to
    bf16 for the matmul: the same numbers at twice the copies, in every layer, forward and
    backward (about 6 % of a step on Gemma 3 270M). With dropout the copy stays: dropout in bf16
    would round its 1/(1-p) scale. Returns whether the inputs now stay in bf16."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if dropout > 0:
        return False
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):  # each kind of layer sets the flag in __init__
            module.cast_input_dtype_enabled = False  # type: ignore[attr-defined]
    return True


def lora_model(model_dir: Path, config: TrainConfig, computed: str) -> Any:
    """The base model with the LoRA to train, for the precision the step computes in."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    # Under bf16 the frozen base is held in bf16: autocast would otherwise cast every weight
    # again at every matmul (a third of a CPU step on Gemma 3 270M), and it halves the model's
    # memory. The LoRA weights stay float32 (peft upcasts them): the optimizer's master copy
    # and the saved adapter. fp16 keeps a float32 base (fp16 overflows Gemma's activations).
    base_dtype = torch.bfloat16 if computed == "bf16" else torch.float32
    chosen = attention.implementation(model_dir, config.attention)
    extra = {"attn_implementation": chosen} if chosen else {}
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=base_dtype, **extra)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,  # type: ignore[arg-type]  # annotated int; a float scales alike
        lora_dropout=config.dropout,
        target_modules=config.target_modules,
        use_rslora=config.rslora,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    norms.install(model)  # after LoRA froze the base: only frozen norms are replaced
    if computed == "bf16":
        keep_lora_inputs_in_bf16(model, config.dropout)
    return model


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout in a single write: the processes of a data-parallel run share
    the pod's stdout, and on an unbuffered stdout (as launchers run them) print writes the
    newline apart, so that another process's line can land between the two."""
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


class Progress:
    """A bar on an interactive terminal, else one JSON line per logging step on stdout."""

    def __init__(self, total: int, every: int, shown: bool = True) -> None:
        self.total, self.every, self.shown = total, every, shown  # one rank shows it
        self.interactive = sys.stderr.isatty()
        self.started = time.monotonic()

    def update(self, step: int, loss: float, tokens: int, first_step: int) -> None:
        if not self.shown:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = tokens / elapsed
        done = step - first_step
        eta = (self.total - step) * elapsed / done if done else None
        if self.interactive:
            width = 30
            filled = int(width * step / self.total)
            sys.stderr.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} "
                f"loss {loss:.4f} {rate:,.0f} tok/s eta {eta or 0:.0f}s"
            )
            sys.stderr.flush()
        elif step % self.every == 0 or step == self.total:
            emit(
                {
                    "step": step,
                    "totalSteps": self.total,
                    "loss": round(loss, 6),
                    "tokensPerSecond": round(rate, 1),
                    "etaSeconds": round(eta, 1) if eta is not None else None,
                }
            )

    def close(self) -> None:
        if self.interactive and self.shown:
            sys.stderr.write("\n")


def _save_checkpoint(
    directory: Path,
    key: str,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    loss: float,
    tokens: int,
    rng_by_rank: list[dict[str, Any]],
) -> None:
    from peft import get_peft_model_state_dict

    staging = directory / f".{CHECKPOINT}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    torch.save(
        {
            "key": key,
            "step": step,
            "loss": loss,
            "tokens": tokens,
            "adapter": get_peft_model_state_dict(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rngByRank": rng_by_rank,  # each rank's generators, restored by its rank
        },
        staging / "state.pt",
    )
    target = directory / CHECKPOINT
    retired = directory / f".retired-{os.getpid()}"
    if target.exists():
        os.rename(target, retired)
    os.rename(staging, target)  # a kill at any point leaves one complete checkpoint
    shutil.rmtree(retired, ignore_errors=True)


def _load_checkpoint(directory: Path | None, key: str) -> dict[str, Any] | None:
    if directory is None or not (directory / CHECKPOINT / "state.pt").is_file():
        return None
    state: dict[str, Any] = torch.load(directory / CHECKPOINT / "state.pt", weights_only=False)
    if state.get("key") != key:
        emit({"event": "checkpointIgnored", "reason": "settings or inputs changed"})
        return None
    return state


def train(
    model_dir: Path,
    examples: list[Example],
    pad_id: int,
    config: TrainConfig,
    key: str,
    checkpoint_dir: Path | None,
    out_dir: Path,
    eval_examples: list[Example] | None = None,
) -> dict[str, Any]:
    """Trains, writes the peft adapter into out_dir, and returns the run's figures. pad_id
    comes from the caller's tokenizer: loading Gemma's a second time here held 0.3 GB more."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from peft import set_peft_model_state_dict
    from transformers import get_scheduler

    from langmerge.common.reproducible import deterministic

    deterministic(config.seed)
    # bf16 on a CPU without bf16 kernels computes in fp32 (the run key keeps the asked one)
    computed, why = effective_precision(config.precision)
    if why and distributed.is_main():
        print(f"langmerge-train: {why}", file=sys.stderr)
    accelerator = Accelerator(
        mixed_precision={"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[computed],
        gradient_accumulation_steps=config.gradient_accumulation,
        # The processes split each global batch: the scheduler steps once per optimizer step.
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        # Without a GPU, a launcher's processes join a gloo group only when told to use the CPU.
        cpu=not torch.cuda.is_available(),
    )
    world, rank = accelerator.num_processes, accelerator.process_index
    model = lora_model(model_dir, config, computed)
    loss_of = CausalLoss(model, response_only=config.logits == "response" and supported(model))
    # Fused: one kernel over every LoRA tensor. The loop over them (torch's default on a CPU)
    # launches a dozen small operations per tensor, 252 tensors on Gemma 3 270M at every step.
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, fused=True
    )

    batches_per_epoch = math.ceil(len(examples) / config.batch_size)
    steps_per_epoch = max(1, batches_per_epoch // config.gradient_accumulation)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    scheduler = get_scheduler(
        config.scheduler,
        optimizer,
        num_warmup_steps=int(config.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    state = _load_checkpoint(checkpoint_dir, key)
    step, tokens, loss_value, resumed_from = 0, 0, float("nan"), 0
    if state is not None:
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        # Another world size resumes the data order and the optimizer; dropout then goes on
        # from the seeded generators.
        by_rank = state.get("rngByRank") or []
        if len(by_rank) == world:
            distributed.restore_rng(by_rank[rank])
        elif "rng" in state:  # written by an earlier trainer, one process's states
            torch.set_rng_state(state["rng"])
            if state["cuda_rng"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        step, tokens, loss_value, resumed_from = (
            state["step"],
            state["tokens"],
            state["loss"],
            state["step"],
        )
        emit({"event": "resumed", "step": step})
    loss_of, optimizer, scheduler = accelerator.prepare(loss_of, optimizer, scheduler)
    loss_of.train()
    progress = Progress(total_steps, config.log_every, shown=accelerator.is_main_process)
    run_tokens, loop_started = 0, time.monotonic()
    own_trained, all_trained = 0, 0  # label tokens this rank trained on, of the global batches
    micro = step * config.gradient_accumulation  # micro-batches already consumed
    while step < total_steps:
        epoch, offset = divmod(micro, batches_per_epoch)
        order = _epoch_order(len(examples), config.seed, epoch)
        for cpu_batch in _batches(examples, config.batch_size, pad_id, order)[offset:]:
            rows, scale = distributed.share(cpu_batch, rank, world)
            own_trained += int((rows["labels"] != distributed.IGNORED).sum())
            all_trained += int((cpu_batch["labels"] != distributed.IGNORED).sum())
            batch = {k: v.to(accelerator.device) for k, v in rows.items()}
            with accelerator.accumulate(loss_of):
                loss = loss_of(**batch, **scale)
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            micro += 1
            batch_tokens = int(cpu_batch["attention_mask"].sum())  # the global batch's
            tokens += batch_tokens
            run_tokens += batch_tokens
            if accelerator.sync_gradients:
                step += 1
                # The global batch's mean token loss (each rank's is scaled by the world).
                loss_value = float(accelerator.reduce(loss.detach(), reduction="mean"))
                progress.update(step, loss_value, run_tokens, resumed_from)
                due = checkpoint_dir is not None and step % config.checkpoint_every == 0
                if due and step < total_steps:
                    assert checkpoint_dir is not None
                    rng_by_rank = distributed.rng_states(world)  # a collective: every rank
                    if accelerator.is_main_process:
                        _save_checkpoint(
                            checkpoint_dir,
                            key,
                            step,
                            accelerator.unwrap_model(loss_of).model,
                            optimizer,
                            scheduler,
                            loss_value,
                            tokens,
                            rng_by_rank,
                        )
                if step >= total_steps:
                    break
    progress.close()
    loop_seconds = time.monotonic() - loop_started
    if world > 1:  # each rank's share, in its log: the evidence that the work was split
        share = {"rank": rank, "world": world, "trainedTokens": own_trained}
        emit({"event": "share", **share, "ofTrainedTokens": all_trained})
    eval_loss = (
        _evaluate(loss_of, eval_examples, config, pad_id, accelerator.device)
        if eval_examples
        else None
    )
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(loss_of).model
    if accelerator.is_main_process:
        unwrapped.save_pretrained(out_dir, safe_serialization=True)
    device = accelerator.device
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else peak_rss_bytes()
    return {
        "steps": step,
        "resumedFromStep": resumed_from,
        "trainTokens": tokens,
        "tokensPerSecond": round(run_tokens / max(loop_seconds, 1e-9), 2),
        "trainSeconds": round(loop_seconds, 3),
        "finalLoss": loss_value,
        "evalLoss": eval_loss,
        "peakMemoryBytes": int(peak),
        "peakMemoryKind": "gpu-allocated" if device.type == "cuda" else "rss",
        "deviceType": device.type,
        "deviceCount": accelerator.num_processes,
        "deviceName": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "precision": computed,
    }


def _evaluate(
    loss_of: Any, examples: list[Example], config: TrainConfig, pad_id: int, device: torch.device
) -> float:
    """The mean token loss over every held-out response token, as the evaluator's loss is:
    each batch's summed loss (num_items_in_batch 1), over the tokens that carry one."""
    loss_of.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for cpu_batch in _batches(examples, config.batch_size, pad_id, list(range(len(examples)))):
            batch = {k: v.to(device) for k, v in cpu_batch.items()}
            total += float(loss_of(**batch, num_items_in_batch=1))
            count += int((cpu_batch["labels"][:, 1:] != distributed.IGNORED).sum())
    loss_of.train()
    return round(total / max(count, 1), 6)
