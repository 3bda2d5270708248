"""Benchmark `kenning bios` against a plain Python generator and record the result in BENCHMARKS.md.

Builds the release `kenning` binary, then makes two comparisons: the biographies table alone
(`--tables bios`) and all three tables. Each runs `kenning bios --people N` `--runs` times and
`bench/bios_python.py` with the same counts and tables `--python-runs` times, each in its own
process. One large `kenning bios` run of all three tables follows, which shows whether peak
RSS stays flat as the row count grows. Before every timed run the driver waits until the
1-minute load average is below `--max-load`, because other processes on a small machine skew
the times. Wall time and peak RSS are measured from outside the child (`os.wait4`), the same
way for both generators. The section between the markers of the bios section of the page is
replaced, and the rest of the page is left as it is.
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
from page import update_section

ROOT = Path(__file__).resolve().parent.parent
# Cargo's output folder: CARGO_TARGET_DIR when set (relative paths start at the repository root).
KENNING = ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "release/kenning"
PYTHON_SCRIPT = ROOT / "bench/bios_python.py"
TABLES = ("bios", "qa", "people")
# Table sets compared between kenning and Python: the biographies alone, then all three tables.
COMPARISONS = (("bios",), TABLES)
LOAD_POLL_SECONDS = 10

SECTION = "bios"
START_MARKER = f"<!-- bench:{SECTION} -->"
END_MARKER = f"<!-- /bench:{SECTION} -->"

# Targets for `kenning bios`: 1M people × 1 biography in at most 3 s, 20 times the speed of
# the Python generator, and peak RSS under 300 MB at 10M biographies. Both comparisons are
# checked against the time and speed targets.
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
        "--max-load",
        type=float,
        default=1.0,
        help="1-minute load average below which a timed run may start",
    )
    parser.add_argument(
        "--max-load-wait",
        type=float,
        default=900.0,
        help="seconds to wait for the load average before each run; the run then starts anyway and is flagged",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / "bench-out/bios",
        help="folder for the temporary output, removed after each run (git-ignored under bench-out/)",
    )
    parser.add_argument(
        "--binary",
        type=Path,
        help="kenning binary to time, instead of building the release binary of this checkout; "
        "for a target folder that other checkouts also build into",
    )
    parser.add_argument("--page", type=Path, default=ROOT / "BENCHMARKS.md", help="Markdown page to update")
    parser.add_argument("--no-page", action="store_true", help="print the figures without updating the page")
    args = parser.parse_args()
    if args.people < 1 or args.runs < 1 or args.python_runs < 1 or args.memory_people < 0:
        parser.error("--people, --runs and --python-runs must be at least 1, --memory-people at least 0")
    if args.max_load <= 0 or args.max_load_wait < 0:
        parser.error("--max-load must be above 0 and --max-load-wait at least 0")
    return args


def wait_for_low_load(args: argparse.Namespace) -> dict:
    """Poll /proc/loadavg until the 1-minute load average is below `--max-load` or
    `--max-load-wait` seconds have passed, and return the load at the start of the run."""
    started = time.monotonic()
    while True:
        load = load_average()
        waited = time.monotonic() - started
        if float(load.split()[0]) < args.max_load:
            return {"load": load, "waited_seconds": waited, "load_below_max": True}
        if waited >= args.max_load_wait:
            print(
                f"warning: load average is still {load} after {waited:.0f} s; starting the run anyway",
                file=sys.stderr,
                flush=True,
            )
            return {"load": load, "waited_seconds": waited, "load_below_max": False}
        print(f"  waiting for the load average to fall below {args.max_load}: {load}", file=sys.stderr, flush=True)
        time.sleep(LOAD_POLL_SECONDS)


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


def run_kenning(args: argparse.Namespace, people: int, unknown_people: int | None, tables: tuple[str, ...]) -> dict:
    """Run `kenning bios` into a temporary folder and return its figures."""
    out_dir = Path(tempfile.mkdtemp(dir=args.work_dir))
    command = [str(args.binary or KENNING), "bios", "--people", str(people), "--tables", ",".join(tables)]
    command += ["--out", str(out_dir), "--no-progress"]
    if unknown_people is not None:
        command += ["--unknown-people", str(unknown_people)]
    load = wait_for_low_load(args)
    try:
        seconds, peak_rss, _ = measure(command)
        manifest = json.loads((out_dir / "manifest.json").read_text())
    finally:
        shutil.rmtree(out_dir)
    shards = {table: manifest["tables"][table]["shards"] for table in tables}
    figures = {
        "generator": "kenning",
        "people": people,
        "tables": tables,
        "rows": {table: sum(shard["rows"] for shard in shards[table]) for table in tables},
        "output_bytes": {table: sum(shard["bytes"] for shard in shards[table]) for table in tables},
        "seconds": seconds,
        "peak_rss_bytes": peak_rss,
        **load,
    }
    return report(figures)


def run_python(args: argparse.Namespace, tables: tuple[str, ...]) -> dict:
    command = [sys.executable, str(PYTHON_SCRIPT), "--people", str(args.people), "--tables", ",".join(tables)]
    command += ["--work-dir", str(args.work_dir)]
    load = wait_for_low_load(args)
    seconds, peak_rss, stdout = measure(command)
    inner = json.loads(stdout.strip().splitlines()[-1])
    figures = {
        "generator": "python",
        "people": args.people,
        "tables": tables,
        "rows": inner["rows"],
        "output_bytes": inner["output_bytes"],
        "seconds": seconds,
        "peak_rss_bytes": peak_rss,
        **load,
    }
    return report(figures)


def report(figures: dict) -> dict:
    figures["total_rows"] = sum(figures["rows"].values())
    figures["total_bytes"] = sum(figures["output_bytes"].values())
    print(
        f"  {figures['generator']} ({figures['people']:,} people, {','.join(figures['tables'])}): "
        f"{figures['seconds']:.2f} s, "
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
    chosen["all_loads"] = [run["load"] for run in runs]
    chosen["runs_above_max_load"] = sum(not run["load_below_max"] for run in runs)
    return chosen


def table_row(label: str, figures: dict, versus: str) -> str:
    """Format one run as a Markdown table row. A table that the run did not write shows `–`."""
    rows = [f"{figures['rows'][table]:,}" if table in figures["rows"] else "–" for table in TABLES]
    megabytes = [
        f"{figures['output_bytes'][table] / 1e6:,.0f}" if table in figures["output_bytes"] else "–" for table in TABLES
    ]
    return (
        f"| {label} | {' | '.join(rows)} "
        f"| {figures['seconds']:.1f} | {figures['total_rows'] / figures['seconds']:,.0f} "
        f"| {' / '.join(megabytes)} "
        f"| {figures['peak_rss_bytes'] / 1e6:,.0f} | {versus} |"
    )


def describe_tables(tables: tuple[str, ...]) -> str:
    return "All three tables" if tables == TABLES else f"`--tables {','.join(tables)}`"


def met(condition: bool) -> str:
    return "met" if condition else "not met"


def comparison_targets(args: argparse.Namespace, kenning: dict, python: dict) -> str:
    """Describe how one comparison fares against the time and speed targets, with the numbers."""
    ratio = python["seconds"] / kenning["seconds"]
    return (
        f"{describe_tables(kenning['tables'])}: {kenning['seconds']:.2f} s against at most {TARGET_SECONDS:.0f} s "
        f"({met(kenning['seconds'] <= TARGET_SECONDS)}), and {ratio:.1f}× the speed of Python against at least "
        f"{TARGET_RATIO:.0f}× ({met(ratio >= TARGET_RATIO)})"
    )


def load_notes(args: argparse.Namespace, runs: list[dict]) -> str:
    """Describe the load averages at the starts of the runs, and flag runs that started above `--max-load`."""
    loads = [float(run["load"].split()[0]) for run in runs]
    above = [run for run in runs if not run["load_below_max"]]
    text = (
        f"Before every run the driver waited until the 1-minute load average was below {args.max_load} "
        f"(polling /proc/loadavg every {LOAD_POLL_SECONDS} s, for at most {args.max_load_wait:.0f} s). "
        f"1-minute load at the starts of the runs: {min(loads):.2f} to {max(loads):.2f}"
    )
    if above:
        text += (
            f". {len(above)} of {len(runs)} runs started with the load still at or above {args.max_load} "
            "after the full wait, so their times may be slowed by other processes"
        )
    return text + "."


def render_section(
    args: argparse.Namespace,
    comparisons: list[tuple[dict, dict]],
    memory: dict | None,
    all_runs: list[dict],
    load_before: str,
    load_after: str,
) -> str:
    rows = []
    per_run = []
    targets = []
    for kenning, python in comparisons:
        ratio = python["seconds"] / kenning["seconds"]
        tables = ",".join(kenning["tables"])
        rows.append(table_row(f"kenning, {args.people:,} people, {tables}", kenning, f"{ratio:.1f}×"))
        rows.append(table_row(f"Python, {args.people:,} people, {tables}", python, "1.0×"))
        per_run.append(
            f"{describe_tables(kenning['tables'])}: "
            + "; ".join(f"{f['generator']} " + ", ".join(f"{s:.2f}" for s in f["all_seconds"]) for f in (kenning, python))
        )
        targets.append(comparison_targets(args, kenning, python))
    if memory is not None:
        rows.append(
            table_row(f"kenning, {memory['people']:,} people, no unknown people, bios,qa,people", memory, "–")
        )

    memory_people = f"{args.memory_people:,}" if memory is not None else "10,000,000"
    if memory is None:
        rss_target = "not measured in this run"
    else:
        rss_megabytes = memory["peak_rss_bytes"] / 1e6
        rss_target = f"{rss_megabytes:,.0f} MB, {met(rss_megabytes < TARGET_PEAK_RSS_MB)}"
    unknown_people = comparisons[-1][0]["rows"]["people"] - args.people
    pyarrow_version = command_output([sys.executable, "-c", "import pyarrow; print(pyarrow.__version__)"])
    rustc_version = command_output(["rustc", "--version"])
    reproduce = shlex.join(["just", "bench-bios", *sys.argv[1:]])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    return f"""{START_MARKER}
