"""Check a kenning output folder with independent Parquet readers: pyarrow and DuckDB.

Usage: python check_shards.py OUT_DIR

Both readers must open every shard listed in OUT_DIR/manifest.json, see the row counts and
checksums the manifest gives, see one schema that matches the manifest's columns, and return
the same rows. A manifest with `tables` (as `kenning bios` writes) is checked table by table. Prints one JSON line with the totals and exits non-zero on the first mismatch.
"""

import hashlib
import json
import pathlib
import sys

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq

# The Arrow type each dataset-card dtype must be read as.
ARROW_TYPES = {
    "string": "string",
    "uint32": "uint32",
    "uint64": "uint64",
    "int64": "int64",
    "float64": "double",
    "bool": "bool",
}


def fail(message: str) -> None:
    print(f"check_shards: {message}", file=sys.stderr)
    sys.exit(1)


def check_table(out: pathlib.Path, name: str, table: dict) -> dict:
    """Check one table's shards (listed in `table`) and return its totals."""
    expected_columns = [(c["name"], ARROW_TYPES[c["dtype"]]) for c in table["columns"]]
    data = out / "data" / name if name else out / "data"

    total = 0
    for shard in table["shards"]:
        path = out / shard["path"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != shard["sha256"]:
            fail(f"{path}: sha256 {digest} differs from the manifest's {shard['sha256']}")
        if path.stat().st_size != shard["bytes"]:
            fail(f"{path}: {path.stat().st_size} bytes, manifest says {shard['bytes']}")

        parquet_file = pq.ParquetFile(path)
        parquet_table = parquet_file.read()
        columns = [(f.name, str(f.type)) for f in parquet_table.schema]
        if columns != expected_columns:
            fail(f"{path}: schema {columns} differs from the manifest's {expected_columns}")
        if parquet_table.num_rows != shard["rows"]:
            fail(f"{path}: pyarrow reads {parquet_table.num_rows} rows, manifest says {shard['rows']}")
        metadata = parquet_file.metadata
        compression = {
            metadata.row_group(g).column(c).compression
            for g in range(metadata.num_row_groups)
            for c in range(parquet_table.num_columns)
        }
        if compression != {"ZSTD"}:
            fail(f"{path}: column chunks use {compression}, expected only ZSTD")
        total += parquet_table.num_rows

    listed = sorted(out / s["path"] for s in table["shards"])
    on_disk = sorted(data.glob("*.parquet"))
    if listed != on_disk:
        fail(f"{data} holds {on_disk}, the manifest lists {listed}")

    pattern = str(data / "*.parquet")
    arrow_rows = ds.dataset(str(data)).to_table().sort_by("key").to_pylist()
    duck = duckdb.connect()
    cursor = duck.execute(f"SELECT * FROM read_parquet('{pattern}') ORDER BY key")
    names = [d[0] for d in cursor.description]
    duck_rows = [dict(zip(names, row)) for row in cursor.fetchall()]

    if len(arrow_rows) != total or len(duck_rows) != total:
        fail(f"pyarrow reads {len(arrow_rows)} rows, DuckDB {len(duck_rows)}, manifest {total}")
    if arrow_rows != duck_rows:
        first = next(i for i, (a, b) in enumerate(zip(arrow_rows, duck_rows)) if a != b)
        fail(f"pyarrow and DuckDB disagree at row {first}: {arrow_rows[first]} vs {duck_rows[first]}")
    keys = [row["key"] for row in arrow_rows]
    if len(set(keys)) != len(keys):
        fail(f"{data} holds duplicate keys")
    return {"shards": len(table["shards"]), "rows": total, "columns": len(names)}


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    manifest = json.loads((out / "manifest.json").read_text())
    if "tables" in manifest:
        report = {name: check_table(out, name, table) for name, table in manifest["tables"].items()}
        report["rows"] = sum(t["rows"] for t in report.values())
    else:
        report = check_table(out, "", manifest)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
