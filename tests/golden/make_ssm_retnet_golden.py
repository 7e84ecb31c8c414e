#!/usr/bin/python3
"""tests/golden/make_ssm_retnet_golden.py -- the PyTorch golden of engram's MultiScaleRetention.

Builds torch_ssm_retnet.MultiScaleRetention (d_model 8, 2 heads, value_factor 2) with a fixed seed
in float64, runs the parallel form over x [2, 8, 8] and backpropagates loss = sum(y * w) for a
random upstream w, and writes tests/golden/ssm_retnet.json:

    config                  d_model, heads, value_factor, eps, cut (where the C++ test cuts x)
    params                  q_proj.weight, ... (engram's named_parameters() names)
    x, w                    input and upstream gradient
    cases.<name>            output, x_grad, param_grads.<name> for
        paper               the paper's retention, eps 1e-6: what engram must reproduce (~1e-12)
        torchscale          torchscale's normalised retention, eps 1e-6: how close it is
        torchscale_eps0     torchscale's normalised retention with eps 0: equal to the paper's with
                            eps 0 up to rounding (the normalisations only rescale rows)

Before writing, the script checks that its recurrent and chunkwise forms equal its parallel one.
The C++ test is tests/test_ssm_retnet.cpp; rerun this after changing the layer:

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/golden/make_ssm_retnet_golden.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ssm_retnet import MultiScaleRetention, max_err  # noqa: E402

SEED = 13
D_MODEL, HEADS, VALUE_FACTOR, EPS, B, T, CUT = 8, 2, 2, 1e-6, 2, 8, 3


def tensor_json(t):
    t = t.detach().to(torch.float64).cpu()
    return {"shape": list(t.shape), "dtype": "f64", "data": t.reshape(-1).tolist()}


def run(layer, x, w):
    x = x.clone().requires_grad_(True)
    layer.zero_grad()
    y = layer(x)
    (y * w).sum().backward()
    for name, form in (("recurrent", layer.recurrent(x)), ("chunkwise(4)", layer.chunkwise(x, 4))):
        err = max_err(form, y)
        assert layer.normalised or err < 1e-12, f"{name} differs from parallel by {err}"
    return {
        "output": tensor_json(y),
        "x_grad": tensor_json(x.grad),
        "param_grads": {n: tensor_json(p.grad) for n, p in layer.named_parameters()},
    }, y


def main():
    torch.manual_seed(SEED)
    paper = MultiScaleRetention(D_MODEL, HEADS, VALUE_FACTOR, eps=EPS).double()
    x = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    w = torch.randn(B, T, D_MODEL, dtype=torch.float64)
    cases, outputs = {}, {}
    for name, normalised, eps in (("paper", False, EPS), ("torchscale", True, EPS),
                                  ("paper_eps0", False, 0.0), ("torchscale_eps0", True, 0.0)):
        layer = MultiScaleRetention(D_MODEL, HEADS, VALUE_FACTOR, eps=eps,
                                    normalised=normalised).double()
        layer.load_state_dict(paper.state_dict())
        case, outputs[name] = run(layer, x, w)
        if name != "paper_eps0":  # only the comparison below needs it
            cases[name] = case
    for a, b in (("torchscale", "paper"), ("torchscale_eps0", "paper_eps0")):
        print(f"{a} vs {b}: {max_err(outputs[a], outputs[b]):.3g}")
    doc = {
        "torch_version": torch.__version__,
        "config": {"d_model": D_MODEL, "heads": HEADS, "value_factor": VALUE_FACTOR, "eps": EPS,
                   "cut": CUT},
        "params": {n: tensor_json(p) for n, p in paper.named_parameters()},
        "x": tensor_json(x),
        "w": tensor_json(w),
        "cases": cases,
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ssm_retnet.json")
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
