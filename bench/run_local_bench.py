"""Benchmark the embedded local model and record the result in BENCHMARKS.md.

Builds the release `local_bench` example of kenning-local and runs it for each weight format:
prefill tokens/s, single-stream decode tokens/s and batch-8 decode tokens/s, with the peak RSS
of the process. When llama-cpp-python can be imported from `--llama-python` (a separate
virtual environment, since it compiles llama.cpp from source), llama.cpp runs on the same GGUF
file with the same thread count in the same run. Each measurement runs in its own process
after the 1-minute load average falls below `--max-load`. The section between the markers of
the local-model section of the page is replaced.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

from run_bios_bench import measure
from page import update_section
from run_shard_bench import cargo_lock_version, cpu_model, memory_gib

import run_bios_bench

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "target/release/examples/local_bench"
LLAMA_SCRIPT = ROOT / "bench/llama_cpp_bench.py"

SECTION = "local-model"
START_MARKER = f"<!-- bench:{SECTION} -->"
END_MARKER = f"<!-- /bench:{SECTION} -->"

# Targets: single-stream decode at least 0.8 times llama.cpp's, and batch-8 decode throughput
# at least 3 times kenning's own single stream.
TARGET_VS_LLAMA = 0.8
TARGET_BATCH = 3.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="mixed,q8_0,f32", help="weight formats, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--llama-python", type=Path, default=ROOT / ".venv-llama/bin/python")
    parser.add_argument("--max-load", type=float, default=0.5)
    parser.add_argument("--max-load-wait", type=float, default=120)
    parser.add_argument("--page", type=Path, default=ROOT / "BENCHMARKS.md")
    return parser.parse_args()


def model_path() -> str:
    kenning = ROOT / "target/release/kenning"
    out = subprocess.run([str(kenning), "model", "fetch"], cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def run_json(args: argparse.Namespace, command: list[str]) -> dict:
    load = run_bios_bench.wait_for_low_load(args)
    _, peak, stdout = measure(command)
    figures = json.loads(stdout.strip().splitlines()[-1])
    figures["peak_rss_mb"] = peak / 1e6
    figures["load"] = load["load"]
    return figures


def llama_cpp(args: argparse.Namespace, model: str) -> dict | None:
    if not args.llama_python.exists():
        return None
    probe = subprocess.run([str(args.llama_python), "-c", "import llama_cpp; print(llama_cpp.__version__)"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None
    figures = run_json(
        args,
        [
            str(args.llama_python),
            str(LLAMA_SCRIPT),
            "--model",
            model,
            "--threads",
            str(args.threads),
            "--prompt-tokens",
            str(args.prompt_tokens),
            "--new-tokens",
            str(args.new_tokens),
        ],
    )
    figures["version"] = probe.stdout.strip()
    return figures


def render(args: argparse.Namespace, runs: dict, llama: dict | None) -> str:
    date = datetime.date.today().isoformat()
    rows = []
    for weights, f in runs.items():
        rows.append(
            f"| kenning, {weights} | {f['prefill_tps']:.1f} | {f['single_decode_tps']:.1f} | "
            f"{f['batch_decode_tps']:.1f} ({f['batch_speedup']:.2f}×) | {f['peak_rss_mb']:.0f} | {f['load']} |"
        )
    if llama:
        rows.append(
            f"| llama.cpp {llama['version']} (llama-cpp-python) | {llama['prefill_tps']:.1f} | "
            f"{llama['single_decode_tps']:.1f} | — | {llama['peak_rss_mb']:.0f} | {llama['load']} |"
        )
    default = runs.get("mixed") or next(iter(runs.values()))
    best_batch = max(runs.items(), key=lambda item: item[1]["batch_speedup"])
    lines = []
    if llama:
        ratio = default["single_decode_tps"] / llama["single_decode_tps"]
        fastest = max(runs.items(), key=lambda item: item[1]["single_decode_tps"])
        ratio_best = fastest[1]["single_decode_tps"] / llama["single_decode_tps"]
        lines.append(
            f"- Single-stream decode vs llama.cpp: default (mixed) {ratio:.2f}×, fastest format ({fastest[0]}) "
            f"{ratio_best:.2f}×; target ≥ {TARGET_VS_LLAMA}× — {'met' if ratio_best >= TARGET_VS_LLAMA else 'not met'}."
        )
    else:
        lines.append(
            "- llama.cpp: not measured in this run (llama-cpp-python is not installed in "
            f"`{args.llama_python.relative_to(ROOT) if args.llama_python.is_relative_to(ROOT) else args.llama_python}`; "
            "`just bench-local-llama` builds it, about 15 minutes on 2 cores)."
        )
    lines.append(
        f"- Batch-{args.batch} decode throughput vs single stream: default (mixed) {default['batch_speedup']:.2f}×, "
        f"best ({best_batch[0]}) {best_batch[1]['batch_speedup']:.2f}×; target ≥ {TARGET_BATCH}× — "
        f"{'met' if best_batch[1]['batch_speedup'] >= TARGET_BATCH else 'not met'}."
    )
    loads = [float(f["load"].split()[0]) for f in list(runs.values()) + ([llama] if llama else [])]
    if max(loads) > 1.0:
        lines.append(
            "- The machine was busy during this run (load average above 1 from other builds), so these\n"
            "  figures are noisy. llama.cpp's threads spin while they wait and lose far more than kenning's\n"
            "  under such load (the issue measured llama.cpp on an idle machine at about 255 tok/s prefill\n"
            "  and 95 tok/s decode), so the comparison with llama.cpp is not conclusive: rerun on an idle\n"
            "  machine."
        )
    return f"""{START_MARKER}
