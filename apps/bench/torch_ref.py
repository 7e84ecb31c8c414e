#!/usr/bin/env python3
"""apps/bench/torch_ref.py — the PyTorch side of engram's benchmarks (apps/bench).

The same workloads as apps/bench/workloads.h, written as a PyTorch user would write them, each
trained with torch.optim.Adam (lr 1e-3, PyTorch's defaults otherwise). The engram bench exports
its initial weights and its batch as a safetensors file (parameter names are engram's, which are
PyTorch's: "0.weight", "lstm.weight_ih_l0", "blocks.0.self_attn.in_proj_weight", ...), with the
hyper-parameters that the shapes do not show (sequence lengths, heads, rates) as metadata. This
side loads it with load_state_dict(strict=True), so a model that differs in any parameter shape or
name is an error, and --check compares the two sides' losses on the same weights and batch.

Protocol (`--serve`): one command per line on stdin, one reply per line on stdout.

    (start-up)                  ready torch=<version> threads=<n> hwm_reset=<yes|no>  |  error <why>
    setup <workload> <file>     ok                                 |  error <why>
    losses <n>                  losses <l1> ... <ln>   loss before each of n training steps
    time <n>                    times <ms1> ... <msn> peak_bytes <b>  (loss.item() ends each step,
                                so on a GPU the step's kernels are finished when it is timed)
                                wall time of each of n training steps, then the peak memory
                                growth since 'setup' (below)
    quit                        (exits; so does end of input)

hwm_reset says whether /proc/self/clear_refs could be written (see below).

Peak memory, measured as the engram side does (apps/bench/main.cpp): 'setup' frees the previous
workload, runs gc.collect() (CPython frees cyclic garbage only then, and engram has no such
deferred garbage), reads VmRSS from /proc/self/status as the baseline and writes "5" to
/proc/self/clear_refs, which restarts the kernel's peak resident set VmHWM from the current RSS.
Every 'time' reply then gives peak_bytes = VmHWM - baseline: the extra resident memory this
workload (its model, optimizer state, batch, activations, allocator caches) has needed so far,
without the ~hundreds of MB of torch's shared libraries that were resident before. Without the
reset (hwm_reset=no) VmHWM is the process's peak since start, and the figure can only be larger.

Everything else this process prints goes to stderr, so stdout carries only the protocol.

The memory workloads are written as plain per-step loops over time (the Hebbian state update, the
reservoir, the episodic buffer, the gated linear recurrence, the Titans memory, the CMR context
drift): that is what engram's fused ops and loops are measured against. crsd_tiny follows
memory/crsd/crsd.h, hebbian.h, episodic.h, reservoir.h and nn/spectral.h line by line; hybrid follows
apps/common/memory_lm.h, memory/titans/memory_blocks.h, neural_memory.h, memory/cmr/episodic_cmr.h
and nn/attention.h (LocalSelfAttention) for the variant the bench builds (a fresh state per step);
memnet follows memory/memnet/memnet.h, memory_bank.h, synthesizer.h and apps/common/memnet_lm.h
(the segment loop, the composite loss) for apps/memnet's default model from an empty memory.
"""
import argparse
import gc
import json
import math
import os
import struct
import sys
import time

PROTOCOL_OUT = sys.stdout
sys.stdout = sys.stderr  # stray prints (warnings, debugging) must not corrupt the protocol


def reply(line):
    PROTOCOL_OUT.write(line + "\n")
    PROTOCOL_OUT.flush()


try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the start-up reply: the bench then prints torch_ms=NA and this reason
    reply(f"error python3-torch is not installed ({e})")
    sys.exit(0)


