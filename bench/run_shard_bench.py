"""Benchmark Kenning's shard writer against pyarrow and record the result in BENCHMARKS.md.

Builds the `shard_bench` example, generates the corpus once (reused while its settings
match), then runs the Kenning writer and the pyarrow writer in turn, each in its own process,
`--runs` times. The run with the median time of each writer goes into the page, between the
markers of the shard-writer section, and the rest of the page is left as it is.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from page import update_section

ROOT = Path(__file__).resolve().parent.parent
BENCH_BINARY = ROOT / "target/release/examples/shard_bench"
PYARROW_SCRIPT = ROOT / "bench/shard_writer_pyarrow.py"

SECTION = "shard-writer"
START_MARKER = f"<!-- bench:{SECTION} -->"
END_MARKER = f"<!-- /bench:{SECTION} -->"
PAGE_HEADER = """# Benchmarks

Measured figures of Kenning's components. Each section is written by the script named in it,
between its `<!-- bench:NAME -->` markers. Rerun the script to replace it. MB is 10^6 bytes.
"""

# Targets from the shard writer's acceptance criteria.
TARGET_RATIO = 1.0
TARGET_PEAK_RSS_MB = 300.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the corpus")
    parser.add_argument(
        "--row-bytes", type=int, default=2048, help="mean length of a corpus row in bytes"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each writer, of which the median is reported")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / "bench-out/shard-writer",
        help="folder for the corpus and the temporary output (git-ignored under bench-out/)",
    )
    parser.add_argument(
        "--page", type=Path, default=ROOT / "BENCHMARKS.md", help="Markdown page to update"
    )
    parser.add_argument(
        "--row-group-rows",
        type=int,
        default=100_000,
        help="rows per row group for pyarrow (Kenning's default limit is also 100000 rows)",
    )
    parser.add_argument(
        "--no-page", action="store_true", help="print the figures without updating the page"
    )
    args = parser.parse_args()
    if args.rows < 1 or args.runs < 1:
        parser.error("--rows and --runs must be at least 1")
    return args


def run_json(command: list[str]) -> dict:
    """Run `command` in the repository root and return the JSON object on its last stdout line."""
    print(f"$ {shlex.join(command)}", file=sys.stderr, flush=True)
    result = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{command[0]} printed no figures")
    figures = json.loads(lines[-1])
    print(
        f"  {figures['writer']}: {figures['mb_per_s']:.1f} MB/s, "
        f"peak RSS {figures['peak_rss_mb']:.0f} MB",
        file=sys.stderr,
        flush=True,
    )
    return figures


def median_run(runs: list[dict]) -> dict:
    """Return the run with the median time (the lower one for an even count), with the
    highest peak RSS of all runs."""
    seconds = statistics.median_low(run["seconds"] for run in runs)
    chosen = dict(next(run for run in runs if run["seconds"] == seconds))
    chosen["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    chosen["all_mb_per_s"] = [run["mb_per_s"] for run in runs]
    return chosen


def cargo_lock_version(package: str) -> str:
    lock = (ROOT / "Cargo.lock").read_text()
    match = re.search(rf'name = "{re.escape(package)}"\nversion = "([^"]+)"', lock)
    return match.group(1) if match else "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
        return f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages from /proc/loadavg."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def command_output(command: list[str]) -> str:
    return subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


def render_section(
    args: argparse.Namespace, kenning: dict, pyarrow: dict, load_before: str, load_after: str
) -> str:
    ratio = kenning["mb_per_s"] / pyarrow["mb_per_s"]
    rows = []
    for figures, versus in ((kenning, f"{ratio:.2f}×"), (pyarrow, "1.00×")):
        rows.append(
            f"| {figures['writer']} | {figures['rows']:,} | {figures['text_mb']:,.0f} "
            f"| {figures['seconds']:.1f} | {figures['mb_per_s']:.1f} "
            f"| {figures['output_bytes'] / 1e6:,.0f} | {figures['output_files']} "
            f"| {figures['row_groups']} | {figures['peak_rss_mb']:.0f} | {versus} |"
        )
    per_run = "; ".join(
        f"{f['writer']} " + ", ".join(f"{v:.1f}" for v in f["all_mb_per_s"])
        for f in (kenning, pyarrow)
    )
    ratio_met = "met" if ratio >= TARGET_RATIO else "not met"
    rss_met = "met" if kenning["peak_rss_mb"] < TARGET_PEAK_RSS_MB else "not met"
    pyarrow_version = command_output([sys.executable, "-c", "import pyarrow; print(pyarrow.__version__)"])
    rustc_version = command_output(["rustc", "--version"])
    reproduce = shlex.join(["just", "bench-shards", *sys.argv[1:]])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    return f"""{START_MARKER}
