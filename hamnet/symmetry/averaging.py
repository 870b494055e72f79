"""Test-time averaging: any model averaged over a rotation grid is equivariant up to its degree.

:class:`RotationAveraged` predicts ``sum_g w_g D(g)^T H(g x) D(g)`` over a rotation
quadrature (:func:`hamnet.symmetry.grids.rotation_grid`), which removes every
non-equivariant component of the output up to the grid's exact degree; an equivariant
model is left unchanged.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch

from hamnet import graph_keys as GK
from hamnet.graph import collate, to_device
from hamnet.nn.base import ModelBase
from hamnet.symmetry.augment import MAX_ATOMS, back_rotated
from hamnet.symmetry.grids import padded_rotations, rotation_grid

__all__ = ["RotationAveraged", "SPREAD_DIAG", "SPREAD_OFFDIAG"]

SPREAD_DIAG = "diag_spread"  # (n_atoms, n_pad, n_pad) weighted std over the grid, Hartree
SPREAD_OFFDIAG = "offdiag_spread"  # (n_pairs, n_pad, n_pad) same for off-diagonal blocks


class RotationAveraged(ModelBase):
    """``model`` averaged over a rotation grid: ``H(x) = sum_g w_g D(g)^T H_model(g x) D(g)``.

    Behaves like a model (``predict``, ``predict_batch``, ``assemble``, and
    ``forward(batch)`` with the same output keys), so it can stand in for one in
    :func:`hamnet.scf.predict_guess`, :func:`hamnet.train.evaluate.predict_records` or
    :func:`equivariance_error`. The forward output also carries :data:`SPREAD_DIAG` and
    :data:`SPREAD_OFFDIAG`: the weighted standard deviation of the back-rotated blocks
    over the grid (Hartree), a diagnostic of how far the model is from equivariance.

    Parameters
    ----------
    model : ModelBase
        Any hamnet model (equivariant or not); its weights are shared, not copied.
    order, n_inplane, inversion
        The grid, see :func:`rotation_grid`.
    max_atoms : int
        Rotated copies are batched; each forward pass holds at most this many atoms
        (at least one copy of the batch).
    """

    save_refusal = ("a RotationAveraged model is a test-time wrapper and is not saved: save the wrapped "
                    "model (avg.model) and wrap it again after loading")

    def __init__(self, model: ModelBase, order: int = 5, n_inplane: Optional[int] = None,
                 inversion: bool = False, max_atoms: int = MAX_ATOMS):
        super().__init__(model.basis, model.cfg, model.xc)
        self.model = model
        self.grid = rotation_grid(order, n_inplane, inversion)
        self.max_atoms = int(max_atoms)
        self.equivariant = model.equivariant
        self.register_buffer("_D", padded_rotations(model.basis, self.grid.rotations), persistent=False)

    @property
    def n_rotations(self) -> int:
        return len(self.grid)

    def forward(self, batch: dict) -> dict:
        n_atoms = len(batch[GK.Z])
        chunk = max(1, self.max_atoms // max(n_atoms, 1))
        w_all = torch.as_tensor(self.grid.weights, dtype=torch.float64, device=batch[GK.POS].device)
        sums = None  # weighted sums of (B - c) and (B - c)^2, c = the first grid point's blocks
        out0 = None
        for start in range(0, len(self.grid), chunk):
            sl = slice(start, start + chunk)
            diag, off, out = back_rotated(self.model, batch, self.grid.rotations[sl], self._D[sl])
            diag, off = diag.to(torch.float64), off.to(torch.float64)
            if out0 is None:  # the shift keeps the variance free of cancellation
                c_d, c_o = diag[0].clone(), off[0].clone()
                out0 = {GK.DIAG_MASK: out[GK.DIAG_MASK][:n_atoms], GK.OFFDIAG_MASK: out[GK.OFFDIAG_MASK][: off.shape[1]]}
            w = w_all[sl][:, None, None, None]
            xd, xo = diag - c_d, off - c_o
            terms = [(w * xd).sum(0), (w * xd * xd).sum(0), (w * xo).sum(0), (w * xo * xo).sum(0)]
            sums = terms if sums is None else [a + b for a, b in zip(sums, terms)]
        dt = self.dtype
        m_d, v_d, m_o, v_o = sums
        diag, off = c_d + m_d, c_o + m_o
        diag = 0.5 * (diag + diag.transpose(-1, -2))  # exact symmetry (rotating back rounds differently)
        off = 0.5 * (off + off[batch[GK.PAIR_REVERSE]].transpose(-1, -2))
        out0[GK.DIAG] = diag.to(dt)
        out0[GK.OFFDIAG] = off.to(dt)
        out0[SPREAD_DIAG] = (v_d - m_d**2).clamp_min(0).sqrt().to(dt)
        out0[SPREAD_OFFDIAG] = (v_o - m_o**2).clamp_min(0).sqrt().to(dt)
        return out0

    def spread(self, molecules: Iterable) -> dict:
        """Mean and max of the grid spread (weighted std of the back-rotated entries, over
        the entries that exist), micro-Hartree, for molecules as accepted by ``predict``."""
        batch = collate([self._graph(m) for m in molecules])
        with torch.no_grad():
            out = self(to_device(batch, self.device))
        vals = torch.cat([out[SPREAD_DIAG][out[GK.DIAG_MASK]], out[SPREAD_OFFDIAG][out[GK.OFFDIAG_MASK]]])
        return {"mean_uHa": float(vals.mean()) * 1e6, "max_uHa": float(vals.max()) * 1e6}
