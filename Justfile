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

# Run every benchmark and update BENCHMARKS.md: the shard writer, kenning bios, then the augment HTTP client.
bench: bench-shards bench-bios bench-augment

# Benchmark the shard writer against pyarrow and update BENCHMARKS.md; arguments go to bench/run_shard_bench.py.
bench-shards *args: setup
    "{{python}}" bench/run_shard_bench.py {{args}}

# Benchmark kenning bios against a plain Python generator and update BENCHMARKS.md; arguments go to bench/run_bios_bench.py.
bench-bios *args: setup
    "{{python}}" bench/run_bios_bench.py {{args}}

# Benchmark the augment HTTP client against Python's openai client on a loopback server and update BENCHMARKS.md; arguments go to bench/run_augment_bench.py.
bench-augment *args: setup
    #!/usr/bin/env bash
    set -euo pipefail
    if ! "{{python}}" -c "import openai" 2>/dev/null; then
        "{{python}}" -m pip install --quiet --disable-pip-version-check openai
    fi
    "{{python}}" bench/run_augment_bench.py {{args}}
