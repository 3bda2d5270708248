"""Training throughput of the benchmark decoder in PyTorch on CPU, printed as one JSON line.

The model matches stages/train/examples/bench_train.rs: vocabulary 4096, 4 layers, width 256,
8 heads, SwiGLU width 768, RMSNorm, interleaved rotary embeddings, tied embeddings, AdamW,
context 128, batch 16, random tokens. Usage: train_torch.py [STEPS] [WARMUP_STEPS].
"""

import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

VOCAB, WIDTH, LAYERS, HEADS, FFN, CONTEXT, BATCH = 4096, 256, 4, 8, 768, 128, 16


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn_norm = torch.nn.RMSNorm(WIDTH, eps=1e-5)
        self.qkv = torch.nn.Linear(WIDTH, 3 * WIDTH, bias=False)
        self.out = torch.nn.Linear(WIDTH, WIDTH, bias=False)
        self.ffn_norm = torch.nn.RMSNorm(WIDTH, eps=1e-5)
        self.gate = torch.nn.Linear(WIDTH, FFN, bias=False)
        self.up = torch.nn.Linear(WIDTH, FFN, bias=False)
        self.down = torch.nn.Linear(FFN, WIDTH, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).split(WIDTH, dim=-1)
        q, k, v = (y.view(b, t, HEADS, WIDTH // HEADS).transpose(1, 2) for y in (q, k, v))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, WIDTH))
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Interleaved rotary embedding: pairs (x0, x1) of each head rotate by position angles."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, WIDTH)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = torch.nn.RMSNorm(WIDTH, eps=1e-5)
        half = WIDTH // HEADS // 2
        freq = 10000.0 ** (-torch.arange(half) * 2 / (WIDTH // HEADS))
        angles = torch.arange(CONTEXT)[:, None] * freq[None, :]
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())
        # The same initialisation as kenning-train: N(0, 0.02) for matrices, so that the losses
        # of the two sides are comparable.
        for parameter in self.parameters():
            if parameter.dim() >= 2:
                torch.nn.init.normal_(parameter, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        t = ids.shape[1]
        for block in self.blocks:
            x = block(x, self.cos[:t], self.sin[:t])
        return self.norm(x) @ self.embed.weight.T


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.manual_seed(0)
    model = Model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    parameters = sum(p.numel() for p in model.parameters())

    def step() -> float:
        ids = torch.randint(1, VOCAB, (BATCH, CONTEXT + 1))
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    for _ in range(warmup):
        step()
    started = time.perf_counter()
    loss = math.nan
    for _ in range(steps):
        loss = step()
    seconds = time.perf_counter() - started
    tokens = steps * BATCH * CONTEXT
    print(json.dumps({
        "parameters": parameters,
        "steps": steps,
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "final_loss": round(loss, 4),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }))


if __name__ == "__main__":
    main()