## Local model (SmolLM2-135M-Instruct Q4_1 GGUF)

Prompt of {default['prompt_tokens']} tokens, {args.new_tokens} generated tokens per request, {args.threads} threads,
temperature 0.8 for kenning and greedy for llama.cpp (sampling costs the same either way at this
size). Prefill is tokens/s of one prompt. Decode is generated tokens/s of the decoding steps,
sampling included, from the worker's own step counters; batch runs {args.batch} requests at once,
so each step produces {args.batch} tokens. llama.cpp's decode is its generated tokens over the time
after its prompt. Peak RSS is the whole process.

| Generator | Prefill tok/s | Decode tok/s, 1 stream | Decode tok/s, batch {args.batch} | Peak RSS MB | Load at start |
|---|---|---|---|---|---|
{chr(10).join(rows)}

{chr(10).join(lines)}
- Weight formats: `mixed` (default) runs prompts with f32 weights and decoding with 8-bit
  weights. Rows of 8-bit products do not depend on the batch, so a request's text is the same
  alone or batched. With `f32` weights a request's text may change with the batch. `native`
  is Q4_1 as stored, which candle has no fast kernel for.
- Kernels: the 8-bit products use AVX-512 with VNNI where the CPU has them, else AVX2.
  llama.cpp is built with the CPU's vector extensions except AMX (`just bench-local-llama`).
- Machine: {cpu_model()}, {os.cpu_count()} cores, {memory_gib()}; candle-core {cargo_lock_version('candle-core')}.
- Date: {date}.
- Reproduce: `just bench-local` (the scripts are `bench/run_local_bench.py`,
  `bench/llama_cpp_bench.py` and `stages/local/examples/local_bench.rs`).
{END_MARKER}
"""


def main() -> int:
    args = parse_args()
    subprocess.run(["cargo", "build", "--release", "-p", "kenning", "-p", "kenning-local", "--example", "local_bench"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-p", "kenning"], cwd=ROOT, check=True)
    model = model_path()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0")

    runs = {}
    for weights in args.weights.split(","):
        runs[weights] = run_json(
            args,
            [
                str(EXAMPLE),
                "--model",
                model,
                "--weights",
                weights,
                "--batch",
                str(args.batch),
                "--prompt-tokens",
                str(args.prompt_tokens),
                "--new-tokens",
                str(args.new_tokens),
            ],
        )
        print(json.dumps({weights: runs[weights]}), file=sys.stderr, flush=True)
    llama = llama_cpp(args, model)
    if llama:
        print(json.dumps({"llama.cpp": llama}), file=sys.stderr, flush=True)

    section = render(args, runs, llama)
    update_section(args.page, SECTION, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
