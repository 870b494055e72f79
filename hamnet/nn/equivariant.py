"""The equivariant backbone: atomic graph -> orbital blocks -> full symmetric H in PySCF AO order.

Batch contract (keys are constants in :mod:`hamnet.graph_keys`; build batches with
:func:`hamnet.graph.molecule_graph` and :func:`hamnet.graph.collate`)
------------------------------------------------------------------------------------
Inputs of ``model(batch)``::

    Z             (n_atoms,) int64           atomic numbers
    pos           (n_atoms, 3) float         positions, Angstrom (cast to the model dtype)
    batch         (n_atoms,) int64           molecule of each atom
    ptr           (n_mol + 1,) int64         atom offsets of the molecules
    pair_index    (2, n_pairs) int64         ordered pairs (i, j), i != j, same molecule,
                                             per molecule in OrbitalBasis.pair_index order
    pair_reverse  (n_pairs,) int64           row of (j, i) for each pair (i, j)
    pair_ptr      (n_mol + 1,) int64         pair offsets of the molecules

Targets, used by :mod:`hamnet.loss` only (``molecule_graph(..., basis=, fock=)``)::

    target_diag     (n_atoms, n_pad, n_pad)  blocks (i, i) of the target, Hartree
    target_offdiag  (n_pairs, n_pad, n_pad)  blocks (i, j) of the target, Hartree

Outputs (a dict)::

    diag                (n_atoms, n_pad, n_pad) Hartree, exactly symmetric, 0 at padding
    offdiag             (n_pairs, n_pad, n_pad) Hartree, offdiag[pair_reverse] == offdiag^T, 0 at padding
    diag_mask           (n_atoms, n_pad, n_pad) bool, entries that exist for (Z_i, Z_i)
    offdiag_mask        (n_pairs, n_pad, n_pad) bool, entries that exist for (Z_i, Z_j)
    diag_trace          (n_atoms, n_sp)  predicted normalized shell-pair traces, Hartree  [TraceGrad only]
    diag_trace_hidden   (K-1, n_atoms, n_sp) the traces decoded by the TraceGrads after layers
                                         0 .. K-2 [tracegrad_layers "all", tracegrad_decode "own"]
    offdiag_trace       (n_pairs, n_sp)  same for pairs                                  [TraceGrad only]
    diag_trace_mask     (n_atoms, n_sp) bool, shell pairs that exist                     [TraceGrad only]
    offdiag_trace_mask  (n_pairs, n_sp) bool, ... and lie within the pair cutoff         [TraceGrad only]

``n_pad = model.basis.n_pad`` and ``n_sp = model.basis.n_slot_pairs``. The full matrix of
molecule ``m`` is ``model.assemble(out, batch)[m]`` ``(nao, nao)`` in PySCF AO order.
Training: ``loss = hamnet.loss.HamiltonianLoss(model.basis)(model(batch), batch)[GK.LOSS]``.

Architecture
------------
NequIP-like backbone (:mod:`hamnet.nn.interaction`): element embedding, Bessel radial
basis with a smooth polynomial cutoff, spherical harmonics up to ``L_max``, channel-wise
tensor-product convolutions and gated nonlinearities, with every irrep type of the
basis's blocks (``L_max`` and parities are derived from ``basis.block_irreps``). Pair
features for every ordered pair (:mod:`hamnet.nn.pair`). TraceGrad
(:mod:`hamnet.nn.tracegrad`) after every interaction layer (``tracegrad_layers: all``: the
updated ``f + g(v)`` feeds the next layer, and every layer's code ``z`` is supervised by
the node traces, each through its own decoder or all concatenated into one) or after the
last one only (``last``), and on the final pair features; then linear heads to the block
irreps (:mod:`hamnet.nn.heads`). Diagonal blocks are symmetrized as
``(B + B^T)/2`` and off-diagonal ones as ``B_ij <- (B_ij + B_ji^T)/2``, so the assembled H
is exactly symmetric and permutation equivariant.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from e3nn import o3
from torch import nn

from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis
from hamnet.graph import cutoff_edges
from hamnet.nn.base import ModelBase
from hamnet.nn.config import EquivariantConfig
from hamnet.nn.embedding import ElementEmbedding
from hamnet.nn.heads import BlockHead
from hamnet.nn.interaction import Interaction, feature_irreps
from hamnet.nn.pair import PairBlock
from hamnet.nn.radial import BesselBasis, GaussianBasis, PolynomialCutoff, mlp
from hamnet.nn.tracegrad import ShellPairTraces, TraceGrad

__all__ = ["EquivariantModel", "HamiltonianModel"]


class EquivariantModel(ModelBase):
    """Equivariant model of Fock/Kohn-Sham matrices in one AO basis (see the module docstring).

    Parameters
    ----------
    basis : OrbitalBasis
        Orbital layout: elements, PySCF basis, padded blocks.
    config : EquivariantConfig
        Hyperparameters.
    xc : str, optional
        Functional of the training data (provenance; ``None`` if unknown).

    Attributes
    ----------
    basis : OrbitalBasis
    config : dict
        Hyperparameters (``EquivariantConfig.to_dict()``), including ``tracegrad``.
    xc : str or None
    irreps_node, irreps_pair, irreps_sh : e3nn.o3.Irreps
    """

    equivariant = True

    def __init__(self, basis: OrbitalBasis, config: EquivariantConfig, xc: Optional[str] = None):
        super().__init__(basis, config, xc)
        c = config
        block = basis.block_irreps
        self.lmax = block.lmax  # highest L of the blocks, e.g. 4 for d-d in def2-SVP
        self.irreps_sh = o3.Irreps.spherical_harmonics(self.lmax)
        self.irreps_node = feature_irreps(block, c.num_channels)
        self.embedding = ElementEmbedding(basis.elements, o3.Irreps(f"{c.num_channels}x0e"))
        n_el = self.embedding.n_elements
        self.rbf = BesselBasis(c.cutoff, c.num_radial)
        self.envelope = PolynomialCutoff(c.cutoff)
        self._build_trunk(
            lambda irreps: Interaction(irreps, self.irreps_sh, self.irreps_node, n_el, c.num_radial,
                                       c.radial_hidden, c.avg_num_neighbors),
            lambda irreps: PairBlock(irreps, self.irreps_sh, irreps, c.num_pair_radial, c.radial_hidden),
        )
        self._build_tail()

    def _build_trunk(self, make_layer, make_pair_block) -> None:
        """The interaction layers from the embedding's irreps (``make_layer(irreps_in)``),
        then the pair radial basis and ``make_pair_block(irreps_node)``: the part every
        equivariant backbone shares before its tail, whatever its layers are."""
        c = self.cfg
        layers, irreps = [], self.embedding.irreps_out
        for _ in range(c.num_layers):
            layers.append(make_layer(irreps))
            irreps = layers[-1].irreps_out
        self.layers = nn.ModuleList(layers)
        self.irreps_node = irreps
        self.pair_rbf = GaussianBasis(c.pair_radial_max, c.num_pair_radial)
        self.pair_envelope = PolynomialCutoff(c.pair_cutoff) if c.pair_cutoff else None
        self.pair_block = make_pair_block(irreps)
        self.irreps_pair = self.pair_block.irreps_out

    def _build_tail(self) -> None:
        """TraceGrad (if on), the block heads and the mask buffers on ``irreps_node`` and
        ``irreps_pair``: the part every equivariant backbone shares after its features."""
        c, basis, n_el = self.cfg, self.basis, self.embedding.n_elements
        self.traces = ShellPairTraces(basis.slot_pair_id, basis.n_slot_pairs)
        if c.tracegrad:
            tg = dict(
                n_traces=basis.n_slot_pairs, channels=c.tracegrad_channels, hidden=c.tracegrad_hidden,
                depth=c.tracegrad_depth, dim_z=c.tracegrad_dim, alpha=c.tracegrad_alpha, eps=c.tracegrad_eps,
                encoder=c.tracegrad_encoder, combine=c.tracegrad_combine,
            )
            own = c.tracegrad_decode == "own"
            node = dict(n_references=n_el if own else 0, decode=own, **tg)
            n_hidden = len(self.layers) - 1 if c.tracegrad_layers == "all" else 0
            # TraceGrad after layers 0 .. K-2 (their f + g(v) feeds the next layer), then after the last
            self.tracegrad_hidden = nn.ModuleList(
                [TraceGrad(self.layers[k].irreps_out, **node) for k in range(n_hidden)])
            self.tracegrad_node = TraceGrad(self.irreps_node, **node)
            self.tracegrad_pair = TraceGrad(self.irreps_pair, n_references=n_el * n_el, **tg)
            if not own:  # one decoder of the concatenated codes of every node TraceGrad
                self.tracegrad_node_decoder = mlp(c.tracegrad_dim * (n_hidden + 1), c.tracegrad_hidden,
                                                  basis.n_slot_pairs, 1)
                self.tracegrad_node_reference = nn.Parameter(torch.zeros(n_el, basis.n_slot_pairs))
        self.diag_head = BlockHead(self.irreps_node, basis, n_elements=n_el)
        self.offdiag_head = BlockHead(self.irreps_pair, basis)
        self._register_block_masks()
        self.register_buffer("trace_masks", self.traces.mask(self.block_masks), persistent=False)  # [n_el, n_el, n_sp]
        n_slots = len(basis.pad_ls)
        sp = torch.arange(n_slots * n_slots).reshape(n_slots, n_slots)
        self.register_buffer("slot_pair_transpose", sp.T.reshape(-1), persistent=False)  # [n_sp]

    # ---- TraceGrad pieces shared by the equivariant backbones ------------------------------

    def _layer_loop(self, h, elem, run_layer):
        """``h`` through every interaction layer (``run_layer(layer, h)``), with TraceGrad after
        each but the last when ``tracegrad_layers == "all"``; returns ``(h, hidden)`` with
        ``hidden`` the ``(t, z)`` of those TraceGrads."""
        hidden = []
        for k, layer in enumerate(self.layers):
            h = run_layer(layer, h)  # [n_atoms, irreps of layer k]
            if self.tracegrad and k < len(self.tracegrad_hidden):
                h, t, z = self.tracegrad_hidden[k](h, elem)
                hidden.append((t, z))
        return h, hidden

    def _node_tracegrad(self, h, elem, hidden):
        """Final node features and traces: ``(f_node, t_node (n_atoms, n_sp), t_hidden)``,
        ``t_hidden`` ``(K-1, n_atoms, n_sp)`` the traces each hidden layer decodes itself
        (``None`` unless ``tracegrad_decode == "own"`` and ``tracegrad_layers == "all"``)."""
        f, t, z = self.tracegrad_node(h, elem)
        t_hidden = None
        if self.cfg.tracegrad_decode == "concat":
            zs = torch.cat([zk for _, zk in hidden] + [z], dim=-1)  # [n_atoms, K dim_z]
            t = self.tracegrad_node_decoder(zs) + self.tracegrad_node_reference[elem]
        elif hidden:
            t_hidden = torch.stack([tk for tk, _ in hidden])
        return f, t, t_hidden

    def _node_trace_outputs(self, out, t_node, t_hidden, elem) -> None:
        """Write the symmetrized node traces (and the hidden layers' ones) and their mask into ``out``."""
        tT = self.slot_pair_transpose
        out[GK.DIAG_TRACE] = 0.5 * (t_node + t_node[:, tT])  # shell pair (a, b) and (b, a) of H_ii
        if t_hidden is not None:
            out[GK.DIAG_TRACE_HIDDEN] = 0.5 * (t_hidden + t_hidden[:, :, tT])
        out[GK.DIAG_TRACE_MASK] = self.trace_masks[elem, elem]

    def _tracegrad_modules(self) -> dict:
        """``{name: TraceGrad}``: ``layer0`` .. ``layer{K-1}`` (nodes) and ``pair``."""
        if not self.tracegrad:
            return {}
        K = len(self.layers)
        mods = {f"layer{k}": m for k, m in enumerate(self.tracegrad_hidden)}
        mods[f"layer{K - 1}"] = self.tracegrad_node
        mods["pair"] = self.tracegrad_pair
        return mods

    def tracegrad_stats(self) -> dict:
        """``{"v_over_f_layer0": float, "update_over_f_layer0": ..., ..., "v_over_f_pair": ...}``:
        ``|v| / |f|`` and ``|g(v)| / |f|`` of every TraceGrad in the last forward pass."""
        return {f"{k}_{name}": float(v) for name, m in self._tracegrad_modules().items()
                for k, v in m.stats.items()}

    # ---- forward ------------------------------------------------------------------------

    def forward(self, batch: dict) -> dict:
        """Predict blocks (and traces) for a batch; see the module docstring for keys."""
        c = self.cfg
        Z = batch[GK.Z]
        pos = batch[GK.POS].to(self.dtype)  # [n_atoms, 3] Angstrom
        pair_index, reverse = batch[GK.PAIR_INDEX], batch[GK.PAIR_REVERSE]
        n_pairs = pair_index.shape[1]
        elem, onehot, h = self.embedding(Z, self.dtype)  # [n], [n, n_el], [n, mul]

        edge_index, edge_vec, edge_len = cutoff_edges(pos, pair_index, c.cutoff)
        sh = o3.spherical_harmonics(self.irreps_sh, edge_vec, normalize=True, normalization="component")
        rbf, env = self.rbf(edge_len), self.envelope(edge_len)  # [E, n_rbf], [E]
        h, hidden = self._layer_loop(h, elem, lambda layer, x: layer(x, onehot, edge_index, sh, rbf, env))

        pvec = pos[pair_index[1]] - pos[pair_index[0]]  # [n_pairs, 3] from i to j
        plen = pvec.norm(dim=-1)
        keep = None
        if c.pair_cutoff is not None:
            keep = torch.nonzero(plen < c.pair_cutoff).squeeze(-1)  # pairs that get a block
            pvec, plen, pidx = pvec[keep], plen[keep], pair_index[:, keep]
        else:
            pidx = pair_index
        psh = o3.spherical_harmonics(self.irreps_sh, pvec, normalize=True, normalization="component")
        g = self.pair_block(h, pidx, psh, self.pair_rbf(plen))  # [n_kept, irreps_pair]

        f_node, f_pair = h, g
        if c.tracegrad:
            n_el = self.embedding.n_elements
            f_node, t_node, t_hidden = self._node_tracegrad(h, elem, hidden)  # [n_atoms, node], [n_atoms, n_sp]
            pair_el = elem[pidx[0]] * n_el + elem[pidx[1]]  # element-pair id of each kept pair
            f_pair, t_pair, _ = self.tracegrad_pair(g, pair_el)  # [n_kept, pair], [n_kept, n_sp]
        diag = self.diag_head(f_node, elem)  # [n_atoms, n_pad, n_pad]
        off = self.offdiag_head(f_pair)  # [n_kept, n_pad, n_pad]
        if keep is not None:
            off = off * self.pair_envelope(plen)[:, None, None]
            off = off.new_zeros((n_pairs,) + off.shape[1:]).index_copy(0, keep, off)
        out = self._symmetric_blocks(diag, off, elem, pair_index, reverse)
        ei, ej = elem[pair_index[0]], elem[pair_index[1]]
        if c.tracegrad:
            tT = self.slot_pair_transpose
            self._node_trace_outputs(out, t_node, t_hidden, elem)
            out[GK.OFFDIAG_TRACE_MASK] = self.trace_masks[ei, ej]
            if keep is not None:
                t_pair = t_pair.new_zeros((n_pairs, t_pair.shape[1])).index_copy(0, keep, t_pair)
                inside = torch.zeros(n_pairs, dtype=torch.bool, device=plen.device)
                out[GK.OFFDIAG_TRACE_MASK] = out[GK.OFFDIAG_TRACE_MASK] & inside.index_fill(0, keep, True)[:, None]
            out[GK.OFFDIAG_TRACE] = 0.5 * (t_pair + t_pair[reverse][:, tT])  # (a, b) of H_ij is (b, a) of H_ji
        return out

    @torch.no_grad()
    def fit_reference(self, graphs: Iterable[dict]) -> None:
        """Initialize the per-element references from target blocks (call before training).

        * Diagonal head: the mean ``0e`` part of each element's diagonal blocks. These
          rotation-invariant components hold e.g. the core-orbital energies, tens of
          Hartree for fluorine; starting from their mean leaves the network to learn the
          environment-dependent rest.
        * TraceGrad (if on): the mean trace label per element (diagonal blocks) and per
          element pair (off-diagonal blocks), so the trace loss starts balanced with the
          block loss instead of being dominated by the large core traces.

        Graphs need :data:`hamnet.graph_keys.TARGET_DIAG` and :data:`hamnet.graph_keys.TARGET_OFFDIAG`.
        """
        head = self.diag_head
        n_el, n_sp = self.embedding.n_elements, self.basis.n_slot_pairs
        f64 = dict(dtype=torch.float64)
        sums, counts = torch.zeros(n_el, len(head.scalar_index), **f64), torch.zeros(n_el, **f64)
        t_node, t_pair = torch.zeros(n_el, n_sp, **f64), torch.zeros(n_el * n_el, n_sp, **f64)
        n_pair = torch.zeros(n_el * n_el, **f64)
        traces = self.traces  # its buffers follow the input's device
        for g in graphs:
            if GK.TARGET_DIAG not in g or GK.TARGET_OFFDIAG not in g:
                raise ValueError("fit_reference needs graphs with target blocks (molecule_graph(..., fock=...))")
            elem = self.embedding.index(g[GK.Z].to(self.device)).cpu()
            diag = g[GK.TARGET_DIAG].to(torch.float64).cpu()  # [n, n_pad, n_pad]
            x = self.basis.padded_to_irreps(diag)  # [n, dim]
            sums.index_add_(0, elem, x[:, head.scalar_index.cpu()])
            counts.index_add_(0, elem, torch.ones(len(elem), **f64))
            t_node.index_add_(0, elem, traces(diag))
            i, j = g[GK.PAIR_INDEX].cpu()
            pair_el = elem[i] * n_el + elem[j]
            t_pair.index_add_(0, pair_el, traces(g[GK.TARGET_OFFDIAG].to(torch.float64).cpu()))
            n_pair.index_add_(0, pair_el, torch.ones(len(pair_el), **f64))
        like = dict(dtype=self.dtype, device=self.device)
        head.set_reference((sums / counts.clamp_min(1.0)[:, None]).to(**like))
        if self.tracegrad:
            ref_node = (t_node / counts.clamp_min(1.0)[:, None]).to(**like)
            if self.cfg.tracegrad_decode == "concat":
                self.tracegrad_node_reference.data.copy_(ref_node)
            else:
                for m in [*self.tracegrad_hidden, self.tracegrad_node]:
                    m.set_reference(ref_node)
            self.tracegrad_pair.set_reference((t_pair / n_pair.clamp_min(1.0)[:, None]).to(**like))


#: The name hamnet has always used for the equivariant model.
HamiltonianModel = EquivariantModel
