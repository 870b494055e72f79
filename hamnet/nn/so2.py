"""Edge-aligned SO(2) convolutions (eSCN-style): equivariant messages without full tensor products.

For an edge (or atom pair) with direction ``r_hat``, let ``R_e`` be a proper rotation with
``R_e r_hat = y_hat`` (e3nn's polar axis) and ``D_l = D_l(R_e)`` its exact real Wigner
matrices. In the edge frame a tensor product of features with ``Y(r_hat)`` only couples
components of equal ``|m|``, so a convolution becomes::

    x~ = D(R_e) x                         rotate into the edge frame, per l
    y~_m = W_m(x~_m) for m = 0..L         m-blocked linear maps (below)
    y = D(R_e)^T y~                       rotate back

``W_0`` is a free linear map of the ``m = 0`` components; for ``m > 0`` the pair
``(x_{+m}, x_{-m})`` maps like a complex number, ``y_+ = A x_+ - B x_-``,
``y_- = A x_- + B x_+``, which commutes with rotations about ``y_hat``, so the result does not
depend on the free choice of ``R_e``. Reflections through planes containing the axis
(needed for inversion equivariance) act on an irrep ``(l, p)`` with the sign
``s = p (-1)^l`` on ``m = 0`` and ``(+s, -s)`` on ``(+m, -m)``: ``W_0`` and ``A`` may only
join irreps of equal ``s``, ``B`` only irreps of opposite ``s``. The cost per edge is
``O(L^3)`` (rotations) plus a few dense matmuls, instead of ``O(L^6)`` for the
path-by-path tensor products of :mod:`hamnet.nn.interaction`.

Distances enter through a radial MLP that scales every input ``(l, channel)`` row and adds
a distance-dependent bias to the ``m = 0`` components of ``s = +1`` outputs (the edge
direction itself, ``Y_l(r_hat)``, in the global frame).

Backbone (:class:`SO2Model`, ``backbone: so2``): element embedding, :class:`SO2Interaction`
layers (message ``D^T W(D (P h_i + Q h_j))`` per edge, gated), :class:`SO2PairBlock` for the
off-diagonal blocks (two SO(2) maps with a gate between them, in the pair frame),
optional TraceGrad (after every layer or the last, and on the final pair features, as in
:mod:`hamnet.nn.equivariant`), and the heads and batch contract of that module. This is
the default backbone (:data:`hamnet.nn.config.DEFAULT_BACKBONE`). Pairs and edges come from an O(N) neighbour search
(:mod:`hamnet.nn.sparse_pairs`); with ``pair_cutoff`` only pairs within it get a block,
and :meth:`SO2Model.predict` assembles them straight into ``(nao, nao)``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from e3nn import o3
from e3nn.math import normalize2mom
from pyscf import gto
from torch import nn

from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis
from hamnet.graph import geometry_of
from hamnet.molecule import validate_geometry
from hamnet.nn.base import ModelBase
from hamnet.nn.embedding import ElementEmbedding
from hamnet.nn.equivariant import EquivariantModel
from hamnet.nn.interaction import feature_irreps, scatter_sum
from hamnet.nn.radial import BesselBasis, PolynomialCutoff, RadialMLP
from hamnet.nn.sparse_pairs import SparseAssembler, dense_pair_rows, neighbor_pairs

__all__ = ["edge_frames", "WignerD", "LLayout", "FastGate", "SO2Linear", "SO2Interaction", "SO2PairBlock", "SO2Model"]


# ---- frames and rotations ------------------------------------------------------------------


def edge_frames(vec: torch.Tensor) -> torch.Tensor:
    """``(E, 3)`` nonzero vectors -> ``(E, 3, 3)`` proper rotations ``R`` with ``R r_hat = y_hat``.

    Rows are ``(e1, r_hat, e1 x r_hat)`` with ``e1`` the part of ``x_hat`` (``z_hat`` for
    vectors near the x axis) orthogonal to ``r_hat``. Any such choice gives the same SO(2)
    convolution; this one is well conditioned.
    """
    y = vec / vec.norm(dim=-1, keepdim=True)  # [E, 3]
    t = torch.zeros_like(y)
    near_x = y[:, 0].abs() > 0.9
    t[:, 0] = (~near_x).to(y.dtype)
    t[:, 2] = near_x.to(y.dtype)
    e1 = t - (t * y).sum(-1, keepdim=True) * y
    e1 = e1 / e1.norm(dim=-1, keepdim=True)
    e3 = torch.cross(e1, y, dim=-1)
    return torch.stack([e1, y, e3], dim=1)  # [E, 3, 3] rows


class WignerD(nn.Module):
    """Real Wigner matrices ``D_l(R)`` (e3nn basis, ``l = 0..lmax``) of many rotations at once.

    ``Y_l(R u) = D_l Y_l(u)`` is solved on fixed points ``u_k`` of the sphere:
    ``D_l^T = pinv(Y_l(U)) Y_l(U R^T)``, exact to round-off in float64 (the spherical
    harmonics are polynomials) and differentiable, with no Euler angles. ``2 lmax + 4``
    points suffice; of a few deterministic draws the best conditioned is kept.
    """

    def __init__(self, lmax: int):
        super().__init__()
        self.lmax = int(lmax)
        self.irreps_sh = o3.Irreps.spherical_harmonics(self.lmax)
        best = None
        for seed in range(32):
            pts = np.random.default_rng(seed).normal(size=(2 * self.lmax + 4, 3))
            pts /= np.linalg.norm(pts, axis=1, keepdims=True)
            y = o3.spherical_harmonics(self.irreps_sh, torch.from_numpy(pts), normalize=False).numpy()  # [n, dim]
            cond = max(np.linalg.cond(y[:, sl]) for sl in self.irreps_sh.slices())
            if best is None or cond < best[0]:
                best = (cond, pts, y)
        if best[0] > 100:
            raise ValueError(f"no well-conditioned sphere points for lmax={self.lmax} (condition {best[0]:.0f})")
        _, pts, y = best
        dtype = torch.get_default_dtype()
        self.register_buffer("points", torch.tensor(pts, dtype=dtype), persistent=False)  # [n, 3]
        for l, sl in zip(range(self.lmax + 1), self.irreps_sh.slices()):
            pinv = np.linalg.pinv(y[:, sl])  # [2l+1, n]
            self.register_buffer(f"pinv_{l}", torch.tensor(pinv, dtype=dtype), persistent=False)

    def forward(self, R: torch.Tensor) -> list:
        """``(E, 3, 3)`` -> list over ``l`` of ``(E, 2l+1, 2l+1)`` (``l = 0``: ones)."""
        rotated = torch.einsum("kj,eij->eki", self.points.to(R.dtype), R)  # [E, n, 3] = U R^T
        y = o3.spherical_harmonics(self.irreps_sh, rotated, normalize=False)  # [E, n, dim]
        out = []
        for l, sl in zip(range(self.lmax + 1), self.irreps_sh.slices()):
            dT = getattr(self, f"pinv_{l}").to(R.dtype) @ y[:, :, sl]  # [E, 2l+1, 2l+1] = D^T
            out.append(dT.transpose(1, 2))
        return out


class LLayout:
    """Per-``l`` view of e3nn features whose irreps are grouped by ``l`` (ascending).

    Attributes
    ----------
    irreps : o3.Irreps
    slices : list of (l, slice, rows)
        Contiguous part of each ``l`` present; reshaped to ``(n, rows, 2l+1)``.
    signs : dict l -> (rows,) array of ``s = p (-1)^l`` per row.
    """

    def __init__(self, irreps):
        self.irreps = o3.Irreps(irreps)
        self.slices, self.signs = [], {}
        start, seen = 0, []
        for mul, ir in self.irreps:
            if seen and ir.l < seen[-1]:
                raise ValueError(f"irreps {self.irreps} are not grouped by ascending l")
            if not seen or ir.l != seen[-1]:
                seen.append(ir.l)
                self.slices.append([ir.l, start, 0])
                self.signs[ir.l] = []
            self.slices[-1][2] += mul
            self.signs[ir.l] += [ir.p * (-1) ** ir.l] * mul
            start += mul * ir.dim
        self.slices = [(l, slice(s, s + rows * (2 * l + 1)), rows) for l, s, rows in self.slices]
        self.signs = {l: np.array(v) for l, v in self.signs.items()}
        self.lmax = seen[-1] if seen else 0
        self.dim = self.irreps.dim

    def rows(self, l: int) -> int:
        return int(len(self.signs.get(l, ())))

    def rotate(self, x: torch.Tensor, D: Sequence[torch.Tensor], inverse: bool = False) -> torch.Tensor:
        """``x -> D x`` per edge (``inverse``: ``D^T x``); ``x`` ``(E, dim)``, ``D`` from :class:`WignerD`."""
        parts = []
        for l, sl, rows in self.slices:
            xl = x[:, sl]
            if l > 0:
                d = D[l] if inverse else D[l].transpose(1, 2)
                xl = torch.bmm(xl.reshape(-1, rows, 2 * l + 1), d).reshape(xl.shape)
            parts.append(xl)
        return torch.cat(parts, dim=-1)


class FastGate(nn.Module):
    """Gated nonlinearity as :class:`hamnet.nn.interaction.GateActivation` (same activations and
    normalization) without e3nn's per-path tensor product: each gated irrep is multiplied by
    its activated gate scalar. ``irreps_in`` is ``scalars + gates + gated`` in that order."""

    def __init__(self, irreps_out):
        super().__init__()
        scalars = o3.Irreps([(m, ir) for m, ir in o3.Irreps(irreps_out) if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in o3.Irreps(irreps_out) if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
        self.irreps_in, self.irreps_out = scalars + gates + gated, scalars + gated  # grouped by l
        self.n_scalars, self.n_gates = scalars.dim, gated.num_irreps
        odd = torch.cat([torch.full((m,), ir.p < 0) for m, ir in scalars]) if scalars.dim else torch.zeros(0, dtype=bool)
        self.register_buffer("odd", odd, persistent=False)  # [n_scalars] tanh (0o) instead of SiLU (0e)
        dims = torch.tensor([ir.dim for m, ir in gated for _ in range(m)], dtype=torch.long)
        gate_of = torch.repeat_interleave(torch.arange(gated.num_irreps), dims)
        self.register_buffer("gate_of", gate_of, persistent=False)  # [gated.dim] gate of each component
        self.silu = normalize2mom(torch.nn.functional.silu)
        self.tanh = normalize2mom(torch.tanh)
        self.sigmoid = normalize2mom(torch.sigmoid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, irreps_in.dim)`` -> ``(n, irreps_out.dim)``."""
        s, g = x[:, : self.n_scalars], x[:, self.n_scalars : self.n_scalars + self.n_gates]
        s = torch.where(self.odd, self.tanh(s), self.silu(s)) if bool(self.odd.any()) else self.silu(s)
        if not self.n_gates:
            return s
        gated = x[:, self.n_scalars + self.n_gates :] * self.sigmoid(g)[:, self.gate_of]
        return torch.cat([s, gated], dim=-1)