def load_safetensors(path):
    """{name: tensor}, {metadata} from a safetensors file, with numpy only."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    kinds = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(raw[8 + n + begin:8 + n + end], kinds[entry["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(entry["shape"]).copy())
    return tensors, meta


# ---------------------------------------------------------------- dense workloads
def make_mlp(meta):
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def make_cnn(meta):
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(1),
                         nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


class ByteLSTM(nn.Module):
    def __init__(self, meta):
        super().__init__()
        vocab, embed, hidden = int(meta["vocab"]), int(meta["embed"]), int(meta["hidden"])
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids):
        return self.head(self.lstm(self.embed(ids))[0])


class ByteTransformer(nn.Module):
    """Token + learned position embeddings -> pre-norm causal blocks -> LayerNorm -> Linear.
    engram's TransformerBlock is nn.TransformerEncoderLayer(norm_first=True) name for name."""

    def __init__(self, meta):
        super().__init__()
        vocab, context, d = int(meta["vocab"]), int(meta["context"]), int(meta["d_model"])
        heads, ff, layers = int(meta["heads"]), int(meta["ff"]), int(meta["layers"])
        self.tok_embed = nn.Embedding(vocab, d)
        self.pos_embed = nn.Embedding(context, d)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        causal = torch.triu(torch.full((context, context), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.tok_embed(ids) + self.pos_embed(torch.arange(T))
        for block in self.blocks:
            x = block(x, src_mask=self.causal_mask[:T, :T])
        return self.head(self.norm(x))


class SpectralMix(nn.Module):
    """LayerNorm -> rfft over features -> per-frequency complex filter -> irfft -> Linear."""

    def __init__(self, features):
        super().__init__()
        self.features = features
        self.norm = nn.LayerNorm(features)
        filt = torch.zeros(features // 2 + 1, 2)
        filt[:, 0] = 1.0
        self.filter = nn.Parameter(filt)  # complex as [re, im], like engram
        self.proj = nn.Linear(features, features)

    def forward(self, x):
        spectrum = torch.fft.rfft(self.norm(x), dim=-1)
        filtered = spectrum * torch.view_as_complex(self.filter)
        return self.proj(torch.fft.irfft(filtered, n=self.features, dim=-1))


# ---------------------------------------------------------------- memory workloads
def hebbian_loop(q, k, v, gamma, eta):
    """H_t = gamma H_{t-1} + eta k_t v_t^T, r_t = H_t^T q_t, one step at a time. q, k [B, T, dk]."""
    B, T, dk = q.shape
    H = q.new_zeros(B, dk, v.shape[2])
    recalls = []
    for t in range(T):
        H = gamma * H + eta * (k[:, t, :, None] * v[:, t, None, :])
        recalls.append(torch.bmm(q[:, t, None, :], H).squeeze(1))
    return torch.stack(recalls, 1)


class HebbianRecall(nn.Module):
    def __init__(self, meta):
        super().__init__()
        c, d = int(meta["in_features"]), int(meta["d"])
        self.gamma_logit = nn.Parameter(torch.tensor(0.0))
        self.eta_raw = nn.Parameter(torch.tensor(0.0))
        self.q_proj = nn.Linear(c, d, bias=False)
        self.k_proj = nn.Linear(c, d, bias=False)
        self.v_proj = nn.Linear(c, d, bias=False)

    def forward(self, x):  # raw q and k, as the engram side
        return hebbian_loop(self.q_proj(x), self.k_proj(x), self.v_proj(x),
                            torch.sigmoid(self.gamma_logit), F.softplus(self.eta_raw))


class Reservoir(nn.Module):
    """s_t = (1 - leak) s_{t-1} + leak tanh(W_in u_t + W_res s_{t-1}); fixed buffers."""

    def __init__(self, input_size, size, leak):
        super().__init__()
        self.leak = leak
        self.register_buffer("w_in", torch.zeros(size, input_size))
        self.register_buffer("w_res", torch.zeros(size, size))

    def forward(self, u):
        B, T, _ = u.shape
        drive = u @ self.w_in.t()
        s = u.new_zeros(B, self.w_res.shape[0])
        states = []
        for t in range(T):
            act = torch.tanh(drive[:, t] + s @ self.w_res.t())
            s = s * (1 - self.leak) + act * self.leak
            states.append(s)
        return torch.stack(states, 1)


class HebbianMemory(nn.Module):
    def __init__(self, eps):
        super().__init__()
        self.eps = eps
        self.gamma_logit = nn.Parameter(torch.tensor(0.0))
        self.eta_raw = nn.Parameter(torch.tensor(0.0))

    def forward(self, q, k, v):
        qn, kn = F.normalize(q, dim=-1, eps=self.eps), F.normalize(k, dim=-1, eps=self.eps)
        return hebbian_loop(qn, kn, v, torch.sigmoid(self.gamma_logit), F.softplus(self.eta_raw))


class EpisodicBuffer(nn.Module):
    """Priority slots; read (cosine scores, masked softmax) before write (lowest priority slot)."""

    def __init__(self, slots, temperature, decay, eps):
        super().__init__()
        self.slots, self.temperature, self.decay, self.eps = slots, temperature, decay, eps

    def forward(self, q, k, v):
        B, T, dk = q.shape
        S = self.slots
        st = {"keys": q.new_zeros(B, S, dk), "values": q.new_zeros(B, S, v.shape[2]),
              "importance": q.new_zeros(B, S), "age": q.new_zeros(B, S), "filled": q.new_zeros(B, S)}
        return torch.stack([self.step(q[:, t], k[:, t], v[:, t], st) for t in range(T)], 1)

    def step(self, q, k, v, st):
        # read: cosine scores over the filled slots, masked softmax, weighted sum of values
        qn = F.normalize(q, dim=-1, eps=self.eps)
        kn_slots = F.normalize(st["keys"], dim=-1, eps=self.eps)
        scores = (kn_slots @ qn.unsqueeze(-1)).squeeze(-1) * (1.0 / self.temperature)
        allowed = st["filled"]
        shifted = scores - scores.max(1, keepdim=True).values.detach()
        e = torch.exp(shifted) * allowed
        z = e.sum(1, keepdim=True)
        w = e / (z + (z == 0).to(z.dtype))
        recall = (w.unsqueeze(1) @ st["values"]).squeeze(1)
        # write: empty slots first, then the least important; novelty = 1 - max cosine
        with torch.no_grad():
            filled = st["filled"]
            kn = F.normalize(k, dim=-1, eps=self.eps)
            sim = (kn_slots @ kn.unsqueeze(-1)).squeeze(-1)
            max_sim = (sim * filled + (filled - 1.0) * 2.0).max(1).values  # -2 when empty
            novelty = (1.0 - max_sim).clamp(0.0, 1.0)
            importance = st["importance"] * self.decay
            age = st["age"] + 1.0
            priority = importance - (1.0 - filled)
            slot = priority.argmin(1, keepdim=True)
            onehot = torch.zeros_like(filled).scatter_(1, slot, 1.0)
            keep = 1.0 - onehot
            st["importance"] = importance * keep + onehot * novelty.unsqueeze(1)
            st["age"] = age * keep
            st["filled"] = torch.maximum(filled, onehot)
        keep3, hot3 = keep.unsqueeze(-1), onehot.unsqueeze(-1)
        st["keys"] = st["keys"] * keep3 + hot3 * k.unsqueeze(1)
        st["values"] = st["values"] * keep3 + hot3 * v.unsqueeze(1)
        return recall


class CRSDCell(nn.Module):
    def __init__(self, meta):
        super().__init__()
        C, M, R = int(meta["d_model"]), int(meta["d_mem"]), int(meta["reservoir"])
        # children in engram's order (memory/crsd/crsd.cpp), so the state dicts line up name for name
        self.reservoir = Reservoir(C, R, float(meta["reservoir_leak"]))
        self.q_proj = nn.Linear(C, M, bias=False)
        self.k_proj = nn.Linear(C, M, bias=False)
        self.v_proj = nn.Linear(C, M, bias=False)
        self.hebbian = HebbianMemory(float(meta["hebbian_eps"]))
        self.episodic = EpisodicBuffer(int(meta["slots"]), float(meta["temperature"]),
                                       float(meta["decay"]), float(meta["episodic_eps"]))
        self.gate = nn.Linear(C + 2 * M, M)
        self.retain = nn.Linear(C + M, C)
        self.candidate = nn.Linear(C + R + M, C)
        self.spectral = SpectralMix(C)

    def forward(self, u):
        s = self.reservoir(u)
        q, k, v = self.q_proj(u), self.k_proj(u), self.v_proj(u)
        r_hebb = self.hebbian(q, k, v)
        r_epi = self.episodic(q, k, v)
        g = torch.sigmoid(self.gate(torch.cat([u, r_hebb, r_epi], -1)))
        m = g * r_hebb + (1 - g) * r_epi
        a = torch.sigmoid(self.retain(torch.cat([u, m], -1)))
        c = torch.tanh(self.candidate(torch.cat([u, s, m], -1)))
        b = (1 - a) * c
        h = u.new_zeros(u.shape[0], u.shape[2])  # h_t = a_t h_{t-1} + b_t, one step at a time
        hs = []
        for t in range(u.shape[1]):
            h = a[:, t] * h + b[:, t]
            hs.append(h)
        h = torch.stack(hs, 1)
        return h + self.spectral(h)


class CRSDLanguageModel(nn.Module):
    def __init__(self, meta):
        super().__init__()
        V, C = int(meta["vocab"]), int(meta["d_model"])
        self.embed = nn.Embedding(V, C)
        self.cells = nn.ModuleList([CRSDCell(meta) for _ in range(int(meta["layers"]))])
        self.norm = nn.LayerNorm(C)
        self.head = nn.Linear(C, V)

    def forward(self, ids):
        x = self.embed(ids)
        for cell in self.cells:
            x = cell(x)
        return self.head(self.norm(x))


class EpiNet(nn.Module):
    """The EpiNet notebook's classes: conv encoder, hard top-k recall, mixture-of-experts."""

    class Expert(nn.Module):
        def __init__(self, d_in, hidden, classes):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(d_in, hidden), nn.Linear(hidden, classes)

        def forward(self, h):
            return self.fc2(F.relu(self.fc1(h)))

    class Decoder(nn.Module):
        def __init__(self, d_in, hidden, classes, experts):
            super().__init__()
            self.gate = nn.Linear(d_in, experts)
            self.experts = nn.ModuleList(EpiNet.Expert(d_in, hidden, classes) for _ in range(experts))

        def forward(self, h):
            g = torch.softmax(self.gate(h), -1)
            return sum(g[:, e:e + 1] * expert(h) for e, expert in enumerate(self.experts))

    def __init__(self, meta):
        super().__init__()
        d = int(meta["d"])
        self.top_k, self.eps = int(meta["top_k"]), float(meta["eps"])
        self.encoder = nn.Module()
        self.encoder.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(1),
            nn.Linear(64 * 7 * 7, d))
        self.decoder = EpiNet.Decoder(2 * d, int(meta["hidden"]), int(meta["classes"]),
                                      int(meta["experts"]))

    def forward(self, x, keys, salience):
        z = self.encoder.net(x)
        score = F.normalize(z, dim=-1) @ F.normalize(keys, dim=-1).T * salience
        idx = score.detach().topk(min(self.top_k, keys.shape[0]), dim=1).indices
        s = salience[idx]
        w = s / (s.sum(1, keepdim=True) + self.eps)
        r = (w.unsqueeze(-1) * keys[idx]).sum(1)
        return self.decoder(torch.cat([z, r], -1))


def epinet_loss(model, data):
    keys, sal = data["keys"], data["salience"]
    return (F.cross_entropy(model(data["input"], keys, sal), data["target"]) +
            0.5 * F.cross_entropy(model(data["replay_input"], keys, sal), data["replay_target"]))


# ---------------------------------------------------------------- hybrid: the gated hybrid memory LM
def rows_of_heads(x, heads):
    """[B, T, H * dh] -> [B * H, T, dh]: row b * H + h, engram's order."""
    B, T, W = x.shape
    return x.reshape(B, T, heads, W // heads).permute(0, 2, 1, 3).reshape(B * heads, T, W // heads)


def heads_to_width(x, batch):
    """[B * H, T, dh] -> [B, T, H * dh]."""
    R, T, dh = x.shape
    return x.reshape(batch, R // batch, T, dh).permute(0, 2, 1, 3).reshape(batch, T, -1)


class LocalSelfAttention(nn.Module):
    """Causal sliding-window self-attention with ALiBi (nn/attention.h), one call, no cache: a
    float attn_mask of -m_i (query - key) for the W keys up to the query, -inf elsewhere."""

    def __init__(self, d, heads, window):
        super().__init__()
        self.heads = heads
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.window = window

    def mask(self, T):
        i = torch.arange(T)
        dist = (i[:, None] - i[None, :]).float()  # query - key
        slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / self.heads) for h in range(self.heads)])
        bias = -slopes[:, None, None] * dist.clamp(min=0)
        hidden = (dist < 0) | (dist >= self.window)
        return bias.masked_fill(hidden, float("-inf"))  # [H, T, T]

    def forward(self, h):
        B, T, _ = h.shape
        mask = self.mask(T).repeat(B, 1, 1)  # [B * H, T, T], row b * H + h
        return self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]


