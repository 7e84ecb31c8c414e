"""tests/golden/make_epinet_golden.py — PyTorch golden for EpiNet (memory/epinet/).

The PyTorch side is apps/bench/torch_ref.EpiNet (written from the notebook's classes: conv encoder,
hard top-k recall by cosine x salience with salience weights, a mixture-of-experts decoder),
imported, not copied. For each case, in float64: the parameters by engram's names, images x,
labels y, stored latents (keys) and saliences, the logits, loss = CE(logits, y), and the gradients
of x and of every parameter. tests/test_epinet.cpp rebuilds the model (apps/bench/workloads.h
EpiNetStep: memory/epinet's encoder, recall and nn's MoE) and compares.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/golden/make_epinet_golden.py tests/golden/epinet.json
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

from make_memory_golden import import_torch_ref

ref = import_torch_ref()


def tensor(t):
    """float32-exact values written with 9 significant digits, which identify a float32 uniquely:
    the reader rounds them back to float32 to get the exact values."""
    return {"shape": list(t.shape), "data": [float(f"{v:.9g}") for v in t.detach().reshape(-1).tolist()]}


def f32_exact(t):
    return t.float().double()


def projections(g):
    """A gradient as two fixed projections, sum(g * sin(i + 1)) and sum(g * cos(i + 1)), when it
    has more than 600 elements (the conv and encoder weights would make the file megabytes); the
    whole gradient otherwise. Both sides compute the same projections."""
    flat = g.detach().reshape(-1)
    if flat.numel() <= 600:
        return {"shape": list(g.shape), "data": flat.tolist()}
    i = torch.arange(1, flat.numel() + 1, dtype=torch.float64)
    return {"shape": list(g.shape), "sin": float((flat * torch.sin(i)).sum()),
            "cos": float((flat * torch.cos(i)).sum())}


def case(name, seed, B, M, d, hidden, experts, top_k):
    torch.manual_seed(seed)
    meta = {"d": d, "hidden": hidden, "classes": 10, "experts": experts, "top_k": top_k, "eps": 1e-8}
    model = ref.EpiNet(meta).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(f32_exact(p))
    x = f32_exact(torch.rand(B, 1, 28, 28, dtype=torch.float64)).requires_grad_(True)
    y = torch.randint(0, 10, (B,))
    keys = f32_exact(torch.randn(M, d, dtype=torch.float64))
    salience = f32_exact(torch.rand(M, dtype=torch.float64) + 0.1)
    logits = model(x, keys, salience)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return {"name": name, "meta": meta,
            "params": {k: tensor(v) for k, v in model.named_parameters()},
            "grads": {k: projections(v.grad) for k, v in model.named_parameters()},
            "x": tensor(x), "x_grad": projections(x.grad), "y": y.tolist(), "keys": tensor(keys),
            "salience": tensor(salience), "logits": logits.detach().reshape(-1).tolist(), "loss": loss.item()}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "epinet.json")
    # One case: the encoder's convolutions alone are 18,816 weights (the top-k-above-count path
    # is checked by hand in tests/test_epinet.cpp).
    cases = [case("top-3 of 5 traces", 1, B=2, M=5, d=4, hidden=5, experts=2, top_k=3)]
    with open(out, "w") as f:
        json.dump({"generator": "tests/golden/make_epinet_golden.py", "torch": torch.__version__,
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} epinet cases to {out}")


if __name__ == "__main__":
    main()
