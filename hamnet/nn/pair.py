"""Pair features for the off-diagonal blocks of every ordered atom pair ``(i, j)``.

Molecular Hamiltonians are dense, so pairs are not limited to message-passing edges.
For a pair with ``r_ij = pos_j - pos_i`` (Angstrom)::

    a_i, b_j = W_a h_i, W_b h_j
    p_ij = Gate( W_out [ TP_uuu(a_i, b_j ; w1(|r_ij|)) ,  TP_uvu(a_i + b_j, Y(r_hat_ij) ; w2(|r_ij|)) ] )

The channel-wise product ``a_i x b_j`` couples what both atoms know about their
environments (QHNet-like); the second term adds the pair direction itself, which
is all a pair of otherwise isolated atoms has. Distances enter through a Gaussian
basis (an optional pair cutoff is applied by the model to the finished blocks).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from hamnet.nn.interaction import GateActivation, tp_instructions
from hamnet.nn.radial import RadialMLP

__all__ = ["PairBlock"]


class PairBlock(nn.Module):
    """Equivariant features of ordered atom pairs.

    Parameters
    ----------
    irreps_node : o3.Irreps
        Node features (equal multiplicity for every irrep type).
    irreps_sh : o3.Irreps
        Spherical harmonics of the pair direction.
    irreps_out : o3.Irreps
        Pair features (after the gate).
    n_radial, radial_hidden : int
        Size of the pair distance basis and hidden width of the radial MLP.
    """

    def __init__(self, irreps_node, irreps_sh, irreps_out, n_radial, radial_hidden):
        super().__init__()
        self.irreps_node = o3.Irreps(irreps_node)
        self.irreps_sh = o3.Irreps(irreps_sh)
        self.gate = GateActivation(irreps_out)
        self.irreps_out = self.gate.irreps_out
        target = self.gate.irreps_in
        self.linear_a = o3.Linear(self.irreps_node, self.irreps_node)
        self.linear_b = o3.Linear(self.irreps_node, self.irreps_node)
        # l1 + l2 <= L_max still reaches every output L; it keeps the pair product affordable.
        mid_n, instr_n = tp_instructions(self.irreps_node, self.irreps_node, target, "uuu", max_l_sum=target.lmax)
        mid_e, instr_e = tp_instructions(self.irreps_node, self.irreps_sh, target, "uvu")
        self.tp_nodes = o3.TensorProduct(
            self.irreps_node, self.irreps_node, mid_n, instr_n, shared_weights=False, internal_weights=False
        )
        self.tp_dir = o3.TensorProduct(
            self.irreps_node, self.irreps_sh, mid_e, instr_e, shared_weights=False, internal_weights=False
        )
        self.n_w_nodes = self.tp_nodes.weight_numel
        self.radial = RadialMLP(n_radial, radial_hidden, self.tp_nodes.weight_numel + self.tp_dir.weight_numel)
        self.linear_out = o3.Linear((mid_n + mid_e).simplify(), target)  # see Interaction

    def forward(self, h, pair_index, sh, rbf):
        """Pair features.

        Parameters
        ----------
        h : (n_atoms, irreps_node.dim)
        pair_index : (2, n_pairs) int64, rows ``(i, j)``
        sh : (n_pairs, irreps_sh.dim)
            Spherical harmonics of ``pos_j - pos_i``.
        rbf : (n_pairs, n_radial)

        Returns
        -------
        (n_pairs, irreps_out.dim)
        """
        i, j = pair_index
        a = self.linear_a(h)[i]  # [n_pairs, node]
        b = self.linear_b(h)[j]  # [n_pairs, node]
        w = self.radial(rbf)  # [n_pairs, n_w]
        x_nodes = self.tp_nodes(a, b, w[:, : self.n_w_nodes])  # [n_pairs, mid_n]
        x_dir = self.tp_dir(a + b, sh, w[:, self.n_w_nodes :])  # [n_pairs, mid_e]
        return self.gate(self.linear_out(torch.cat([x_nodes, x_dir], dim=-1)))  # [n_pairs, out]
