"""Equivariant message passing (NequIP-like) and the irreps helpers it shares.

A layer updates node features ``h_i`` with messages from neighbours ``j`` within the
cutoff::

    m_ij = TP_uvu( W_in h_j , Y(r_hat_ij) ; w(|r_ij|) ) * u(|r_ij|)
    h_i' = Gate( W_out sum_j m_ij / sqrt(avg_num_neighbors) + SelfTP(h_i, onehot(Z_i)) ) (+ h_i)

``Y`` are e3nn spherical harmonics (component normalization), ``w`` a radial MLP of a
Bessel basis, ``u`` the smooth polynomial envelope, ``TP_uvu`` a channel-wise tensor
product (one weight per channel and path, as in NequIP) and ``Gate`` e3nn's gated
nonlinearity (SiLU on even scalars, tanh on odd scalars, sigmoid gates on ``l > 0``).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import nn

from hamnet.nn.radial import RadialMLP

__all__ = ["feature_irreps", "tp_instructions", "GateActivation", "Interaction", "scatter_sum"]


def feature_irreps(target: o3.Irreps, mul: int) -> o3.Irreps:
    """``mul`` copies of every irrep type in ``target``, plus ``0e``; sorted and simplified.

    Features that must end in ``target`` by a linear map need every irrep type of
    ``target``; ``0e`` carries the invariant information (and feeds the gates).
    """
    types = {ir for _, ir in o3.Irreps(target)} | {o3.Irrep("0e")}
    return o3.Irreps([(mul, ir) for ir in types]).sort().irreps.simplify()


def tp_instructions(
    irreps1: o3.Irreps, irreps2: o3.Irreps, allowed: o3.Irreps, mode: str, max_l_sum: Optional[int] = None
):
    """Paths ``ir1 x ir2 -> ir3`` with ``ir3`` an irrep type of ``allowed``.

    Parameters
    ----------
    mode : {"uvu", "uuu"}
        ``uvu``: ``irreps2`` has multiplicity 1 (spherical harmonics), output keeps the
        channels of ``irreps1``. ``uuu``: channel ``u`` of both inputs gives channel ``u``
        (needs equal multiplicities).
    max_l_sum : int, optional
        Keep only paths with ``l1 + l2 <= max_l_sum``: every output ``L`` up to that is
        still reached, while the costliest paths (cost ~ (2 l1 + 1)(2 l2 + 1)(2 l3 + 1))
        are dropped.

    Returns
    -------
    irreps_out : o3.Irreps
        Sorted (not simplified) output irreps, one entry per path.
    instructions : list of tuple
        For :class:`e3nn.o3.TensorProduct`, every path weighted.
    """
    allowed_types = {ir for _, ir in o3.Irreps(allowed)}
    out, instr = [], []
    for i, (mul1, ir1) in enumerate(irreps1):
        for j, (mul2, ir2) in enumerate(irreps2):
            if mode == "uuu" and mul1 != mul2:
                raise ValueError(f"'uuu' paths need equal multiplicities, got {mul1} and {mul2}")
            if mode == "uvu" and mul2 != 1:
                raise ValueError(f"'uvu' paths here need multiplicity 1 on the right, got {mul2}")
            if max_l_sum is not None and ir1.l + ir2.l > max_l_sum:
                continue
            for ir3 in ir1 * ir2:
                if ir3 in allowed_types:
                    instr.append((i, j, len(out), mode, True))
                    out.append((mul1, ir3))
    if not out:
        raise ValueError(f"no tensor-product path from {irreps1} x {irreps2} reaches {allowed}")
    irreps_out, perm, _ = o3.Irreps(out).sort()
    instr = [(i, j, perm[k], m, w) for i, j, k, m, w in instr]
    return irreps_out, instr


class GateActivation(nn.Module):
    """Gated nonlinearity producing ``irreps_out`` (scalars first, then ``l > 0``).

    Attributes
    ----------
    irreps_in : o3.Irreps
        What the preceding linear layer must produce: scalars, gates, gated irreps.
    irreps_out : o3.Irreps
        The activated features.
    """

    def __init__(self, irreps_out: o3.Irreps):
        super().__init__()
        irreps_out = o3.Irreps(irreps_out)
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
        acts = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
        self.gate = Gate(scalars, acts, gates, [torch.sigmoid] * len(gates), gated)
        self.irreps_in = self.gate.irreps_in
        self.irreps_out = self.gate.irreps_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(x)


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """``out[k] = sum_{e: index[e] = k} src[e]`` for ``k < n``: ``(E, d) -> (n, d)``."""
    return src.new_zeros((n,) + src.shape[1:]).index_add_(0, index, src)


class Interaction(nn.Module):
    """One equivariant message-passing layer (see the module docstring).

    Parameters
    ----------
    irreps_in : o3.Irreps
        Node features entering the layer.
    irreps_sh : o3.Irreps
        Spherical harmonics of the edge directions.
    irreps_out : o3.Irreps
        Node features leaving the layer (after the gate).
    n_elements : int
        Size of the one-hot element code used by the self-connection.
    n_radial, radial_hidden : int
        Radial basis size and hidden width of the radial MLP.
    avg_num_neighbors : float
        Normalization of the summed messages.
    """

    def __init__(self, irreps_in, irreps_sh, irreps_out, n_elements, n_radial, radial_hidden, avg_num_neighbors):
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_sh = o3.Irreps(irreps_sh)
        self.gate = GateActivation(irreps_out)
        self.irreps_out = self.gate.irreps_out
        mid, instr = tp_instructions(self.irreps_in, self.irreps_sh, self.gate.irreps_in, "uvu")
        self.linear_in = o3.Linear(self.irreps_in, self.irreps_in)
        self.tp = o3.TensorProduct(
            self.irreps_in, self.irreps_sh, mid, instr, shared_weights=False, internal_weights=False
        )
        self.radial = RadialMLP(n_radial, radial_hidden, self.tp.weight_numel)
        # simplify() merges consecutive equal irreps without moving data (e3nn's layout is
        # channel-major per irrep), so the linear map runs a few large matmuls, not one per path.
        self.linear_out = o3.Linear(mid.simplify(), self.gate.irreps_in)
        self.self_connection = o3.FullyConnectedTensorProduct(
            self.irreps_in, o3.Irreps(f"{n_elements}x0e"), self.gate.irreps_in
        )
        self.residual = self.irreps_in == self.irreps_out
        self.norm = 1.0 / math.sqrt(avg_num_neighbors)

    def forward(self, h, onehot, edge_index, sh, rbf, envelope):
        """Update node features.

        Parameters
        ----------
        h : (n_atoms, irreps_in.dim)
        onehot : (n_atoms, n_elements)
        edge_index : (2, n_edges) int64, ``(sender, receiver)``
        sh : (n_edges, irreps_sh.dim)
        rbf : (n_edges, n_radial)
        envelope : (n_edges,)

        Returns
        -------
        (n_atoms, irreps_out.dim)
        """
        src, dst = edge_index
        x = self.linear_in(h)  # [n_atoms, in]
        w = self.radial(rbf) * envelope.unsqueeze(-1)  # [n_edges, weight_numel]
        msg = self.tp(x[src], sh, w)  # [n_edges, mid]
        agg = scatter_sum(msg, dst, h.shape[0]) * self.norm  # [n_atoms, mid]
        y = self.linear_out(agg) + self.self_connection(h, onehot)  # [n_atoms, gate_in]
        out = self.gate(y)  # [n_atoms, out]
        return out + h if self.residual else out
