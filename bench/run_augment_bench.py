"""Benchmark the augment stage's HTTP client against Python's openai client and record the result in BENCHMARKS.md.

Builds the release `kenning` binary and the `bench_server` and `provider_bench` examples of
`stages/augment`, starts `bench_server` on 127.0.0.1 (a tokio HTTP/1.1 keep-alive server that
answers every request with a fixed chat completion after a fixed latency), and then runs, one
after the other, each in its own process:

- requests/s at each concurrency for `Provider::complete`, a bare reqwest loop and Python's
  `openai` AsyncOpenAI, with wall time, CPU time and peak RSS measured from outside (`os.wait4`);
- peak RSS with 10,000 requests in flight, for `Provider` and AsyncOpenAI;
- the full `kenning augment` stage (journal and shards) on generated documents;
- the achieved request rate under a requests-per-minute limit;
- small and large requests, interleaved, under a tokens-per-minute limit.

The server's CPU time is read from /proc before and after each run, to show whether it was the
bottleneck. The section between the augment markers of the page is replaced.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_shard_bench import cargo_lock_version, command_output, cpu_model, load_average, memory_gib
from page import update_section

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
PYTHON_CLIENT = ROOT / "bench/augment_openai.py"

SECTION = "augment"
START_MARKER = f"<!-- bench:{SECTION} -->"
END_MARKER = f"<!-- /bench:{SECTION} -->"

# Targets: at least 10 times Python's requests per CPU-second, the full stage at least half the
# bare reqwest loop's rate, flat RSS, and the achieved rate within 2% of a 600/min limit.
TARGET_RATIO = 10.0
TARGET_STAGE_SHARE = 0.5
# Largest change of the Provider's peak RSS from 3× to 10× the requests in flight that counts as flat.
TARGET_RSS_GROWTH = 0.15
TARGET_RATE_ERROR = 0.02
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256, 1024], help="requests in flight")
    parser.add_argument("--latency-ms", type=int, default=5, help="server latency per request")
    parser.add_argument("--rust-requests", type=int, default=50_000, help="requests per Rust run")
    parser.add_argument("--python-requests", type=int, default=10_000, help="requests per Python run")
    parser.add_argument("--in-flight", type=int, default=10_000, help="requests in flight in the peak-RSS runs")
    parser.add_argument("--stage-documents", type=int, default=100_000, help="documents of the full-stage run")
    parser.add_argument("--stage-concurrency", type=int, default=256, help="concurrency of the full-stage run")
    parser.add_argument("--rate-limit", type=int, default=600, help="requests per minute of the rate run")
    parser.add_argument("--rate-requests", type=int, default=660, help="requests of the rate run")
    parser.add_argument("--server-threads", type=int, default=1, help="worker threads of the server")
    parser.add_argument("--page", type=Path, default=ROOT / "BENCHMARKS.md", help="Markdown page to update")
    parser.add_argument("--no-page", action="store_true", help="print the figures without updating the page")
    parser.add_argument(
        "--render",
        type=Path,
        help="render the page section from a JSON file that an earlier run saved, without running anything",
    )
    parser.add_argument(
        "--save",
        type=Path,
        default=ROOT / "bench-out/augment.json",
        help="where to save the figures and notes of this run (git-ignored under bench-out/)",
    )
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raise_file_limit() -> None:
    """Let a child open as many sockets as the hard limit allows (10,000 requests in flight)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of /proc/PID/stat, counted from 1.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def measure(command: list[str], server_pid: int) -> dict:
    """Run `command` and return its JSON line with wall and CPU seconds, peak RSS and server CPU."""
    print(f"$ {shlex.join(command)}", file=sys.stderr, flush=True)
    server_before = process_cpu_seconds(server_pid)
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=raise_file_limit)
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), command, stdout)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    figures = json.loads(lines[-1]) if lines else {}
    figures.update(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss * 1024 / 1e6,
        server_cpu=process_cpu_seconds(server_pid) - server_before,
    )
    return figures


