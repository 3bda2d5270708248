"""Check a kenning output folder with independent Parquet readers: pyarrow and DuckDB.

Usage: python check_shards.py OUT_DIR

Both readers must open every shard listed in OUT_DIR/manifest.json, see the row counts and
checksums the manifest gives, see one schema that matches the manifest's columns, and return
the same rows. Prints one JSON line with the totals and exits non-zero on the first mismatch.
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


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    manifest = json.loads((out / "manifest.json").read_text())
    expected_columns = [(c["name"], ARROW_TYPES[c["dtype"]]) for c in manifest["columns"]]

    total = 0
    for shard in manifest["shards"]:
        path = out / shard["path"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != shard["sha256"]:
            fail(f"{path}: sha256 {digest} differs from the manifest's {shard['sha256']}")
        if path.stat().st_size != shard["bytes"]:
            fail(f"{path}: {path.stat().st_size} bytes, manifest says {shard['bytes']}")

        table = pq.read_table(path)
        columns = [(f.name, str(f.type)) for f in table.schema]
        if columns != expected_columns:
            fail(f"{path}: schema {columns} differs from the manifest's {expected_columns}")
        if table.num_rows != shard["rows"]:
            fail(f"{path}: pyarrow reads {table.num_rows} rows, manifest says {shard['rows']}")
        compression = {
            pq.ParquetFile(path).metadata.row_group(g).column(c).compression
            for g in range(pq.ParquetFile(path).metadata.num_row_groups)
            for c in range(table.num_columns)
        }
        if compression != {"ZSTD"}:
            fail(f"{path}: column chunks use {compression}, expected only ZSTD")
        total += table.num_rows

    listed = sorted(out / s["path"] for s in manifest["shards"])
    on_disk = sorted((out / "data").glob("*.parquet"))
    if listed != on_disk:
        fail(f"data/ holds {on_disk}, the manifest lists {listed}")

    pattern = str(out / "data" / "*.parquet")
    arrow_rows = ds.dataset(str(out / "data")).to_table().sort_by("key").to_pylist()
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
        fail("the dataset holds duplicate keys")

    print(json.dumps({"shards": len(manifest["shards"]), "rows": total, "columns": len(names)}))


if __name__ == "__main__":
    main()
