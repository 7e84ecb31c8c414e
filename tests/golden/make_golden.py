#!/usr/bin/python3
"""PyTorch goldens for engram's op registry: tests/golden/ops.json.

Regenerate with `make golden`, which runs
    build/tools/export_samples > build/op_samples.json
    /usr/bin/python3 tests/golden/make_golden.py build/op_samples.json tests/golden/ops.json
with Debian's python3-torch (the torch version that made the file is stored in it as
"torch_version"). Run it again whenever a registry entry (autograd/opinfo_*.cpp) changes: the
doctest suite (tests/test_golden.cpp) and `make gradcheck` fail on a stale or missing golden.

For every op of the export and each of its samples: the inputs (f32, i64 indices) become torch
tensors, those marked differentiable with requires_grad; y = OPS[name](inputs, params) is computed
in float32; loss = (y * upstream).sum() is backpropagated. The output y and the gradient of every
differentiable input are written (null for the others). OPS maps each registry name to the PyTorch
equivalent and reads the same params keys the C++ entry's fn reads (autograd/opinfo_*.cpp), so a
sample that composes several ops in C++ (split, contiguous, to_dtype, hebbian_scan) composes the
same ones here. Ops without a mapping are listed on stderr and left out.

Dropout: PyTorch cannot draw engram's mask (engram's comes from its own Generator(seed)). The eval
and p = 0 samples are the identity and are compared as such. For the training samples the mask is
reconstructed from engram's exported f32 output ("engram_output": kept where y != 0; the inputs
are normals, never exactly 0) and PyTorch computes y = x * mask / (1 - p) with it, so the golden
checks the scaling and the gradient (dx = dy * mask / (1 - p)) but not the mask's randomness,
which has nothing to compare against here. The script refuses an exported output whose kept
elements are not x / (1 - p).

Numbers: f32 values are written in their shortest round-trip form (numpy's float32 repr, at most
9 significant digits), so the C++ side reads back exactly the f32 values PyTorch produced; f64
outputs (to_dtype) in their shortest double form. One sample per line keeps diffs readable.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)


# ---------------------------------------------------------------- helpers
def dims_or_all(x, dims):
    return tuple(dims) if dims else tuple(range(x.dim()))


def slice_along(x, dim, start, end, step=1):
    idx = [slice(None)] * x.dim()
    idx[dim] = slice(start, end, step)
    return x[tuple(idx)]


def class_loss(fn, x, target, **kw):
    """engram's class losses take scores [..., C] and target [...] (classes last)."""
    C = x.shape[-1]
    y = fn(x.reshape(-1, C), target.reshape(-1), **kw)
    if kw.get("reduction") == "none":
        y = y.reshape(target.shape)
    return y


def split_combo(x, p):
    # opinfo_shape.cpp: sum(part0) * 1 + sum_i (i + 1) * sum(part_i ** 2)
    parts = torch.split(x, p["size"], p["dim"])
    acc = parts[0].sum() * 1.0
    for i, part in enumerate(parts[1:], start=1):
        acc = acc + (part * part).sum() * float(i + 1)
    return acc


def unbind_combo(x, p):
    # opinfo_shape.cpp: sum(part0) + sum_{i>=2} i * sum(part_i ** 2); part 1 unused
    parts = torch.unbind(x, p["dim"])
    acc = parts[0].sum()
    for i, part in enumerate(parts[2:], start=2):
        acc = acc + (part * part).sum() * float(i)
    return acc


def layer_norm(xs, p):
    k = 1
    w = b = None
    if p.get("has_weight", True):
        w = xs[k]
        k += 1
    if p.get("has_bias", True):
        b = xs[k]
    x = xs[0]
    return F.layer_norm(x, (x.shape[-1],), w, b, p.get("eps", 1e-5))


def rms_norm(xs, p):
    # y = x / sqrt(mean(x^2 over the last dim) + eps) * w  (torch 1.13 has no F.rms_norm)
    x = xs[0]
    y = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + p.get("eps", 1e-6))
    if p.get("has_weight", True):
        y = y * xs[1]
    return y


