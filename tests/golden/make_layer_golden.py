#!/usr/bin/python3
"""tests/golden/make_layer_golden.py -- PyTorch reference outputs and gradients for engram's nn layers.

For every case below the script builds the PyTorch layer with a fixed seed, gives the parameters
that PyTorch initialises to constants (LayerNorm's ones/zeros, attention biases, SpectralMix's
filter) random values so their gradients are tested too, draws an input and an upstream gradient
for every output, and writes one JSON record:

    name, layer, config      which engram layer to build and with what hyper-parameters
    inputs                   named tensors; ids and masks take no gradient
    params                   the parameters, named exactly as engram's named_parameters() (PyTorch's
                             state-dict names)
    outputs, grad_outputs    every output and the upstream gradient fed back into it
    input_grads, param_grads d(sum_i <output_i, grad_output_i>) / d(input or parameter)

Tensors are {"shape": [...], "dtype": "f32"|"i64", "data": [flat, row-major]}. Inputs and
parameters are drawn in float32; the reference is computed in float64 from those same float32
values and rounded to float32 when written, so the goldens carry no float32 rounding of their own.
tests/test_layer_golden.cpp rebuilds each layer in engram, copies the parameters in by name, and
compares outputs and gradients. The tests never run Python; rerun this after changing a case:

    /usr/bin/python3 tests/golden/make_layer_golden.py tests/golden/layers.json

Layers PyTorch 1.13 lacks or that engram defines its own way are written out here by hand from
the formulas in the engram headers: RMSNorm (nn/layers.h), the pre-norm TransformerBlock
(nn/attention.h, checked against nn.TransformerEncoderLayer(norm_first=True) below),
MixtureOfExperts (nn/moe.h) and SpectralMix (nn/spectral.h).
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 1234


# ------------------------------------------------------------------------------------ helpers
def tensor_json(t):
    t = t.detach().cpu()
    if t.dtype in (torch.int64, torch.bool):
        return {"shape": list(t.shape), "dtype": "i64", "data": [int(v) for v in t.reshape(-1)]}
    # 9 significant digits round-trip a float32 exactly.
    data = [float("%.9g" % v) for v in t.to(torch.float32).reshape(-1).tolist()]
    return {"shape": list(t.shape), "dtype": "f32", "data": data}


def randn(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).to(torch.float32)


def randomize_constant_params(module):
    """Parameters PyTorch starts at a constant (ones, zeros) get random values around it."""
    with torch.no_grad():
        for p in module.parameters():
            if p.numel() > 1 and bool((p == p.reshape(-1)[0]).all()):
                p.add_(randn(*p.shape, scale=0.3))


def make_case(name, layer, config, module, inputs, forward):
    """Runs `forward(module, inputs)` in float64 and records everything.

    inputs: dict name -> tensor (float32 floats get gradients, i64/bool/`no_grad_inputs` do not).
    forward returns a dict name -> output tensor.
    """
    module = module.to(torch.float32)
    params = {n: p.detach().clone() for n, p in module.named_parameters()}
    module = module.to(torch.float64)
    run_inputs = {}
    for n, t in inputs.items():
        if t.dtype == torch.float32 and not n.endswith("mask"):
            run_inputs[n] = t.to(torch.float64).requires_grad_(True)
        else:
            run_inputs[n] = t
    outputs = forward(module, run_inputs)
    grad_outputs = {n: randn(*y.shape) for n, y in outputs.items()}
    loss = sum((y * g.to(torch.float64)).sum() for (n, y), g in zip(outputs.items(), grad_outputs.values()))
    loss.backward()
    param_grads = {}
    for n, p in module.named_parameters():
        param_grads[n] = p.grad if p.grad is not None else torch.zeros_like(p)
    return {
        "name": name,
        "layer": layer,
        "config": config,
        "inputs": {n: tensor_json(t) for n, t in inputs.items()},
        "params": {n: tensor_json(p) for n, p in params.items()},
        "outputs": {n: tensor_json(y) for n, y in outputs.items()},
        "grad_outputs": {n: tensor_json(g) for n, g in grad_outputs.items()},
        "input_grads": {n: tensor_json(t.grad) for n, t in run_inputs.items() if t.requires_grad},
        "param_grads": {n: tensor_json(g) for n, g in param_grads.items()},
    }


def x_input(*shape, scale=1.0):
    """The one input `x` of a single-input layer."""
    return {"x": randn(*shape, scale=scale)}


def forward_y(m, inp):
    return {"y": m(inp["x"])}


# ------------------------------------------------------------------------------ hand-written layers
class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * w over the last dim (nn/layers.h)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def causal_mask(tq, tk):
    """True where query i must not see key j: j > i + (tk - tq) (bottom-right aligned, as engram)."""
    i = torch.arange(tq).unsqueeze(1)
    j = torch.arange(tk).unsqueeze(0)
    return j > i + (tk - tq)


class TransformerBlock(nn.Module):
    """Pre-norm block (nn/attention.h), child names as nn.TransformerEncoderLayer:
    x = x + MHA(norm1(x));  x = x + linear2(GELU(linear1(norm2(x))))."""

    def __init__(self, E, heads, ff, causal):
        super().__init__()
        self.causal = causal
        self.self_attn = nn.MultiheadAttention(E, heads, batch_first=True)
        self.linear1 = nn.Linear(E, ff)
        self.linear2 = nn.Linear(ff, E)
        self.norm1 = nn.LayerNorm(E)
        self.norm2 = nn.LayerNorm(E)

    def forward(self, x, key_padding_mask=None):
        T = x.shape[1]
        mask = causal_mask(T, T) if self.causal else None
        h = self.norm1(x)
        a, _ = self.self_attn(h, h, h, attn_mask=mask, key_padding_mask=key_padding_mask,
                              need_weights=False)
        x = x + a
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


def check_block_against_torch(block, x, kpm):
    """Our hand-written block must equal PyTorch's own pre-norm encoder layer."""
    E = block.linear1.in_features
    ref = nn.TransformerEncoderLayer(E, block.self_attn.num_heads, block.linear1.out_features,
                                     dropout=0.0, activation="gelu", batch_first=True,
                                     norm_first=True).to(torch.float64)
    ref.load_state_dict(block.state_dict())
    ref.train()  # keeps PyTorch off its inference fast path
    T = x.shape[1]
    mask = causal_mask(T, T) if block.causal else None
    with torch.no_grad():
        got = block(x, kpm)
        want = ref(x, src_mask=mask, src_key_padding_mask=kpm)
    assert torch.allclose(got, want, atol=1e-12), "hand-written TransformerBlock != PyTorch's"


