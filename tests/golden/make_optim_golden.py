#!/usr/bin/python3
"""Golden data for tests/test_optim.cpp and tests/test_checkpoint.cpp, made with torch.optim 1.13.

Writes, next to this script:
  optim_mlp.json             a small MLP 8-16-4 (tanh), its initial weights, fixed data, and for
                             each optimizer configuration the cross-entropy loss before each of 20
                             full-batch steps plus the loss after the last one, and every parameter
                             after the last step, in float64 and in float32 (engram's test trains
                             identically and compares the losses and the final parameters)
  optim_lstm.json            the same for a small sequence tagger: batch-first LSTM(5, 6), 1 layer,
                             on x [4, 7, 5], then Linear(6, 3) on every step's hidden state,
                             cross-entropy over the 4*7 targets; same optimizer configurations,
                             losses and final parameters
  optim_torch_state.safetensors
                             the MLP's torch state_dict (F32) plus an F64 and an I64 tensor and
                             metadata, written by the tiny safetensors writer below (the
                             `safetensors` package is not installed here); engram loads it

Run: /usr/bin/python3 tests/golden/make_optim_golden.py
     /usr/bin/python3 tests/golden/make_optim_golden.py --read FILE   (print an engram checkpoint)
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DIMS = [8, 16, 4]
N_SAMPLES = 32
STEPS = 20
# The LSTM tagger: x [LSTM_BATCH, LSTM_SEQ, LSTM_IN] -> LSTM(LSTM_IN, LSTM_HIDDEN) -> Linear to
# LSTM_CLASSES at every step; targets [LSTM_BATCH * LSTM_SEQ] (row-major over batch, time).
LSTM_IN, LSTM_HIDDEN, LSTM_CLASSES = 5, 6, 3
LSTM_BATCH, LSTM_SEQ = 4, 7

# ---------------------------------------------------------------- safetensors, by hand
_TO_CODE = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
_TO_NUMPY = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch.Tensor (F32/F64/I64); metadata: dict str -> str."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        data = t.detach().contiguous().numpy().astype(_TO_NUMPY[_TO_CODE[t.dtype]]).tobytes()
        header[name] = {"dtype": _TO_CODE[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # data area 8-byte aligned, as the reference does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def read_safetensors(path):
    """Returns ({name: torch.Tensor}, metadata). Enough to read any engram checkpoint."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, v in header.items():
        b, e = v["data_offsets"]
        arr = np.frombuffer(raw[8 + n + b:8 + n + e], _TO_NUMPY[v["dtype"]]).reshape(v["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


# ---------------------------------------------------------------- the model and the runs
class LSTMTagger(torch.nn.Module):
    """Parameters lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0,
    head.weight, head.bias; forward returns logits flattened to [B * T, classes]."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(LSTM_IN, LSTM_HIDDEN, num_layers=1, batch_first=True)
        self.head = torch.nn.Linear(LSTM_HIDDEN, LSTM_CLASSES)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out).reshape(-1, LSTM_CLASSES)


def make_mlp():
    return torch.nn.Sequential(torch.nn.Linear(DIMS[0], DIMS[1]), torch.nn.Tanh(),
                               torch.nn.Linear(DIMS[1], DIMS[2]))


def make_model(weights, dtype, factory=make_mlp):
    model = factory().to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(weights[name].to(dtype))
    return model


def warmup_cosine(step, base, warmup, total, min_lr):
    """Same formula as nn/schedule.h, written independently."""
    if step < warmup:
        return base * step / warmup
    if step >= total:
        return min_lr
    p = (step - warmup) / (total - warmup)
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))


RUNS = [
    {"name": "sgd_nesterov_steplr", "optimizer": "SGD",
     "options": {"lr": 0.2, "momentum": 0.9, "dampening": 0.0, "nesterov": True, "weight_decay": 1e-3},
     "schedule": {"kind": "step", "step_size": 6, "gamma": 0.5}, "clip": 0.0},
    {"name": "sgd_dampening_clip", "optimizer": "SGD",
     "options": {"lr": 0.1, "momentum": 0.8, "dampening": 0.25, "nesterov": False, "weight_decay": 0.0},
     "schedule": {"kind": "constant"}, "clip": 0.3},
    {"name": "adam_l2_warmup_cosine", "optimizer": "Adam",
     "options": {"lr": 0.02, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False},
     "schedule": {"kind": "warmup_cosine", "warmup_steps": 4, "total_steps": 20, "min_lr": 1e-3}, "clip": 0.0},
    {"name": "adam_amsgrad", "optimizer": "Adam",
     "options": {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.0, "amsgrad": True},
     "schedule": {"kind": "constant"}, "clip": 0.0},
    {"name": "adamw_clip", "optimizer": "AdamW",
     "options": {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1, "amsgrad": False},
     "schedule": {"kind": "constant"}, "clip": 0.3},
]


def make_optimizer(run, params):
    o = run["options"]
    if run["optimizer"] == "SGD":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], dampening=o["dampening"],
                               nesterov=o["nesterov"], weight_decay=o["weight_decay"])
    cls = torch.optim.Adam if run["optimizer"] == "Adam" else torch.optim.AdamW
    return cls(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
               weight_decay=o["weight_decay"], amsgrad=o["amsgrad"])


def make_scheduler(run, opt):
    s = run["schedule"]
    if s["kind"] == "step":  # PyTorch's own StepLR
        return torch.optim.lr_scheduler.StepLR(opt, step_size=s["step_size"], gamma=s["gamma"])
    if s["kind"] == "warmup_cosine":
        base = run["options"]["lr"]
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: warmup_cosine(k, base, s["warmup_steps"], s["total_steps"], s["min_lr"]) / base)
    return None


def train(run, weights, x, y, dtype, factory=make_mlp):
    """Returns (losses, {name: final parameter as tensor_json})."""
    model = make_model(weights, dtype, factory)
    opt = make_optimizer(run, list(model.parameters()))
    sched = make_scheduler(run, opt)
    x = x.to(dtype)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        losses.append(loss.item())
        loss.backward()
        if run["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), run["clip"])
        opt.step()
        if sched is not None:
            sched.step()
    with torch.no_grad():
        losses.append(torch.nn.functional.cross_entropy(model(x), y).item())
    return losses, {name: tensor_json(p) for name, p in model.named_parameters()}


def tensor_json(t):
    return {"shape": list(t.shape), "values": [float(v) for v in t.flatten().tolist()]}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--read":
        tensors, meta = read_safetensors(sys.argv[2])
        for k, v in meta.items():
            print(f"metadata {k} = {v[:80]}")
        for k, t in tensors.items():
            print(f"{k}: {t.dtype} {list(t.shape)} sum={t.double().sum().item():.17g}")
        return

    g = torch.Generator().manual_seed(20240611)
    weights = {}
    ref = make_mlp()
    for name, p in ref.named_parameters():  # PyTorch's names: 0.weight, 0.bias, 2.weight, 2.bias
        weights[name] = (torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(p.shape[-1])
    x = torch.randn(N_SAMPLES, DIMS[0], generator=g, dtype=torch.float64)
    y = torch.randint(0, DIMS[2], (N_SAMPLES,), generator=g)

    runs = []
    for run in RUNS:
        r = dict(run)
        r["losses_f64"], r["final_params_f64"] = train(run, weights, x, y, torch.float64)
        r["losses_f32"], r["final_params_f32"] = train(run, weights, x, y, torch.float32)
        runs.append(r)
        print(f"{run['name']:24s} loss {r['losses_f64'][0]:.6f} -> {r['losses_f64'][-1]:.6f}")

    golden = {
        "description": "MLP 8-16-4 (Linear, Tanh, Linear), full-batch cross-entropy, "
                       f"{STEPS} steps per run; losses[k] is the loss before step k, the last one "
                       "after the final step; final_params_* are the parameters after the last step. "
                       "Made by tests/golden/make_optim_golden.py with torch "
                       + torch.__version__,
        "dims": DIMS, "steps": STEPS,
        "params": {k: tensor_json(v) for k, v in weights.items()},
        "x": tensor_json(x), "y": y.tolist(), "runs": runs,
    }
    with open(os.path.join(HERE, "optim_mlp.json"), "w") as f:
        json.dump(golden, f, indent=1)

    make_lstm_golden()

    # A torch state dict as safetensors, plus one tensor of each other dtype and a scalar.
    model = make_model(weights, torch.float32)
    tensors = {k: v for k, v in model.state_dict().items()}
    tensors["extra.f64"] = torch.arange(6, dtype=torch.float64).reshape(2, 3) / 7.0
    tensors["extra.i64"] = torch.tensor([[-3, 0], [2**40, -(2**62)]], dtype=torch.int64)
    tensors["extra.scalar"] = torch.tensor(0.1, dtype=torch.float32)
    write_safetensors(os.path.join(HERE, "optim_torch_state.safetensors"), tensors,
                      {"format": "pt", "source": "torch " + torch.__version__, "step": "7"})


def make_lstm_golden():
    g = torch.Generator().manual_seed(20240612)  # its own stream: the MLP golden is unchanged
    weights = {}
    bound = 1 / math.sqrt(LSTM_HIDDEN)  # PyTorch's LSTM init; also the head's (its fan-in is H)
    for name, p in LSTMTagger().named_parameters():
        weights[name] = (torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) * bound
    x = torch.randn(LSTM_BATCH, LSTM_SEQ, LSTM_IN, generator=g, dtype=torch.float64)
    y = torch.randint(0, LSTM_CLASSES, (LSTM_BATCH * LSTM_SEQ,), generator=g)

    runs = []
    for run in RUNS:
        r = dict(run)
        r["losses_f64"], r["final_params_f64"] = train(run, weights, x, y, torch.float64, LSTMTagger)
        r["losses_f32"], r["final_params_f32"] = train(run, weights, x, y, torch.float32, LSTMTagger)
        runs.append(r)
        print(f"lstm {run['name']:24s} loss {r['losses_f64'][0]:.6f} -> {r['losses_f64'][-1]:.6f}")

    golden = {
        "description": f"Sequence tagger: batch-first LSTM({LSTM_IN}, {LSTM_HIDDEN}), 1 layer, zero "
                       f"initial state, then Linear({LSTM_HIDDEN}, {LSTM_CLASSES}) on every step; "
                       "logits flattened to [B*T, classes] and full-batch cross-entropy against y "
                       f"(B*T targets, row-major over batch then time); {STEPS} steps per run; "
                       "losses[k] is the loss before step k, the last one after the final step; "
                       "final_params_* are the parameters after the last step. "
                       "Made by tests/golden/make_optim_golden.py with torch " + torch.__version__,
        "input_size": LSTM_IN, "hidden_size": LSTM_HIDDEN, "classes": LSTM_CLASSES,
        "batch": LSTM_BATCH, "seq_len": LSTM_SEQ, "steps": STEPS,
        "params": {k: tensor_json(v) for k, v in weights.items()},
        "x": tensor_json(x), "y": y.tolist(), "runs": runs,
    }
    with open(os.path.join(HERE, "optim_lstm.json"), "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    main()
