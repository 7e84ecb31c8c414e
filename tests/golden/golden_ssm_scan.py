"""PyTorch references of linear_scan_2x2, cauchy_kernel and vandermonde (autograd/opinfo_ssm_scan.cpp).

make_golden.py merges OPS into its own table; each function takes the sample's inputs (torch
tensors, the differentiable ones with requires_grad) and its params, like the C++ entry's fn.
Complex numbers are real tensors with a trailing [re, im] (torch.view_as_real layout).
"""
import torch


def linear_scan_2x2(xs, p):
    """h_t = M_t h_{t-1} + f_t along dim 1: M [.., 2, 2] broadcast to f's [B, T, F...] + [2, 2],
    f [B, T, F..., 2], h0 [B, F..., 2] (broadcast; zeros when absent). A plain per-step loop."""
    M, f = xs[0], xs[1]
    lead = f.shape[:-1]
    M = M.expand(*lead, 2, 2)
    state_shape = (lead[0],) + tuple(lead[2:]) + (2,)
    h = xs[2].expand(state_shape) if p.get("h0", False) else f.new_zeros(state_shape)
    hs = []
    for t in range(f.shape[1]):
        h = (M[:, t] @ h.unsqueeze(-1)).squeeze(-1) + f[:, t]
        hs.append(h)
    return torch.stack(hs, 1)


def as_complex(x):
    return torch.complex(x[..., 0], x[..., 1])


def cauchy_kernel(xs, p):
    """k[.., l] = sum_n v[.., n] / (z[.., l] - w[.., n]) in torch complex arithmetic; v, w
    [.., N, 2], z [.., L, 2], leading dims broadcast."""
    v, z, w = (as_complex(x) for x in xs)
    k = (v.unsqueeze(-2) / (z.unsqueeze(-1) - w.unsqueeze(-2))).sum(-1)
    return torch.view_as_real(k)


def vandermonde(xs, p):
    """V[.., j] = exp(a[..] (start + j step)), j = 0..count-1, in torch complex arithmetic (the
    powers in float64, then the product in a's precision)."""
    a = as_complex(xs[0])
    powers = p.get("start", 0.0) + p.get("step", 1.0) * torch.arange(p["count"], dtype=torch.float64)
    return torch.view_as_real(torch.exp(a.unsqueeze(-1) * powers.to(xs[0].dtype)))


OPS = {
    "linear_scan_2x2": linear_scan_2x2,
    "cauchy_kernel": cauchy_kernel,
    "vandermonde": vandermonde,
}