class NeuralMemory(nn.Module):
    """Titans' linear memory per head (memory/titans/neural_memory.h) as a per-token loop; every
    inner gradient of a chunk is taken at the chunk's starting memory."""

    def __init__(self, d, heads, chunk, max_lr):
        super().__init__()
        self.heads, self.dh, self.chunk, self.max_lr = heads, d // heads, chunk, max_lr
        W = heads * self.dh
        self.initial_memory = nn.Parameter(torch.zeros(heads, self.dh, self.dh))
        self.qkv = nn.Linear(d, 3 * W, bias=False)
        self.gates = nn.Linear(d, 3 * heads)
        self.out = nn.Linear(W, d)

    def forward(self, x):
        B, T, _ = x.shape
        H, dh = self.heads, self.dh
        W = H * dh
        p = F.silu(self.qkv(x))
        q = F.normalize(rows_of_heads(p[..., :W], H), dim=-1)
        k = F.normalize(rows_of_heads(p[..., W:2 * W], H), dim=-1)
        v = rows_of_heads(p[..., 2 * W:], H)
        g = torch.sigmoid(self.gates(x)).permute(0, 2, 1)  # [B, 3H, T]
        theta = (g[:, :H] * self.max_lr).reshape(B * H, T)
        eta, alpha = g[:, H:2 * H].reshape(B * H, T), g[:, 2 * H:].reshape(B * H, T)
        M = self.initial_memory.unsqueeze(0).expand(B, H, dh, dh).reshape(B * H, dh, dh)
        S = torch.zeros_like(M)
        ys = []
        for t in range(T):
            if t % self.chunk == 0:
                M0 = M
            ys.append(torch.bmm(M, q[:, t, :, None]).squeeze(-1))  # y_t = M_{t-1} q_t
            e = 2 * (torch.bmm(M0, k[:, t, :, None]).squeeze(-1) - v[:, t])
            S = eta[:, t, None, None] * S - theta[:, t, None, None] * (e[:, :, None] * k[:, t, None, :])
            M = (1 - alpha[:, t, None, None]) * M + S
        y = torch.stack(ys, 1)  # [BH, T, dh]
        return self.out(heads_to_width(y, B))


