"""tests/golden/torch_ssm_retnet.py -- RetNet's multi-scale retention in PyTorch (goldens, benches).

Written from microsoft/torchscale (component/multiscale_retention.py MultiScaleRetention and
architecture/retnet.py RetNetRelPos; Sun et al. 2023, arXiv 2307.08621) with the parameter names
of engram's nn::ssm::MultiScaleRetention (nn/ssm/retnet.h): q_proj, k_proj, v_proj, g_proj,
out_proj (bias-free Linear layers). The position tables and decay masks are computed here, not by
a separate RetNetRelPos module, so the state dict holds the five weights only.

    normalised=False  the paper's retention (Q K^T * D) V, what engram computes
    normalised=True   torchscale's: the decay mask divided by sqrt(its row sum) and Q K^T * D by
                      clamp(|row sum|, 1, 5e4) (parallel), the running `scale` (recurrent), the
                      inner/cross scales (chunkwise). These only rescale each head's output row,
                      which the RMS group norm cancels up to its eps.

forward(x) is the parallel form over positions 0..T-1; recurrent(x) runs token by token as
torchscale's incremental decoding; chunkwise(x, chunk) is torchscale's chunk_recurrent_forward
(T must be a multiple of chunk, as there).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def rotate_every_two(x):
    x1 = x[:, :, :, ::2]
    x2 = x[:, :, :, 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def theta_shift(x, sin, cos):
    return (x * cos) + (rotate_every_two(x) * sin)


def rms_norm(x, eps):  # torchscale RMSNorm(elementwise_affine=False)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class MultiScaleRetention(nn.Module):
    def __init__(self, d_model, heads, value_factor=2, eps=1e-6, normalised=False):
        super().__init__()
        self.d_model, self.heads, self.eps, self.normalised = d_model, heads, eps, normalised
        value_dim = value_factor * d_model
        self.key_dim = d_model // heads
        self.head_dim = value_dim // heads
        self.scaling = self.key_dim ** -0.5
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, value_dim, bias=False)
        self.g_proj = nn.Linear(d_model, value_dim, bias=False)
        self.out_proj = nn.Linear(value_dim, d_model, bias=False)
        for p in (self.q_proj, self.k_proj, self.v_proj, self.g_proj):
            nn.init.xavier_uniform_(p.weight, gain=2 ** -2.5)
        nn.init.xavier_uniform_(self.out_proj.weight, gain=2 ** -1)

    # ---------------------------------------------------------------- RetNetRelPos, in f64
    def angle(self):
        a = 1.0 / (10000 ** torch.linspace(0, 1, self.key_dim // 2, dtype=torch.float64))
        return a.unsqueeze(-1).repeat(1, 2).flatten()

    def decay(self):  # log gamma_h, gamma_h = 1 - 2^(-5-h)
        return torch.log(1 - 2 ** (-5 - torch.arange(self.heads, dtype=torch.float64)))

    def sin_cos(self, positions, like):
        a = positions.to(torch.float64)[:, None] * self.angle()[None, :]
        return torch.sin(a).to(like), torch.cos(a).to(like)

    def decay_mask(self, n, like):
        index = torch.arange(n, dtype=torch.float64)
        tril = torch.tril(torch.ones(n, n, dtype=torch.bool))
        mask = torch.masked_fill(index[:, None] - index[None, :], ~tril, float("inf"))
        return torch.nan_to_num(torch.exp(mask * self.decay()[:, None, None])).to(like)

    # ---------------------------------------------------------------- projections and output
    def project(self, x, positions):
        B, T, _ = x.shape
        q = self.q_proj(x)
        k = self.k_proj(x) * self.scaling
        v = self.v_proj(x)
        g = self.g_proj(x)
        q = q.view(B, T, self.heads, self.key_dim).transpose(1, 2)
        k = k.view(B, T, self.heads, self.key_dim).transpose(1, 2)
        sin, cos = self.sin_cos(positions, x)
        return theta_shift(q, sin, cos), theta_shift(k, sin, cos), v, g

    def finish(self, o, g):  # o [B, T, H, dv]
        B, T = o.shape[:2]
        o = rms_norm(o, self.eps).reshape(B, T, self.heads * self.head_dim)
        return self.out_proj(F.silu(g) * o)

    # ---------------------------------------------------------------- the three forms
    def forward(self, x):
        B, T, _ = x.shape
        qr, kr, v, g = self.project(x, torch.arange(T))
        vr = v.view(B, T, self.heads, self.head_dim).transpose(1, 2)
        mask = self.decay_mask(T, x)
        if self.normalised:
            mask = mask / mask.sum(dim=-1, keepdim=True).sqrt()
        qk = (qr @ kr.transpose(-1, -2)) * mask
        if self.normalised:
            qk = qk / qk.detach().abs().sum(dim=-1, keepdim=True).clamp(min=1, max=5e4)
        return self.finish((qk @ vr).transpose(1, 2), g)

    def recurrent(self, x):
        B, T, _ = x.shape
        decay = self.decay().exp().to(x)
        kv, scale, outs = None, None, []
        for t in range(T):
            qr, kr, v, g = self.project(x[:, t:t + 1], torch.tensor([t]))
            vt = v.view(B, self.heads, self.head_dim, 1)
            new = kr * vt  # [B, H, dv, dk], torchscale's layout: kv[b, h, j, i] = v_j k_i
            if kv is None:
                kv, scale = new, torch.ones_like(decay)
            elif self.normalised:
                s = scale * decay + 1
                kv = (kv * (scale.sqrt() * decay / s.sqrt()).view(self.heads, 1, 1)
                      + new / s.sqrt().view(self.heads, 1, 1))
                scale = s
            else:
                kv = kv * decay.view(self.heads, 1, 1) + new
            o = torch.sum(qr * kv, dim=3)  # [B, H, dv]
            outs.append(self.finish(o.reshape(B, 1, self.heads, self.head_dim), g))
        return torch.cat(outs, dim=1)

    def chunkwise(self, x, chunk):
        B, T, _ = x.shape
        assert T % chunk == 0, "torchscale's chunkwise form needs T % chunk == 0"
        H, dk, dv, n = self.heads, self.key_dim, self.head_dim, T // chunk
        qr, kr, v, g = self.project(x, torch.arange(T))
        decay = self.decay().to(x)
        block = torch.arange(chunk, dtype=x.dtype)
        mask = self.decay_mask(chunk, x)
        if self.normalised:  # RetNetRelPos(chunkwise_recurrent=True)
            value_inner_decay = (mask[:, -1] / mask[:, -1].sum(dim=-1, keepdim=True)).unsqueeze(-1)
            scale = mask.sum(dim=-1, keepdim=True).sqrt()
            inner_mask = mask / scale
            query_inner_decay = torch.exp(decay[:, None] * (block + 1))
            query_inner_decay = (query_inner_decay[:, :, None]
                                 / (scale / mask[:, -1].sum(dim=-1)[:, None, None]))
        else:  # the paper's zeta and xi
            value_inner_decay = mask[:, -1].unsqueeze(-1)
            inner_mask = mask
            query_inner_decay = torch.exp(decay[:, None] * (block + 1))[:, :, None]
        cross_decay = torch.exp(decay * chunk)[:, None, None]
        qr = qr.view(B, H, n, chunk, dk).transpose(1, 2)
        kr = kr.view(B, H, n, chunk, dk).transpose(1, 2)
        v = v.view(B, n, chunk, H, dv).transpose(2, 3)
        kr_t = kr.transpose(-1, -2)
        qk = (qr @ kr_t) * inner_mask
        inner_scale = qk.detach().abs().sum(dim=-1, keepdim=True).clamp(min=1) if self.normalised \
            else torch.ones_like(qk[..., :1])
        inner = (qk / inner_scale) @ v
        kv = kr_t @ (v * value_inner_decay)
        kv_recurrent, cross_scale = [], []
        kv_state = torch.zeros(B, H, dk, dv).to(v)
        kv_scale = torch.ones(B, H, 1, 1).to(v)
        for i in range(n):
            kv_recurrent.append(kv_state / kv_scale)
            cross_scale.append(kv_scale)
            kv_state = kv_state * cross_decay + kv[:, i]
            if self.normalised:
                kv_scale = (kv_state.detach().abs().sum(dim=-2, keepdim=True)
                            .max(dim=-1, keepdim=True).values.clamp(min=1))
        kv_recurrent = torch.stack(kv_recurrent, dim=1)
        cross_scale = torch.stack(cross_scale, dim=1)
        all_scale = torch.maximum(inner_scale, cross_scale)
        cross = (qr * query_inner_decay) @ kv_recurrent
        o = inner / (all_scale / inner_scale) + cross / (all_scale / cross_scale)
        return self.finish(o.transpose(2, 3).reshape(B, T, H, dv), g)


def max_err(a, b):
    return float((a - b).abs().max())


if __name__ == "__main__":
    # Self-check: each form's distance from the parallel one. The paper's forms agree to rounding;
    # torchscale's normalised forms rescale rows differently, so they agree only at eps = 0.
    for normalised in (False, True):
        for eps in (1e-6, 0.0):
            torch.manual_seed(0)
            m = MultiScaleRetention(8, 2, 2, eps=eps, normalised=normalised).double()
            x = torch.randn(2, 8, 8, dtype=torch.float64)
            y = m(x)
            print("torchscale" if normalised else "paper", "eps", eps,
                  "recurrent", max_err(m.recurrent(x), y),
                  "chunkwise(4)", max_err(m.chunkwise(x, 4), y),
                  "chunkwise(2)", max_err(m.chunkwise(x, 2), y))
