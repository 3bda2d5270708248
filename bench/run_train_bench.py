"""Benchmark training throughput of kenning-train (candle) against PyTorch on CPU and record it
in BENCHMARKS.md.

Builds `stages/train/examples/bench_train.rs` in release mode and runs it, and runs
`bench/train_torch.py` with the same model, batch and context in a separate virtual
environment, `.venv-bench-train`. That environment gets `torch` from PyPI on first use. PyPI's
default wheel is the CUDA build, about 5 GB with its NVIDIA packages, and it runs on CPU. Both
sides use every core. Each side runs `--runs` times, the two sides taking turns, and the
medians are reported. With `--skip-torch` only the candle side runs, and the PyTorch column
reports that. The section between the markers of the train section of the page is replaced,
and the rest of the page is left as it is.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from run_shard_bench import cpu_model
from page import update_section

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-bench-train"
SECTION = "train"
START_MARKER = f"<!-- bench:{SECTION} -->"
END_MARKER = f"<!-- /bench:{SECTION} -->"
TARGET_RATIO = 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--runs", type=int, default=3, help="runs per side; the median is reported")
    parser.add_argument("--skip-torch", action="store_true", help="measure the candle side only")
    parser.add_argument("--page", type=Path, default=ROOT / "BENCHMARKS.md")
    return parser.parse_args()


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def run_json(command: list[str], env: dict | None = None) -> dict:
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def ensure_torch() -> Path:
    python = VENV / "bin/python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "torch"], check=True)
    return python


def median(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["tokens_per_second"])
    return ordered[len(ordered) // 2]


def render(args: argparse.Namespace, candle: dict, torch: dict | None) -> str:
    cores = os.cpu_count()
    rate = candle["tokens_per_second"]
    if torch is None:
        torch_cell, ratio_cell = "not measured (--skip-torch)", "n/a"
    else:
        ratio = rate / torch["tokens_per_second"]
        met = "met" if ratio >= TARGET_RATIO else "not met"
        torch_cell = f"{torch['tokens_per_second']:,.0f} (torch {torch['torch']}, {torch['threads']} threads)"
        ratio_cell = f"{ratio:.2f}× (target ≥ {TARGET_RATIO:.1f}×: {met})"
    reproduce = "just bench-train" + (" --skip-torch" if torch is None else "")
    return f"""{START_MARKER}
## Training throughput (kenning-train on candle vs PyTorch, CPU)

A llama-style decoder with {candle['parameters']:,} parameters (vocabulary 4096, 4 layers,
width 256, 8 heads, SwiGLU width 768, tied embeddings), context 128, batch 16, AdamW with
gradient clipping, f32, random tokens, both sides initialised with N(0, 0.02). Median of
{args.runs} runs of {args.steps} timed steps after {args.warmup} untimed ones, the two sides
taking turns run by run.

| | training tokens/s |
|---|---|
| kenning-train (candle 0.11.1) | {rate:,.0f} |
| PyTorch | {torch_cell} |
| ratio candle / PyTorch | {ratio_cell} |

- kenning-train on the CPU in f32: each decoder block is one operation with a hand-written
  backward pass on the `gemm` crate (AVX-512 kernels where the CPU has them), causal attention
  skips the masked tiles, the loss and norms are fused operations, and AdamW updates in place.
  PyTorch runs its stock modules (`scaled_dot_product_attention`, fused QKV projection).
- Machine: {cpu_model()}, {cores} cores.
- Date: {datetime.date.today().isoformat()}.
- Reproduce: `{reproduce}`. The scripts are `bench/run_train_bench.py`,
  `bench/train_torch.py` and `stages/train/examples/bench_train.rs`.
{END_MARKER}
"""


def update_page(page: Path, section: str) -> None:
    """Replace this benchmark's section of `page`, or append it when the page has none."""
    update_section(page, SECTION, section)


def main() -> int:
    args = parse_args()
    subprocess.run(
        ["cargo", "build", "--release", "-p", "kenning-train", "--example", "bench_train"],
        cwd=ROOT,
        check=True,
    )
    binary = target_dir() / "release/examples/bench_train"
    threads = str(os.cpu_count() or 1)
    env = dict(os.environ, RAYON_NUM_THREADS=os.environ.get("RAYON_NUM_THREADS", threads))
    python = None if args.skip_torch else ensure_torch()
    # The two sides take turns, run by run, so that a change in the machine's speed during the
    # benchmark (shared hosts drift by a third within minutes) reaches both alike.
    candle_runs, torch_runs = [], []
    for _ in range(args.runs):
        candle_runs.append(run_json([str(binary), str(args.steps), str(args.warmup)], env))
        if python is not None:
            script = [str(python), str(ROOT / "bench/train_torch.py"), str(args.steps), str(args.warmup)]
            torch_runs.append(run_json(script))
    candle = median(candle_runs)
    print(f"candle: {candle['tokens_per_second']:,.0f} tokens/s")
    torch = median(torch_runs) if torch_runs else None
    if torch is not None:
        print(f"PyTorch: {torch['tokens_per_second']:,.0f} tokens/s")

    update_page(args.page, render(args, candle, torch))
    print(f"Updated {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