class EpisodicCMR(nn.Module):
    """Multi-head episodic CMR (memory/cmr/episodic_cmr.h) for a fresh state, one write per token,
    ring slots and softmax reads: token t reads the contexts c_j of steps max(0, t - M) <= j < t
    (the M most recent writes) and a null slot of score 0 and value 0."""

    def __init__(self, d, heads, slots):
        super().__init__()
        self.heads, self.dh, self.slots = heads, d // heads, slots
        W = heads * self.dh
        self.bank = nn.Module()
        self.bank.beta_logit = nn.Parameter(torch.zeros(heads))
        self.bank.context_in = nn.Linear(d, W, bias=False)
        self.bank.features = nn.Linear(d, W, bias=False)
        self.reader = nn.Module()
        self.reader.query = nn.Linear(d, W, bias=False)
        self.reader.out = nn.Linear(W, d)

    def forward(self, x, h):
        B, T, _ = x.shape
        H, dh = self.heads, self.dh
        cin = F.normalize(rows_of_heads(self.bank.context_in(x), H), dim=-1)  # [R, T, dh]
        beta = torch.sigmoid(self.bank.beta_logit).repeat(B)[:, None]  # [R, 1], row b * H + h
        c = torch.zeros(B * H, dh)
        c[:, 0] = 1.0  # the start context: the first unit vector
        contexts = []
        for t in range(T):  # c_t = rho c_{t-1} + beta cin_t
            d = (c * cin[:, t]).sum(-1, keepdim=True)
            rho = torch.sqrt(1 + beta * beta * (d * d - 1)) - beta * d
            c = rho * c + beta * cin[:, t]
            contexts.append(c)
        keys = torch.stack(contexts, 1)  # write t: key c_t, value f_t
        values = rows_of_heads(self.bank.features(x), H)
        q = rows_of_heads(self.reader.query(h), H) * (1.0 / math.sqrt(dh))
        i = torch.arange(T)
        back = i[:, None] - i[None, :]  # read t, write j
        hidden = (back <= 0) | (back > self.slots)
        scores = (q @ keys.transpose(1, 2)).masked_fill(hidden, float("-inf"))
        w = torch.softmax(torch.cat([scores, scores.new_zeros(B * H, T, 1)], 2), -1)
        return self.reader.out(heads_to_width(w[..., :T] @ values, B))


