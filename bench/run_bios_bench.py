"""Benchmark `kenning bios` against a plain Python generator and record the result in BENCHMARKS.md.

Builds the release `kenning` binary, then runs `kenning bios --people N` `--runs` times and
`bench/bios_python.py` with the same counts `--python-runs` times, each in its own process.
One large `kenning bios` run follows, which shows whether peak RSS stays flat as the row
count grows. Wall time and peak RSS are measured from outside the child (`os.wait4`), the
same way for both generators. The section between the markers of the bios section of the page
is replaced, and the rest of the page is left as it is.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_shard_bench import cargo_lock_version, command_output, cpu_model, load_average, memory_gib

ROOT = Path(__file__).resolve().parent.parent
KENNING = ROOT / "target/release/kenning"
PYTHON_SCRIPT = ROOT / "bench/bios_python.py"
TABLES = ("bios", "qa", "people")

SECTION = "bios"
START_MARKER = f"<!-- bench:{SECTION} -->"
END_MARKER = f"<!-- /bench:{SECTION} -->"

# Targets for `kenning bios`: 1M people in at most 3 s, 20 times the speed of the Python
# generator, and peak RSS under 300 MB at 10M biographies.
TARGET_SECONDS = 3.0
TARGET_RATIO = 20.0
TARGET_PEAK_RSS_MB = 300.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000, help="people with one biography each")
    parser.add_argument("--runs", type=int, default=3, help="runs of kenning, of which the median is reported")
    parser.add_argument("--python-runs", type=int, default=1, help="runs of the Python generator")
    parser.add_argument(
        "--memory-people",
        type=int,
        default=10_000_000,
        help="people (one biography each, no unknown people) in the peak-RSS run; 0 skips it",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / "bench-out/bios",
        help="folder for the temporary output, removed after each run (git-ignored under bench-out/)",
    )
    parser.add_argument("--page", type=Path, default=ROOT / "BENCHMARKS.md", help="Markdown page to update")
    parser.add_argument("--no-page", action="store_true", help="print the figures without updating the page")
    args = parser.parse_args()
    if args.people < 1 or args.runs < 1 or args.python_runs < 1 or args.memory_people < 0:
        parser.error("--people, --runs and --python-runs must be at least 1, --memory-people at least 0")
    return args


def measure(command: list[str]) -> tuple[float, int, str]:
    """Run `command`, and return its wall seconds, its peak RSS in bytes and its stdout."""
    print(f"$ {shlex.join(command)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, command, stdout)
    # Linux reports ru_maxrss in KiB.
    return seconds, usage.ru_maxrss * 1024, stdout


def run_kenning(args: argparse.Namespace, people: int, unknown_people: int | None) -> dict:
    """Run `kenning bios` into a temporary folder and return its figures."""
    out_dir = Path(tempfile.mkdtemp(dir=args.work_dir))
    command = [str(KENNING), "bios", "--people", str(people), "--out", str(out_dir), "--no-progress"]
    if unknown_people is not None:
        command += ["--unknown-people", str(unknown_people)]
    try:
        seconds, peak_rss, _ = measure(command)
        manifest = json.loads((out_dir / "manifest.json").read_text())
    finally:
        shutil.rmtree(out_dir)
    shards = {table: manifest["tables"][table]["shards"] for table in TABLES}
    figures = {
        "generator": "kenning",
        "people": people,
        "rows": {table: sum(shard["rows"] for shard in shards[table]) for table in TABLES},
        "output_bytes": {table: sum(shard["bytes"] for shard in shards[table]) for table in TABLES},
        "seconds": seconds,
        "peak_rss_bytes": peak_rss,
    }
    return report(figures)


def run_python(args: argparse.Namespace) -> dict:
    command = [sys.executable, str(PYTHON_SCRIPT), "--people", str(args.people), "--work-dir", str(args.work_dir)]
    seconds, peak_rss, stdout = measure(command)
    inner = json.loads(stdout.strip().splitlines()[-1])
    figures = {
        "generator": "python",
        "people": args.people,
        "rows": inner["rows"],
        "output_bytes": inner["output_bytes"],
        "seconds": seconds,
        "peak_rss_bytes": peak_rss,
    }
    return report(figures)


def report(figures: dict) -> dict:
    figures["total_rows"] = sum(figures["rows"].values())
    figures["total_bytes"] = sum(figures["output_bytes"].values())
    print(
        f"  {figures['generator']} ({figures['people']:,} people): {figures['seconds']:.2f} s, "
        f"peak RSS {figures['peak_rss_bytes'] / 1e6:.0f} MB",
        file=sys.stderr,
        flush=True,
    )
    return figures


def median_run(runs: list[dict]) -> dict:
    """Return the run with the median time (the lower one for an even count), with the
    highest peak RSS of all runs."""
    seconds = statistics.median_low(run["seconds"] for run in runs)
    chosen = dict(next(run for run in runs if run["seconds"] == seconds))
    chosen["peak_rss_bytes"] = max(run["peak_rss_bytes"] for run in runs)
    chosen["all_seconds"] = [run["seconds"] for run in runs]
    return chosen


def table_row(label: str, figures: dict, versus: str) -> str:
    rows = figures["rows"]
    megabytes = figures["output_bytes"]
    return (
        f"| {label} | {rows['bios']:,} | {rows['qa']:,} | {rows['people']:,} "
        f"| {figures['seconds']:.1f} | {figures['total_rows'] / figures['seconds']:,.0f} "
        f"| {megabytes['bios'] / 1e6:,.0f} / {megabytes['qa'] / 1e6:,.0f} / {megabytes['people'] / 1e6:,.0f} "
        f"| {figures['peak_rss_bytes'] / 1e6:,.0f} | {versus} |"
    )


def render_section(
    args: argparse.Namespace,
    kenning: dict,
    python: dict,
    memory: dict | None,
    load_before: str,
    load_after: str,
) -> str:
    ratio = python["seconds"] / kenning["seconds"]
    rows = [
        table_row(f"kenning, {args.people:,} people", kenning, f"{ratio:.1f}×"),
        table_row(f"Python, {args.people:,} people", python, "1.0×"),
    ]
    if memory is not None:
        rows.append(table_row(f"kenning, {memory['people']:,} people, no unknown people", memory, "–"))

    per_run = "; ".join(
        f"{f['generator']} " + ", ".join(f"{s:.2f}" for s in f["all_seconds"]) for f in (kenning, python)
    )
    seconds_met = "met" if kenning["seconds"] <= TARGET_SECONDS else "not met"
    ratio_met = "met" if ratio >= TARGET_RATIO else "not met"
    if memory is None:
        rss_target = "not measured in this run"
    elif memory["peak_rss_bytes"] / 1e6 < TARGET_PEAK_RSS_MB:
        rss_target = "met"
    else:
        rss_target = "not met"
    pyarrow_version = command_output([sys.executable, "-c", "import pyarrow; print(pyarrow.__version__)"])
    rustc_version = command_output(["rustc", "--version"])
    reproduce = shlex.join(["just", "bench-bios", *sys.argv[1:]])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    memory_people = f"{args.memory_people:,}" if memory is not None else "10,000,000"

    return f"""{START_MARKER}
