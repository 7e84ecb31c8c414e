"""tests/golden/torch_ssm_s4.py -- S4D and S4 in PyTorch, the references for nn/ssm/s4d.h and
nn/ssm/s4.h (same parameter names as engram's named_parameters(), so the bench app can reuse them).

S4D follows state-spaces/s4 models/s4/s4d.py line by line (S4DKernel + S4D), with:
  - the layout [B, T, H] (s4d.py's transposed=False),
  - the output transform as nn.Linear(H, 2H) (s4d.py's Conv1d(H, 2H, 1): the same numbers),
  - an optional carried state x [B, H, N/2] (complex): the state after the previous call, whose
    effect on this call's outputs and the state after the call are computed here by running the
    recurrence x_t = A^ x_{t-1} + B^ u_t token by token (engram does it in convolution form).

S4 follows srush/annotated-s4 (discretize / K_gen_DPLR / conv_from_gen / discrete_DPLR) and
state-spaces/s4 SSKernelNPLR (w, P, B, C per channel, log_dt, cauchy_conj, the Woodbury step,
irfft of the generating function at the rfft nodes omega_k = exp(-2 pi i k / L)):
  - A = Lambda - P P^*  with the N/2 modes stored and their conjugates implied (cauchy_conj),
    Lambda = -exp(log_A_real) + i A_imag, initialised from HiPPO-LegS's DPLR form (S5's
    make_DPLR_HiPPO: eigh of the skew part of S = A + P P^T);
  - the true C is the parameter; the generating function needs C~ = C (I - A^^L), computed from the
    dense bilinear A^ (annotated-s4's discrete_DPLR) with torch.linalg.matrix_power;
  - y_t = C x_t over all N modes (= 2 Re over the stored half), + D u, then GELU -> Linear -> GLU;
  - a carried state x [B, H, N] (complex, all N modes) is run through the dense recurrence token by
    token, as for S4D.
Everything is written for torch.float64 / complex128 (the goldens are made in float64).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def output_transform(y, output_linear):
    """GELU -> Linear(H, 2H) -> GLU over channels: z[:H] * sigmoid(z[H:])."""
    return F.glu(output_linear(F.gelu(y)), dim=-1)


def fft_conv(u, k):
    """s4d.py's causal convolution: u [B, H, L], k [H, L] -> [B, H, L]."""
    L = u.size(-1)
    k_f = torch.fft.rfft(k, n=2 * L)
    u_f = torch.fft.rfft(u, n=2 * L)
    return torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]