class GatedHybridBlock(nn.Module):
    """memory/titans/memory_blocks.h, two-source gate: h = LN1 x; g = sigmoid(w_g . h + b_g);
    x += W [attn(h); g z_n + (1 - g) z_e]; x += MLP(LN2 x)."""

    def __init__(self, meta):
        super().__init__()
        d, heads, mheads = int(meta["d_model"]), int(meta["heads"]), int(meta["memory_heads"])
        ff = int(meta["ff_mult"]) * d
        # children in engram's order (memory/cmr/attention_cmr_blocks.cpp, memory_blocks.cpp)
        self.norm1 = nn.LayerNorm(d)
        self.attn = LocalSelfAttention(d, heads, int(meta["window"]))
        self.norm2 = nn.LayerNorm(d)
        self.linear1 = nn.Linear(d, ff)
        self.linear2 = nn.Linear(ff, d)
        self.neural = NeuralMemory(d, mheads, int(meta["titans_chunk"]), float(meta["titans_max_lr"]))
        self.episodic = nn.Module()
        self.episodic.memory = EpisodicCMR(d, mheads, int(meta["memory_slots"]))
        self.gate = nn.Linear(d, 1)
        self.mix = nn.Linear(2 * d, d)

    def forward(self, x):
        h = self.norm1(x)
        a = self.attn(h)
        zn = self.neural(h)
        ze = self.episodic.memory(h, h)
        g = torch.sigmoid(self.gate(h))
        z = self.mix(torch.cat([a, g * zn + (1 - g) * ze], -1))
        x = x + z
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class HybridMemoryLM(nn.Module):
    """apps/common/memory_lm.h with model.kind=hybrid: Embedding -> blocks -> LayerNorm -> Linear."""

    def __init__(self, meta):
        super().__init__()
        expected = {"memory_segment": "1", "memory_policy": "ring", "memory_read": "softmax",
                    "memory_placement": "per_block", "hybrid_gate": "sigmoid",
                    "memory_top_k": "0", "memory_pre_assoc": "false"}
        for key, value in expected.items():
            if meta.get(key) != value:
                raise ValueError(f"hybrid: torch_ref implements only {key}={value}, got {meta.get(key)}")
        V, d = int(meta["vocab"]), int(meta["d_model"])
        self.embed = nn.Embedding(V, d)
        self.blocks = nn.ModuleList([GatedHybridBlock(meta) for _ in range(int(meta["layers"]))])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, V)

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