## Biographies

`kenning bios --people {args.people:,}` (one biography per person) against `bench/bios_python.py`, a plain Python generator with the same columns and row counts: `random` with a seed, names kept unique by rejection with a set, the templates and pools of `datasets/bios`, and `pyarrow.parquet.ParquetWriter` with zstd level 3. Two comparisons, with the same `--tables` for both generators:

- `--tables bios`: the biographies table alone, {args.people:,} people × 1 biography. This is how the page reads the target "1M people × 1 biography". Neither generator draws unknown people or builds QA rows, because only those tables need them.
- All three tables (the default): biographies, plus {unknown_people:,} unknown people by default, six QA rows per person and one `people` row per person.

Each generator ran in its own process, one after the other: kenning {args.runs} times and Python {args.python_runs} {'time' if args.python_runs == 1 else 'times'} per comparison. The table shows the run with the median time, and the highest peak RSS of all runs. The last row is one kenning run of all three tables with {memory_people} people and {memory_people} biographies, which shows whether memory grows with the row count. It writes all three tables because that is the superset of the work. The bios-only path at that size was not measured.

| Run | bios rows | qa rows | people rows | Seconds | Rows/s | Output MB (bios / qa / people) | Peak RSS MB | vs Python |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

- Seconds are wall time from starting the process to its exit, measured by the driver with `os.wait4`, and cover loading pools and templates, generating every row, encoding, compressing, writing and fsyncing the shards, and (for kenning) the manifest and dataset card. Rows/s counts the rows of the tables that the run wrote.
- Seconds of every run: {'. '.join(per_run)}.
- Targets: at most {TARGET_SECONDS:.0f} s for {args.people:,} people × 1 biography, at least {TARGET_RATIO:.0f}× the speed of Python, and peak RSS under {TARGET_PEAK_RSS_MB:.0f} MB at {memory_people} biographies.
{chr(10).join(f"  - {target}." for target in targets)}
  - Peak RSS at {memory_people} biographies (all three tables): {rss_target}.