def throughput(figures: dict) -> dict:
    # The client's own `seconds` covers the requests only, not start-up.
    figures["rps"] = figures["ok"] / figures["seconds"]
    figures["per_cpu_second"] = figures["ok"] / figures["cpu"]
    figures["server_load"] = figures["server_cpu"] / figures["wall"]
    return figures


def run_stage(args: argparse.Namespace, url: str, server_pid: int, work: Path) -> dict:
    documents = work / "docs.jsonl"
    with documents.open("w") as out:
        for i in range(args.stage_documents):
            text = f"Document {i} tells how Johannes Gutenberg built a printing press in Mainz around 1440."
            out.write(json.dumps({"id": f"doc-{i}", "title": f"Doc {i}", "text": text}) + "\n")
    command = [
        str(TARGET / "kenning"), "augment", "--no-progress", "--quiet", "--input", str(documents),
        "--out", str(work / "out"), "--base-url", url, "--model", "bench-model",
        "--strategies", "rephrase", "--k", "1", "--concurrency", str(args.stage_concurrency),
        "--max-attempts", "1",
    ]
    figures = measure(command, server_pid)
    manifest = json.loads((work / "out/manifest.json").read_text())
    rows = sum(shard["rows"] for shard in manifest["shards"])
    figures.update(ok=rows, seconds=figures["wall"], concurrency=args.stage_concurrency)
    return throughput(figures)


CLIENTS = (("provider", "kenning Provider"), ("reqwest", "bare reqwest"), ("python", "Python AsyncOpenAI"))


def completed(figures: dict) -> str:
    requests = figures.get("requests", figures["ok"])
    return f"{figures['ok']:,}" if figures["ok"] >= requests else f"{figures['ok']:,} of {requests:,}"


def met(condition: bool) -> str:
    return "met" if condition else "not met"


