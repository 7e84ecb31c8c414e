#!/usr/bin/python3
"""PyTorch goldens of LinOSS (IM and IMEX) and S5 (ZOH and bilinear): tests/golden/ssm_linoss_s5.json.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/golden/make_ssm_linoss_s5_golden.py

Each case builds the layer of torch_ssm_linoss.py / torch_ssm_s5.py with a fixed seed, in float64,
and runs one forward from a random carried state x0 on a small input u:
    out, x_last = layer(u, x0);  loss = sum(out * w_out) + sum(x_last * w_state)
and writes the hyper-parameters, the parameters by name, u, x0, out, x_last, the upstream w_out
and w_state, and the gradients of u, x0 and every parameter (tests/test_ssm_linoss_s5.cpp reads
them back, copies the parameters into the engram layer by name and compares).
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ssm_linoss import LinOSS  # noqa: E402
from torch_ssm_s5 import S5  # noqa: E402

torch.set_num_threads(1)


def tensor_json(t):
    return {"shape": list(t.shape), "dtype": "f64",
            "data": t.detach().to(torch.float64).reshape(-1).tolist()}


def run_case(name, config, layer, batch, steps, seed):
    g = torch.Generator().manual_seed(seed)
    layer = layer.double()
    H = config["d_model"]
    u = torch.randn(batch, steps, H, generator=g, dtype=torch.float64, requires_grad=True)
    x0_shape = layer.initial_state(batch).shape
    x0 = (0.5 * torch.randn(x0_shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    out, x_last = layer(u, x0)
    w_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    w_state = torch.randn(x_last.shape, generator=g, dtype=torch.float64)
    ((out * w_out).sum() + (x_last * w_state).sum()).backward()
    params = dict(layer.named_parameters())
    return {
        "config": config,
        "params": {n: tensor_json(p) for n, p in params.items()},
        "inputs": {"u": tensor_json(u), "x0": tensor_json(x0)},
        "outputs": {"out": tensor_json(out), "x_last": tensor_json(x_last)},
        "upstream": {"out": tensor_json(w_out), "x_last": tensor_json(w_state)},
        "grads": {"u": tensor_json(u.grad), "x0": tensor_json(x0.grad),
                  **{"params." + n: tensor_json(p.grad) for n, p in params.items()}},
    }


def main():
    out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ssm_linoss_s5.json")
    cases = {}
    for disc, seed in (("IM", 1), ("IMEX", 2)):
        torch.manual_seed(seed)
        cfg = {"kind": "linoss", "d_model": 4, "state_size": 6, "discretization": disc}
        cases["linoss_" + disc.lower()] = run_case("linoss_" + disc.lower(), cfg,
                                                   LinOSS(4, 6, disc), 2, 5, 10 + seed)
    for bilinear, seed in ((False, 3), (True, 4)):
        torch.manual_seed(seed)
        cfg = {"kind": "s5", "d_model": 4, "state_size": 8, "blocks": 2, "bilinear": bilinear}
        name = "s5_" + ("bilinear" if bilinear else "zoh")
        cases[name] = run_case(name, cfg, S5(4, 8, 2, bilinear), 2, 5, 10 + seed)
    doc = {"torch_version": torch.__version__, "cases": cases}
    with open(out_path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"make_ssm_linoss_s5_golden: {len(cases)} cases -> {out_path} "
          f"({os.path.getsize(out_path)} bytes)")


if __name__ == "__main__":
    main()