## Shard writer

{kenning['rows']:,} rows of English-like text, {kenning['text_bytes'] / kenning['rows']:,.0f} bytes a row on average, written to zstd level 3 Parquet by `kenning_pipeline::sink::ShardWriter` with its default options and by `pyarrow.parquet.ParquetWriter` with the same columns and values.
Both ran one after the other in the same run, each writer {args.runs} times in its own process.
The table shows the run with the median time, and the highest peak RSS of all runs.

| Writer | Rows | Text MB | Seconds | MB/s | Output MB | Files | Row groups | Peak RSS MB | vs pyarrow |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{rows[0]}
{rows[1]}

- MB/s is MB of the `text` column divided by wall seconds. The time covers reading the corpus file (in the page cache after the first run), building the columns, encoding, compressing and writing, and the fsync of every output file.
- MB/s of every run: {per_run}.
- Targets: kenning at least {TARGET_RATIO:.1f}× pyarrow ({ratio_met}) and peak RSS under {TARGET_PEAK_RSS_MB:.0f} MB ({rss_met}).
- Kenning rolls shards at 256 MiB and bounds row groups at 100,000 rows or 64 MiB of encoded data. pyarrow writes one file with row groups of {args.row_group_rows:,} rows, and it buffers one row group's rows as Arrow arrays before writing them.
- Peak RSS is `VmHWM` from `/proc/self/status` for Kenning and `ru_maxrss` for pyarrow, whose figure includes the Python interpreter.
- Machine: {cpu_model()}, {os.cpu_count()} CPUs, {memory_gib()} RAM, {platform.system()} {platform.release()}. Load average (1, 5, 15 min) before the runs: {load_before}; after them: {load_after}. One writer at a time keeps about one CPU busy, so a 1-minute figure well above 1 after the runs means that other processes competed for the CPUs.
- Versions: parquet crate {cargo_lock_version('parquet')}, zstd-sys {cargo_lock_version('zstd-sys')}, {rustc_version}, pyarrow {pyarrow_version}, Python {platform.python_version()}.
- Date: {date}.
- Reproduce: `{reproduce}`. The scripts are `bench/run_shard_bench.py`, `bench/shard_writer_pyarrow.py` and `pipeline/engine/examples/shard_bench.rs`.
{END_MARKER}
"""


def update_page(page: Path, section: str) -> None:
    """Replace this benchmark's section of `page`, or append it when the page has none."""
    update_section(page, SECTION, section)


def main() -> int:
    args = parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    corpus = args.work_dir / "rows.txt"

    subprocess.run(
        ["cargo", "build", "--release", "--example", "shard_bench", "-p", "kenning-pipeline"],
        cwd=ROOT,
        check=True,
    )
    subprocess.run(
        [
            str(BENCH_BINARY),
            "generate",
            "--output",
            str(corpus),
            "--rows",
            str(args.rows),
            "--row-bytes",
            str(args.row_bytes),
        ],
        cwd=ROOT,
        check=True,
    )

    load_before = load_average()
    if float(load_before.split()[0]) > 0.5:
        print(
            f"warning: load average is {load_before}; other processes may slow the timed runs",
            file=sys.stderr,
        )

    kenning_command = [str(BENCH_BINARY), "write", "--input", str(corpus), "--work-dir", str(args.work_dir)]
    pyarrow_command = [
        sys.executable,
        str(PYARROW_SCRIPT),
        "--input",
        str(corpus),
        "--work-dir",
        str(args.work_dir),
        "--row-group-rows",
        str(args.row_group_rows),
    ]
    kenning_runs = []
    pyarrow_runs = []
    for run in range(args.runs):
        # Alternate which writer goes first, so that neither always runs on a colder cache.
        order = [(kenning_command, kenning_runs), (pyarrow_command, pyarrow_runs)]
        if run % 2 == 1:
            order.reverse()
        for command, runs in order:
            runs.append(run_json(command))

    load_after = load_average()
    kenning = median_run(kenning_runs)
    pyarrow = median_run(pyarrow_runs)
    if kenning["rows"] != pyarrow["rows"] or kenning["text_bytes"] != pyarrow["text_bytes"]:
        print("error: the two writers read different rows from the corpus", file=sys.stderr)
        return 1

    section = render_section(args, kenning, pyarrow, load_before, load_after)
    print(section)
    if not args.no_page:
        update_page(args.page, section)
        print(f"updated {args.page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