# ---------------------------------------------------------------- memnet: the MemNet LM
def splitmix64(x):
    """memory/memnet/memory_bank.cpp's splitmix64 on numpy uint64 arrays (wrapping arithmetic)."""
    x = x + np.uint64(0x9e3779b97f4a7c15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
    return x ^ (x >> np.uint64(31))


def random_read_distributions(seed, B, T, R, N, position):
    """The random policy's Dirichlet(1, ..., 1) draws, [B, T, R, N] float32, bit for bit as
    memnet::random_read_distributions: per (b, t, r) a key from the hash of (seed, position + t,
    b, r), then N normalised Exp(1) variables -log(u), u = ((splitmix64(key + i) >> 11) + 1) 2^-53,
    in float64."""
    with np.errstate(over="ignore"):
        t = np.arange(T, dtype=np.uint64) + np.uint64(position)
        b = np.arange(B, dtype=np.uint64)
        r = np.arange(R, dtype=np.uint64)
        inner = (t[None, :, None] * np.uint64(0x100000001b3) + b[:, None, None] * np.uint64(0x9e37)
                 + r[None, None, :])
        key = splitmix64(np.uint64(seed) ^ splitmix64(inner))  # [B, T, R]
        bits = splitmix64(key[..., None] + np.arange(N, dtype=np.uint64))  # [B, T, R, N]
    u = ((bits >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0 ** -53
    e = -np.log(u)
    return torch.from_numpy((e / e.sum(-1, keepdims=True)).astype(np.float32))


def soft_normalize(a, delta=1e-3):
    """a / sqrt(|a|^2 + delta) along the last dim (cos~'s normalisation)."""
    return a * torch.rsqrt(a.square().sum(-1, keepdim=True) + delta)


def entropy(p):
    return -(p * torch.log(p + 1e-12)).sum(-1)


class LocalAttentionBlock(nn.Module):
    """memory/cmr/attention_cmr_blocks.h: x += attn(LN1 x); x += MLP(LN2 x)."""

    def __init__(self, d, heads, window, ff_mult):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = LocalSelfAttention(d, heads, window)
        self.norm2 = nn.LayerNorm(d)
        self.linear1 = nn.Linear(d, ff_mult * d)
        self.linear2 = nn.Linear(ff_mult * d, d)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class MemoryBank(nn.Module):
    """memory/memnet/memory_bank.h for one fresh stream: cosine reads mixed (top-k, uniform,
    random) by the meta-policy and spread over the STDP links; erase/add writes with hard
    least-used allocation; the links updated once per segment."""

    def __init__(self, meta):
        super().__init__()
        E, self.N, self.d = int(meta["d_model"]), int(meta["slots"]), int(meta["width"])
        self.R, self.W = int(meta["read_heads"]), int(meta["write_heads"])
        self.top_k, self.bneck = int(meta["top_k"]), int(meta["bottleneck"])
        self.stdp_rate, self.link_decay = float(meta["stdp_rate"]), float(meta["link_decay"])
        self.usage_decay = float(meta["usage_decay"])
        self.P = 3
        R, W, d = self.R, self.W, self.d
        self.read_query = nn.Linear(E, R * d)
        self.read_strength = nn.Linear(E, R)
        self.policy_gate = nn.Linear(E, R * self.P)
        self.write_pool = nn.Linear(E, W, bias=False)
        self.write_key = nn.Linear(E, d)
        self.write_strength = nn.Linear(E, 1)
        self.write_gates = nn.Linear(E, 2)
        self.erase = nn.Linear(E, d)
        self.bottleneck_down = nn.Linear(E, self.bneck)
        self.bottleneck_up = nn.Linear(self.bneck, d)
        self.spread_logit = nn.Parameter(torch.zeros(1))
        self.register_buffer("eye", torch.eye(self.N), persistent=False)

    def initial_state(self, B):
        N = self.N
        return {"slots": torch.zeros(B, N, self.d), "links": torch.zeros(B, N, N),
                "usage": torch.zeros(B, N), "writes": torch.zeros(B, N),
                "activity": torch.zeros(B, N)}

    @staticmethod
    def scores(q, slots, beta):  # q [B, K, d], slots [B, N, d], beta [B, K, 1] -> [B, K, N]
        return (soft_normalize(q) @ soft_normalize(slots).transpose(1, 2)) * beta

    def read(self, h, st, random_dists):
        """h [B, S, E]; random_dists [B, S, R, N] -> reads [B, S, R d], weights, content."""
        B, S, _ = h.shape
        R, N = self.R, self.N
        q = self.read_query(h).reshape(B, S * R, self.d)
        beta = F.softplus(self.read_strength(h).reshape(B, S * R, 1)) + 1
        z = self.scores(q, st["slots"], beta)
        # top-k: the k best slots, ties to the lower index as engram's topk (torch.topk breaks
        # ties elsewhere, and a fresh memory is full of exact ties: identical, or empty, slots)
        idx = torch.sort(z.detach(), dim=-1, descending=True, stable=True).indices[..., :self.top_k]
        outside = torch.ones_like(z, dtype=torch.bool).scatter_(-1, idx, False)
        top = torch.softmax(z.masked_fill(outside, float("-inf")), -1)
        with torch.no_grad():
            written = (st["writes"] >= 0.5).to(z.dtype)
            count = written.sum(-1, keepdim=True)
            none = (count == 0).to(z.dtype)
            uniform = ((written + none) / (count + none * N)).unsqueeze(1)  # [B, 1, N]
        pi = torch.softmax(self.policy_gate(h).reshape(B, S * R, self.P), -1)
        w = pi[..., 0:1] * top
        w = w + pi[..., 1:2] * uniform
        w = w + pi[..., 2:3] * random_dists.reshape(B, S * R, N)
        links = st["links"]
        rowsum = links.sum(-1, keepdim=True)
        keep = 1 - rowsum.clamp(0.0, 1.0)
        stochastic = links / rowsum.clamp(min=1.0) + keep * self.eye
        a = torch.sigmoid(self.spread_logit)
        w = w + a * (w @ stochastic - w)
        reads = (w @ st["slots"]).reshape(B, S, R * self.d)
        return reads, w.reshape(B, S, R, N), top.reshape(B, S, R, N)

    def write(self, h, st):
        """h [B, S, E] one whole segment; updates st; -> weights [B, W, N], readback [B, W d]."""
        B = h.shape[0]
        W, d = self.W, self.d
        attn = torch.softmax(self.write_pool(h), 1)  # [B, S, W] over the segment
        p = attn.transpose(1, 2) @ h  # [B, W, E]
        keys = self.write_key(p).reshape(B, W, d)
        beta = F.softplus(self.write_strength(p).squeeze(2)) + 1  # [B, W]
        gates = torch.sigmoid(self.write_gates(p).reshape(B, W, 2))
        erase_v = torch.sigmoid(self.erase(p).reshape(B, W, d))
        values = self.bottleneck_up(torch.tanh(self.bottleneck_down(p).reshape(B, W, self.bneck)))
        st["usage"] = st["usage"] * self.usage_decay
        heads = []
        for w in range(W):
            c = torch.softmax(self.scores(keys[:, w:w + 1], st["slots"], beta[:, w].reshape(B, 1, 1)),
                              -1).squeeze(1)  # [B, N]
            with torch.no_grad():  # hard allocation: the least-used slot, the first of equals
                alloc = F.one_hot(st["usage"].argmin(-1), self.N).to(c.dtype)
            g, ga = gates[:, w, 0:1], gates[:, w, 1:2]
            ww = g * (c + ga * (alloc - c))
            col = ww.unsqueeze(2)
            st["slots"] = st["slots"] * (1 - col * erase_v[:, w:w + 1]) + col * values[:, w:w + 1]
            st["usage"] = st["usage"] + (1 - st["usage"]) * ww
            st["writes"] = st["writes"] + ww.detach()
            heads.append(ww)
        weights = torch.stack(heads, 1)  # [B, W, N]
        return weights, (weights @ st["slots"]).reshape(B, W * d)

    def link(self, st, mean_reads, mean_writes):
        act = mean_reads + mean_writes
        post = act / act.max(1, keepdim=True).values.clamp(min=1e-30)
        hebb = st["activity"].unsqueeze(2) * post.unsqueeze(1)  # pre_i post_j
        links = st["links"] * self.link_decay + hebb * (1 - st["links"]) * self.stdp_rate
        st["links"] = links * (1 - self.eye)
        st["activity"] = post


class MemorySynthesizer(nn.Module):
    """memory/memnet/synthesizer.h: S <- S + tanh(gamma) MHA(LN S, LN S, LN S)."""

    def __init__(self, width, heads):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.norm = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, slots):
        n = self.norm(slots)
        return slots + torch.tanh(self.gamma) * self.attn(n, n, n, need_weights=False)[0]


class MemNetLM(nn.Module):
    """apps/common/memnet_lm.h (model.kind=memnet) over memory/memnet/memnet.h for a stream that
    starts at position 0 with an empty memory: the controller over all T tokens, then segment by
    segment: every token reads the memory as it stood before its segment, the segment writes,
    its reconstruction is scored (L_hal), the links learn, and every dream_every segments the
    synthesizer dreams. Returns the logits; the composite loss terms are left in self.terms."""

    def __init__(self, meta):
        super().__init__()
        expected = {"address": "cosine", "policy_uniform": "true", "policy_random": "true",
                    "graph": "true", "spread_learned": "true", "alloc_temperature": "0"}
        for key, value in expected.items():
            if meta.get(key) != value:
                raise ValueError(f"memnet: torch_ref implements only {key}={value}, got {meta.get(key)}")
        V, E = int(meta["vocab"]), int(meta["d_model"])
        self.segment, self.dream_every = int(meta["segment"]), int(meta["dream_every"])
        self.seed = int(meta["random_seed"])
        self.weights = [float(meta[k]) for k in ("l_hallucination", "l_utilization", "l_sparsity")]
        width, R, W = int(meta["width"]), int(meta["read_heads"]), int(meta["write_heads"])
        # children in engram's order (memory/memnet/memnet.cpp)
        self.embed = nn.Embedding(V, E)
        self.controller = nn.Module()
        self.controller.blocks = nn.ModuleList([
            LocalAttentionBlock(E, int(meta["heads"]), int(meta["window"]), int(meta["ff_mult"]))
            for _ in range(int(meta["layers"]))])
        self.controller.norm = nn.LayerNorm(E)
        self.bank = MemoryBank(meta)
        self.synthesizer = MemorySynthesizer(width, int(meta["dream_heads"]))
        self.fuse = nn.Linear(E + R * width, E)
        self.hallucinate = nn.Linear(W * width, E)
        self.norm = nn.LayerNorm(E)
        self.head = nn.Linear(E, V)

    def forward(self, ids):
        B, T = ids.shape
        S, bank = self.segment, self.bank
        if T % S:
            raise ValueError(f"memnet: torch_ref needs whole segments, T={T} with segment {S}")
        x = self.embed(ids)
        h = x
        for block in self.controller.blocks:
            h = block(h)
        h = self.controller.norm(h)
        st = bank.initial_state(B)
        dists = random_read_distributions(self.seed, B, T, bank.R, bank.N, 0)
        reads, weights, contents, hal = [], [], [], []
        for s in range(T // S):
            hc, xc = h[:, s * S:(s + 1) * S], x[:, s * S:(s + 1) * S]
            r, w, c = bank.read(hc, st, dists[:, s * S:(s + 1) * S])
            reads.append(r), weights.append(w), contents.append(c)
            ww, readback = bank.write(hc, st)
            target = F.layer_norm(xc.mean(1), (xc.shape[2],), eps=1e-5)
            hal.append(F.mse_loss(self.hallucinate(readback), target))
            bank.link(st, w.sum((1, 2)) * (1.0 / (S * bank.R)), ww.mean(1))
            if (s + 1) % self.dream_every == 0:
                st["slots"] = self.synthesizer(st["slots"])
        w, content = torch.cat(weights, 1), torch.cat(contents, 1)  # [B, T, R, N]
        logN = math.log(bank.N)
        self.terms = (sum(hal[1:], hal[0]) * (1.0 / len(hal)),  # L_hal
                      entropy(w.mean((1, 2))).mean() * (-1.0 / logN) + 1.0,  # L_util
                      entropy(content).mean() * (1.0 / logN))  # L_sparse
        y = h + self.fuse(torch.cat([h, torch.cat(reads, 1)], 2))
        return self.head(self.norm(y))


def memnet_loss(model, data):
    """cross-entropy + l1 L_hal + l2 L_util + l3 L_sparse, summed in engram's order."""
    loss = lm_loss(model, data)
    aux = None
    for term, weight in zip(model.terms, model.weights):
        if weight != 0:
            aux = term * weight if aux is None else aux + term * weight
    return loss if aux is None else loss + aux


# ---------------------------------------------------------------- peak memory
def status_bytes(field):
    """A 'VmRSS:   1234 kB' style field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"/proc/self/status has no {field}")


def reset_peak_rss():
    """Restarts VmHWM from the current RSS; False where clear_refs cannot be written."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- the workload table
def lm_loss(model, data):
    logits = model(data["input"])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), data["target"].reshape(-1))


def classifier_loss(model, data):
    return F.cross_entropy(model(data["input"]), data["target"])


def mean_square_loss(model, data):
    return model(data["input"]).square().mean()


# crsd_tiny's state-space LMs (apps/bench/torch_ssm.py), found beside this file also when another
# script imports this one (tests/golden/make_memory_golden.py does)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ssm  # noqa: E402

WORKLOADS = {  # name: (build(meta) -> module, loss(model, data) -> scalar)
    "mlp": (make_mlp, classifier_loss),
    "cnn": (make_cnn, classifier_loss),
    "lstm": (ByteLSTM, lm_loss),
    "transformer": (ByteTransformer, lm_loss),
    "spectral": (lambda meta: SpectralMix(int(meta["features"])), mean_square_loss),
    "hebbian": (HebbianRecall, mean_square_loss),
    "epinet": (EpiNet, epinet_loss),
    "crsd_tiny": (CRSDLanguageModel, lm_loss),
    "hybrid": (HybridMemoryLM, lm_loss),
    "memnet": (MemNetLM, memnet_loss),
}
for _kind in torch_ssm.SSM_KINDS:
    WORKLOADS[_kind] = (lambda meta: torch_ssm.SSMLanguageModel(meta, LocalSelfAttention), lm_loss)


class Session:
    """One workload: model, batch and optimizer, loaded from the engram export."""

    def __init__(self, name, path, device="cpu"):
        if name not in WORKLOADS:
            raise ValueError(f"unknown workload '{name}' (known: {', '.join(WORKLOADS)})")
        tensors, meta = load_safetensors(path)
        if meta.get("workload") != name:
            raise ValueError(f"{path} holds workload '{meta.get('workload')}', not '{name}'")
        build, self.loss_fn = WORKLOADS[name]
        self.model = build(meta)
        self.model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("data.")},
                                   strict=True)
        self.data = {k[5:]: v for k, v in tensors.items() if k.startswith("data.")}
        if device != "cpu":  # CUDA eager: the module and the batch on the GPU, nothing else changed
            self.model.to(device)
            self.data = {k: v.to(device) for k, v in self.data.items()}
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def train_step(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model, self.data)
        loss.backward()
        self.optimizer.step()
        return loss.item()