def dropout(xs, p, sample):
    x = xs[0]
    prob = p.get("p", 0.5)
    if not p.get("training", True) or prob == 0:
        return x * 1.0  # identity (a copy, so the loss has a graph even for a leaf)
    eng = sample["engram_output"]
    ey = torch.tensor(eng["data"], dtype=torch.float32).reshape(eng["shape"])
    xd = x.detach()
    keep = ey != 0
    if (xd == 0).any():
        raise ValueError("dropout: an input element is exactly 0, the mask is ambiguous")
    if not torch.allclose(ey[keep], xd[keep] / (1 - prob), rtol=1e-6, atol=0):
        raise ValueError("dropout: engram's kept elements are not x / (1 - p)")
    mask = keep.to(torch.float32)
    return x * mask / (1 - prob)


def conv2d(xs, p):
    bias = xs[2] if p.get("bias", True) else None
    return F.conv2d(xs[0], xs[1], bias, stride=p.get("stride", 1), padding=p.get("padding", 0),
                    dilation=p.get("dilation", 1))


def pool_args(p):
    k = p["kernel"]
    s = p.get("stride", -1)
    return k, (k if s is None or s <= 0 else s), p.get("padding", 0)


def max_pool2d(xs, p):
    k, s, pad = pool_args(p)
    return F.max_pool2d(xs[0], k, s, pad)


def avg_pool2d(xs, p):
    # engram divides every window by k*k: PyTorch's count_include_pad=True (its default)
    k, s, pad = pool_args(p)
    return F.avg_pool2d(xs[0], k, s, pad, count_include_pad=True)


def linear_scan(xs, p):
    # h_t = a_t * h_{t-1} + b_t along dim 1 of [B, T, ...]; h_{-1} = h0 (zeros without it)
    a, b = torch.broadcast_tensors(xs[0], xs[1])  # a may broadcast against b ([B, T, 1])
    h = xs[2] if p.get("h0", False) else torch.zeros((), dtype=b.dtype)
    hs = []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        hs.append(h)
    return torch.stack(hs, 1)


def lstm_sequence(xs, p):
    # opinfo_nn.cpp: gx [B, T, 4H] (inputs already projected), w_hh [4H, H], optional h0 and c0;
    # PyTorch's LSTM cell (gates i f g o) step by step; the sample returns sum(h^2) + sum(c_T^2).
    gx, w_hh = xs[0], xs[1]
    B, T, H = gx.shape[0], gx.shape[1], w_hh.shape[1]
    rest = xs[2:]
    h = rest.pop(0) if p.get("h0", False) else torch.zeros(B, H, dtype=gx.dtype)
    c = rest.pop(0) if p.get("c0", False) else torch.zeros(B, H, dtype=gx.dtype)
    hs = []
    for t in range(T):
        i, f, g, o = (gx[:, t] + h @ w_hh.t()).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
    y = torch.stack(hs, 1)
    return (y * y).sum() + (c * c).sum()


def reservoir_scan(xs, p):
    # opinfo_nn.cpp: s_t = (1 - leak) s_{t-1} + leak tanh(drive_t + s_{t-1} w^T); returns sum(s^2).
    drive, w = xs[0], xs[1]
    B, T, R = drive.shape
    s = xs[2] if p.get("s0", False) else torch.zeros(B, R, dtype=drive.dtype)
    leak = p.get("leak", 0.5)
    total = 0
    for t in range(T):
        s = s * (1 - leak) + torch.tanh(drive[:, t] + s @ w.t()) * leak
        total = total + (s * s).sum()
    return total


