#!/usr/bin/python3
"""tests/golden/make_ssm_s4_golden.py -- PyTorch goldens for engram's S4D and S4 (nn/ssm/).

For each case, the PyTorch layer of torch_ssm_s4.py is built with a fixed seed in float64, its
constant-initialised parameters (log_A_real, A_imag) get noise and log_dt is drawn from a wider
range so every parameter matters, and the layer reads an input x [B, T, H] in two calls (the
first `cut` tokens, then the rest) carrying the state between them. With an upstream gradient w,
loss = sum(y * w) is backpropagated. One JSON record per case:

    name, layer, config        "S4D" (init lin / inv) or "S4", d_model, state_size, init, cut
    params                     named exactly as engram's named_parameters()
    input, output, grad_output x, y = cat(call 1, call 2), w
    input_grad, param_grads    d loss / d x and / d every parameter
    step_output                y from T calls of step (equals output)

Tensors are {"shape", "dtype": "f64", "data"}. tests/test_ssm_s4.cpp rebuilds each layer, copies
the parameters in by name and compares. Run (never from the tests):

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/golden/make_ssm_s4_golden.py tests/golden/ssm_s4.json
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ssm_s4  # noqa: E402

SEED = 1234


def shaped(t):
    """{"shape", "dtype": "f64", "data"}; json writes floats with repr, which round-trips f64."""
    t = t.detach().to(torch.float64)
    return {"shape": list(t.shape), "dtype": "f64", "data": t.reshape(-1).tolist()}


def make_case(name, layer, d_model, state_size, init, B, T, cut):
    torch.manual_seed(SEED)
    if layer == "S4D":
        m = torch_ssm_s4.S4D(d_model, state_size, init=init)
    else:
        m = torch_ssm_s4.S4(d_model, state_size)
    m = m.double()
    with torch.no_grad():  # every parameter away from its constant init, larger steps
        lo, hi = math.log(0.02), math.log(0.5)
        m.log_dt.copy_(torch.rand(d_model, dtype=torch.float64) * (hi - lo) + lo)
        m.log_A_real.add_(0.2 * torch.randn_like(m.log_A_real))
        m.A_imag.add_(0.2 * torch.randn_like(m.A_imag))
    x = torch.randn(B, T, d_model, dtype=torch.float64, requires_grad=True)
    w = torch.randn(B, T, d_model, dtype=torch.float64)
    y1, s = m(x[:, :cut])
    y2, s = m(x[:, cut:], s)
    y = torch.cat([y1, y2], 1)
    (y * w).sum().backward()
    with torch.no_grad():
        st, ys = m.initial_state(B), []
        for t in range(T):
            yt, st = m.step(x[:, t], st)
            ys.append(yt)
        y_steps = torch.stack(ys, 1)
    assert (y_steps - y).abs().max() < 1e-10, (name, (y_steps - y).abs().max())
    return {
        "name": name,
        "layer": layer,
        "config": {"d_model": d_model, "state_size": state_size, "init": init, "cut": cut},
        "params": {n: shaped(p) for n, p in m.named_parameters()},
        "input": shaped(x),
        "output": shaped(y),
        "grad_output": shaped(w),
        "step_output": shaped(y_steps),
        "input_grad": shaped(x.grad),
        "param_grads": {n: shaped(p.grad) for n, p in m.named_parameters()},
    }


def main(path):
    cases = [
        make_case("s4d_lin", "S4D", 3, 8, "lin", 2, 9, 4),
        make_case("s4d_inv", "S4D", 3, 8, "inv", 2, 9, 5),
        make_case("s4_legs", "S4", 3, 8, "legs", 2, 9, 4),
    ]
    doc = {"torch_version": torch.__version__, "seed": SEED, "cases": cases}
    with open(path, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "ssm_s4.json"))
