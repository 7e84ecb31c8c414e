#!/usr/bin/python3
"""tests/golden/make_ssm_mamba_golden.py -- the PyTorch golden of engram's Mamba layer.

Builds tests/golden/torch_ssm_mamba.py's Mamba (mamba_simple.py + selective_scan_ref) with a
fixed seed, perturbs D (initialised to ones) so its gradient is generic, draws an input, a carried
state (conv [B, K-1, E] and h [B, E, N], so the state paths are checked too) and an upstream
gradient for each output, and runs forward and backward in float64. Writes:

    config        d_model, d_state, d_conv, expand, dt_rank
    params        by engram's names (nn/ssm/mamba.h), f64
    inputs        x [B, T, C], conv, h (the state before the call)
    outputs       y, conv, h (the state after the call)
    grad_outputs  the upstream gradient of each output
    input_grads   of x, conv, h for loss = sum_i <output_i, grad_output_i>
    param_grads   of every parameter

tests/test_ssm_mamba.cpp copies the parameters into engram's Mamba and compares everything.
Regenerate with
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/golden/make_ssm_mamba_golden.py tests/golden/ssm_mamba.json
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ssm_mamba import Mamba  # noqa: E402

torch.set_num_threads(1)
SEED = 1313


def tensor_json(t):
    return {"shape": list(t.shape), "dtype": "f64",
            "data": [float(v) for v in t.detach().to(torch.float64).reshape(-1).tolist()]}


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: make_ssm_mamba_golden.py tests/golden/ssm_mamba.json\n")
        return 2
    torch.manual_seed(SEED)
    config = {"d_model": 8, "d_state": 4, "d_conv": 4, "expand": 2, "dt_rank": 2}
    m = Mamba(config["d_model"], config["d_state"], config["d_conv"], config["expand"],
              config["dt_rank"]).double()
    with torch.no_grad():
        m.D.add_(0.3 * torch.randn_like(m.D))
    B, T = 2, 7
    E, N, K = m.d_inner, m.d_state, m.d_conv
    x = torch.randn(B, T, config["d_model"], dtype=torch.float64, requires_grad=True)
    conv = (0.5 * torch.randn(B, K - 1, E, dtype=torch.float64)).requires_grad_(True)
    h = (0.5 * torch.randn(B, E, N, dtype=torch.float64)).requires_grad_(True)
    y, conv_out, h_out = m(x, conv, h)
    outputs = {"y": y, "conv": conv_out, "h": h_out}
    grad_outputs = {k: torch.randn(v.shape, dtype=torch.float64) for k, v in outputs.items()}
    loss = sum((outputs[k] * grad_outputs[k]).sum() for k in outputs)
    loss.backward()
    doc = {
        "generator": "tests/golden/make_ssm_mamba_golden.py",
        "torch_version": torch.__version__,
        "config": config,
        "params": {n: tensor_json(p) for n, p in m.named_parameters()},
        "inputs": {"x": tensor_json(x), "conv": tensor_json(conv), "h": tensor_json(h)},
        "outputs": {k: tensor_json(v) for k, v in outputs.items()},
        "grad_outputs": {k: tensor_json(v) for k, v in grad_outputs.items()},
        "input_grads": {"x": tensor_json(x.grad), "conv": tensor_json(conv.grad),
                        "h": tensor_json(h.grad)},
        "param_grads": {n: tensor_json(p.grad) for n, p in m.named_parameters()},
    }
    with open(argv[1], "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"make_ssm_mamba_golden: torch {torch.__version__} -> {argv[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