- kenning runs one shard writer per CPU with its defaults: shards of about 64 MiB, row groups of at most 100,000 rows or 32 MiB. Python writes one file per table and split, with row groups of 100,000 rows, and keeps every person with a biography in a list so that it can write the biographies in a shuffled order, as kenning does. Python's names are made of syllables, because kenning's name pools come from a Rust crate, so its files differ a little in size.
- Peak RSS is `ru_maxrss` of the child process. Python's figure includes the interpreter and pyarrow.
- Machine: {cpu_model()}, {os.cpu_count()} CPUs, {memory_gib()} RAM, {platform.system()} {platform.release()}. Load average (1, 5, 15 min) when the driver started, before any wait: {load_before}; after the last run: {load_after}. {load_notes(args, all_runs)}
- Versions: parquet crate {cargo_lock_version('parquet')}, zstd-sys {cargo_lock_version('zstd-sys')}, {rustc_version}, pyarrow {pyarrow_version}, Python {platform.python_version()}.
- Date: {date}.
- Reproduce: `{reproduce}` (`just bench` runs it with the other benchmarks; `--binary` names a release build of `kenning` to time, which the script otherwise builds). The scripts are `bench/run_bios_bench.py` and `bench/bios_python.py`.
{END_MARKER}
"""


def update_page(page: Path, section: str) -> None:
    """Replace this benchmark's section of `page`, or append it when the page has none."""
    update_section(page, SECTION, section)


def main() -> int:
    args = parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.binary is None:
        subprocess.run(["cargo", "build", "--release", "-p", "kenning"], cwd=ROOT, check=True)

    load_before = load_average()
    comparisons = []
    all_runs = []
    for tables in COMPARISONS:
        kenning_runs = [run_kenning(args, args.people, None, tables) for _ in range(args.runs)]
        python_runs = [run_python(args, tables) for _ in range(args.python_runs)]
        all_runs += kenning_runs + python_runs
        kenning = median_run(kenning_runs)
        python = median_run(python_runs)
        if kenning["rows"] != python["rows"]:
            print(
                f"error: the generators wrote different row counts for {','.join(tables)}: "
                f"kenning {kenning['rows']}, Python {python['rows']}",
                file=sys.stderr,
            )
            return 1
        comparisons.append((kenning, python))
    memory = run_kenning(args, args.memory_people, 0, TABLES) if args.memory_people else None
    if memory is not None:
        all_runs.append(memory)
    load_after = load_average()

    section = render_section(args, comparisons, memory, all_runs, load_before, load_after)
    print(section)
    if not args.no_page:
        update_page(args.page, section)
        print(f"updated {args.page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
