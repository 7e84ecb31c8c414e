#!/usr/bin/python3
"""PyTorch side of tools/activation_bench.cpp: the same activations on a [2048, 512] f32 tensor,
forward alone (no_grad) and forward + backward of sum(y * w), best of 30, one thread.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 tools/activation_bench_torch.py
"""
import torch, time
torch.set_num_threads(1)
torch.manual_seed(1)
x = torch.randn(2048, 512, requires_grad=True); w = torch.randn(2048, 512)
F = torch.nn.functional
for name, f in [("gelu", F.gelu), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid), ("silu", F.silu), ("exp", torch.exp)]:
    fwd = both = 1e9
    for _ in range(30):
        t0 = time.perf_counter()
        with torch.no_grad(): f(x)
        t1 = time.perf_counter()
        (f(x) * w).sum().backward()
        t2 = time.perf_counter()
        fwd, both = min(fwd, t1 - t0), min(both, t2 - t1)
    print(f"{name:8s} forward {fwd*1e3:.3f} ms, forward + backward of sum(y * w) {both*1e3:.3f} ms")