def episodic_scan(xs, p):
    # opinfo_memory.cpp: memory/crsd/episodic.h's step at every t (read, then write), from the
    # start slots keys, values, importance, age, filled = xs[3:8]; "detach": the slots and the
    # written k, v are detached at every write. The sample returns sum(r^2) + sum(K^2) + sum(V^2)
    # of the recalls and the slots after the last step.
    q, k, v = xs[:3]
    K, V, imp, age, filled = xs[3:8]
    tau, decay, eps = p["temperature"], p["decay"], p["eps"]
    top_k, window, detach = p.get("top_k", 0), p.get("recency_window", 0), p.get("detach", False)
    recalls = []
    for t in range(q.shape[1]):
        qn = F.normalize(q[:, t], dim=-1, eps=eps)
        kn_slots = F.normalize(K, dim=-1, eps=eps)
        scores = (kn_slots @ qn.unsqueeze(-1)).squeeze(-1) * (1.0 / tau)
        with torch.no_grad():
            allowed = filled > 0
            if window > 0:
                allowed = allowed & (age < window)
            if 0 < top_k < scores.shape[1]:
                ranked = torch.where(allowed, scores, torch.full_like(scores, -math.inf))
                top = torch.zeros_like(allowed).scatter_(1, ranked.topk(top_k, dim=1).indices, True)
                allowed = allowed & top
        masked = torch.where(allowed, scores, torch.full_like(scores, -math.inf))
        m = masked.max(1, keepdim=True).values.detach()
        m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
        e = torch.exp(masked - m)
        z = e.sum(1, keepdim=True)
        w = e / (z + (z == 0).to(z.dtype))
        recalls.append((w.unsqueeze(1) @ V).squeeze(1))
        with torch.no_grad():
            kn = F.normalize(k[:, t], dim=-1, eps=eps)
            sim = (kn_slots @ kn.unsqueeze(-1)).squeeze(-1)
            max_sim = torch.where(filled > 0, sim, torch.full_like(sim, -2.0)).max(1).values
            novelty = (1.0 - max_sim).clamp(0.0, 1.0)
            imp, age = imp * decay, age + 1.0
            slot = (imp - (1.0 - filled)).argmin(1, keepdim=True)
            hot = torch.zeros_like(filled).scatter_(1, slot, 1.0)
            imp = imp * (1 - hot) + hot * novelty.unsqueeze(1)
            age, filled = age * (1 - hot), torch.maximum(filled, hot)
        kt, vt = (k[:, t].detach(), v[:, t].detach()) if detach else (k[:, t], v[:, t])
        Kp, Vp = (K.detach(), V.detach()) if detach else (K, V)
        hot3 = hot.unsqueeze(-1)
        K = Kp * (1 - hot3) + hot3 * kt.unsqueeze(1)
        V = Vp * (1 - hot3) + hot3 * vt.unsqueeze(1)
    r = torch.stack(recalls, 1)
    return (r * r).sum() + (K * K).sum() + (V * V).sum()


def hebbian_scan(xs, p):
    # opinfo_memory.cpp: H_t = gamma H_{t-1} + eta k_t v_t^T, r_t = H_t^T q_t, H_{-1} = h0;
    # "detach": H_{t-1} is detached at every step; the sample returns sum(r^2) + sum(H_T^2).
    q, k, v, gamma, eta = xs[:5]
    B, T, dk = q.shape
    dv = v.shape[2]
    H = xs[5] if p.get("h0", False) else torch.zeros(B, dk, dv, dtype=q.dtype)
    recalls = []
    for t in range(T):
        Hp = H.detach() if p.get("detach", False) else H
        H = gamma * Hp + eta * torch.einsum("bi,bj->bij", k[:, t], v[:, t])
        recalls.append(torch.einsum("bij,bi->bj", H, q[:, t]))
    r = torch.stack(recalls, 1)
    return (r * r).sum() + (H * H).sum()


def cmr_drift_scan(xs, p):
    # opinfo_memory.cpp (memory/cmr/context.h's drift, row by row): d = c_{t-1} . cin_t,
    # rho = sqrt(1 + beta^2 (d^2 - 1)) - beta d, c_t = rho c_{t-1} + beta cin_t;
    # the sample returns sum(c^2) + sum(c_0 * c0).
    cin, beta, c = xs
    cs = []
    for t in range(cin.shape[1]):
        d = (c * cin[:, t]).sum(-1, keepdim=True)
        b = beta[:, t, None]
        rho = torch.sqrt(1 + b * b * (d * d - 1)) - b * d
        c = rho * c + b * cin[:, t]
        cs.append(c)
    y = torch.stack(cs, 1)
    return (y * y).sum() + (y[:, 0] * xs[2]).sum()