## Biographies

`kenning bios --people {args.people:,}` (one biography per person, {kenning['rows']['people'] - args.people:,} unknown people by default, six QA rows per person) against `bench/bios_python.py`, a plain Python generator of the same three tables with the same columns and row counts: `random` with a seed, names kept unique by rejection with a set, the templates and pools of `datasets/bios`, and `pyarrow.parquet.ParquetWriter` with zstd level 3.
Each generator ran in its own process, one after the other: kenning {args.runs} times, Python {args.python_runs} {'time' if args.python_runs == 1 else 'times'}. The table shows the run with the median time, and the highest peak RSS of all runs. The last row is one kenning run with {memory_people} biographies, which shows whether memory grows with the row count.

| Run | bios rows | qa rows | people rows | Seconds | Rows/s | Output MB (bios / qa / people) | Peak RSS MB | vs Python |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

- Seconds are wall time from starting the process to its exit, measured by the driver with `os.wait4`, and cover loading pools and templates, generating every row, encoding, compressing, writing and fsyncing the shards, and (for kenning) the manifest and dataset card. Rows/s counts the rows of all three tables.
- Seconds of every run: {per_run}.
- Targets: kenning at most {TARGET_SECONDS:.0f} s for {args.people:,} people ({seconds_met}), at least {TARGET_RATIO:.0f}× faster than Python ({ratio_met}), and peak RSS under {TARGET_PEAK_RSS_MB:.0f} MB at {memory_people} biographies ({rss_target}).
- kenning runs one shard writer per CPU with its defaults: shards of about 64 MiB, row groups of at most 100,000 rows or 32 MiB. Python writes one file per table and split, with row groups of 100,000 rows, and keeps every person in a list so that it can write the biographies in a shuffled order, as kenning does. Python's names are made of syllables, because kenning's name pools come from a Rust crate, so its files differ a little in size.
- Peak RSS is `ru_maxrss` of the child process. Python's figure includes the interpreter and pyarrow.
- Machine: {cpu_model()}, {os.cpu_count()} CPUs, {memory_gib()} RAM, {platform.system()} {platform.release()}. Load average (1, 5, 15 min) before the runs: {load_before}; after them: {load_after}. kenning keeps every CPU busy and Python keeps one busy, so a 1-minute figure well above {os.cpu_count()} after the runs means that other processes competed for the CPUs.
- Versions: parquet crate {cargo_lock_version('parquet')}, zstd-sys {cargo_lock_version('zstd-sys')}, {rustc_version}, pyarrow {pyarrow_version}, Python {platform.python_version()}.
- Date: {date}.
- Reproduce: `{reproduce}` (`just bench` runs this and the shard-writer benchmark). The scripts are `bench/run_bios_bench.py` and `bench/bios_python.py`.
{END_MARKER}
"""


def update_page(page: Path, section: str) -> None:
    """Replace the bios section of `page`, or append it when the page has none."""
    text = page.read_text()
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start != -1 and end > start:
        end += len(END_MARKER)
        if text[end : end + 1] == "\n":
            end += 1
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    page.write_text(text)


def main() -> int:
    args = parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-p", "kenning"], cwd=ROOT, check=True)

    load_before = load_average()
    if float(load_before.split()[0]) > 0.5:
        print(f"warning: load average is {load_before}; other processes may slow the timed runs", file=sys.stderr)

    kenning_runs = [run_kenning(args, args.people, None) for _ in range(args.runs)]
    python_runs = [run_python(args) for _ in range(args.python_runs)]
    memory = run_kenning(args, args.memory_people, 0) if args.memory_people else None
    load_after = load_average()

    kenning = median_run(kenning_runs)
    python = median_run(python_runs)
    if kenning["rows"] != python["rows"]:
        print(
            f"error: the generators wrote different row counts: kenning {kenning['rows']}, Python {python['rows']}",
            file=sys.stderr,
        )
        return 1

    section = render_section(args, kenning, python, memory, load_before, load_after)
    print(section)
    if not args.no_page:
        update_page(args.page, section)
        print(f"updated {args.page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
