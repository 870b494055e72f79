"""What every hamnet Hamiltonian model shares: the batch -> blocks contract and prediction.

A model maps a batch (:func:`hamnet.graph.collate`) to padded orbital blocks (see
:mod:`hamnet.model` for the keys); from those blocks :class:`ModelBase` assembles full
matrices and predicts for molecules. Subclasses implement ``forward``:

* :class:`hamnet.model.HamiltonianModel` -- the O(3)-equivariant e3nn network (TraceGrad);
* :class:`hamnet.nn.pet.PETHamiltonianModel` -- an unconstrained point-edge transformer;
* :class:`hamnet.symmetry.RotationAveraged` -- any model averaged over a rotation grid.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import torch
from pyscf import gto
from torch import nn

from hamnet import keys as K
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

    # ---- full matrices ------------------------------------------------------------------

    def assemble(self, out: dict, batch: dict) -> list:
        """Full ``(nao, nao)`` matrices (torch, Hartree, PySCF AO order), one per molecule."""
        ptr, pptr, Z = batch[K.PTR].tolist(), batch[K.PAIR_PTR].tolist(), batch[K.Z]
        mats = []
        for m in range(len(ptr) - 1):
            a0, a1, p0, p1 = ptr[m], ptr[m + 1], pptr[m], pptr[m + 1]
            zs = Z[a0:a1].tolist()
            mats.append(self.basis.assemble(out[K.DIAG][a0:a1], out[K.OFFDIAG][p0:p1], zs))
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
