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

# Chunk the sample corpus (or INPUT) into Parquet shards with configs/chunk.toml; OUT defaults to out/sample-passages.
run input="datasets/sample/articles.jsonl" out="out/sample-passages":
    cargo run -q -p kenning -- run configs/chunk.toml --input "{{input}}" --out "{{out}}"

# Run every test: Rust unit and integration tests, with pyarrow and DuckDB reading the shards.
test: setup
    KENNING_PYTHON="{{python}}" cargo test --workspace

# Run every benchmark and update BENCHMARKS.md: the shard writer, kenning bios, then training.
bench: bench-shards bench-bios bench-train

# Benchmark the shard writer against pyarrow and update BENCHMARKS.md; arguments go to bench/run_shard_bench.py.
bench-shards *args: setup
    "{{python}}" bench/run_shard_bench.py {{args}}

# Benchmark kenning bios against a plain Python generator and update BENCHMARKS.md; arguments go to bench/run_bios_bench.py.
bench-bios *args: setup
    "{{python}}" bench/run_bios_bench.py {{args}}

# Benchmark training tokens/s of kenning-train against PyTorch on CPU and update BENCHMARKS.md; installs torch (about 5 GB) into .venv-bench-train on first use; arguments go to bench/run_train_bench.py.
bench-train *args: setup
    "{{python}}" bench/run_train_bench.py {{args}}
