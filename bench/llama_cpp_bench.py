"""Prefill and decode speed of llama.cpp (through llama-cpp-python) on a GGUF file.

Prints one JSON object with the same fields as kenning's `local_bench` example for the single
stream: the prompt is the same prose cut to at least `--prompt-tokens` tokens, decoding is
greedy for `--new-tokens` tokens without stopping at end of sequence.
"""

import argparse
import json
import time

from llama_cpp import Llama

PROSE = (
    "The committee met in the old library to discuss the river's flooding, the new bridge, "
    "and the budget for the coming year. "
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()

    started = time.perf_counter()
    llm = Llama(
        model_path=args.model,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_ctx=2048,
        n_batch=512,
        verbose=False,
    )
    load_s = time.perf_counter() - started

    text = ""
    while len(llm.tokenize(text.encode(), add_bos=False)) < args.prompt_tokens:
        text += PROSE
    tokens = llm.tokenize(text.encode(), add_bos=False)

    # Warm-up, so that both sides are timed after their first pass.
    llm.reset()
    llm.eval(tokens[:8])

    llm.reset()
    started = time.perf_counter()
    llm.eval(tokens)
    prefill_tps = len(tokens) / (time.perf_counter() - started)

    started = time.perf_counter()
    for _ in range(args.new_tokens):
        token = llm.sample(temp=0.0)
        llm.eval([token])
    decode_tps = args.new_tokens / (time.perf_counter() - started)

    print(
        json.dumps(
            {
                "load_s": round(load_s, 2),
                "prompt_tokens": len(tokens),
                "prefill_tps": round(prefill_tps, 1),
                "single_decode_tps": round(decode_tps, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