class S4D(nn.Module):
    def __init__(self, d_model, d_state=64, init="lin", dt_min=0.001, dt_max=0.1):
        super().__init__()
        H, N = d_model, d_state
        self.h, self.n = H, N
        lo, hi = math.log(dt_min), math.log(dt_max)
        self.log_dt = nn.Parameter(torch.rand(H) * (hi - lo) + lo)
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N // 2, dtype=torch.cfloat)))
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N // 2)))
        n = torch.arange(N // 2, dtype=torch.float).repeat(H, 1)
        if init == "lin":
            A_imag = math.pi * n
        elif init == "inv":
            A_imag = 1 / math.pi * N * (N / (1 + 2 * n) - 1)
        else:
            raise ValueError(init)
        self.A_imag = nn.Parameter(A_imag)
        self.D = nn.Parameter(torch.randn(H))
        self.output_linear = nn.Linear(H, 2 * H)

    def discrete(self):
        dt = torch.exp(self.log_dt)  # (H)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag  # (H N)
        dtA = A * dt.unsqueeze(-1)
        return dtA, torch.exp(dtA), (torch.exp(dtA) - 1.0) / A  # dt A, A^, B^

    def kernel(self, L):
        """S4DKernel.forward: 2 Re sum_n C_n (exp(dt A_n) - 1) / A_n exp(dt A_n l)."""
        C = torch.view_as_complex(self.C)
        dtA, _, B_bar = self.discrete()
        K = dtA.unsqueeze(-1) * torch.arange(L, device=dtA.device)  # (H N L)
        return 2 * torch.einsum("hn, hnl -> hl", C * B_bar, torch.exp(K)).real

    def initial_state(self, batch):
        return torch.zeros(batch, self.h, self.n // 2, dtype=torch.complex128)

    def forward(self, x, state=None):
        """x [B, T, H] -> (y [B, T, H], state after the last token [B, H, N/2] complex)."""
        u = x.transpose(-1, -2)  # (B H L)
        L = u.size(-1)
        y = fft_conv(u, self.kernel(L)) + u * self.D.unsqueeze(-1)
        C = torch.view_as_complex(self.C)
        _, A_bar, B_bar = self.discrete()
        s = self.initial_state(u.size(0)) if state is None else state
        free, ys = s, []  # the carried state's own evolution (no input) and its outputs
        for t in range(L):
            free = A_bar * free
            ys.append(2 * (C * free).sum(-1).real)
            s = A_bar * s + B_bar * u[..., t : t + 1]
        y = y + torch.stack(ys, -1)
        return output_transform(y.transpose(-1, -2), self.output_linear), s

    def step(self, x_t, state):
        C = torch.view_as_complex(self.C)
        _, A_bar, B_bar = self.discrete()
        state = A_bar * state + B_bar * x_t.unsqueeze(-1)
        y = 2 * (C * state).sum(-1).real + self.D * x_t
        return output_transform(y, self.output_linear), state


def make_dplr_hippo(N):
    """HiPPO-LegS in DPLR form (lindermanlab/S5 ssm_init.py make_HiPPO / make_NPLR_HiPPO /
    make_DPLR_HiPPO): Lambda [N], P = V^* P, B = V^* B (complex), eigh's ascending order."""
    n = np.arange(N)
    P = np.sqrt(n + 0.5)
    B = np.sqrt(2 * n + 1.0)
    A = -(np.sqrt(2 * n + 1.0)[:, None] * np.sqrt(2 * n + 1.0)[None, :])
    A = np.tril(A, -1) - np.diag(n + 1.0)
    S = A + P[:, None] * P[None, :]
    Lambda_real = np.mean(np.diagonal(S)) * np.ones(N)
    Lambda_imag, V = np.linalg.eigh(S * -1j)
    return Lambda_real + 1j * Lambda_imag, V.conj().T @ P, V.conj().T @ B


class S4(nn.Module):
    def __init__(self, d_model, d_state=64, dt_min=0.001, dt_max=0.1):
        super().__init__()
        H, N = d_model, d_state
        self.h, self.n = H, N
        Lambda, P, B = make_dplr_hippo(N)
        half = slice(N // 2, N)  # the modes with positive imaginary part
        rep = lambda z: torch.tensor(z[half]).repeat(H, 1)
        lo, hi = math.log(dt_min), math.log(dt_max)
        self.log_dt = nn.Parameter(torch.rand(H) * (hi - lo) + lo)
        self.log_A_real = nn.Parameter(torch.log(-rep(Lambda).real))
        self.A_imag = nn.Parameter(rep(Lambda).imag.clone())
        self.P = nn.Parameter(torch.view_as_real(rep(P)).clone())
        self.B = nn.Parameter(torch.view_as_real(rep(B)).clone())
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N // 2, dtype=torch.cfloat)))
        self.D = nn.Parameter(torch.randn(H))
        self.output_linear = nn.Linear(H, 2 * H)

    def half_modes(self):
        w = -torch.exp(self.log_A_real) + 1j * self.A_imag
        return w, torch.view_as_complex(self.P), torch.view_as_complex(self.B), torch.view_as_complex(self.C)

    def full_modes(self):
        """All N modes: the stored half and its conjugates."""
        return [torch.cat([z, z.conj()], -1) for z in self.half_modes()]

    def discrete(self):
        """annotated-s4 discrete_DPLR: A^ = A1 A0, B^ = 2 A1 B (dense, all N modes)."""
        w, P, B, C = self.full_modes()
        dt = torch.exp(self.log_dt)[:, None, None]
        I = torch.eye(self.n, dtype=w.dtype)
        A = torch.diag_embed(w) - P[:, :, None] * P.conj()[:, None, :]
        A0 = (2.0 / dt) * I + A
        D = torch.diag_embed(1.0 / ((2.0 / dt[..., 0]) - w))
        qc, p2 = P.conj()[:, None, :], P[:, :, None]
        A1 = D - (D @ p2 * (1.0 / (1 + (qc @ D @ p2))) * qc @ D)
        return A1 @ A0, 2 * (A1 @ B[:, :, None])[..., 0], C

    def kernel(self, L):
        """SSKernelNPLR's forward: the truncated generating function at the rfft nodes
        omega_k = exp(-2 pi i k / L), k = 0..L/2, four cauchy_conj sums, the Woodbury correction,
        the bilinear factor 2 / (1 + omega), irfft. C~ = C (I - A^^L) from the true C."""
        w, P, B, _ = self.half_modes()
        dA, _, C = self.discrete()
        I = torch.eye(self.n, dtype=dA.dtype)
        Ct = (C[:, None, :] @ (I - torch.linalg.matrix_power(dA, L)))[:, 0, :self.n // 2]
        dt = torch.exp(self.log_dt)[:, None]
        omega = torch.exp(-2j * math.pi * torch.arange(L // 2 + 1, dtype=self.log_dt.dtype) / L)
        z = 2 * (1 - omega) / (1 + omega)

        def cauchy_conj(v, w):  # sum_n v/(z - w) + conj(v)/(z - conj(w)), v, w [H, N/2] -> [H, L']
            terms = v[..., None] / (z - w[..., None]) + v.conj()[..., None] / (z - w.conj()[..., None])
            return terms.sum(-2)

        wd = w * dt  # SSKernelNPLR: w * dt in the poles, r * dt after
        r = lambda a, b: cauchy_conj(a * b, wd) * dt
        k00, k01, k10, k11 = r(Ct, B), r(Ct, P), r(P.conj(), B), r(P.conj(), P)
        k_f = (k00 - k01 * k10 / (1 + k11)) * 2 / (1 + omega)
        return torch.fft.irfft(k_f, n=L)

    def initial_state(self, batch):
        return torch.zeros(batch, self.h, self.n, dtype=torch.complex128)

    def forward(self, x, state=None):
        """x [B, T, H] -> (y [B, T, H], state after the last token [B, H, N] complex)."""
        u = x.transpose(-1, -2)  # (B H L)
        L = u.size(-1)
        y = fft_conv(u, self.kernel(L)) + u * self.D.unsqueeze(-1)
        dA, dB, C = self.discrete()
        s = self.initial_state(u.size(0)) if state is None else state
        free, ys = s, []  # the carried state's own evolution (no input) and its outputs
        for t in range(L):
            free = (dA @ free[..., None])[..., 0]
            ys.append((C * free).sum(-1).real)
            s = (dA @ s[..., None])[..., 0] + dB * u[..., t : t + 1]
        y = y + torch.stack(ys, -1)
        return output_transform(y.transpose(-1, -2), self.output_linear), s

    def step(self, x_t, state):
        dA, dB, C = self.discrete()
        state = (dA @ state[..., None])[..., 0] + dB * x_t.unsqueeze(-1)
        y = (C * state).sum(-1).real + self.D * x_t
        return output_transform(y, self.output_linear), state
