"""Python's `openai` AsyncOpenAI client against the augment benchmark's loopback server.

Sends REQUESTS chat completions with CONCURRENCY in flight (an asyncio semaphore, and an
httpx2 connection pool of the same size: openai 3.x is built on httpx2) and prints one JSON
line with the count and the wall seconds. The client's own retries are off, so every request
is sent once, as in the Rust runs.

Usage: augment_openai.py URL CONCURRENCY REQUESTS
"""

import asyncio
import json
import sys
import time

import httpx2
from openai import AsyncOpenAI, DefaultAsyncHttpx2Client

MESSAGES = [
    {"role": "system", "content": "Rewrite the document as a teacher would explain it."},
    {"role": "user", "content": "Johannes Gutenberg built a printing press in Mainz around 1440."},
]


async def main(url: str, concurrency: int, requests: int) -> dict:
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = AsyncOpenAI(
        base_url=url,
        api_key="bench",
        max_retries=0,
        timeout=60.0,
        http_client=DefaultAsyncHttpx2Client(limits=limits),
    )
    gate = asyncio.Semaphore(concurrency)
    ok = 0
    errors: dict[str, int] = {}

    async def one() -> None:
        nonlocal ok
        async with gate:
            try:
                response = await client.chat.completions.create(
                    model="bench-model", messages=MESSAGES, temperature=0.7, max_tokens=64
                )
            except Exception as error:  # counted by type, so that the page can report them
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                return
            if response.choices[0].message.content:
                ok += 1

    started = time.perf_counter()
    # Tasks are created in waves of at most twice the concurrency, as the Rust client does.
    pending = set()
    for _ in range(requests):
        if len(pending) >= 2 * concurrency:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        pending.add(asyncio.create_task(one()))
    if pending:
        await asyncio.wait(pending)
    seconds = time.perf_counter() - started
    await client.close()
    return {
        "mode": "python-openai",
        "concurrency": concurrency,
        "requests": requests,
        "ok": ok,
        "errors": errors,
        "seconds": seconds,
    }


if __name__ == "__main__":
    url, concurrency, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(main(url, concurrency, requests))))
