"""S5 in PyTorch (Smith, Warrington & Linderman, ICLR 2023; lindermanlab/S5 s5/ssm.py,
s5/ssm_init.py, s5/layers.py), the twin of engram's nn/ssm/s5.h with the same parameter names,
for goldens and benchmarks.

u [B, T, H] -> out [B, T, H]; Ph = P/2 stored complex modes (conjugate symmetry):
  dt = exp(log_step), Lambda = Lambda_re + i Lambda_im, B~ = B[..., 0] + i B[..., 1] [Ph, H]
  ZOH:      Lambda^ = exp(Lambda dt), B^ = (Lambda^ - 1) / Lambda * B~
  bilinear: BL = 1 / (1 - dt/2 Lambda), Lambda^ = BL (1 + dt/2 Lambda), B^ = BL dt B~
  x_t = Lambda^ x_{t-1} + B^ u_t,  y_t = 2 Re(C~ x_t) + D u_t
  half_glu1: g = gelu(y) (tanh approximation, flax's default), out = g * sigmoid(out2(g))
The recurrence is a plain loop in torch complex arithmetic (the reference's associative scan
computes the same numbers). State x [B, Ph, 2] = (re, im), engram's layout.
Init: block-diagonal HiPPO-N (make_DPLR_HiPPO per block, one of each conjugate pair kept),
B~ = V^-1 lecun_normal, C~ = trunc_standard_normal V, D ~ N(0, 1), log_step ~ U[log 1e-3,
log 1e-1], out2 weight lecun_normal and bias 0, as the reference (numpy's eigh, torch's RNG).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def make_dplr_hippo(N):
    """ssm_init.make_DPLR_HiPPO: eigenvalues Lambda and eigenvectors V of S = A + P P^T."""
    p = np.sqrt(1 + 2 * np.arange(N))
    A = -(np.tril(p[:, None] * p[None, :]) - np.diag(np.arange(N)))
    P = np.sqrt(np.arange(N) + 0.5)
    S = A + P[:, None] * P[None, :]
    Lambda_imag, V = np.linalg.eigh(S * -1j)
    return np.mean(np.diagonal(S)) + 1j * Lambda_imag, V


def lecun_normal_(t, fan_in):
    """jax's lecun_normal: a truncated (to +-2) normal with std 1/sqrt(fan_in)."""
    with torch.no_grad():
        nn.init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0)
        t.mul_(1.0 / math.sqrt(fan_in) / 0.87962566103423978)
    return t


class S5(nn.Module):
    def __init__(self, d_model, state_size, blocks=1, bilinear=False):
        super().__init__()
        H, P = d_model, state_size
        if P % blocks or (P // blocks) % 2:
            raise ValueError("S5: state_size must split into blocks of an even size")
        self.d_model, self.state_size, self.blocks, self.bilinear = H, P, blocks, bilinear
        block, kept = P // blocks, P // blocks // 2
        Lambda, V = make_dplr_hippo(block)
        Lambda, V = Lambda[:kept], V[:, :kept]
        V_blk = torch.tensor(np.kron(np.eye(blocks), V))  # blockdiag(V) [P, Ph]
        Lambda = np.tile(Lambda, blocks)
        self.Lambda_re = nn.Parameter(torch.tensor(Lambda.real, dtype=torch.float32))
        self.Lambda_im = nn.Parameter(torch.tensor(Lambda.imag, dtype=torch.float32))
        B0 = lecun_normal_(torch.empty(P, H, dtype=torch.float64), P)
        Bt = V_blk.conj().transpose(0, 1) @ B0.to(torch.complex128)
        self.B = nn.Parameter(torch.view_as_real(Bt).to(torch.float32).contiguous())
        C0 = lecun_normal_(torch.empty(H, P, 2, dtype=torch.float64), P)
        Ct = torch.complex(C0[..., 0], C0[..., 1]) @ V_blk
        self.C = nn.Parameter(torch.view_as_real(Ct).to(torch.float32).contiguous())
        self.D = nn.Parameter(torch.randn(H))
        self.log_step = nn.Parameter(torch.rand(P // 2) * (math.log(1e-1) - math.log(1e-3))
                                     + math.log(1e-3))
        self.out2 = nn.Linear(H, H)
        lecun_normal_(self.out2.weight, H)
        nn.init.zeros_(self.out2.bias)

    def initial_state(self, batch):
        return self.Lambda_re.new_zeros(batch, self.state_size // 2, 2)

    def discretise(self):
        Lambda = torch.complex(self.Lambda_re, self.Lambda_im)
        dt = torch.exp(self.log_step)
        Bt = torch.complex(self.B[..., 0], self.B[..., 1])
        if self.bilinear:
            BL = 1.0 / (1.0 - dt / 2.0 * Lambda)
            return BL * (1.0 + dt / 2.0 * Lambda), (BL * dt)[:, None] * Bt
        Lambda_bar = torch.exp(Lambda * dt)
        return Lambda_bar, ((Lambda_bar - 1.0) / Lambda)[:, None] * Bt

    def forward(self, u, x0=None):
        """u [B, T, H], x0 [B, Ph, 2] (None: zeros) -> (out [B, T, H], x_last [B, Ph, 2])."""
        if x0 is None:
            x0 = self.initial_state(u.shape[0])
        Lambda_bar, B_bar = self.discretise()
        Ct = torch.complex(self.C[..., 0], self.C[..., 1])  # [H, Ph]
        Bu = torch.complex(u, torch.zeros_like(u)) @ B_bar.transpose(0, 1)  # [B, T, Ph]
        x = torch.complex(x0[..., 0], x0[..., 1])
        xs = []
        for t in range(u.shape[1]):
            x = Lambda_bar * x + Bu[:, t]
            xs.append(x)
        xs = torch.stack(xs, 1)
        y = 2.0 * (xs @ Ct.transpose(0, 1)).real + self.D * u
        g = F.gelu(y, approximate="tanh")
        return g * torch.sigmoid(self.out2(g)), torch.view_as_real(x)
