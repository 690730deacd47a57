"""langmerge against mergekit, the tool users pick for TIES and DARE, in the same run.

Five LoRA adapters (r16 on q, k, v, o, gate, up, down; five languages) on a random base
model of Llama-3.2-1B's shape (16 layers, hidden 2048, MLP 8192, 32 heads, 8 KV heads; the
vocabulary is --vocab, 8192 by default: the embeddings are not merged by either tool and only
cost disk), float32. mergekit merges full models only, so the five adapters are first
materialised as full models (base + scale * B A); then, each in a process of its own (its
peak RSS is its own), interleaved, --repeat times, the disk synced before each:
- mergekit `ties`, `dare_ties`, `task_arithmetic` (density 0.5, weights 1 and normalize for
  the TIES family; weights 0.2 for task arithmetic), full models in, a full model out;
- langmerge `ties`, `dare-ties`, `linear` (density 0.5, weights summing to one), the
  adapters in, full weights out (the same merged model) and a LoRA out (no full model at
  all), and `knots-ties` to a LoRA.
Reported: time, peak RSS, bytes written, and the largest difference between each pair's
merged tensors (against the size of the merged update there).

Usage: python benchmarks/mergekit_bench.py [--quick] [--repeat N] [--layers N] [--vocab N]
                                           [--pairs linear,ties,...]
(needs the mergekit group: `uv sync --group mergekit`, as `make bench-search` does)
Ends with RESULT name=value lines and writes benchmarks/results/mergekit_bench[_quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langmerge.common.summary import peak_rss_bytes

RESULTS = Path(__file__).resolve().parent / "results"
LANGUAGES = ["en", "de", "fr", "ja", "zh"]
RANK, ALPHA, DENSITY = 16, 32, 0.5
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# (langmerge method, mergekit method)
PAIRS = (("ties", "ties"), ("dare-ties", "dare_ties"), ("linear", "task_arithmetic"))
LORA_ONLY = ("knots-ties",)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _config(layers: int, hidden: int, mlp: int, vocab: int) -> Any:
    from transformers import LlamaConfig

    heads = hidden // 64
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 4),
        head_dim=64,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )


def build(root: Path, layers: int, hidden: int, mlp: int, vocab: int) -> dict[str, Any]:
    """The base model, five peft adapters on it, and the five full models they make."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    config = _config(layers, hidden, mlp, vocab)
    base = root / "base"
    model = LlamaForCausalLM(config)
    model.save_pretrained(base, safe_serialization=True)
    shapes = {
        name.removesuffix(".weight"): tuple(p.shape)
        for name, p in model.named_parameters()
        if name.endswith(".weight") and name.split(".")[-2] in MODULES
    }
    del model
    adapters, full_models = [], []
    for index, language in enumerate(LANGUAGES):
        generator = torch.Generator().manual_seed(100 + index)
        factors = {}
        for module, (out_features, in_features) in shapes.items():
            a = torch.randn(RANK, in_features, generator=generator) * 0.02
            b = torch.randn(out_features, RANK, generator=generator) * 0.02
            factors[module] = (a, b)
        folder = root / f"adapter-{language}"
        folder.mkdir()
        save_file(
            {
                f"base_model.model.{m}.lora_{f}.weight": t
                for m, (a, b) in factors.items()
                for f, t in (("A", a), ("B", b))
            },
            str(folder / "adapter_model.safetensors"),
        )
        (folder / "adapter_config.json").write_text(
            json.dumps(
                {
                    "peft_type": "LORA",
                    "task_type": "CAUSAL_LM",
                    "base_model_name_or_path": str(base),
                    "r": RANK,
                    "lora_alpha": ALPHA,
                    "target_modules": list(MODULES),
                    "lora_dropout": 0.0,
                    "bias": "none",
                }
            )
        )
        (folder / "langmerge.json").write_text(json.dumps({"language": language}))
        adapters.append(folder)
        # The full model mergekit needs: base + (alpha / r) B A, tensor by tensor.
        full = root / f"full-{language}"
        full.mkdir()
        for shard in sorted(base.glob("*.safetensors")):
            tensors = {}
            with safe_open(str(shard), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (not a mapping)
                    tensor = handle.get_tensor(key)
                    module = key.removesuffix(".weight")
                    if module in factors:
                        a, b = factors[module]
                        tensor = tensor + (ALPHA / RANK) * (b @ a)
                    tensors[key] = tensor
            save_file(tensors, str(full / shard.name), metadata={"format": "pt"})
        for extra in base.iterdir():
            if not extra.name.endswith(".safetensors"):
                shutil.copy2(extra, full / extra.name)
        full_models.append(full)
    return {"base": base, "adapters": adapters, "full": full_models}


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# --- one side, in a process of its own --------------------------------------------------------
def side_mergekit(method: str, base: Path, full: list[Path], out: Path) -> None:
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    weight = 0.2 if method == "task_arithmetic" else 1.0
    parameters: dict[str, Any] = {"weight": weight}
    if method != "task_arithmetic":
        parameters["density"] = DENSITY
    config = {
        "merge_method": method,
        "base_model": str(base),
        "models": [{"model": str(m), "parameters": parameters} for m in full],
        "parameters": {"normalize": method != "task_arithmetic"},
        "dtype": "float32",
    }
    merge = MergeConfiguration.model_validate(yaml.safe_load(yaml.safe_dump(config)))
    options = MergeOptions(copy_tokenizer=False, write_model_card=False, random_seed=0, quiet=True)
    run_merge(merge, str(out), options)


def side_langmerge(method: str, fmt: str, base: Path, adapters: list[Path], out: Path) -> None:
    from langmerge.merger.cli import main

    args = [arg for a in adapters for arg in ("--adapter", str(a))]
    args += ["--method", method, "--output", str(out), "--output-format", fmt]
    args += ["--summary-file", str(out.parent / f"{out.name}.summary.json")]
    if method != "linear":
        args += ["--density", str(DENSITY)]
    if fmt == "full":
        args += ["--base-model", str(base)]
    if main(args) != 0:
        raise RuntimeError((out.parent / f"{out.name}.summary.json").read_text())


def run_side(tool: str, method: str, fmt: str, built: dict[str, Any], out: Path) -> dict[str, Any]:
    args = [sys.executable, __file__, "--side", tool, method, fmt, str(built["base"]), str(out)]
    args += [str(p) for p in (built["full"] if tool == "mergekit" else built["adapters"])]
    # The previous side's output goes to disk first: its writeback would otherwise slow this
    # side's own writes (at 16 layers each side writes 4 GB, more than the dirty-page limit).
    os.sync()
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{tool} {method}: {result.stderr[-3000:]}")
    peak = json.loads(result.stdout.strip().splitlines()[-1])["peak_rss_bytes"]
    return {
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(peak / 1e9, 3),
        "bytes_written_gb": round(_bytes(out) / 1e9, 3),
    }


def largest_difference(ours: Path, theirs: Path, base: Path) -> dict[str, float]:
    """The largest |ours - theirs| over every tensor both hold, and the largest merged update
    |ours - base| for scale."""
    from safetensors import safe_open

    def tensors(folder: Path) -> dict[str, Path]:
        found = {}
        for shard in folder.glob("*.safetensors"):
            with safe_open(str(shard), framework="pt") as handle:
                found.update({key: shard for key in handle.keys()})  # noqa: SIM118
        return found

    mine, other, original = tensors(ours), tensors(theirs), tensors(base)
    worst, update, differing, entries = 0.0, 0.0, 0, 0
    for key in sorted(set(mine) & set(other)):
        with (
            safe_open(str(mine[key]), framework="pt") as a,
            safe_open(str(other[key]), framework="pt") as b,
            safe_open(str(original[key]), framework="pt") as c,
        ):
            x, y, z = a.get_tensor(key).float(), b.get_tensor(key).float(), c.get_tensor(key)
            gap, moved = (x - y).abs(), (x - z.float()).abs()
            worst, update = max(worst, float(gap.max())), max(update, float(moved.max()))
            differing += int((gap > 1e-6 * float(moved.max())).sum())
            entries += x.numel()
    return {
        "max_abs_difference": worst,
        "max_abs_update": update,
        "entries_differing": differing,  # by more than 1e-6 of the tensor's largest update
        "entries": entries,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small shape, a few minutes")
    parser.add_argument("--repeat", type=int, default=None, help="runs per side (default 3)")
    parser.add_argument("--layers", type=int, default=None, help="layers (default 16)")
    parser.add_argument("--vocab", type=int, default=8192, help="vocabulary (default 8192)")
    parser.add_argument(
        "--pairs",
        default=",".join(ours for ours, _ in PAIRS),
        help="langmerge methods to compare, each with its mergekit counterpart (default: all "
        "three; knots-ties, which mergekit lacks, runs with them)",
    )
    parser.add_argument("--tag", default="", help="written as mergekit_bench[_TAG].json")
    parser.add_argument("--side", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child: one merge, then its own peak RSS
        tool, method, fmt, base, out, *inputs = args.side
        paths = [Path(p) for p in inputs]
        if tool == "mergekit":
            side_mergekit(method, Path(base), paths, Path(out))
        else:
            side_langmerge(method, fmt, Path(base), paths, Path(out))
        peak = peak_rss_bytes()  # this process's own, not its parent's (VmHWM)
        print(json.dumps({"peak_rss_bytes": peak}))
        return 0
    chosen = [name.strip() for name in args.pairs.split(",") if name.strip()]
    unknown = sorted(set(chosen) - {ours for ours, _ in PAIRS})
    if unknown or not chosen:
        parser.error(f"--pairs: {unknown or chosen} not among {[ours for ours, _ in PAIRS]}")
    pairs = tuple(pair for pair in PAIRS if pair[0] in chosen)
    repeat = args.repeat or (1 if args.quick else 3)
    layers = args.layers or (2 if args.quick else 16)
    hidden, mlp = (512, 2048) if args.quick else (2048, 8192)
    vocab = 1024 if args.quick else args.vocab
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "shape": {"layers": layers, "hidden": hidden, "mlp": mlp, "vocab": vocab},
        "runs": repeat,
        "pairs": [ours for ours, _ in pairs],
        "load_average_before": load_average(),
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    differences: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mergekit-bench-") as root_name:
        root = Path(root_name)
        started = time.perf_counter()
        built = build(root, layers, hidden, mlp, vocab)
        results["materialise_seconds"] = round(time.perf_counter() - started, 1)
        sides = [("mergekit", theirs, "full") for _, theirs in pairs]
        sides += [("langmerge", ours, fmt) for ours, _ in pairs for fmt in ("full", "lora")]
        sides += [("langmerge", method, "lora") for method in LORA_ONLY]
        for attempt in range(repeat):  # interleaved: a drift of the load hits every side
            for tool, method, fmt in sides:
                out = root / f"out-{tool}-{method}-{fmt}"
                key = f"{tool} {method} {fmt}"
                runs.setdefault(key, []).append(run_side(tool, method, fmt, built, out))
                if attempt == repeat - 1 and tool == "langmerge" and fmt == "full":
                    theirs = dict(PAIRS)[method]
                    differences[f"{method} vs {theirs}"] = largest_difference(
                        out, root / f"out-mergekit-{theirs}-full", built["base"]
                    )
                if not (attempt == repeat - 1 and fmt == "full"):
                    shutil.rmtree(out, ignore_errors=True)
            for out in root.glob("out-*"):
                shutil.rmtree(out, ignore_errors=True)
    figures: dict[str, Any] = {}
    for key, values in runs.items():
        figures[key] = {
            name: statistics.median(v[name] for v in values)
            for name in ("seconds", "peak_rss_gb", "bytes_written_gb")
        }
        figures[key]["seconds_range"] = [
            min(v["seconds"] for v in values),
            max(v["seconds"] for v in values),
        ]
    results["sides"], results["differences"] = figures, differences
    results["load_average_after"] = load_average()
    name = "mergekit_bench_quick.json" if args.quick else "mergekit_bench.json"
    if args.tag:
        name = name.replace(".json", f"_{args.tag}.json")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"shape {results['shape']}, medians of {repeat}; materialising the five full models "
        f"took {results['materialise_seconds']} s (mergekit's input only)"
    )
    for key, value in figures.items():
        print(
            f"{key:32s} {value['seconds']:8.1f} s  {value['peak_rss_gb']:6.2f} GB peak  "
            f"{value['bytes_written_gb']:6.2f} GB written"
        )
    for key, value in differences.items():
        print(
            f"{key}: largest |difference| {value['max_abs_difference']:.3g} "
            f"(largest merged update {value['max_abs_update']:.3g}); "
            f"{value['entries_differing']:,} of {value['entries']:,} entries differ"
        )
    print(f"load average {results['load_average_before']} -> {results['load_average_after']}")
    for ours, theirs in pairs:
        mk, full, lora = (
            figures[f"mergekit {theirs} full"],
            figures[f"langmerge {ours} full"],
            figures[f"langmerge {ours} lora"],
        )
        tag = ours.replace("-", "_")
        print(f"RESULT {tag}_full_speedup_vs_mergekit={mk['seconds'] / full['seconds']:.2f}")
        print(
            f"RESULT {tag}_full_rss_ratio_vs_mergekit={full['peak_rss_gb'] / mk['peak_rss_gb']:.2f}"
        )
        print(f"RESULT {tag}_lora_speedup_vs_mergekit={mk['seconds'] / lora['seconds']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