# ---- the m-blocked linear map --------------------------------------------------------------


class SO2Linear(nn.Module):
    """Distance-modulated m-blocked linear map in the edge frame (see the module docstring).

    Parameters
    ----------
    irreps_in, irreps_out : o3.Irreps
        Grouped by ascending ``l`` (:class:`LLayout`).
    n_radial, radial_hidden : int
        Size of the distance basis and hidden width of the radial MLP.
    """

    def __init__(self, irreps_in, irreps_out, n_radial: int, radial_hidden: int):
        super().__init__()
        self.lin, self.lout = LLayout(irreps_in), LLayout(irreps_out)
        self.irreps_in, self.irreps_out = self.lin.irreps, self.lout.irreps
        perm_in, perm_out, row_in = self._m_order(self.lin), self._m_order(self.lout), self._row_of(self.lin)
        self.register_buffer("perm_in", torch.tensor(perm_in[0]), persistent=False)  # e3nn -> m layout
        self.register_buffer("inv_out", torch.tensor(np.argsort(perm_out[0])), persistent=False)  # m -> e3nn
        self.register_buffer("row_in", torch.tensor(row_in[perm_in[0]]), persistent=False)  # [dim_in] radial row
        self.blocks_in, self.blocks_out = perm_in[1], perm_out[1]  # per m: (offset, K, signs)
        self.m_max = self.lout.lmax
        # m blocks with inputs and outputs (the first layer's scalars only reach m = 0)
        self.active = [m for m in range(self.m_max + 1) if m < len(self.blocks_in) and self.blocks_in[m][1]]
        self.weights = nn.ParameterDict()
        for m in self.active:
            s_in, (_, k_out, s_out) = self.blocks_in[m][2], self.blocks_out[m]
            same = torch.tensor(s_out[:, None] == s_in[None, :])  # [K_out, K_in]
            fan_in = max(int(same.sum(1).max()), 1) if m == 0 else len(s_in)
            n_mats = 1 if m == 0 else 2  # W_0; (A, B)
            self.weights[str(m)] = nn.Parameter(torch.randn(n_mats, k_out, len(s_in)) / math.sqrt(fan_in))
            mask = torch.stack([same] if m == 0 else [same, ~same]).to(torch.get_default_dtype())
            self.register_buffer(f"mask_{m}", mask, persistent=False)
        nat0 = np.flatnonzero(self.blocks_out[0][2] > 0)  # m = 0 outputs with s = +1
        self.register_buffer("bias_rows", torch.tensor(nat0), persistent=False)
        self.n_rows_in = int(row_in.max()) + 1 if len(row_in) else 0
        self.radial = RadialMLP(n_radial, radial_hidden, self.n_rows_in + len(nat0))

    @staticmethod
    def _m_order(lay: LLayout):
        """e3nn indices in m order (m = 0 rows; then per m: +m rows, -m rows) and per-m blocks."""
        idx, blocks, pos = [], [], 0
        start = {l: sl.start for l, sl, _ in lay.slices}
        for m in range(lay.lmax + 1):
            signs, half = [], {1: [], -1: []}
            for l, sl, rows in lay.slices:
                if l < m:
                    continue
                for c in range(rows):
                    for sgn in ((1,) if m == 0 else (1, -1)):
                        half[sgn].append(start[l] + c * (2 * l + 1) + l + sgn * m)
                signs += list(lay.signs[l])
            idx += half[1] + half[-1]
            blocks.append((pos, len(signs), np.array(signs)))
            pos += len(half[1]) + len(half[-1])
        return np.array(idx, dtype=np.int64), blocks

    @staticmethod
    def _row_of(lay: LLayout) -> np.ndarray:
        """``(dim,)``: the ``(l, channel)`` row of each e3nn component (all ``m`` share it)."""
        row, r = np.zeros(lay.dim, dtype=np.int64), 0
        for l, sl, rows in lay.slices:
            row[sl] = r + np.repeat(np.arange(rows), 2 * l + 1)
            r += rows
        return row

    def forward(self, x: torch.Tensor, rbf: torch.Tensor) -> torch.Tensor:
        """``(E, dim_in)`` features in the edge frame, ``(E, n_radial)`` -> ``(E, dim_out)`` in the edge frame."""
        w = self.radial(rbf)  # [E, n_rows_in + n_bias]
        xm = x[:, self.perm_in] * w[:, self.row_in]  # [E, dim_in] m layout, scaled per (l, channel)
        outs = []
        for m in range(self.m_max + 1):
            if m not in self.active:
                outs.append(x.new_zeros(x.shape[0], self.blocks_out[m][1] * (1 if m == 0 else 2)))
                continue
            off, k, _ = self.blocks_in[m]
            W = self.weights[str(m)] * getattr(self, f"mask_{m}").to(x.dtype)  # [n_mats, K_out, K_in]
            if m == 0:
                outs.append(xm[:, off : off + k] @ W[0].T)  # [E, K_out]
            else:
                A, B = W[0].T, W[1].T  # [K_in, K_out]
                big = torch.cat([torch.cat([A, B], 1), torch.cat([-B, A], 1)], 0)  # [2 K_in, 2 K_out]
                outs.append(xm[:, off : off + 2 * k] @ big)  # [E, 2 K_out]: (+m rows, -m rows)
        y0 = outs[0].index_add(1, self.bias_rows, w[:, self.n_rows_in :])
        y = torch.cat([y0] + outs[1:], dim=-1)  # [E, dim_out] m layout
        return y[:, self.inv_out]


