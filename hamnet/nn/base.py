"""What every hamnet Hamiltonian model shares: the batch -> blocks contract and prediction.

A model maps a batch (:func:`hamnet.graph.collate`) to padded orbital blocks (see
:mod:`hamnet.nn.equivariant` for the keys); from those blocks :class:`ModelBase`
assembles full matrices and predicts for molecules. Subclasses implement ``forward``
and end it with :meth:`ModelBase._symmetric_blocks`, the tail every backbone shares:

* :class:`hamnet.nn.equivariant.EquivariantModel` -- the O(3)-equivariant e3nn network (TraceGrad);
* :class:`hamnet.nn.pet.PETHamiltonianModel` -- an unconstrained point-edge transformer;
* :class:`hamnet.symmetry.averaging.RotationAveraged` -- any model averaged over a rotation grid.

Backbones are registered by name in :data:`hamnet.nn.config.BACKBONES`.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import torch
from pyscf import gto
from torch import nn

from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis
from hamnet.graph import collate, geometry_of, molecule_graph, to_device

__all__ = ["ModelBase"]


class ModelBase(nn.Module):
    """Shared part of hamnet's models (not used on its own).

    Attributes
    ----------
    basis : OrbitalBasis
    xc : str or None
        Functional of the training data (provenance; ``None`` if unknown).
    equivariant : bool
        Whether the architecture is O(3)-equivariant by construction.
    """

    equivariant: bool = False
    #: Why :func:`hamnet.model.save_model` refuses this model (None: it can be saved).
    save_refusal: Optional[str] = None

    def __init__(self, basis: OrbitalBasis, config=None, xc: Optional[str] = None):
        super().__init__()
        self.basis = basis
        self.cfg = config
        self.xc = xc

    # ---- properties -------------------------------------------------------------------

    @property
    def config(self) -> dict:
        return self.cfg.to_dict()

    @property
    def backbone(self) -> str:
        return self.cfg.backbone

    @property
    def tracegrad(self) -> bool:
        return bool(self.cfg.tracegrad)

    @property
    def dtype(self) -> torch.dtype:
        return next(p for p in self.parameters() if p.is_floating_point()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- the shared tail of every backbone ------------------------------------------------

    def _register_block_masks(self) -> None:
        """Buffer ``block_masks`` ``(n_el, n_el, n_pad, n_pad)`` bool: entries that exist per element pair."""
        els = self.basis.elements
        masks = torch.tensor(np.array([[self.basis.block_mask(a, b) for b in els] for a in els]))
        self.register_buffer("block_masks", masks, persistent=False)

    def _symmetric_blocks(self, diag, off, elem, pair_index, reverse) -> dict:
        """Symmetrize and mask raw blocks: ``(B + B^T)/2`` on site, ``(B_ij + B_ji^T)/2`` off site.

        ``diag`` ``(n_atoms, n_pad, n_pad)``, ``off`` ``(n_pairs, n_pad, n_pad)``, ``elem``
        ``(n_atoms,)`` element index, ``pair_index`` ``(2, n_pairs)``, ``reverse``
        ``(n_pairs,)``. Returns the output dict with the block and mask keys, so the
        assembled H is exactly symmetric and zero at padding.
        """
        diag = 0.5 * (diag + diag.transpose(-1, -2))
        off = 0.5 * (off + off[reverse].transpose(-1, -2))
        out = {GK.DIAG_MASK: self.block_masks[elem, elem],
               GK.OFFDIAG_MASK: self.block_masks[elem[pair_index[0]], elem[pair_index[1]]]}
        out[GK.DIAG] = diag * out[GK.DIAG_MASK]
        out[GK.OFFDIAG] = off * out[GK.OFFDIAG_MASK]
        return out

    # ---- full matrices ------------------------------------------------------------------

    def assemble(self, out: dict, batch: dict) -> list:
        """Full ``(nao, nao)`` matrices (torch, Hartree, PySCF AO order), one per molecule."""
        ptr, pptr, Z = batch[GK.PTR].tolist(), batch[GK.PAIR_PTR].tolist(), batch[GK.Z]
        mats = []
        for m in range(len(ptr) - 1):
            a0, a1, p0, p1 = ptr[m], ptr[m + 1], pptr[m], pptr[m + 1]
            zs = Z[a0:a1].tolist()
            mats.append(self.basis.assemble(out[GK.DIAG][a0:a1], out[GK.OFFDIAG][p0:p1], zs))
        return mats

    def _graph(self, molecule) -> dict:
        Z, pos = geometry_of(molecule)
        g = molecule_graph(Z, pos, elements=self.basis.elements)  # validates geometry and elements
        if isinstance(molecule, gto.Mole):
            self.basis.check_mole(molecule)  # BasisError if the Mole's basis is not the model's
        return g

    def predict(self, molecule) -> np.ndarray:
        """Predicted Fock/Kohn-Sham matrix of one molecule.

        Parameters
        ----------
        molecule : ase.Atoms, pyscf.gto.Mole or (Z, positions_in_Angstrom)
            A Mole must use the model's basis (spherical AOs).

        Returns
        -------
        numpy.ndarray, shape (nao, nao), float64
            Hartree, PySCF AO order of ``self.basis``, exactly symmetric.

        Raises
        ------
        hamnet.graph.GraphError
            Empty molecule, NaN/inf coordinates, atoms closer than 0.1 Angstrom, or an
            element the model was not built for.
        hamnet.basis.BasisError
            A Mole whose basis differs from the model's.
        """
        return self.predict_batch([molecule])[0]

    def predict_batch(self, molecules: Iterable) -> list:
        """:meth:`predict` for several molecules, run as one batch; a list of arrays."""
        graphs = [self._graph(m) for m in molecules]
        if not graphs:
            return []
        batch = collate(graphs)
        with torch.no_grad():  # TraceGrad enables gradients internally where it needs them
            out = self(to_device(batch, self.device))
        return [F.detach().cpu().numpy().astype(np.float64) for F in self.assemble(out, batch)]