def titans_linear_memory(xs, p):
    # opinfo_titans.cpp (Titans, arXiv:2501.00663, depth-1 memory in chunks of p["chunk"]):
    # y_t = M_{t-1} q_t; e_t = 2 (M0_c k_t - v_t) at the chunk's starting memory M0_c;
    # S_t = eta_t S_{t-1} - theta_t e_t k_t^T; M_t = (1 - alpha_t) M_{t-1} + S_t;
    # the sample returns sum(y^2) + sum(M_T^2) + sum(S_T^2).
    q, k, v, theta, eta, alpha, M = xs[:7]
    B, T, dk = q.shape
    dv = v.shape[2]
    S = xs[7] if p.get("s0", False) else torch.zeros(B, dv, dk, dtype=q.dtype)
    chunk = p.get("chunk", 16)
    ys = []
    for t in range(T):
        if t % chunk == 0:
            M0 = M
        ys.append(torch.einsum("bij,bj->bi", M, q[:, t]))
        e = 2 * (torch.einsum("bij,bj->bi", M0, k[:, t]) - v[:, t])
        S = eta[:, t, None, None] * S - theta[:, t, None, None] * torch.einsum("bi,bj->bij", e, k[:, t])
        M = (1 - alpha[:, t, None, None]) * M + S
    y = torch.stack(ys, 1)
    return (y * y).sum() + (M * M).sum() + (S * S).sum()


def titans_mlp_memory(xs, p):
    # opinfo_titans.cpp (Titans depth-2 memory M(x) = W2 silu(W1 x), chunks of p["chunk"]):
    # y_t = W2_{t-1} silu(W1_{t-1} q_t); at the chunk's starting W1_0, W2_0: a = W1_0 k_t,
    # z = silu(a), e = 2 (W2_0 z - v_t), G2 = e z^T, G1 = ((W2_0^T e) * silu'(a)) k_t^T;
    # S = eta S - theta G, W = (1 - alpha) W + S for both layers;
    # the sample returns the sum of the squares of y, W1, W2, S1, S2 after the last token.
    q, k, v, theta, eta, alpha, W1, W2 = xs[:8]
    if p.get("s", False):
        S1, S2 = xs[8], xs[9]
    else:
        S1, S2 = torch.zeros_like(W1), torch.zeros_like(W2)
    chunk = p.get("chunk", 16)
    ys = []
    for t in range(q.shape[1]):
        if t % chunk == 0:
            W10, W20 = W1, W2
        ys.append(torch.einsum("boi,bi->bo", W2, F.silu(torch.einsum("bij,bj->bi", W1, q[:, t]))))
        a = torch.einsum("bij,bj->bi", W10, k[:, t])
        s = torch.sigmoid(a)
        z = a * s
        e = 2 * (torch.einsum("boi,bi->bo", W20, z) - v[:, t])
        G2 = torch.einsum("bo,bi->boi", e, z)
        delta = torch.einsum("boi,bo->bi", W20, e) * (s * (1 + a * (1 - s)))
        G1 = torch.einsum("bi,bj->bij", delta, k[:, t])
        th, et, keep = theta[:, t, None, None], eta[:, t, None, None], 1 - alpha[:, t, None, None]
        S1 = et * S1 - th * G1
        S2 = et * S2 - th * G2
        W1 = keep * W1 + S1
        W2 = keep * W2 + S2
    y = torch.stack(ys, 1)
    return (y * y).sum() + (W1 * W1).sum() + (W2 * W2).sum() + (S1 * S1).sum() + (S2 * S2).sum()


def rfft(xs, p):
    return torch.view_as_real(torch.fft.rfft(xs[0]))


def complex_mul(xs, p):
    """a b on [.., 2] (re, im) pairs in torch complex arithmetic, broadcasting."""
    a, b = (torch.complex(x[..., 0], x[..., 1]) for x in xs)
    return torch.view_as_real(a * b)


def irfft(xs, p):
    return torch.fft.irfft(torch.view_as_complex(xs[0]), n=p["n"])


def masked_softmax(xs, p):
    # The reference path engram's fused op replaces: masked_fill(scores, mask, -inf) + softmax,
    # with nn/attention.h's rule (diagonal aligned bottom-right, window band, visible prefix).
    x = xs[0] * p["scale"]
    if p["causal"]:
        tq, tk = x.shape[-2], x.shape[-1]
        i = torch.arange(tq).unsqueeze(1) + (tk - tq)
        j = torch.arange(tk).unsqueeze(0)
        visible = j <= i
        if p["window"] > 0:
            visible &= j > i - p["window"]
        visible |= j < p["prefix"]
        x = x.masked_fill(~visible, float("-inf"))
    return torch.softmax(x, -1)


def embedding(xs, p):
    pad = p.get("padding_idx", -1)
    # engram's -1 means "no padding row"; PyTorch would read a negative index from the end
    return F.embedding(xs[1], xs[0], padding_idx=None if pad < 0 else pad)


