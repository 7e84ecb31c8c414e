#!/usr/bin/python3
"""tests/golden/make_memory_golden.py -- PyTorch reference outputs and gradients for engram's memory
modules: HebbianMemory, EpisodicBuffer, Reservoir, CRSDCell and the CRSD language model (memory/).

The PyTorch side is apps/bench/torch_ref.py (the bench's twin of memory/*.h), imported, not
copied. torch_ref.py implements only what the bench runs: every module starts from an empty state,
returns no final state, and knows none of the options top_k, recency_window or detach_memory. The
classes below subclass torch_ref's and add exactly those things, written from memory/crsd/hebbian.h,
episodic.h, reservoir.h and crsd.h. Every case whose module torch_ref.py does cover (default
options, empty initial state) is first run through torch_ref's own forward as well, and the two
must agree to 1e-12, so the extensions cannot drift from torch_ref.py unnoticed. The language model
case is torch_ref.CRSDLanguageModel itself.

Each case is one JSON record, in the format of layers.json (make_layer_golden.py):

    name, module, config     which engram module to build and with what options (every option
                             spelled out, nested as in the engram option structs)
    inputs                   named tensors; ids and the episodic importance/age/filled take no
                             gradient
    params, buffers          parameters and buffers (the reservoir's fixed W_in, W_res), named
                             exactly as engram's named_parameters() / named_buffers()
    outputs                  every output; "state.*" are the states after the last step
    grad_outputs             an upstream gradient for every differentiable output (the episodic
                             importance, age and filled have none)
    input_grads, param_grads d(sum_i <output_i, grad_output_i>) / d(input or parameter)
    decision_margin          the smallest gap met by a discrete choice (episodic slot argmin and
                             top-k, Hebbian top-k), see below

Tensors are {"shape", "dtype": "f32"|"i64", "data"}. Inputs, parameters and buffers are drawn in
float32; the reference runs in float64 on those same float32 values and is rounded to float32 once
when written. tests/test_memory_golden.cpp rebuilds every case in engram (in float64 and in
float32), copies parameters and buffers in by name, and compares outputs and gradients.

The modules make discrete choices (which slot to overwrite, which slots or components survive a
top-k). Engram's float32 run must make the same choices as this float64 reference, so every choice
is checked here to win by at least MIN_MARGIN; a case that comes closer is an error (change its
data), never a flaky golden. Rerun after changing a case (the seed is fixed, so the file
regenerates identically):

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/golden/make_memory_golden.py \
        tests/golden/memory.json
"""
import importlib.util
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

from make_layer_golden import randn, tensor_json, write_golden  # same folder: shared helpers

SEED = 20240
MIN_MARGIN = 1e-3  # discrete choices must win by this much (float32 errors here are ~1e-6)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def import_torch_ref():
    """apps/bench/torch_ref.py as a module. It points sys.stdout at stderr when imported (its
    protocol channel must stay clean); that is undone here."""
    path = os.path.join(REPO, "apps", "bench", "torch_ref.py")
    spec = importlib.util.spec_from_file_location("torch_ref", path)
    module = importlib.util.module_from_spec(spec)
    stdout = sys.stdout
    try:
        spec.loader.exec_module(module)
    finally:
        sys.stdout = stdout
    return module


ref = import_torch_ref()

# Discrete-choice margins met by the forward now running (reset per case).
MARGINS = []


def note_margin(gap):
    MARGINS.append(float(gap))


def top_k_gaps(values, k):
    """Gap between the k-th and (k+1)-th largest entry along the last dim, per row."""
    s = values.detach().sort(-1, descending=True).values
    return s[..., k - 1] - s[..., k]


# ------------------------------------------------------------------------------------ helpers
def randomize_constant_params(module):
    """Parameters PyTorch starts at a constant (ones, zeros, the filter's 1 + 0i) get random
    values around it, so their gradients are tested at a generic point."""
    with torch.no_grad():
        for p in module.parameters():
            if p.numel() > 1 and bool((p == p.reshape(-1)[0]).all()):
                p.add_(randn(*p.shape, scale=0.3))