# ---- layers ---------------------------------------------------------------------------------


class SO2Interaction(nn.Module):
    """Message passing with SO(2) convolutions::

        m_ij = D_ij^T W(D_ij (P h_i + Q h_j) ; |r_ij|) u(|r_ij|)
        h_i' = Gate( sum_j m_ij / sqrt(avg_num_neighbors) + SelfTP(h_i, onehot(Z_i)) ) (+ h_i)

    ``P``, ``Q`` mix channels within each irrep type (e3nn ``Linear``); they commute with
    rotations, so they run once per atom, not per edge. Parameters as
    :class:`hamnet.nn.interaction.Interaction`.
    """

    def __init__(self, irreps_in, irreps_out, n_elements, n_radial, radial_hidden, avg_num_neighbors):
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.layout_in = LLayout(self.irreps_in)
        self.gate = FastGate(irreps_out)
        self.irreps_out = self.gate.irreps_out
        self.proj_dst = o3.Linear(self.irreps_in, self.irreps_in)
        self.proj_src = o3.Linear(self.irreps_in, self.irreps_in)
        self.conv = SO2Linear(self.irreps_in, self.gate.irreps_in, n_radial, radial_hidden)
        self.layout_msg = LLayout(self.gate.irreps_in)
        self.self_connection = o3.FullyConnectedTensorProduct(
            self.irreps_in, o3.Irreps(f"{n_elements}x0e"), self.gate.irreps_in
        )
        self.residual = self.irreps_in == self.irreps_out
        self.norm = 1.0 / math.sqrt(avg_num_neighbors)

    def forward(self, h, onehot, edge_index, D, rbf, envelope):
        """``h`` ``(n_atoms, irreps_in.dim)``, edges ``(sender, receiver)``, ``D`` per edge of
        ``pos[sender] - pos[receiver]`` -> ``(n_atoms, irreps_out.dim)``."""
        src, dst = edge_index
        x = self.proj_dst(h)[dst] + self.proj_src(h)[src]  # [E, in]
        x = self.layout_in.rotate(x, D)  # edge frame
        msg = self.layout_msg.rotate(self.conv(x, rbf), D, inverse=True) * envelope[:, None]  # [E, gate_in]
        agg = scatter_sum(msg, dst, h.shape[0]) * self.norm  # [n_atoms, gate_in]
        out = self.gate(agg + self.self_connection(h, onehot))
        return out + h if self.residual else out