def var(xs, p):
    x = xs[0]
    c = p.get("correction", 1)
    return torch.var(x, dim=dims_or_all(x, p.get("dims", [])), unbiased=bool(c),
                     keepdim=p["keepdim"])


def extremum(fn, xs, p):
    if "dim" in p:
        return fn(xs[0], p["dim"], p["keepdim"]).values
    return fn(xs[0])


def nonzero(t):
    return t != 0


# Each entry: lambda xs, p -> y (xs: list of torch tensors, p: the sample's params dict).
OPS = {
    # ---- elementwise (opinfo_elementwise.cpp)
    "add": lambda xs, p: xs[0] + xs[1],
    "sub": lambda xs, p: xs[0] - xs[1],
    "mul": lambda xs, p: xs[0] * xs[1],
    "div": lambda xs, p: xs[0] / xs[1],
    "pow": lambda xs, p: torch.pow(xs[0], xs[1]),
    "maximum": lambda xs, p: torch.maximum(xs[0], xs[1]),
    "minimum": lambda xs, p: torch.minimum(xs[0], xs[1]),
    "neg": lambda xs, p: -xs[0],
    "exp": lambda xs, p: torch.exp(xs[0]),
    "log": lambda xs, p: torch.log(xs[0]),
    "sqrt": lambda xs, p: torch.sqrt(xs[0]),
    "rsqrt": lambda xs, p: torch.rsqrt(xs[0]),
    "abs": lambda xs, p: torch.abs(xs[0]),
    "sin": lambda xs, p: torch.sin(xs[0]),
    "cos": lambda xs, p: torch.cos(xs[0]),
    "tanh": lambda xs, p: torch.tanh(xs[0]),
    "sigmoid": lambda xs, p: torch.sigmoid(xs[0]),
    "relu": lambda xs, p: F.relu(xs[0]),
    "leaky_relu": lambda xs, p: F.leaky_relu(xs[0], p["slope"]),
    "gelu": lambda xs, p: F.gelu(xs[0]),
    "gelu_tanh": lambda xs, p: F.gelu(xs[0], approximate="tanh"),
    "silu": lambda xs, p: F.silu(xs[0]),
    "softplus": lambda xs, p: F.softplus(xs[0], beta=p["beta"], threshold=p["threshold"]),
    "square": lambda xs, p: torch.square(xs[0]),
    "reciprocal": lambda xs, p: torch.reciprocal(xs[0]),
    "clamp": lambda xs, p: torch.clamp(xs[0], p["min"], p["max"]),
    "add_scalar": lambda xs, p: xs[0] + p["s"],
    "mul_scalar": lambda xs, p: xs[0] * p["s"],
    "pow_scalar": lambda xs, p: torch.pow(xs[0], p["e"]),
    "rpow_scalar": lambda xs, p: torch.pow(p["base"], xs[0]),
    # the condition / mask input is a 0/1 float tensor: nonzero = true
    "where": lambda xs, p: torch.where(nonzero(xs[0]), xs[1], xs[2]),
    "masked_fill": lambda xs, p: xs[0].masked_fill(nonzero(xs[1]), p["value"]),
    # ---- reductions (opinfo_reduce.cpp); empty dims = all
    "sum": lambda xs, p: xs[0].sum(dim=dims_or_all(xs[0], p.get("dims", [])), keepdim=p["keepdim"]),
    "mean": lambda xs, p: xs[0].mean(dim=dims_or_all(xs[0], p.get("dims", [])), keepdim=p["keepdim"]),
    "var": var,
    "max": lambda xs, p: extremum(torch.max, xs, p),
    "min": lambda xs, p: extremum(torch.min, xs, p),
    "logsumexp": lambda xs, p: torch.logsumexp(xs[0], p["dim"], keepdim=p["keepdim"]),
    "softmax": lambda xs, p: torch.softmax(xs[0], p["dim"]),
    "log_softmax": lambda xs, p: torch.log_softmax(xs[0], p["dim"]),
    "masked_softmax": masked_softmax,
    "cumsum": lambda xs, p: torch.cumsum(xs[0], p["dim"]),
    "topk": lambda xs, p: torch.topk(xs[0], p["k"], p["dim"], largest=p["largest"], sorted=True).values,
    # ---- matmul, views, joins, indexing (opinfo_shape.cpp)
    "matmul": lambda xs, p: torch.matmul(xs[0], xs[1]),
    "complex_matmul": lambda xs, p: torch.view_as_real(
        torch.matmul(torch.view_as_complex(xs[0].contiguous()), torch.view_as_complex(xs[1].contiguous()))),
    "outer": lambda xs, p: torch.outer(xs[0], xs[1]),
    "reshape": lambda xs, p: xs[0].reshape(p["shape"]),
    "permute": lambda xs, p: xs[0].permute(p["dims"]),
    "transpose": lambda xs, p: xs[0].transpose(p["d0"], p["d1"]),
    "slice": lambda xs, p: slice_along(xs[0], p["dim"], p["start"], p["end"], p.get("step", 1)),
    "expand": lambda xs, p: xs[0].expand(p["shape"]),
    "squeeze": lambda xs, p: xs[0].squeeze(p["dim"]),
    "unsqueeze": lambda xs, p: xs[0].unsqueeze(p["dim"]),
    "contiguous": lambda xs, p: xs[0].transpose(0, 1).contiguous(),  # the entry transposes first
    "to_dtype": lambda xs, p: xs[0].to(torch.float32).to(torch.float64),  # through f32, out f64
    "cat": lambda xs, p: torch.cat(xs, p["dim"]),
    "stack": lambda xs, p: torch.stack(xs, p["dim"]),
    "split": lambda xs, p: split_combo(xs[0], p),
    "unbind": lambda xs, p: unbind_combo(xs[0], p),
    "index_select": lambda xs, p: torch.index_select(xs[0], p["dim"], xs[1]),
    "gather": lambda xs, p: torch.gather(xs[0], p["dim"], xs[1]),
    "scatter_add": lambda xs, p: torch.scatter_add(xs[0], p["dim"], xs[1], xs[2]),
    "embedding": embedding,
    # ---- nn ops (opinfo_nn.cpp)
    "normalize": lambda xs, p: F.normalize(xs[0], p=2.0, dim=p.get("dim", -1), eps=p.get("eps", 1e-12)),
    "cosine_similarity": lambda xs, p: F.cosine_similarity(xs[0], xs[1], dim=p.get("dim", -1),
                                                           eps=p.get("eps", 1e-8)),
    "cross_entropy": lambda xs, p: class_loss(F.cross_entropy, xs[0], xs[1],
                                              ignore_index=p.get("ignore_index", -100),
                                              label_smoothing=p.get("label_smoothing", 0.0),
                                              reduction=p.get("reduction", "mean")),
    "nll_loss": lambda xs, p: class_loss(F.nll_loss, xs[0], xs[1],
                                         ignore_index=p.get("ignore_index", -100),
                                         reduction=p.get("reduction", "mean")),
    "mse_loss": lambda xs, p: F.mse_loss(*torch.broadcast_tensors(xs[0], xs[1]),
                                         reduction=p.get("reduction", "mean")),
    "layer_norm": layer_norm,
    "rms_norm": rms_norm,
    "dropout": dropout,  # takes the sample too (see the docstring)
    "lstm_sequence": lstm_sequence,  # recurrent_ops.cpp
    "reservoir_scan": reservoir_scan,
    # ---- conv (opinfo_conv.cpp), NCHW or unbatched CHW
    "conv2d": conv2d,
    "max_pool2d": max_pool2d,
    "avg_pool2d": avg_pool2d,
    # ---- fft, scan (opinfo_fft_scan.cpp); complex = trailing [re, im] (view_as_real)
    "rfft": rfft,
    "irfft": irfft,
    "complex_mul": complex_mul,
    "linear_scan": linear_scan,
    # ---- fused memory ops (opinfo_memory.cpp)
    "episodic_scan": episodic_scan,
    "hebbian_scan": hebbian_scan,
    "cmr_drift_scan": cmr_drift_scan,
    "titans_linear_memory": titans_linear_memory,
    "titans_mlp_memory": titans_mlp_memory,
}
# The state-space primitives' PyTorch references live beside this script, one file per group.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_ssm_mamba import OPS as SSM_MAMBA_OPS  # noqa: E402  causal_conv1d, selective_scan
from golden_ssm_scan import OPS as SSM_SCAN_OPS  # noqa: E402  linear_scan_2x2, cauchy_kernel

