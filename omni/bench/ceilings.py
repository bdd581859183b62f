"""The machine's own ceilings, measured before every other benchmark.

* memory bandwidth: ``dst.copy_(src)`` of a large tensor; bytes moved = read + write = 2 x size
  (the STREAM "copy" convention), the best of the repeats (a ceiling is the best the machine does);
* matmul throughput: an N x N x N GEMM in the working dtype (float32 on CPU, bfloat16 on a GPU),
  2 N^3 FLOPs per call, best of the repeats.

They are the references of later figures (decode vs the bandwidth bound, MFU vs the GEMM peak).
"""

from __future__ import annotations

import torch

from omni.bench.core import BenchContext, Ceilings, Figure


def measure_bandwidth(ctx: BenchContext, mbytes: int) -> float:
    """Copy bandwidth in bytes/s (read + write) of an ``mbytes`` MiB float32 tensor."""
    n = mbytes * 2**20 // 4
    src = torch.randn(n, device=ctx.device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: page faults, allocator
    best = min(ctx.time(lambda: dst.copy_(src)) for _ in range(max(3, ctx.repeats)))
    return 2 * src.numel() * src.element_size() / best


def measure_matmul(ctx: BenchContext, n: int) -> float:
    """FLOP/s of an (n, n) @ (n, n) GEMM in the working dtype."""
    a = torch.randn(n, n, device=ctx.device, dtype=ctx.dtype)
    b = torch.randn(n, n, device=ctx.device, dtype=ctx.dtype)
    a @ b  # warm-up
    best = min(ctx.time(lambda: a @ b) for _ in range(max(3, ctx.repeats)))
    return 2 * n**3 / best


def bench_ceilings(ctx: BenchContext) -> list[Figure]:
    quick = ctx.cfg.quick
    mbytes = 16 if quick else (2048 if ctx.cuda else 256)  # far above the CPU's last-level cache
    n = 256 if quick else (8192 if ctx.cuda else 1024)
    bw = measure_bandwidth(ctx, mbytes)
    flops = measure_matmul(ctx, n)
    ctx.ceilings = Ceilings(bandwidth=bw, matmul_flops=flops, dtype=str(ctx.dtype).replace("torch.", ""))
    return [
        Figure("memory bandwidth (copy)", bw / 1e9, "GB/s", note=f"{mbytes} MiB float32 copy, read + write bytes"),
        Figure("matmul throughput", flops / 1e12, f"TFLOP/s ({ctx.ceilings.dtype})", note=f"{n} x {n} x {n} GEMM"),
    ]
