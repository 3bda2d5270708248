"""Write the shard-writer benchmark corpus to zstd Parquet with pyarrow, as a baseline.

Reads the corpus that `shard_bench generate` writes (one row per line), builds the same
columns and values as `shard_bench write`, writes them with `pyarrow.parquet.ParquetWriter`
and prints one JSON line with the same fields as the Rust benchmark.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Same column order, types and nullability as `RecordSchema::new(vec![])` in kenning-pipeline.
SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("sample", pa.uint32(), nullable=False),
        pa.field("title", pa.string(), nullable=True),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)

# Constant values that `shard_bench write` gives every record.
STAGE = "bench"
VARIANT = "plain"
SAMPLE = 0
TITLE = "Benchmark document"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="corpus file, one row per line")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("bench-out/shard-writer"),
        help="folder in which a temporary output folder is created and removed after the run",
    )
    parser.add_argument("--zstd-level", type=int, default=3, help="zstd compression level")
    parser.add_argument(
        "--row-group-rows",
        type=int,
        default=100_000,
        help="rows per Parquet row group, which pyarrow buffers in memory before writing them",
    )
    parser.add_argument(
        "--read-batch-rows",
        type=int,
        default=8192,
        help="lines converted from Python strings to Arrow arrays at a time",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the output folder and print its path in the JSON line as output_dir",
    )
    args = parser.parse_args()
    if args.row_group_rows < 1 or args.read_batch_rows < 1:
        parser.error("--row-group-rows and --read-batch-rows must be at least 1")
    return args


def build_batch(lines: list[str], first_row: int, source_name: str) -> pa.RecordBatch:
    """Build a record batch of `lines`, whose first line is row number `first_row` (from 1)."""
    numbers = range(first_row, first_row + len(lines))
    doc_ids = [f"doc-{n:08}" for n in numbers]
    count = len(lines)
    columns = [
        pa.array([f"{d}/{STAGE}/{VARIANT}/{SAMPLE}" for d in doc_ids], pa.string()),
        pa.array(doc_ids, pa.string()),
        pa.array([STAGE] * count, pa.string()),
        pa.array([VARIANT] * count, pa.string()),
        pa.array([SAMPLE] * count, pa.uint32()),
        pa.array([TITLE] * count, pa.string()),
        pa.array(lines, pa.string()),
        pa.array([f"{source_name}:{n}" for n in numbers], pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def text_length(batch: pa.RecordBatch) -> int:
    """Return the UTF-8 bytes in the batch's `text` column."""
    return pc.sum(pc.binary_length(batch.column("text"))).as_py() or 0


def peak_rss_bytes() -> int:
    """Return the process's peak resident set size in bytes. Linux reports `ru_maxrss` in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_corpus(args: argparse.Namespace, out_path: Path) -> tuple[int, int]:
    """Write the corpus's rows to `out_path` and return the number of rows and text bytes."""
    source_name = args.input.name
    writer = pq.ParquetWriter(
        out_path,
        SCHEMA,
        compression="zstd",
        compression_level=args.zstd_level,
    )
    rows = 0
    text_bytes = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    lines: list[str] = []
    with open(args.input, encoding="utf-8", newline="\n") as corpus:
        for line in corpus:
            lines.append(line.removesuffix("\n"))
            # Batches end where a row group ends, so every row group but the last one has
            # exactly `--row-group-rows` rows.
            if len(lines) < min(args.read_batch_rows, args.row_group_rows - pending_rows):
                continue
            batch = build_batch(lines, rows + 1, source_name)
            pending.append(batch)
            text_bytes += text_length(batch)
            rows += len(lines)
            pending_rows += len(lines)
            lines = []
            # `write_table` starts a new row group on every call, so batches are collected
            # until they fill one.
            if pending_rows >= args.row_group_rows:
                table = pa.Table.from_batches(pending, schema=SCHEMA)
                writer.write_table(table, row_group_size=args.row_group_rows)
                pending, pending_rows = [], 0

    if lines:
        batch = build_batch(lines, rows + 1, source_name)
        pending.append(batch)
        text_bytes += text_length(batch)
        rows += len(lines)
    if pending:
        table = pa.Table.from_batches(pending, schema=SCHEMA)
        writer.write_table(table, row_group_size=args.row_group_rows)
    writer.close()
    with open(out_path, "rb") as written:
        os.fsync(written.fileno())
    return rows, text_bytes


def main() -> int:
    args = parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(dir=args.work_dir))
    out_path = out_dir / "train-00000.parquet"
    try:
        # The clock covers reading the corpus, building the arrays and writing the file,
        # including the fsync that `shard_bench write` also does for each shard.
        started = time.perf_counter()
        rows, text_bytes = write_corpus(args, out_path)
        seconds = time.perf_counter() - started
        peak_rss = peak_rss_bytes()

        if rows == 0:
            print(f"error: corpus {args.input} has no rows", file=sys.stderr)
            return 1
        output_bytes = out_path.stat().st_size
        row_groups = pq.ParquetFile(out_path).num_row_groups
    finally:
        if not args.keep:
            shutil.rmtree(out_dir)

    figures = {
        "writer": "pyarrow",
        "rows": rows,
        "text_bytes": text_bytes,
        "text_mb": text_bytes / 1e6,
        "seconds": seconds,
        "mb_per_s": text_bytes / 1e6 / seconds,
        "output_bytes": output_bytes,
        "output_files": 1,
        "row_groups": row_groups,
        "peak_rss_bytes": peak_rss,
        "peak_rss_mb": peak_rss / 1e6,
    }
    if args.keep:
        figures["output_dir"] = str(out_dir)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