def render(args: argparse.Namespace, results: dict, notes: dict) -> str:
    lines = [
        START_MARKER,
        "## Augment HTTP client",
        "",
        f"Requests to a loopback OpenAI-compatible server on 127.0.0.1 with {args.latency_ms} ms latency per request: "
        "`kenning_augment::provider::Provider` (the stage's client, with its timeout, retry policy, cooldown and "
        "concurrency cap), a bare reqwest loop with the same request and JSON parsing, and Python's `openai` "
        "`AsyncOpenAI` (retries off, connection pool as large as the concurrency). The server is "
        f"`stages/augment/examples/bench_server.rs`, a tokio HTTP/1.1 keep-alive server with {args.server_threads} "
        "worker thread(s); the `server CPU` column is its CPU seconds per wall second during the run, so a value well "
        "below 1 per thread means it was not the bottleneck. Every run is one process, one after the other, in the "
        "same driver run.",
        "",
        "| Client | In flight | Requests | Seconds | Requests/s | Requests per CPU-second | Peak RSS MB | Server CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [(label, figures) for key, label in CLIENTS for figures in results[key]]
    rows += [
        ("kenning Provider, peak RSS run", results["rss_provider"]),
        ("kenning Provider, peak RSS run, 10× the requests", results["rss_provider_long"]),
        ("Python AsyncOpenAI, peak RSS run", results["rss_python"]),
        ("`kenning augment` (journal + shards)", results["stage"]),
    ]
    for label, figures in rows:
        lines.append(
            f"| {label} | {figures['concurrency']:,} | {completed(figures)} | {figures['seconds']:.2f} | "
            f"{figures['rps']:,.0f} | {figures['per_cpu_second']:,.0f} | {figures['rss_mb']:.0f} | {figures['server_load']:.2f} |"
        )
    stage = results["stage"]
    failed_runs = [
        f"{label} with {figures['concurrency']:,} in flight: "
        + ", ".join(f"{count:,} {name}" for name, count in sorted(figures.get("errors", {}).items()))
        for label, figures in rows
        if figures["ok"] < figures.get("requests", figures["ok"])
    ]

    ratios = [
        (p["concurrency"], p["per_cpu_second"] / q["per_cpu_second"], p["rps"] / q["rps"])
        for p, q in zip(results["provider"], results["python"])
    ]
    bare = next((r for r in results["reqwest"] if r["concurrency"] == stage["concurrency"]), results["reqwest"][-1])
    share = stage["rps"] / bare["rps"]
    # The bare loop's figure varies from run to run on shared cores, so the page also gives the
    # share of its fastest run at any concurrency.
    fastest = max(results["reqwest"], key=lambda r: r["rps"])
    growth = results["rss_provider_long"]["rss_mb"] / results["rss_provider"]["rss_mb"] - 1
    rate = results["rate"]
    rate_error = rate["busiest_60s"] / args.rate_limit - 1.0
    steady_error = rate["steady_per_minute"] / args.rate_limit - 1.0
    tokens = results["tokens"]
    lines += [
        "",
        "- Requests/s counts completed requests over the client's own timer (start-up excluded; the full stage's figure "
        "is rows over the whole process time, reading the input and writing the shards, manifest and card included). "
        "Requests per CPU-second divides the requests by the client process's user + system CPU time, the "
        "per-core measure: Python's client runs on one core, the Rust runtimes on both.",
        "- Provider against Python, requests per CPU-second (and per wall second): "
        + "; ".join(f"{c:,} in flight {cpu:.1f}× ({wall:.1f}×)" for c, cpu, wall in ratios)
        + f". Target at least {TARGET_RATIO:.0f}× per core: "
        + met(all(cpu >= TARGET_RATIO for _, cpu, _ in ratios)) + ".",
        f"- Full stage against the bare reqwest loop at {stage['concurrency']} in flight: {stage['rps']:,.0f} against "
        f"{bare['rps']:,.0f} requests/s, {share:.2f} of it ({stage['rps'] / fastest['rps']:.2f} of the bare loop's "
        f"fastest run, {fastest['rps']:,.0f} requests/s at {fastest['concurrency']:,} in flight). "
        f"Target at least {TARGET_STAGE_SHARE}: {met(share >= TARGET_STAGE_SHARE)}.",
        f"- Peak RSS: {results['rss_provider']['rss_mb']:.0f} MB for the Provider with {args.in_flight:,} requests in flight "
        f"against {max(r['rss_mb'] for r in results['provider']):.0f} MB at most with {max(args.concurrency):,}, and "
        f"Python's AsyncOpenAI {results['rss_python']['rss_mb']:.0f} MB with {args.in_flight:,}. The Provider's RSS grows with "
        "the requests in flight (connections and their buffers), not with the requests sent: "
        f"{completed(results['rss_provider'])} requests peaked at {results['rss_provider']['rss_mb']:.0f} MB and "
        f"{completed(results['rss_provider_long'])} at {results['rss_provider_long']['rss_mb']:.0f} MB, "
        f"{growth:+.0%}. Target flat (within {TARGET_RSS_GROWTH:.0%}): {met(abs(growth) <= TARGET_RSS_GROWTH)}.",
        "- Requests that failed (the `Requests` column then shows completed of sent): "
        + ("; ".join(failed_runs) if failed_runs else "none") + ".",
        f"- Request rate under `requests_per_minute = {args.rate_limit}` ({args.rate_requests} requests, 64 in flight): "
        f"{rate['busiest_60s']} requests finished in the busiest 60 s window ({rate_error:+.1%} from the limit; the first "
        f"second's burst of {-(-args.rate_limit // 60)} is allowed by the quota), and {rate['steady_per_minute']:.1f}/min from the "
        f"first to the last finish ({steady_error:+.1%}). Target within {TARGET_RATE_ERROR:.0%}: "
        f"{met(abs(rate_error) <= TARGET_RATE_ERROR)} for the busiest window, {met(abs(steady_error) <= TARGET_RATE_ERROR)} for the steady rate.",
        f"- Tokens-per-minute limit of {tokens['per_minute']:,}: {tokens['small']:,} requests of {tokens['small_tokens']} "
        f"estimated tokens and {tokens['large']} of {tokens['large_tokens']:,}, one large after every "
        f"{tokens['small'] // max(tokens['large'], 1)} small, all submitted at once with 64 in flight. Large requests finished "
        f"at {tokens['large_mean_finish']:.1f} s on average (last at {tokens['large_last_finish']:.1f} s), small ones at "
        f"{tokens['small_mean_finish']:.1f} s (last at {tokens['small_last_finish']:.1f} s); the tokens take "
        f"{tokens['ideal_seconds']:.1f} s at the limit. Large requests are not starved: they take tokens in arrival order "
        "(before that queue was added, the same run had large requests finish at 13.3 s on average, after every small one).",
        f"- Machine: {cpu_model()}, {os.cpu_count()} CPUs, {memory_gib()} RAM, Linux {platform.release()}. Load average "
        f"(1, 5, 15 min) before the runs: {notes['load_before']}; after them: {notes['load_after']}. Server, clients and "
        "driver share these CPUs, and a 1-minute figure above 2 means that other processes competed for them, which makes "
        "the figures noisy.",
        f"- Versions: reqwest {cargo_lock_version('reqwest')}, tokio {cargo_lock_version('tokio')}, "
        f"{notes['rustc']}, openai {notes['openai']}, Python {platform.python_version()}.",
        f"- Date: {notes['date']}.",
        "- Reproduce: `just bench-augment` (`just bench` runs it with the other benchmarks). The scripts are "
        "`bench/run_augment_bench.py`, `bench/augment_openai.py`, `stages/augment/examples/bench_server.rs` and "
        "`stages/augment/examples/provider_bench.rs`.",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def update_page(page: Path, section: str) -> None:
    """Replace this benchmark's section of `page`, or append it when the page has none."""
    update_section(page, SECTION, section)


def main() -> int:
    args = parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        publish(args, saved["results"], saved["notes"])
        return 0

    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "kenning", "-p", "kenning-augment", "--examples", "--bins"],
        cwd=ROOT,
        check=True,
    )
    import openai

    notes = {"load_before": load_average(), "rustc": command_output(["rustc", "--version"]), "openai": openai.__version__}
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = subprocess.Popen(
        [str(TARGET / "examples/bench_server"), str(port), str(args.latency_ms), str(args.server_threads)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=raise_file_limit,
    )
    work = Path(tempfile.mkdtemp(prefix="kenning-augment-bench-"))
    results: dict = {"provider": [], "reqwest": [], "python": []}
    try:
        if server.stdout.readline().strip() != "listening":
            raise RuntimeError("the bench server did not start")
        client = str(TARGET / "examples/provider_bench")
        python = [sys.executable, str(PYTHON_CLIENT), url]
        for concurrency in args.concurrency:
            for key, command in (
                ("provider", [client, "provider", url, str(concurrency), str(args.rust_requests)]),
                ("reqwest", [client, "reqwest", url, str(concurrency), str(args.rust_requests)]),
                ("python", python + [str(concurrency), str(args.python_requests)]),
            ):
                results[key].append(throughput(measure(command, server.pid)))
        in_flight = str(args.in_flight)
        results["rss_provider"] = throughput(
            measure([client, "provider", url, in_flight, str(3 * args.in_flight)], server.pid)
        )
        results["rss_provider_long"] = throughput(
            measure([client, "provider", url, in_flight, str(10 * args.in_flight)], server.pid)
        )
        results["rss_python"] = throughput(measure(python + [in_flight, in_flight], server.pid))
        results["stage"] = run_stage(args, url, server.pid, work)
        results["rate"] = measure([client, "rate", url, str(args.rate_limit), str(args.rate_requests)], server.pid)
        results["tokens"] = measure([client, "tokens", url, "600000", "1000", "20", "100", "5000"], server.pid)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    notes["load_after"] = load_average()
    notes["date"] = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"

    args.save.parent.mkdir(parents=True, exist_ok=True)
    args.save.write_text(json.dumps({"results": results, "notes": notes}, indent=1))
    publish(args, results, notes)
    return 0


def publish(args: argparse.Namespace, results: dict, notes: dict) -> None:
    section = render(args, results, notes)
    print(section)
    if not args.no_page:
        update_page(args.page, section)


if __name__ == "__main__":
    sys.exit(main())
