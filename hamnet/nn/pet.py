"""An unconstrained backbone: a point-edge transformer (PET) on Cartesian edge vectors.

The network sees the raw Cartesian components of the edge vectors, so nothing in its
architecture makes the predicted Hamiltonian rotate with the molecule: rotational
symmetry is learned from augmented data (``augment.rotations`` in the training config)
and can be restored exactly at test time by averaging over rotations
(:class:`hamnet.symmetry.averaging.RotationAveraged`). It is the "unconstrained" side of the
comparison the PET/ECSE and broken-symmetry papers make; the equivariant side is
:class:`hamnet.nn.equivariant.EquivariantModel`. Permutation symmetry, translation invariance and
the exact symmetry ``H = H^T`` are kept by construction.

Architecture (in the spirit of Pozdnyakov and Ceriotti's PET, simplified)
--------------------------------------------------------------------------
* Each atom ``i`` owns a token sequence: its own node token and one token per
  neighbour ``j`` within ``cutoff``. A neighbour token is an MLP of
  ``(r_ij / cutoff, Bessel(|r_ij|), embedding(Z_j))`` plus a linear map of ``j``'s
  current node feature.
* ``num_layers`` pre-norm transformer layers attend within each atom's sequence; the
  attention to a neighbour is weighted by a smooth cutoff envelope (a ``log envelope``
  bias), so neighbours enter and leave continuously. The node token is the new node
  feature; the neighbour tokens carry over to the next layer (edge messages).
* Diagonal blocks: an MLP of the node feature, plus a per-element reference block.
  Off-diagonal blocks, for every ordered pair: an MLP of
  ``(h_i, h_j, Gaussians(|r_ij|), r_ij / pair_radial_max)``. Both are emitted as padded
  ``(n_pad, n_pad)`` blocks in PySCF order and symmetrized like the equivariant model's.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch
from e3nn import o3
from torch import nn

from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis
from hamnet.graph import cutoff_edges
from hamnet.nn.base import ModelBase
from hamnet.nn.config import PETConfig
from hamnet.nn.embedding import ElementEmbedding
from hamnet.nn.radial import BesselBasis, GaussianBasis, PolynomialCutoff, mlp

__all__ = ["PETHamiltonianModel", "PETLayer", "invariant_part"]


class PETLayer(nn.Module):
    """Pre-norm transformer layer over padded token sequences, with an attention bias.

    Parameters
    ----------
    dim, heads, ff : int
        Token width, attention heads, feed-forward hidden width.
    """

    def __init__(self, dim: int, heads: int, ff: int):
        super().__init__()
        self.heads, self.dh = heads, dim // heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff), nn.SiLU(), nn.Linear(ff, dim))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``x`` (n_seq, T, dim); ``bias`` (n_seq, T) added to the attention logits of each key
        (``-inf`` for padding). Returns the updated ``(n_seq, T, dim)``."""
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, self.dh).unbind(2)  # [n, T, h, dh]
        logits = torch.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(self.dh) + bias[:, None, None, :]
        att = torch.softmax(logits, dim=-1)  # [n, h, T, T]
        y = torch.einsum("nhqk,nkhd->nqhd", att, v).reshape(n, t, d)
        x = x + self.out(y)
        return x + self.ff(self.norm2(x))


def invariant_part(basis: OrbitalBasis, blocks: torch.Tensor) -> torch.Tensor:
    """The rotation-invariant (``0e``) part of padded blocks ``(n, n_pad, n_pad)``.

    It is the average of ``D(R)^T B D(R)`` over all rotations, computed through the
    Clebsch-Gordan decomposition instead of a quadrature.
    """
    irreps = basis.block_irreps
    keep = torch.zeros(irreps.dim, dtype=blocks.dtype)
    for (_, ir), sl in zip(irreps, irreps.slices()):
        if ir == o3.Irrep("0e"):
            keep[sl] = 1.0
    return basis.irreps_to_padded(basis.padded_to_irreps(blocks) * keep)