OPS.update(SSM_MAMBA_OPS)
OPS.update(SSM_SCAN_OPS)
NEEDS_SAMPLE = {"dropout"}


# ---------------------------------------------------------------- number formatting
def f32_values(t):
    a = t.detach().to(torch.float32).reshape(-1).numpy()
    if not np.all(np.isfinite(a)):
        raise ValueError("non-finite value")
    return [float(str(v)) for v in a]  # numpy's shortest round-trip repr of each float32


def f64_values(t):
    a = t.detach().to(torch.float64).reshape(-1).tolist()
    if not all(math.isfinite(v) for v in a):
        raise ValueError("non-finite value")
    return a


def tensor_json(t, with_dtype=True):
    d = {"shape": list(t.shape)}
    if t.dtype == torch.int64:
        d["dtype"] = "i64"
        d["data"] = t.reshape(-1).tolist()
    elif t.dtype == torch.float64:
        d["dtype"] = "f64"
        d["data"] = f64_values(t)
    else:
        d["dtype"] = "f32"
        d["data"] = f32_values(t)
    if not with_dtype:
        del d["dtype"]
    return d


def to_torch(j):
    dtype = {"f32": torch.float32, "i64": torch.int64, "f64": torch.float64}[j.get("dtype", "f32")]
    return torch.tensor(j["data"], dtype=dtype).reshape(j["shape"])


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------- main
def golden_sample(name, s):
    p = s["params"]
    xs = []
    for ji in s["inputs"]:
        t = to_torch(ji)
        if ji["differentiable"]:
            t.requires_grad_(True)
        xs.append(t)
    y = OPS[name](xs, p, s) if name in NEEDS_SAMPLE else OPS[name](xs, p)
    if y.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"output dtype {y.dtype}")
    w = torch.tensor(s["upstream"]["data"], dtype=y.dtype).reshape(s["upstream"]["shape"])
    if list(w.shape) != list(y.shape):
        raise ValueError(f"upstream shape {list(w.shape)} vs torch output {list(y.shape)}")
    if y.requires_grad:
        (y * w).sum().backward()
    grads = []
    for ji, t in zip(s["inputs"], xs):
        if not ji["differentiable"]:
            grads.append(None)
            continue
        g = t.grad if t.grad is not None else torch.zeros_like(t)
        grads.append(tensor_json(g))
    inputs = []
    for ji in s["inputs"]:
        t = to_torch(ji)
        d = tensor_json(t)  # rewritten in the shortest f32 form
        d["differentiable"] = ji["differentiable"]
        inputs.append(d)
    return {
        "label": s["label"],
        "params": p,
        "inputs": inputs,
        "upstream": tensor_json(w.to(torch.float32), with_dtype=False),
        "output": tensor_json(y),
        "grads": grads,
    }


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: make_golden.py build/op_samples.json tests/golden/ops.json\n")
        return 2
    with open(argv[1]) as f:
        exported = json.load(f)
    ops_out, missing, failed = [], [], []
    for op in exported["ops"]:
        name = op["name"]
        if name not in OPS:
            missing.append(name)
            continue
        samples = []
        try:
            for s in op["samples"]:
                samples.append(golden_sample(name, s))
        except Exception as e:  # report and leave the op out, like an unmapped one
            failed.append(f"{name} (sample '{s['label']}': {type(e).__name__}: {e})")
            continue
        ops_out.append((name, samples))
    lines = ["{" + f'"torch_version":{dumps(torch.__version__)},'
             + '"generator":"tests/golden/make_golden.py",'
             + '"regenerate":"make golden",'
             + '"ops":[']
    for i, (name, samples) in enumerate(ops_out):
        lines.append("{" + f'"name":{dumps(name)},"samples":[')
        for k, s in enumerate(samples):
            lines.append(dumps(s) + ("," if k + 1 < len(samples) else ""))
        lines.append("]}" + ("," if i + 1 < len(ops_out) else ""))
    lines.append("]}")
    with open(argv[2], "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"make_golden: torch {torch.__version__}: {len(ops_out)} ops, "
          f"{sum(len(s) for _, s in ops_out)} samples -> {argv[2]}", file=sys.stderr)
    if missing:
        print("make_golden: no PyTorch mapping (left out): " + ", ".join(missing), file=sys.stderr)
    if failed:
        print("make_golden: failed (left out):\n  " + "\n  ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
