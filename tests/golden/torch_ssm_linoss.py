"""LinOSS in PyTorch (Rusch & Rus, ICLR 2025; tk-rusch/linoss models/LinOSS.py), the twin of
engram's nn/ssm/linoss.h with the same parameter names, for goldens and benchmarks.

u [B, T, H] -> out [B, T, H]; P oscillators, A = relu(A_diag), dt = sigmoid(steps), Bu = B u
(complex), and per step, on the complex state (z, y):
  IM:   S = 1 / (1 + dt^2 A), M = [[1 - dt^2 A S, -dt A S], [dt S, S]], F = (M11 dt Bu, M21 dt Bu)
  IMEX: M = [[1, -dt A], [dt, 1 - dt^2 A]], F = (dt Bu, dt^2 Bu)
  (z, y)_t = M (z, y)_{t-1} + F_t
o = Re(C y) + D u, out = w1(g) * sigmoid(w2(g)), g = gelu(o) (tanh approximation, jax's default).
The recurrence runs as a plain loop over time in torch complex arithmetic (the reference's
associative scan computes the same numbers). The state x [B, 2, P, 2] is engram's layout:
x[b, c, p] = (z, y), c = 0 the real part, c = 1 the imaginary part.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class GLU(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_model)
        self.w2 = nn.Linear(d_model, d_model)

    def forward(self, x):
        return self.w1(x) * torch.sigmoid(self.w2(x))


class LinOSS(nn.Module):
    def __init__(self, d_model, state_size, discretization="IM"):
        super().__init__()
        if discretization not in ("IM", "IMEX"):
            raise ValueError(f"LinOSS: discretization must be IM or IMEX, got {discretization}")
        H, P = d_model, state_size
        self.d_model, self.state_size, self.discretization = H, P, discretization
        # LinOSSLayer's init
        self.A_diag = nn.Parameter(torch.rand(P))
        self.B = nn.Parameter((torch.rand(P, H, 2) * 2 - 1) / math.sqrt(H))
        self.C = nn.Parameter((torch.rand(H, P, 2) * 2 - 1) / math.sqrt(P))
        self.D = nn.Parameter(torch.randn(H))
        self.steps = nn.Parameter(torch.rand(P))
        self.glu = GLU(H)

    def initial_state(self, batch):
        return self.A_diag.new_zeros(batch, 2, self.state_size, 2)

    def coefficients(self):
        """M11, M12, M21, M22 and the forcing factors of z and y, each [P]."""
        A = torch.relu(self.A_diag)
        dt = torch.sigmoid(self.steps)
        if self.discretization == "IM":
            S = 1.0 / (1.0 + dt ** 2 * A)
            m11, m12, m21, m22 = 1.0 - dt ** 2 * A * S, -dt * A * S, dt * S, S
            return m11, m12, m21, m22, m11 * dt, m21 * dt
        return torch.ones_like(dt), -dt * A, dt, 1.0 - dt ** 2 * A, dt, dt ** 2

    def forward(self, u, x0=None):
        """u [B, T, H], x0 [B, 2, P, 2] (None: zeros) -> (out [B, T, H], x_last [B, 2, P, 2])."""
        if x0 is None:
            x0 = self.initial_state(u.shape[0])
        m11, m12, m21, m22, fz, fy = self.coefficients()
        Bc = torch.complex(self.B[..., 0], self.B[..., 1])  # [P, H]
        Cc = torch.complex(self.C[..., 0], self.C[..., 1])  # [H, P]
        Bu = torch.complex(u, torch.zeros_like(u)) @ Bc.transpose(0, 1)  # [B, T, P]
        z = torch.complex(x0[:, 0, :, 0], x0[:, 1, :, 0])
        y = torch.complex(x0[:, 0, :, 1], x0[:, 1, :, 1])
        ys = []
        for t in range(u.shape[1]):
            z, y = m11 * z + m12 * y + fz * Bu[:, t], m21 * z + m22 * y + fy * Bu[:, t]
            ys.append(y)
        ys = torch.stack(ys, 1)  # [B, T, P]
        o = (ys @ Cc.transpose(0, 1)).real + self.D * u
        out = self.glu(F.gelu(o, approximate="tanh"))
        x_last = torch.stack([torch.stack([z.real, y.real], -1), torch.stack([z.imag, y.imag], -1)], 1)
        return out, x_last