class SO2PairBlock(nn.Module):
    """Features of ordered atom pairs: ``g_ij = Gate( D^T W2(Gate(W1(D (P h_i + Q h_j)))) )``, ``W`` in the pair frame."""

    def __init__(self, irreps_node, irreps_out, n_radial, radial_hidden):
        super().__init__()
        self.irreps_node = o3.Irreps(irreps_node)
        self.layout_node = LLayout(self.irreps_node)
        self.proj_i = o3.Linear(self.irreps_node, self.irreps_node)
        self.proj_j = o3.Linear(self.irreps_node, self.irreps_node)
        self.gate_mid = FastGate(irreps_out)
        self.gate = FastGate(irreps_out)
        self.irreps_out = self.gate.irreps_out
        self.conv1 = SO2Linear(self.irreps_node, self.gate_mid.irreps_in, n_radial, radial_hidden)
        self.conv2 = SO2Linear(self.gate_mid.irreps_out, self.gate.irreps_in, n_radial, radial_hidden)
        self.layout_out = LLayout(self.gate.irreps_in)

    def forward(self, h, i, j, D, rbf):
        """``(n_atoms, node)``, pairs ``(i, j)``, ``D`` of ``pos_j - pos_i``, ``(P, n_radial)`` -> ``(P, out)``."""
        x = self.layout_node.rotate(self.proj_i(h)[i] + self.proj_j(h)[j], D)  # [P, node], pair frame
        y = self.conv2(self.gate_mid(self.conv1(x, rbf)), rbf)  # [P, gate_in], pair frame
        return self.gate(self.layout_out.rotate(y, D, inverse=True))