def set_hebbian_params(h, gamma, eta):
    """gamma_logit, eta_raw at the pre-images of gamma, eta (engram's own initialisation)."""
    with torch.no_grad():
        h.gamma_logit.fill_(math.log(gamma / (1 - gamma)))
        h.eta_raw.fill_(math.log(math.expm1(eta)))


def set_reservoir_buffers(r, input_scale, spectral_radius):
    """W_in ~ U(-input_scale, input_scale), W_res = rho Q with Q orthogonal (memory/crsd/reservoir.h)."""
    with torch.no_grad():
        r.w_in.uniform_(-input_scale, input_scale)
        q, rr = torch.linalg.qr(torch.randn(r.w_res.shape, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(rr)).unsqueeze(0)
        r.w_res.copy_((spectral_radius * q).to(torch.float32))


def make_case(name, kind, config, module, inputs, forward, no_grad_inputs=()):
    """Runs `forward(module, inputs)` in float64 and records everything.

    inputs: dict name -> tensor; float32 inputs get gradients unless named in no_grad_inputs.
    forward returns a dict name -> output; outputs that require no gradient get no grad_output.
    """
    module = module.to(torch.float32)
    params = {n: p.detach().clone() for n, p in module.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
    module = module.to(torch.float64)
    run_inputs = {}
    for n, t in inputs.items():
        if t.dtype == torch.float32:
            run_inputs[n] = t.to(torch.float64).requires_grad_(n not in no_grad_inputs)
        else:
            run_inputs[n] = t
    MARGINS.clear()
    outputs = forward(module, run_inputs)
    margin = min(MARGINS) if MARGINS else None
    if margin is not None and not margin >= MIN_MARGIN:
        raise SystemExit(f"case '{name}': a discrete choice wins by only {margin:.3g} < "
                         f"{MIN_MARGIN} (float32 could choose differently): change its data")
    grad_outputs = {n: randn(*y.shape) for n, y in outputs.items() if y.requires_grad}
    loss = sum((outputs[n] * g.to(torch.float64)).sum() for n, g in grad_outputs.items())
    loss.backward()
    zeros_if_none = lambda t, like: t if t is not None else torch.zeros_like(like)  # noqa: E731
    return {
        "name": name,
        "module": kind,
        "config": config,
        "inputs": {n: tensor_json(t) for n, t in inputs.items()},
        "params": {n: tensor_json(p) for n, p in params.items()},
        "buffers": {n: tensor_json(b) for n, b in buffers.items()},
        "outputs": {n: tensor_json(y) for n, y in outputs.items()},
        "grad_outputs": {n: tensor_json(g) for n, g in grad_outputs.items()},
        "input_grads": {n: tensor_json(zeros_if_none(t.grad, t)) for n, t in run_inputs.items()
                        if t.requires_grad},
        "param_grads": {n: tensor_json(zeros_if_none(p.grad, p))
                        for n, p in module.named_parameters()},
        "decision_margin": margin,
    }


def assert_same(got, want, what):
    assert torch.allclose(got, want, rtol=0, atol=1e-12), \
        f"{what}: the extended module differs from torch_ref.py by {(got - want).abs().max():.3g}"


# ----------------------------------------------------- torch_ref's modules, with the engram options
class HebbianMemory(ref.HebbianMemory):
    """+ an initial state h0, the final state, top-k recall and detach_memory (memory/crsd/hebbian.h):
    H_t = gamma H_{t-1} + eta k̂_t v_t^T, r_t = H_t^T q̂_t; detach_memory cuts the gradient
    through H_{t-1} (also into h0); top_k keeps the k largest-|r| components of each recall."""

    def __init__(self, eps, top_k=0, detach_memory=False):
        super().__init__(eps)
        self.top_k, self.detach_memory = top_k, detach_memory

    def run(self, q, k, v, h0=None):
        qn, kn = F.normalize(q, dim=-1, eps=self.eps), F.normalize(k, dim=-1, eps=self.eps)
        gamma, eta = torch.sigmoid(self.gamma_logit), F.softplus(self.eta_raw)
        B, T, dk = q.shape
        H = h0 if h0 is not None else q.new_zeros(B, dk, v.shape[2])
        recalls = []
        for t in range(T):
            prev = H.detach() if self.detach_memory else H
            H = gamma * prev + eta * (kn[:, t, :, None] * v[:, t, None, :])
            recalls.append(torch.bmm(qn[:, t, None, :], H).squeeze(1))
        recall = torch.stack(recalls, 1)
        if h0 is None and self.top_k == 0 and not self.detach_memory:
            with torch.no_grad():
                assert_same(recall, ref.HebbianMemory.forward(self, q, k, v), "HebbianMemory")
        if self.top_k > 0:
            recall = keep_top_k_magnitude(recall, self.top_k)
        return recall, H


def keep_top_k_magnitude(x, k):
    """memory::keep_top_k_magnitude: the k largest-|x| entries of the last dim, the rest zeroed."""
    if k < x.shape[-1]:
        note_margin(top_k_gaps(x.abs(), k).min())
    idx = x.detach().abs().topk(k, dim=-1).indices
    mask = torch.zeros_like(x).scatter_(-1, idx, 1.0)
    return x * mask


class EpisodicBuffer(ref.EpisodicBuffer):
    """+ an initial state, the final state, top_k, recency_window and detach_memory
    (memory/crsd/episodic.h, memory/crsd/episodic.cpp)."""

    def __init__(self, slots, temperature, decay, eps, top_k=0, recency_window=0,
                 detach_memory=False):
        super().__init__(slots, temperature, decay, eps)
        self.top_k, self.recency_window, self.detach_memory = top_k, recency_window, detach_memory

    def initial_state(self, B, dk, dv, like):
        S = self.slots
        return {"keys": like.new_zeros(B, S, dk), "values": like.new_zeros(B, S, dv),
                "importance": like.new_zeros(B, S), "age": like.new_zeros(B, S),
                "filled": like.new_zeros(B, S)}

    def run(self, q, k, v, state=None):
        B, T, dk = q.shape
        st = dict(state) if state is not None else self.initial_state(B, dk, v.shape[2], q)
        recall = torch.stack([self.step(q[:, t], k[:, t], v[:, t], st) for t in range(T)], 1)
        plain_options = self.top_k == 0 and self.recency_window == 0 and not self.detach_memory
        if state is None and plain_options:
            plain = ref.EpisodicBuffer(self.slots, self.temperature, self.decay, self.eps)
            with torch.no_grad():
                assert_same(recall, plain(q, k, v), "EpisodicBuffer")
        return recall, st

    def allowed_slots(self, scores, st):
        """Filled, younger than recency_window, and among the top_k scores (allowed_slots())."""
        with torch.no_grad():
            allowed = st["filled"]
            if self.recency_window > 0:
                allowed = allowed * (st["age"] < self.recency_window).to(allowed.dtype)
            if 0 < self.top_k < scores.shape[1]:
                for b in range(scores.shape[0]):  # the k-th allowed score must beat the next one
                    s = scores[b][allowed[b] > 0]
                    if s.numel() > self.top_k:
                        note_margin(top_k_gaps(s, self.top_k))
                ranked = scores.detach() * allowed + (allowed - 1.0) * 1e9
                idx = ranked.topk(self.top_k, dim=1).indices
                ones = torch.ones_like(idx, dtype=allowed.dtype)
                top = torch.zeros_like(allowed).scatter_add_(1, idx, ones)
                allowed = allowed * top
        return allowed

    def step(self, q, k, v, st):
        # read, as torch_ref.EpisodicBuffer.step, with the engram mask of allowed slots
        qn = F.normalize(q, dim=-1, eps=self.eps)
        kn_slots = F.normalize(st["keys"], dim=-1, eps=self.eps)
        scores = (kn_slots @ qn.unsqueeze(-1)).squeeze(-1) * (1.0 / self.temperature)
        allowed = self.allowed_slots(scores, st)
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
            for b in range(priority.shape[0]):  # an empty slot (-1, exact) wins by construction
                p = priority[b].sort().values
                if p[0] > -1 and p.numel() > 1:
                    note_margin(p[1] - p[0])
            slot = priority.argmin(1, keepdim=True)
            onehot = torch.zeros_like(filled).scatter_(1, slot, 1.0)
            keep = 1.0 - onehot
            st["importance"] = importance * keep + onehot * novelty.unsqueeze(1)
            st["age"] = age * keep
            st["filled"] = torch.maximum(filled, onehot)
        keep3, hot3 = keep.unsqueeze(-1), onehot.unsqueeze(-1)
        detach = (lambda t: t.detach()) if self.detach_memory else (lambda t: t)
        st["keys"] = detach(st["keys"]) * keep3 + hot3 * detach(k).unsqueeze(1)
        st["values"] = detach(st["values"]) * keep3 + hot3 * detach(v).unsqueeze(1)
        return recall


class Reservoir(ref.Reservoir):
    """+ an initial state s0 and the final state (memory/crsd/reservoir.h)."""

    def run(self, u, s0=None):
        B, T, _ = u.shape
        drive = u @ self.w_in.t()
        s = s0 if s0 is not None else u.new_zeros(B, self.w_res.shape[0])
        states = []
        for t in range(T):
            act = torch.tanh(drive[:, t] + s @ self.w_res.t())
            s = s * (1 - self.leak) + act * self.leak
            states.append(s)
        y = torch.stack(states, 1)
        if s0 is None:
            with torch.no_grad():
                assert_same(y, ref.Reservoir.forward(self, u), "Reservoir")
        return y, s


def cell_meta(cfg):
    """torch_ref's metadata for a CRSD cell, from an engram-style config."""
    return {"d_model": cfg["d_model"], "d_mem": cfg["d_mem"], "reservoir": cfg["reservoir"]["size"],
            "reservoir_leak": cfg["reservoir"]["leak"], "hebbian_eps": cfg["hebbian"]["eps"],
            "slots": cfg["episodic"]["slots"], "temperature": cfg["episodic"]["temperature"],
            "decay": cfg["episodic"]["decay"], "episodic_eps": cfg["episodic"]["eps"],
            "vocab": cfg.get("vocab_size", 1), "layers": cfg.get("layers", 1)}


def is_default_cell(cfg):
    """What torch_ref.CRSDCell implements: no top-k, no window, nothing detached, every memory
    on."""
    h, e = cfg["hebbian"], cfg["episodic"]
    return (h["top_k"] == 0 and not h["detach_memory"] and e["top_k"] == 0 and
            e["recency_window"] == 0 and not e["detach_memory"] and cfg["use_hebbian"] and
            cfg["use_episodic"] and cfg["use_spectral"])


def init_cell(cell, cfg):
    """Random parameters and reservoir buffers for a torch_ref.CRSDCell (children as in engram)."""
    randomize_constant_params(cell)
    h, r = cfg["hebbian"], cfg["reservoir"]
    set_hebbian_params(cell.hebbian, h["gamma_init"], h["eta_init"])
    with torch.no_grad():
        cell.hebbian.gamma_logit.add_(randn(()).item() * 0.3)
        cell.hebbian.eta_raw.add_(randn(()).item() * 0.3)
    set_reservoir_buffers(cell.reservoir, r["input_scale"], r["spectral_radius"])


class CRSDCell(ref.CRSDCell):
    """torch_ref.CRSDCell with the extended children, + the whole state (reservoir, hidden,
    Hebbian matrix, episodic slots) in and out, and the ablations (memory/crsd/crsd.h)."""

    def __init__(self, cfg):
        super().__init__(cell_meta(cfg))
        self.cfg = cfg
        h, e = cfg["hebbian"], cfg["episodic"]
        # same child names and positions as torch_ref's (and engram's), so state dicts line up
        r = cfg["reservoir"]
        self.reservoir = Reservoir(cfg["d_model"], r["size"], r["leak"])
        self.hebbian = HebbianMemory(h["eps"], h["top_k"], h["detach_memory"])
        self.episodic = EpisodicBuffer(e["slots"], e["temperature"], e["decay"], e["eps"],
                                       e["top_k"], e["recency_window"], e["detach_memory"])

    def run(self, u, state=None):
        """u [B, T, C], state: dict of "reservoir", "hidden", "hebbian", "episodic.*" or None (the
        empty state) -> y [B, T, C], the state after the last step."""
        state = state or {}
        cfg, (B, T, C), M = self.cfg, u.shape, self.cfg["d_mem"]
        s, s_T = self.reservoir.run(u, state.get("reservoir"))
        q, k, v = self.q_proj(u), self.k_proj(u), self.v_proj(u)
        H = state.get("hebbian", u.new_zeros(B, M, M))
        r_hebb = r_epi = u.new_zeros(B, T, M)
        if cfg["use_hebbian"]:
            r_hebb, H = self.hebbian.run(q, k, v, state.get("hebbian"))
        epi = {n[9:]: t for n, t in state.items() if n.startswith("episodic.")} or None
        epi_T = epi or self.episodic.initial_state(B, M, M, u)
        if cfg["use_episodic"]:
            r_epi, epi_T = self.episodic.run(q, k, v, epi)
        g = torch.sigmoid(self.gate(torch.cat([u, r_hebb, r_epi], -1)))
        m = g * r_hebb + (1 - g) * r_epi
        a = torch.sigmoid(self.retain(torch.cat([u, m], -1)))
        c = torch.tanh(self.candidate(torch.cat([u, s, m], -1)))
        b = (1 - a) * c
        h = state.get("hidden", u.new_zeros(B, C))
        hs = []
        for t in range(T):
            h = a[:, t] * h + b[:, t]
            hs.append(h)
        h = torch.stack(hs, 1)
        y = h + self.spectral(h) if cfg["use_spectral"] else h
        if not state and is_default_cell(cfg):
            with torch.random.fork_rng(devices=[]):  # building it must not shift the data drawn
                plain = ref.CRSDCell(cell_meta(cfg)).to(u.dtype)
            plain.load_state_dict(self.state_dict(), strict=True)
            with torch.no_grad():
                assert_same(y, plain(u), "CRSDCell")
        out = {"reservoir": s_T, "hidden": hs[-1], "hebbian": H}
        out.update({"episodic." + n: t for n, t in epi_T.items()})
        return y, out


# ------------------------------------------------------------------------------------ the cases
def hebbian_options(**kw):
    o = {"gamma_init": 0.9, "eta_init": 0.5, "top_k": 0, "detach_memory": False, "eps": 1e-6,
         "chunk": 16}
    o.update(kw)
    return o


def episodic_options(**kw):
    o = {"slots": 32, "temperature": 0.1, "decay": 0.99, "top_k": 0, "recency_window": 0,
         "detach_memory": False, "eps": 1e-6}
    o.update(kw)
    return o


def reservoir_options(**kw):
    o = {"size": 128, "spectral_radius": 0.9, "leak": 0.5, "input_scale": 0.5}
    o.update(kw)
    return o


def episodic_state(B, S, dk, dv, filled, importance, age):
    """A partly or fully filled buffer: random keys/values in the filled slots, zeros elsewhere."""
    f = torch.tensor(filled, dtype=torch.float32)
    return {"state.keys": randn(B, S, dk) * f.unsqueeze(-1),
            "state.values": randn(B, S, dv) * f.unsqueeze(-1),
            "state.importance": torch.tensor(importance, dtype=torch.float32) * f,
            "state.age": torch.tensor(age, dtype=torch.float32) * f,
            "state.filled": f}


NO_GRAD_EPISODIC = ("state.importance", "state.age", "state.filled")


def build_cases():
    cases = []

    # ---- HebbianMemory: q, k [B, T, d_k], v [B, T, d_v]; d_k != d_v catches transposed states
    def hebbian_case(name, B, T, dk, dv, opts, with_h0):
        h = HebbianMemory(opts["eps"], opts["top_k"], opts["detach_memory"])
        set_hebbian_params(h, opts["gamma_init"], opts["eta_init"])
        with torch.no_grad():  # off the init point, so gamma and eta are generic values
            h.gamma_logit.add_(0.4)
            h.eta_raw.add_(-0.3)
        inputs = {"q": randn(B, T, dk), "k": randn(B, T, dk), "v": randn(B, T, dv)}
        if with_h0:
            inputs["h0"] = randn(B, dk, dv, scale=0.5)

        def forward(m, i):
            recall, state = m.run(i["q"], i["k"], i["v"], i.get("h0"))
            return {"recall": recall, "state": state}

        cases.append(make_case(name, "HebbianMemory", {"d_k": dk, "d_v": dv, "options": opts}, h,
                               inputs, forward))

    hebbian_case("hebbian_empty_state", 2, 6, 3, 4, hebbian_options(), False)
    # chunk 3 over 7 steps: the backward recomputes three chunks, the last one short
    hebbian_case("hebbian_initial_state_chunked", 2, 7, 3, 4, hebbian_options(chunk=3), True)
    hebbian_case("hebbian_top2_detached", 2, 5, 4, 3,
                 hebbian_options(top_k=2, detach_memory=True, chunk=2), True)

    # ---- EpisodicBuffer: more steps than slots, so filled slots get replaced by priority
    def episodic_case(name, B, T, dk, dv, opts, state=None):
        m = EpisodicBuffer(opts["slots"], opts["temperature"], opts["decay"], opts["eps"],
                           opts["top_k"], opts["recency_window"], opts["detach_memory"])
        inputs = {"q": randn(B, T, dk), "k": randn(B, T, dk), "v": randn(B, T, dv)}
        inputs.update(state or {})

        def forward(mod, i):
            st = {n[6:]: t for n, t in i.items() if n.startswith("state.")} or None
            recall, st = mod.run(i["q"], i["k"], i["v"], st)
            out = {"recall": recall}
            out.update({"state." + n: t for n, t in st.items()})
            return out

        cases.append(make_case(name, "EpisodicBuffer", {"d_k": dk, "d_v": dv, "options": opts}, m,
                               inputs, forward, NO_GRAD_EPISODIC))

    episodic_case("episodic_empty_start", 2, 7, 3, 4,
                  episodic_options(slots=3, temperature=0.5, decay=0.9))
    episodic_case("episodic_top2_recency_from_state", 2, 6, 3, 4,
                  episodic_options(slots=4, temperature=0.25, decay=0.8, top_k=2, recency_window=4),
                  episodic_state(2, 4, 3, 4, [[1, 1, 0, 0], [1, 1, 1, 1]],
                                 [[0.7, 0.3, 0, 0], [0.5, 0.9, 0.2, 0.65]],
                                 [[2, 0, 0, 0], [3, 1, 5, 2]]))
    episodic_case("episodic_detached_default_tau", 2, 5, 3, 3,
                  episodic_options(slots=3, detach_memory=True),
                  episodic_state(2, 3, 3, 3, [[1, 0, 0], [1, 1, 1]],
                                 [[0.6, 0, 0], [0.4, 0.8, 0.1]], [[1, 0, 0], [2, 0, 1]]))

    # ---- Reservoir: fixed buffers, gradient only to the input (and the initial state)
    def reservoir_case(name, B, T, C, opts, with_s0):
        m = Reservoir(C, opts["size"], opts["leak"])
        set_reservoir_buffers(m, opts["input_scale"], opts["spectral_radius"])
        inputs = {"u": randn(B, T, C)}
        if with_s0:
            inputs["s0"] = randn(B, opts["size"], scale=0.5)

        def forward(mod, i):
            states, s = mod.run(i["u"], i.get("s0"))
            return {"states": states, "state": s}

        cases.append(make_case(name, "Reservoir", {"input_size": C, "options": opts}, m, inputs,
                               forward))

    reservoir_case("reservoir_empty_state", 2, 5, 3, reservoir_options(size=6), False)
    reservoir_case("reservoir_initial_state", 2, 4, 4,
                   reservoir_options(size=5, spectral_radius=0.7, leak=0.3, input_scale=0.8), True)

    # ---- CRSDCell: every state tensor in and out
    def cell_config(C, M, R, S, hebbian=None, episodic=None, **flags):
        cfg = {"d_model": C, "d_mem": M, "reservoir": reservoir_options(size=R),
               "hebbian": hebbian or hebbian_options(),
               "episodic": episodic or episodic_options(slots=S),
               "use_hebbian": True, "use_episodic": True, "use_spectral": True}
        cfg.update(flags)
        return cfg

    def cell_state(B, C, M, R, S):
        st = {"state.reservoir": randn(B, R, scale=0.5), "state.hidden": randn(B, C, scale=0.5),
              "state.hebbian": randn(B, M, M, scale=0.3)}
        epi = episodic_state(B, S, M, M, [[1, 1, 0], [1, 1, 1]], [[0.8, 0.35, 0], [0.3, 0.9, 0.55]],
                             [[1, 0, 0], [2, 0, 1]])
        st.update({"state.episodic." + n[6:]: t for n, t in epi.items()})
        return st

    def cell_case(name, B, T, cfg, state=None):
        cell = CRSDCell(cfg)
        init_cell(cell, cfg)
        inputs = {"u": randn(B, T, cfg["d_model"])}
        inputs.update(state or {})

        def forward(m, i):
            st = {n[6:]: t for n, t in i.items() if n.startswith("state.")}
            y, st = m.run(i["u"], st)
            out = {"y": y}
            out.update({"state." + n: t for n, t in st.items()})
            return out

        no_grad = tuple("state.episodic." + n[6:] for n in NO_GRAD_EPISODIC)
        cases.append(make_case(name, "CRSDCell", cfg, cell, inputs, forward, no_grad))

    cell_case("crsd_cell_empty_state", 2, 5, cell_config(6, 3, 5, 3))
    # odd d_model (no Nyquist bin), top-k in both memories, a recency window, a short chunk
    cell_case("crsd_cell_from_state_topk", 2, 6,
              cell_config(5, 3, 4, 3, hebbian=hebbian_options(top_k=2, chunk=2, gamma_init=0.8),
                          episodic=episodic_options(slots=3, temperature=0.3, top_k=2,
                                                    recency_window=3)),
              cell_state(2, 5, 3, 4, 3))
    cell_case("crsd_cell_hebbian_only_no_spectral", 2, 4,
              cell_config(4, 2, 3, 2, use_episodic=False, use_spectral=False))
    cell_case("crsd_cell_episodic_only_detached", 1, 5,
              cell_config(4, 3, 3, 2, episodic=episodic_options(slots=2, detach_memory=True),
                          use_hebbian=False))

    # ---- the CRSD language model: torch_ref.CRSDLanguageModel itself (its options are the
    # defaults of memory::CRSDConfig except for the sizes, which are what apps/common/lm.cpp's
    # make_language_model sets from model.*)
    lm_cfg = cell_config(6, 3, 5, 4)
    lm_cfg.update({"vocab_size": 11, "layers": 2})
    lm = ref.CRSDLanguageModel(cell_meta(lm_cfg))
    randomize_constant_params(lm)
    for cell in lm.cells:
        init_cell(cell, lm_cfg)
    ids = torch.randint(0, 11, (2, 6), dtype=torch.int64)

    def lm_forward(m, i):
        logits = m(i["ids"])
        # The same model through the extended cells: equal logits, and the margins of the
        # episodic slot choices (torch_ref's own buffer does not report them).
        with torch.no_grad():
            x = m.embed(i["ids"])
            for cell in m.cells:
                with torch.random.fork_rng(devices=[]):
                    twin = CRSDCell(lm_cfg).to(x.dtype)
                twin.load_state_dict(cell.state_dict(), strict=True)
                x, _ = twin.run(x)
            assert_same(m.head(m.norm(x)), logits, "CRSDLanguageModel")
        return {"logits": logits}

    cases.append(make_case("crsd_lm_2layer", "CRSDLanguageModel", lm_cfg, lm, {"ids": ids},
                           lm_forward))
    return cases


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "memory.json")
    torch.manual_seed(SEED)
    cases = build_cases()
    doc = {
        "generator": "tests/golden/make_memory_golden.py",
        "reference": "apps/bench/torch_ref.py",
        "torch_version": torch.__version__,
        "seed": SEED,
        "cases": cases,
    }
    write_golden(out_path, doc)
    print(f"wrote {len(cases)} memory cases to {out_path}")


if __name__ == "__main__":
    main()