def serve(threads, device):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    on_gpu = device != "cpu"
    if on_gpu and not torch.cuda.is_available():
        reply(f"error torch {torch.__version__} sees no CUDA device")
        return
    if on_gpu:  # every tensor a model makes while running (masks, positions, states) goes there too
        torch.set_default_device(device)
    hwm_reset = "yes" if reset_peak_rss() else "no"
    where = f" device={device} gpu={torch.cuda.get_device_name().replace(' ', '_')}" if on_gpu else ""
    reply(f"ready torch={torch.__version__} threads={torch.get_num_threads()} hwm_reset={hwm_reset}{where}")
    session = None
    baseline = 0  # VmRSS before the current workload was built
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            command, args = words[0], words[1:]
            if command == "quit":
                return
            if command == "setup":
                session = None  # free the previous workload first
                gc.collect()  # and any cycles it left, so the baseline holds none of it
                if on_gpu:  # device memory: the caching allocator's peak over what is in use
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    baseline = torch.cuda.memory_allocated()
                else:
                    baseline = status_bytes("VmRSS")
                reset_peak_rss()
                session = Session(args[0], args[1], device)
                reply("ok")
            elif command in ("losses", "time"):
                if session is None:
                    raise ValueError(f"'{command}' before 'setup'")
                values = []
                for _ in range(int(args[0])):
                    start = time.perf_counter()
                    loss = session.train_step()
                    values.append(loss if command == "losses" else (time.perf_counter() - start) * 1e3)
                text = " ".join(f"{x:.9g}" for x in values)
                if command == "losses":
                    reply("losses " + text)
                else:
                    peak = torch.cuda.max_memory_allocated() if on_gpu else status_bytes("VmHWM")
                    reply(f"times {text} peak_bytes {peak - baseline}")
            else:
                raise ValueError(f"unknown command '{command}'")
        except Exception as e:  # noqa: BLE001 — every failure goes back as one protocol line
            reply("error " + f"{type(e).__name__}: {e}".replace("\n", " "))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="answer the bench's commands on stdin")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (CUDA eager)")
    args = parser.parse_args()
    if not args.serve:
        parser.error("this script is driven by build/apps/bench; run it with --serve")
    serve(args.threads, args.device)


if __name__ == "__main__":
    main()
