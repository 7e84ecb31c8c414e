"""apps/bench/torch_ssm.py — crsd_tiny's state-space language models (apps/common/ssm_lm.h) in
PyTorch, for the bench's s4d, s4, s5, mamba, linoss, retnet and samba workloads.

The layers are the PyTorch references in tests/golden/torch_ssm_*.py, written from each family's
reference code (the same modules the layer goldens hold engram to), wrapped the way the engram LM
wraps them: Embedding -> L pre-norm residual blocks (RMSNorm, eps 1e-5; a SwiGLU feed-forward after
RetNet's and Samba's mixers) -> RMSNorm -> Linear. Parameter names are engram's, so the bench's
export loads with strict=True. Every step starts from a zero state, as on the engram side.

How each family runs here, as a PyTorch user without custom kernels would run it:
  s4d, s4   convolution mode only (s4d.py's forward: kernel, FFT convolution, D, output
            transform); no state passing, while the engram side also computes the state it would
            carry, so engram does somewhat more work in these two rows. S4's kernel is computed in
            complex128 by the golden reference; its output is cast to the input's dtype.
  s5, linoss  the complex recurrence as a loop over time steps (the reference JAX code uses
            jax.lax.associative_scan, which PyTorch does not have).
  mamba, samba  selective_scan_ref's loop over time steps (mamba_ssm/ops/selective_scan_interface.py).
  retnet    the parallel form (Q K^T * D) V, as torchscale trains.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden"))
import torch_ssm_linoss  # noqa: E402
import torch_ssm_mamba  # noqa: E402
import torch_ssm_retnet  # noqa: E402
import torch_ssm_s4  # noqa: E402
import torch_ssm_s5  # noqa: E402

SSM_KINDS = ("s4d", "s4", "s5", "mamba", "linoss", "retnet", "samba")


class RMSNorm(nn.Module):  # nn.RMSNorm arrived after Debian's torch 1.13
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class SwiGLU(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.w_gate = nn.Linear(d, hidden, bias=False)
        self.w_up = nn.Linear(d, hidden, bias=False)
        self.w_down = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class ConvolutionMode(nn.Module):
    """S4D / S4 from a zero state: y = irfft(rfft(u) rfft(K)) + D u -> output transform."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        m = self.layer
        u = x.transpose(-1, -2)
        y = torch_ssm_s4.fft_conv(u, m.kernel(u.size(-1)).to(u.dtype)) + u * m.D.unsqueeze(-1)
        return torch_ssm_s4.output_transform(y.transpose(-1, -2), m.output_linear)


class FirstOutput(nn.Module):
    """A reference layer whose forward returns (y, state...): y alone."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


class SlidingWindowAttention(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.attn = attention

    def forward(self, x):
        return self.attn(x)


class Block(nn.Module):
    def __init__(self, d, mixer, ffn_hidden):
        super().__init__()
        self.norm = RMSNorm(d)
        self.mixer = mixer
        if ffn_hidden:
            self.ffn_norm = RMSNorm(d)
            self.ffn = SwiGLU(d, ffn_hidden)
        self.has_ffn = bool(ffn_hidden)

    def forward(self, x):
        x = x + self.mixer(self.norm(x))
        return x + self.ffn(self.ffn_norm(x)) if self.has_ffn else x


def state_size(meta, default):
    n = int(meta["model.ssm_state"])
    return n if n > 0 else default


def make_mixer(kind, meta, d):
    """The mixer of one block, its parameters registered under engram's names (a wrapper's own
    attribute "layer" is unwrapped when the state dict is loaded: see SSMLanguageModel)."""
    disc = meta["model.ssm_discretization"]
    if kind == "s4d":
        return torch_ssm_s4.S4D(d, state_size(meta, 64), meta["model.ssm_init"])
    if kind == "s4":
        return torch_ssm_s4.S4(d, state_size(meta, 64))
    if kind == "s5":
        return torch_ssm_s5.S5(d, state_size(meta, 64), int(meta["model.ssm_blocks"]), disc == "bilinear")
    if kind == "linoss":
        return torch_ssm_linoss.LinOSS(d, state_size(meta, 64), "IMEX" if disc == "imex" else "IM")
    if kind == "mamba":
        return torch_ssm_mamba.Mamba(d, state_size(meta, 16), int(meta["model.ssm_conv"]),
                                     int(meta["model.ssm_expand"]))
    if kind == "retnet":
        return torch_ssm_retnet.MultiScaleRetention(d, int(meta["model.heads"]), 2)
    raise ValueError(f"unknown state-space kind '{kind}'")


class SSMLanguageModel(nn.Module):
    def __init__(self, meta, local_attention, dtype=torch.float32):
        super().__init__()
        kind, d, L, V = meta["model.kind"], int(meta["model.d_model"]), int(meta["model.layers"]), int(meta["vocab"])
        self.embed = nn.Embedding(V, d)
        blocks = []
        for l in range(L):
            ffn = int(meta["model.ff_mult"]) * d if kind in ("retnet", "samba") else 0
            if kind == "samba" and l % 2 == 1:
                mixer = SlidingWindowAttention(local_attention(d, int(meta["model.heads"]),
                                                               int(meta["model.samba_window"])))
            else:
                mixer = make_mixer("mamba" if kind == "samba" else kind, meta, d)
            blocks.append(Block(d, mixer, ffn))
        self.blocks = nn.ModuleList(blocks)
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, V)
        # the forward of each mixer as this bench runs it (the parameters stay the mixer's own)
        self.runs = [self.runner(kind, l, b.mixer) for l, b in enumerate(self.blocks)]
        self.to(dtype)  # the references build some initial values in float64 (numpy's HiPPO)

    @staticmethod
    def runner(kind, l, mixer):
        if kind in ("s4d", "s4"):
            return ConvolutionMode(mixer)
        if kind in ("s5", "linoss", "mamba") or (kind == "samba" and l % 2 == 0):
            return FirstOutput(mixer)
        return mixer

    def forward(self, ids):
        x = self.embed(ids)
        for block, run in zip(self.blocks, self.runs):
            x = x + run(block.norm(x))
            if block.has_ffn:
                x = x + block.ffn(block.ffn_norm(x))
        return self.head(self.norm(x))