class PETHamiltonianModel(ModelBase):
    """Unconstrained (not rotation-equivariant) Hamiltonian model; same outputs as
    :class:`hamnet.nn.equivariant.EquivariantModel` without the trace keys. Build it with
    ``hamnet.model.build_model(..., backbone="pet")``.
    """

    equivariant = False

    def __init__(self, basis: OrbitalBasis, config: PETConfig, xc: Optional[str] = None):
        super().__init__(basis, config, xc)
        c = config
        d, n_pad = c.dim, basis.n_pad
        self.embedding = ElementEmbedding(basis.elements, o3.Irreps(f"{d}x0e"))
        n_el = self.embedding.n_elements
        self.rbf = BesselBasis(c.cutoff, c.num_radial)
        self.envelope = PolynomialCutoff(c.cutoff)
        self.edge_embed = mlp(3 + c.num_radial + d, d, d, depth=1)
        self.neighbor = nn.ModuleList([nn.Linear(d, d) for _ in range(c.num_layers)])
        self.layers = nn.ModuleList([PETLayer(d, c.heads, c.ff) for _ in range(c.num_layers)])
        self.norm = nn.LayerNorm(d)
        self.pair_rbf = GaussianBasis(c.pair_radial_max, c.num_pair_radial)
        self.diag_mlp = mlp(d, c.pair_hidden, n_pad * n_pad, depth=2)
        self.offdiag_mlp = mlp(2 * d + c.num_pair_radial + 3, c.pair_hidden, n_pad * n_pad, depth=2)
        self.reference = nn.Parameter(torch.zeros(n_el, n_pad, n_pad))  # Hartree, per-element diagonal block
        self._register_block_masks()

    def _tokens(self, n_atoms: int, receiver: torch.Tensor):
        """Slot of each edge in its receiver's padded sequence, and the sequence length."""
        order = torch.argsort(receiver, stable=True)
        counts = torch.bincount(receiver, minlength=n_atoms)
        start = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(receiver)
        slot[order] = torch.arange(len(receiver), device=receiver.device) - start[receiver[order]]
        length = int(counts.max()) + 1 if len(receiver) else 1
        return slot + 1, length  # slot 0 is the atom's own token

    def forward(self, batch: dict) -> dict:
        c = self.cfg
        Z, pos = batch[GK.Z], batch[GK.POS].to(self.dtype)
        pair_index, reverse = batch[GK.PAIR_INDEX], batch[GK.PAIR_REVERSE]
        elem, onehot, h = self.embedding(Z, self.dtype)  # [n], [n, n_el], [n, d]
        n = len(Z)
        edge_index, edge_vec, edge_len = cutoff_edges(pos, pair_index, c.cutoff)
        sender, receiver = edge_index  # edge_vec = pos[sender] - pos[receiver]
        e = self.edge_embed(torch.cat([edge_vec / c.cutoff, self.rbf(edge_len), h[sender]], dim=-1))  # [E, d]
        slot, length = self._tokens(n, receiver)
        bias = torch.full((n, length), float("-inf"), dtype=h.dtype, device=h.device)
        bias[:, 0] = 0.0
        bias[receiver, slot] = torch.log(self.envelope(edge_len).clamp_min(1e-30))
        for proj, layer in zip(self.neighbor, self.layers):
            x = h.new_zeros((n, length, h.shape[-1]))
            x[:, 0] = h
            x[receiver, slot] = e + proj(h[sender])
            x = layer(x, bias)
            h, e = x[:, 0], x[receiver, slot]
        h = self.norm(h)

        n_pad = self.basis.n_pad
        diag = self.diag_mlp(h).reshape(n, n_pad, n_pad) + self.reference[elem]
        i, j = pair_index
        vec = pos[j] - pos[i]
        dist = vec.norm(dim=-1)
        pf = torch.cat([h[i], h[j], self.pair_rbf(dist), vec / c.pair_radial_max], dim=-1)
        off = self.offdiag_mlp(pf).reshape(-1, n_pad, n_pad)
        return self._symmetric_blocks(diag, off, elem, pair_index, reverse)

    @torch.no_grad()
    def fit_reference(self, graphs: Iterable[dict]) -> None:
        """Per-element reference = the invariant part of the mean diagonal block of the
        training data (see :func:`invariant_part`); graphs need target blocks."""
        n_el, n_pad = self.embedding.n_elements, self.basis.n_pad
        sums = torch.zeros(n_el, n_pad, n_pad, dtype=torch.float64)
        counts = torch.zeros(n_el, dtype=torch.float64)
        for g in graphs:
            if GK.TARGET_DIAG not in g:
                raise ValueError("fit_reference needs graphs with target blocks (molecule_graph(..., fock=...))")
            elem = self.embedding.index(g[GK.Z].to(self.device)).cpu()
            sums.index_add_(0, elem, g[GK.TARGET_DIAG].to(torch.float64).cpu())
            counts.index_add_(0, elem, torch.ones(len(elem), dtype=torch.float64))
        mean = invariant_part(self.basis, sums / counts.clamp_min(1.0)[:, None, None])
        self.reference.copy_(mean.to(dtype=self.dtype, device=self.device))
