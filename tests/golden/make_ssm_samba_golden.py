#!/usr/bin/python3
"""PyTorch golden of a whole Samba language model: tests/golden/ssm_samba.json.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/golden/make_ssm_samba_golden.py tests/golden/ssm_samba.json

A 2-layer Samba LM (apps/common/ssm_lm.h with model.kind=samba: Mamba + SwiGLU, then sliding-window
attention + SwiGLU, pre-norm residual blocks, RMSNorm, Linear head) built by the bench's PyTorch
twin (apps/bench/torch_ssm.py: the Mamba of tests/golden/torch_ssm_mamba.py, apps/bench/
torch_ref.py's ALiBi LocalSelfAttention) in float64, with engram's parameter names. It covers what
the per-family goldens do not: the residual block, the SwiGLU feed-forward, the sliding-window
attention mixer and their composition. Written: the model settings, every parameter, the ids,
the logits, an upstream gradient w and the gradient of sum(logits * w) for every parameter.
tests/test_ssm_lm.cpp rebuilds the model with make_language_model, copies the parameters in by
name, and compares.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "apps", "bench"))
saved_stdout = sys.stdout
import torch_ref  # noqa: E402  (it points sys.stdout at stderr for its protocol)
import torch_ssm  # noqa: E402
sys.stdout = saved_stdout

torch.set_num_threads(1)
META = {"vocab": "32", "model.kind": "samba", "model.d_model": "8", "model.layers": "2",
        "model.heads": "2", "model.ff_mult": "2", "model.samba_window": "5",
        "model.ssm_state": "4", "model.ssm_conv": "4", "model.ssm_expand": "2",
        "model.ssm_discretization": "default", "model.ssm_init": "lin", "model.ssm_blocks": "2"}


def tensor_json(t):
    if t.dtype == torch.int64:
        return {"shape": list(t.shape), "dtype": "i64", "data": t.reshape(-1).tolist()}
    return {"shape": list(t.shape), "dtype": "f64",
            "data": [float(v) for v in t.detach().to(torch.float64).reshape(-1).tolist()]}


def main(path):
    torch.manual_seed(2024)
    model = torch_ssm.SSMLanguageModel(META, torch_ref.LocalSelfAttention, torch.float64)
    with torch.no_grad():  # away from the zero-initialised biases, so every path carries signal
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ids = torch.randint(0, 32, (2, 12))
    logits = model(ids)
    w = torch.randn_like(logits)
    (logits * w).sum().backward()
    doc = {"generator": "tests/golden/make_ssm_samba_golden.py", "torch_version": torch.__version__,
           "config": {k: v for k, v in META.items() if k.startswith("model.")},
           "vocab": int(META["vocab"]),
           "params": {n: tensor_json(p) for n, p in model.named_parameters()},
           "ids": tensor_json(ids), "logits": tensor_json(logits), "grad_logits": tensor_json(w),
           "param_grads": {n: tensor_json(p.grad) for n, p in model.named_parameters()}}
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"make_ssm_samba_golden: {len(doc['params'])} parameters -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "ssm_samba.json"))