class ExpertMLP(nn.Module):
    def __init__(self, cin, hidden, cout, act):
        super().__init__()
        self.fc1 = nn.Linear(cin, hidden)
        self.fc2 = nn.Linear(hidden, cout)
        self.act = act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class MixtureOfExperts(nn.Module):
    """p = softmax(gate(x)); g = p (dense) or softmax over the top-k logits scattered back (top-k);
    y = sum_e g_e f_e(x) (nn/moe.h)."""

    def __init__(self, cin, hidden, cout, num_experts, top_k, act):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(cin, num_experts)
        self.experts = nn.ModuleList([ExpertMLP(cin, hidden, cout, act) for _ in range(num_experts)])

    def forward(self, x):
        logits = self.gate(x)
        probs = logits.softmax(-1)
        gates = probs
        E = len(self.experts)
        if 0 < self.top_k < E:
            values, idx = logits.topk(self.top_k, dim=-1)
            gates = torch.zeros_like(logits).scatter_add(-1, idx, values.softmax(-1))
        y = sum(gates[..., e:e + 1] * f(x) for e, f in enumerate(self.experts))
        return y, probs, gates


class SpectralMix(nn.Module):
    """y = proj(irfft(rfft(LayerNorm(x)) * W, n=F)), W [F/2+1, 2] complex as [re, im]
    (nn/spectral.h)."""

    def __init__(self, features):
        super().__init__()
        self.features = features
        self.norm = nn.LayerNorm(features)
        filt = torch.zeros(features // 2 + 1, 2)
        filt[:, 0] = 1.0
        self.filter = nn.Parameter(filt)
        self.proj = nn.Linear(features, features)

    def forward(self, x):
        X = torch.view_as_real(torch.fft.rfft(self.norm(x), dim=-1))
        xr, xi = X[..., 0], X[..., 1]
        wr, wi = self.filter[:, 0], self.filter[:, 1]
        Y = torch.stack([xr * wr - xi * wi, xr * wi + xi * wr], dim=-1)
        return self.proj(torch.fft.irfft(torch.view_as_complex(Y.contiguous()), n=self.features, dim=-1))


# ------------------------------------------------------------------------------------ the cases
def build_cases():
    cases = []

    def add(name, layer, config, module, inputs, forward=forward_y):
        randomize_constant_params(module)
        cases.append(make_case(name, layer, config, module, inputs, forward))

    # ---- basic layers
    add("linear", "Linear", {"in_features": 5, "out_features": 4, "bias": True},
        nn.Linear(5, 4), x_input(2, 3, 5))
    add("linear_no_bias", "Linear", {"in_features": 5, "out_features": 3, "bias": False},
        nn.Linear(5, 3, bias=False), x_input(4, 5))
    ids = torch.tensor([[1, 2, 3, 2, 9], [0, 0, 2, 7, 1]], dtype=torch.int64)
    add("embedding_padding_idx", "Embedding", {"num_embeddings": 10, "dim": 4, "padding_idx": 2},
        nn.Embedding(10, 4, padding_idx=2), {"ids": ids}, lambda m, i: {"y": m(i["ids"])})
    add("conv2d", "Conv2d", {"in_channels": 3, "out_channels": 4, "kernel": 3, "stride": 1,
                             "padding": 1, "dilation": 1, "bias": True},
        nn.Conv2d(3, 4, 3, stride=1, padding=1), x_input(2, 3, 6, 6))
    add("conv2d_stride_dilation", "Conv2d", {"in_channels": 2, "out_channels": 3, "kernel": 3,
                                             "stride": 2, "padding": 2, "dilation": 2, "bias": False},
        nn.Conv2d(2, 3, 3, stride=2, padding=2, dilation=2, bias=False), x_input(1, 2, 7, 7))
    add("max_pool2d", "MaxPool2d", {"kernel": 2, "stride": 2, "padding": 0},
        nn.MaxPool2d(2), x_input(2, 3, 6, 6))
    add("max_pool2d_k3_s2_p1", "MaxPool2d", {"kernel": 3, "stride": 2, "padding": 1},
        nn.MaxPool2d(3, stride=2, padding=1), x_input(1, 2, 7, 7))
    add("avg_pool2d", "AvgPool2d", {"kernel": 2, "stride": 2, "padding": 0},
        nn.AvgPool2d(2), x_input(2, 3, 6, 6))
    add("avg_pool2d_k3_s2_p1", "AvgPool2d", {"kernel": 3, "stride": 2, "padding": 1},
        nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=True), x_input(1, 2, 7, 7))
    add("flatten", "Flatten", {"start_dim": 1, "end_dim": -1}, nn.Flatten(), x_input(2, 3, 2, 2))
    add("layer_norm", "LayerNorm", {"dim": 6, "eps": 1e-5}, nn.LayerNorm(6, eps=1e-5),
        x_input(2, 3, 6, scale=2.0))
    add("rms_norm", "RMSNorm", {"dim": 6, "eps": 1e-6}, RMSNorm(6, eps=1e-6),
        x_input(2, 3, 6, scale=2.0))

    activations = {
        "relu": nn.ReLU(), "gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh"),
        "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "silu": nn.SiLU(),
        "leaky_relu": nn.LeakyReLU(0.2), "softplus": nn.Softplus(),
    }
    for kind, module in activations.items():
        param = 0.2 if kind == "leaky_relu" else 0.01
        add(f"activation_{kind}", "Activation", {"kind": kind, "param": param}, module,
            x_input(3, 7, scale=3.0))

    mlp = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))
    add("sequential_mlp", "SequentialMLP", {"sizes": [6, 8, 8, 3], "activations": ["relu", "tanh"]},
        mlp, x_input(4, 6))

    # ---- recurrent (batch first)
    def lstm_forward(m, i):
        state = (i["h0"], i["c0"]) if "h0" in i else None
        out, (h, c) = m(i["x"], state)
        return {"output": out, "h_n": h, "c_n": c}

    add("lstm_2layer", "LSTM", {"input_size": 4, "hidden_size": 5, "num_layers": 2, "bias": True},
        nn.LSTM(4, 5, num_layers=2, batch_first=True),
        {"x": randn(2, 3, 4), "h0": randn(2, 2, 5, scale=0.5), "c0": randn(2, 2, 5, scale=0.5)},
        lstm_forward)
    add("lstm_zero_state_no_bias", "LSTM",
        {"input_size": 3, "hidden_size": 4, "num_layers": 1, "bias": False},
        nn.LSTM(3, 4, num_layers=1, bias=False, batch_first=True), {"x": randn(2, 4, 3)},
        lstm_forward)

    def gru_forward(m, i):
        out, h = m(i["x"], i.get("h0"))
        return {"output": out, "h_n": h}

    add("gru_2layer", "GRU", {"input_size": 4, "hidden_size": 5, "num_layers": 2, "bias": True},
        nn.GRU(4, 5, num_layers=2, batch_first=True),
        {"x": randn(2, 3, 4), "h0": randn(2, 2, 5, scale=0.5)}, gru_forward)
    add("gru_zero_state", "GRU", {"input_size": 3, "hidden_size": 4, "num_layers": 1, "bias": True},
        nn.GRU(3, 4, num_layers=1, batch_first=True), {"x": randn(3, 4, 3)}, gru_forward)

    # ---- attention (batch first)
    def mha_self_causal(m, i):
        x = i["x"]
        T = x.shape[1]
        y, w = m(x, x, x, attn_mask=causal_mask(T, T), need_weights=True, average_attn_weights=False)
        return {"y": y, "weights": w}

    add("mha_self_causal", "MultiHeadAttention",
        {"embed_dim": 8, "num_heads": 2, "bias": True, "self": True, "causal": True,
         "weights": "per_head"},
        nn.MultiheadAttention(8, 2, batch_first=True), {"x": randn(2, 4, 8)}, mha_self_causal)

    def mha_cross_padding(m, i):
        y, w = m(i["query"], i["key"], i["value"], key_padding_mask=i["key_padding_mask"] != 0,
                 need_weights=True, average_attn_weights=True)
        return {"y": y, "weights": w}

    kpm = torch.tensor([[0, 0, 0, 1, 1], [0, 1, 0, 0, 0]], dtype=torch.float32)
    add("mha_cross_key_padding", "MultiHeadAttention",
        {"embed_dim": 8, "num_heads": 2, "bias": True, "self": False, "causal": False,
         "weights": "averaged"},
        nn.MultiheadAttention(8, 2, batch_first=True),
        {"query": randn(2, 3, 8), "key": randn(2, 5, 8), "value": randn(2, 5, 8),
         "key_padding_mask": kpm}, mha_cross_padding)

    def mha_cross_causal(m, i):
        tq, tk = i["query"].shape[1], i["key"].shape[1]
        y, _ = m(i["query"], i["key"], i["value"], attn_mask=causal_mask(tq, tk), need_weights=False)
        return {"y": y}

    add("mha_cross_causal_longer_memory", "MultiHeadAttention",
        {"embed_dim": 6, "num_heads": 3, "bias": True, "self": False, "causal": True,
         "weights": "none"},
        nn.MultiheadAttention(6, 3, batch_first=True),
        {"query": randn(2, 2, 6), "key": randn(2, 4, 6), "value": randn(2, 4, 6)}, mha_cross_causal)

    def block_forward(m, i):
        kpm = i.get("key_padding_mask")
        kpm = None if kpm is None else kpm != 0
        check_block_against_torch(m, i["x"].detach(), kpm)
        return {"y": m(i["x"], kpm)}

    add("transformer_block_causal", "TransformerBlock",
        {"embed_dim": 8, "num_heads": 2, "ff_dim": 16, "causal": True},
        TransformerBlock(8, 2, 16, causal=True), {"x": randn(2, 4, 8)}, block_forward)
    add("transformer_block_key_padding", "TransformerBlock",
        {"embed_dim": 8, "num_heads": 2, "ff_dim": 16, "causal": False},
        TransformerBlock(8, 2, 16, causal=False),
        {"x": randn(2, 4, 8),
         "key_padding_mask": torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.float32)},
        block_forward)

    # ---- mixture of experts
    def moe_forward(m, i):
        y, probs, gates = m(i["x"])
        return {"y": y, "gate_probs": probs, "gates": gates}

    add("moe_dense", "MixtureOfExperts",
        {"in_features": 5, "hidden": 7, "out_features": 3, "num_experts": 3, "top_k": 0,
         "activation": "gelu"},
        MixtureOfExperts(5, 7, 3, 3, 0, F.gelu), {"x": randn(2, 3, 5)}, moe_forward)
    add("moe_top2", "MixtureOfExperts",
        {"in_features": 5, "hidden": 6, "out_features": 3, "num_experts": 4, "top_k": 2,
         "activation": "relu"},
        MixtureOfExperts(5, 6, 3, 4, 2, F.relu), {"x": randn(8, 5, scale=2.0)}, moe_forward)
    # Two rows, one expert each: at least two experts are never selected and get no gradient.
    add("moe_top1_unused_experts", "MixtureOfExperts",
        {"in_features": 4, "hidden": 5, "out_features": 2, "num_experts": 4, "top_k": 1,
         "activation": "silu"},
        MixtureOfExperts(4, 5, 2, 4, 1, F.silu), {"x": randn(2, 4)}, moe_forward)

    # ---- spectral mixing (even F has a Nyquist bin, odd F does not)
    add("spectral_mix_even", "SpectralMix", {"features": 8}, SpectralMix(8), x_input(2, 3, 8))
    add("spectral_mix_odd", "SpectralMix", {"features": 7}, SpectralMix(7), x_input(4, 7))
    return cases


def write_golden(out_path, doc):
    """Writes doc with one case per line, so a regenerated file diffs case by case."""
    header = json.dumps({k: v for k, v in doc.items() if k != "cases"})[:-1]
    with open(out_path, "w") as f:
        f.write(header + ',"cases":[\n')
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in doc["cases"]))
        f.write("\n]}\n")


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/layers.json"
    torch.manual_seed(SEED)
    cases = build_cases()
    doc = {
        "generator": "tests/golden/make_layer_golden.py",
        "torch_version": torch.__version__,
        "seed": SEED,
        "cases": cases,
    }
    write_golden(out_path, doc)
    print(f"wrote {len(cases)} layer cases to {out_path}")


if __name__ == "__main__":
    main()
