"""PyTorch references of Mamba's fused ops (autograd/opinfo_ssm_mamba.cpp), for make_golden.py.

Each entry reads the same params keys as its C++ registry entry: which optional inputs follow
the required ones, in the entry's order, and the scan's "softplus" flag ("chunk" changes only
where engram's kernel keeps checkpoints, not the result). The references themselves are in
torch_ssm_mamba.py: the conv as F.conv1d with groups = D over [x0; x], the scan as
selective_scan_ref's sequential loop in engram's [B, T, D] layout.
"""
import torch

from torch_ssm_mamba import causal_conv1d_ref, selective_scan_ref


def _optional(xs, first, p, flags):
    """The inputs after xs[first - 1], one per true flag, None for false ones."""
    out, k = [], first
    for f in flags:
        if p.get(f, False):
            out.append(xs[k])
            k += 1
        else:
            out.append(None)
    return out


def causal_conv1d(xs, p):
    bias, x0 = _optional(xs, 2, p, ["bias", "x0"])
    return causal_conv1d_ref(xs[0], xs[1], bias, x0)


def selective_scan(xs, p):
    # the entry returns [y.flatten(), state.flatten()]
    D, z, delta_bias, h0 = _optional(xs, 5, p, ["D", "z", "delta_bias", "h0"])
    y, last = selective_scan_ref(xs[0], xs[1], xs[2], xs[3], xs[4], D, z, delta_bias,
                                 p.get("softplus", True), h0)
    return torch.cat([y.reshape(-1), last.reshape(-1)])


OPS = {
    "causal_conv1d": causal_conv1d,
    "selective_scan": selective_scan,
}
