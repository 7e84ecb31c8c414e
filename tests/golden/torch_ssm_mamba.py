"""tests/golden/torch_ssm_mamba.py -- Mamba in PyTorch, engram's layout and parameter names.

Written from state-spaces/mamba (upstream HEAD, see ../shared/research/ssm-cuda.md "Mamba"):
mamba_ssm/modules/mamba_simple.py (Mamba.__init__, forward's slow path, step) and
mamba_ssm/ops/selective_scan_interface.py (selective_scan_ref), with no CUDA kernel: the scan is
the reference's sequential loop. Two changes of layout, none of meaning:
  - tensors are [B, T, D] (engram's) instead of the reference's [B, D, T];
  - the conv state is the K-1 inputs before the segment, [B, K-1, d_inner] (upstream step()
    keeps a window of K that includes the current token), so forward() can continue a stream.
The parameter names are those of engram's nn/ssm/mamba.h (named_parameters()): in_proj.weight,
conv1d.weight [d_inner, 1, d_conv], conv1d.bias, x_proj.weight, dt_proj.weight, dt_proj.bias,
A_log, D, out_proj.weight. tests/golden/make_ssm_mamba_golden.py and golden_ssm_mamba.py use it.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def causal_conv1d_ref(x, weight, bias=None, x0=None):
    """Depthwise causal conv over time: x [B, T, D], weight [D, K], x0 [B, K-1, D] or None."""
    B, T, D = x.shape
    K = weight.shape[-1]
    if x0 is None:
        x0 = torch.zeros(B, K - 1, D, dtype=x.dtype)
    xp = torch.cat([x0, x], 1).transpose(1, 2)  # [B, D, K-1+T]
    return F.conv1d(xp, weight.reshape(D, 1, K), bias, groups=D).transpose(1, 2)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       h0=None):
    """selective_scan_ref (real A; B and C vary over time) in engram's [B, T, D] layout.

    u, delta, z [b, l, d]; A [d, n]; B, C [b, l, n]; D, delta_bias [d]; h0 [b, d, n] (upstream
    starts from zeros). Returns (out [b, l, d], last state [b, d, n]).
    """
    if delta_bias is not None:
        delta = delta + delta_bias
    if delta_softplus:
        delta = F.softplus(delta)
    b, l, d = u.shape
    n = A.shape[1]
    x = h0 if h0 is not None else torch.zeros(b, d, n, dtype=u.dtype)
    deltaA = torch.exp(torch.einsum("bld,dn->bldn", delta, A))
    deltaB_u = torch.einsum("bld,bln,bld->bldn", delta, B, u)
    ys = []
    for i in range(l):
        x = deltaA[:, i] * x + deltaB_u[:, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, i]))
    y = torch.stack(ys, 1)
    out = y if D is None else y + u * D
    if z is not None:
        out = out * F.silu(z)
    return out, x


class Mamba(nn.Module):
    """mamba_simple.Mamba (bias=False, conv_bias=True) without the fused CUDA paths."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001,
                 dt_max=0.1, dt_init_floor=1e-4, dt_scale=1.0):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        E = self.d_inner
        self.in_proj = nn.Linear(d_model, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, d_conv, groups=E, bias=True, padding=d_conv - 1)
        self.x_proj = nn.Linear(E, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, E, bias=True)
        std = self.dt_rank ** -0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(E) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(E, 1)  # S4D-Real
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, d_model, bias=False)

    def initial_state(self, batch, dtype=torch.float32):
        return (torch.zeros(batch, self.d_conv - 1, self.d_inner, dtype=dtype),
                torch.zeros(batch, self.d_inner, self.d_state, dtype=dtype))

    def forward(self, hidden, conv_state=None, ssm_state=None):
        """hidden [B, T, d_model] -> (out [B, T, d_model], conv_state, ssm_state after T)."""
        B, T, _ = hidden.shape
        E, N, R = self.d_inner, self.d_state, self.dt_rank
        if conv_state is None:
            conv_state, ssm_state = self.initial_state(B, hidden.dtype)
        x, z = self.in_proj(hidden).chunk(2, dim=-1)
        xp = torch.cat([conv_state, x], 1)
        new_conv = xp[:, T:]
        x = F.silu(causal_conv1d_ref(x, self.conv1d.weight.reshape(E, -1), self.conv1d.bias,
                                     conv_state))
        dt, Bm, Cm = torch.split(self.x_proj(x), [R, N, N], dim=-1)
        dt = dt @ self.dt_proj.weight.t()  # the bias is added inside the scan (delta_bias)
        A = -torch.exp(self.A_log)
        y, last = selective_scan_ref(x, dt, A, Bm, Cm, self.D, z, self.dt_proj.bias, True,
                                     ssm_state)
        return self.out_proj(y), new_conv, last

    def step(self, hidden, conv_state, ssm_state):
        """mamba_simple.step for one token hidden [B, d_model]."""
        E, N, R = self.d_inner, self.d_state, self.dt_rank
        x, z = self.in_proj(hidden).chunk(2, dim=-1)
        window = torch.cat([conv_state, x[:, None]], 1)  # [B, K, E]
        x = (window * self.conv1d.weight.reshape(E, -1).t()).sum(1) + self.conv1d.bias
        x = F.silu(x)
        dt, Bm, Cm = torch.split(self.x_proj(x), [R, N, N], dim=-1)
        dt = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        dA = torch.exp(torch.einsum("bd,dn->bdn", dt, A))
        dB = torch.einsum("bd,bn->bdn", dt, Bm)
        ssm_state = ssm_state * dA + x[:, :, None] * dB
        y = torch.einsum("bdn,bn->bd", ssm_state, Cm) + self.D * x
        y = y * F.silu(z)
        return self.out_proj(y), window[:, 1:], ssm_state
