# Kenning task runner. `just --list` shows every recipe.

python := justfile_directory() / ".venv/bin/python"
shared := justfile_directory() / "../shared"

# Show the recipes.
default:
    @just --list

# Create the Python environment that the tests use to read shards (pyarrow, DuckDB).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x "{{python}}" ]; then python3 -m venv .venv; fi
    if ! "{{python}}" -c "import pyarrow, duckdb" 2>/dev/null; then
        "{{python}}" -m pip install --quiet --disable-pip-version-check pyarrow duckdb
    fi

# Build the kenning binary.
build:
    cargo build -p kenning

# Chunk the 200 SQuAD passages in ../shared into Parquet shards under out/squad-passages.
run input=(shared / "datasets/squad_val_200.json") out="out/squad-passages": build
    ./target/debug/kenning chunk --input "{{input}}" --out "{{out}}" --license cc-by-sa-4.0 --max-tokens 128 --overlap 16

# Run every test: Rust unit and integration tests, with pyarrow and DuckDB reading the shards.
test: setup
    KENNING_PYTHON="{{python}}" cargo test --workspace

# Benchmark the shard writer against pyarrow and update BENCHMARKS.md; arguments go to bench/run_shard_bench.py.
bench *args: setup
    "{{python}}" bench/run_shard_bench.py {{args}}