# ---- the model --------------------------------------------------------------------------------


class SO2Model(ModelBase):
    """SO(2)-convolution backbone with sparse pairs (see the module docstring).

    Same batch contract and outputs as :class:`hamnet.nn.equivariant.EquivariantModel`.
    :meth:`predict` and :meth:`predict_batch` skip the dense pair list: they compute the
    blocks of pairs within ``pair_cutoff`` in chunks of :attr:`pair_chunk` pairs and write
    them straight into ``(nao, nao)``.
    """

    equivariant = True
    pair_chunk: int = 16384  # pairs per chunk in predict (bounds the memory of large molecules)

    def __init__(self, basis: OrbitalBasis, config, xc: Optional[str] = None):
        super().__init__(basis, config, xc)
        c = config
        block = basis.block_irreps
        self.lmax = block.lmax
        self.irreps_node = feature_irreps(block, c.num_channels)
        self.embedding = ElementEmbedding(basis.elements, o3.Irreps(f"{c.num_channels}x0e"))
        n_el = self.embedding.n_elements
        self.wigner = WignerD(self.lmax)
        self.rbf = BesselBasis(c.cutoff, c.num_radial)
        self.envelope = PolynomialCutoff(c.cutoff)
        EquivariantModel._build_trunk(  # the layer loop and pair features, as the equivariant backbone
            self,
            lambda irreps: SO2Interaction(irreps, self.irreps_node, n_el, c.num_radial, c.radial_hidden,
                                          c.avg_num_neighbors),
            lambda irreps: SO2PairBlock(irreps, irreps, c.num_pair_radial, c.radial_hidden),
        )
        EquivariantModel._build_tail(self)  # TraceGrad, heads and masks, as every equivariant backbone
        self.assembler = SparseAssembler(basis)

    fit_reference = EquivariantModel.fit_reference
    _layer_loop = EquivariantModel._layer_loop
    _node_tracegrad = EquivariantModel._node_tracegrad
    _node_trace_outputs = EquivariantModel._node_trace_outputs
    _tracegrad_modules = EquivariantModel._tracegrad_modules
    tracegrad_stats = EquivariantModel.tracegrad_stats

    # ---- pieces -----------------------------------------------------------------------------

    def _pairs(self, pos, ptr):
        """Neighbour pairs ``(i, j)`` within ``max(cutoff, pair_cutoff)`` (all pairs if no pair cutoff)."""
        c = self.cfg
        if c.pair_cutoff is None:
            ii, jj = [], []
            for a0, a1 in zip(ptr[:-1].tolist(), ptr[1:].tolist()):
                i, j = OrbitalBasis.pair_index(a1 - a0)
                ii.append(torch.from_numpy(i + a0))
                jj.append(torch.from_numpy(j + a0))
            return torch.cat(ii).to(pos.device), torch.cat(jj).to(pos.device)
        return neighbor_pairs(pos, ptr, max(c.cutoff, c.pair_cutoff))

    def _nodes(self, Z, pos, i, j, D=None):
        """Element index, one-hot, final node features and the hidden layers' TraceGrad ``(t, z)``
        (see :meth:`EquivariantModel._layer_loop`); ``(i, j)`` from :meth:`_pairs`, ``D``
        (optional) their Wigner matrices."""
        elem, onehot, h = self.embedding(Z, self.dtype)  # [n], [n, n_el], [n, mul]
        vec = pos[j] - pos[i]  # [n_found, 3] Angstrom
        length = vec.norm(dim=-1)
        edge = torch.nonzero(length < self.cfg.cutoff).squeeze(-1)
        edge_index = torch.stack([j[edge], i[edge]])  # (sender, receiver)
        D = self.wigner(edge_frames(vec[edge])) if D is None else [d[edge] for d in D]
        rbf, env = self.rbf(length[edge]), self.envelope(length[edge])  # [E, n_rbf], [E]
        h, hidden = self._layer_loop(h, elem, lambda layer, x: layer(x, onehot, edge_index, D, rbf, env))
        return elem, onehot, h, hidden

    def _pair_features(self, h, elem, pos, i, j, D=None):
        """Raw off-diagonal blocks ``(P, n_pad, n_pad)`` (envelope applied) and traces of pairs ``(i, j)``."""
        vec = pos[j] - pos[i]  # [P, 3] from i to j
        length = vec.norm(dim=-1)
        D = self.wigner(edge_frames(vec)) if D is None else D
        g = self.pair_block(h, i, j, D, self.pair_rbf(length))  # [P, irreps_pair]
        t = None
        if self.tracegrad:
            n_el = self.embedding.n_elements
            g, t, _ = self.tracegrad_pair(g, elem[i] * n_el + elem[j])  # [P, pair], [P, n_sp]
        off = self.offdiag_head(g)  # [P, n_pad, n_pad]
        if self.pair_envelope is not None:
            off = off * self.pair_envelope(length)[:, None, None]
        return off, t

    def _kept(self, pos, i, j):
        """Positions in ``(i, j)`` of the pairs that get a block (inside ``pair_cutoff``)."""
        if self.cfg.pair_cutoff is None:
            return torch.arange(len(i), device=i.device)
        return torch.nonzero((pos[j] - pos[i]).norm(dim=-1) < self.cfg.pair_cutoff).squeeze(-1)

    # ---- forward (dense batch contract) -------------------------------------------------------

    def forward(self, batch: dict) -> dict:
        """Blocks (and traces) for a batch; keys as :class:`hamnet.nn.equivariant.EquivariantModel`."""
        Z = batch[GK.Z]
        pos = batch[GK.POS].to(self.dtype)  # [n_atoms, 3] Angstrom
        pair_index, reverse = batch[GK.PAIR_INDEX], batch[GK.PAIR_REVERSE]
        n_pairs = pair_index.shape[1]
        i, j = self._pairs(pos, batch[GK.PTR])
        D = self.wigner(edge_frames(pos[j] - pos[i]))  # shared by edges and pairs
        elem, _, h, hidden = self._nodes(Z, pos, i, j, D)
        keep = self._kept(pos, i, j)
        pi, pj = i[keep], j[keep]
        rows = dense_pair_rows(pi, pj, batch[GK.BATCH], batch[GK.PTR], batch[GK.PAIR_PTR])  # [P]
        f_node, t_node = h, None
        if self.tracegrad:
            f_node, t_node, t_hidden = self._node_tracegrad(h, elem, hidden)  # [n_atoms, node], [n_atoms, n_sp]
        diag = self.diag_head(f_node, elem)  # [n_atoms, n_pad, n_pad]
        off_kept, t_pair = self._pair_features(h, elem, pos, pi, pj, [d[keep] for d in D])
        off = off_kept.new_zeros((n_pairs,) + off_kept.shape[1:]).index_copy(0, rows, off_kept)
        out = self._symmetric_blocks(diag, off, elem, pair_index, reverse)
        if self.tracegrad:
            tT = self.slot_pair_transpose
            ei, ej = elem[pair_index[0]], elem[pair_index[1]]
            inside = torch.zeros(n_pairs, dtype=torch.bool, device=pos.device).index_fill(0, rows, True)
            t_pair = t_pair.new_zeros((n_pairs, t_pair.shape[1])).index_copy(0, rows, t_pair)
            self._node_trace_outputs(out, t_node, t_hidden, elem)
            out[GK.OFFDIAG_TRACE] = 0.5 * (t_pair + t_pair[reverse][:, tT])
            out[GK.OFFDIAG_TRACE_MASK] = self.trace_masks[ei, ej] & inside[:, None]
        return out

    # ---- prediction without the dense pair list ------------------------------------------------

    def predict_batch(self, molecules) -> list:
        """:meth:`ModelBase.predict` for several molecules: sparse pairs, assembled straight into ``(nao, nao)``."""
        Zs, poss = [], []
        for molecule in molecules:
            Z, pos = geometry_of(molecule)
            Z, pos = validate_geometry(Z, pos, self.basis.elements)
            if isinstance(molecule, gto.Mole):
                self.basis.check_mole(molecule)  # BasisError if the Mole's basis is not the model's
            Zs.append(Z)
            poss.append(pos)
        if not Zs:
            return []
        dev = self.device
        ptr = torch.tensor(np.cumsum([0] + [len(z) for z in Zs]), device=dev)
        Z = torch.from_numpy(np.concatenate(Zs)).to(dev)
        pos = torch.from_numpy(np.concatenate(poss)).to(dev, self.dtype)
        with torch.no_grad():  # TraceGrad enables gradients internally where it needs them
            i, j = self._pairs(pos, ptr)
            elem, _, h, hidden = self._nodes(Z, pos, i, j)
            f_node = self._node_tracegrad(h, elem, hidden)[0] if self.tracegrad else h
            diag = self.diag_head(f_node, elem)  # [n_atoms, n_pad, n_pad]
            keep = self._kept(pos, i, j)
            pi, pj = i[keep], j[keep]
            mats = []
            for m in range(len(Zs)):
                a0, a1 = int(ptr[m]), int(ptr[m + 1])
                F, off = self.assembler.new(elem[a0:a1], self.dtype, dev)
                self.assembler.add_diag(F, off, elem[a0:a1], diag[a0:a1])
                sel = torch.nonzero((pi >= a0) & (pi < a1)).squeeze(-1)
                for c0 in range(0, len(sel), self.pair_chunk):
                    s = sel[c0 : c0 + self.pair_chunk]
                    blocks, _ = self._pair_features(h, elem, pos, pi[s], pj[s])
                    self.assembler.add_pairs(F, off, elem[a0:a1], pi[s] - a0, pj[s] - a0, blocks)
                mats.append(self.assembler.finish(F).cpu().numpy().astype(np.float64))
        return mats
