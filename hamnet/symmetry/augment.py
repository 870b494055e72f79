"""Rotated copies of batches: data augmentation and back-rotated predictions.

* :func:`rotate_batch` rotates each molecule of a training batch, inputs and target
  blocks (``F -> D F D^T``); the training loop applies it at every step when
  ``augment.rotations`` is on (the default for the unconstrained ``backbone: pet``).
* :func:`back_rotated` runs a model on rotated copies of a batch and rotates the
  predicted blocks back, ``D^T B(R x) D``: the common step of test-time averaging
  (:mod:`hamnet.symmetry.averaging`) and of the equivariance error
  (:mod:`hamnet.symmetry.error`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis
from hamnet.symmetry.grids import padded_rotations

__all__ = ["rotate_batch", "back_rotated", "MAX_ATOMS"]

MAX_ATOMS = 4096  # atoms per forward pass when rotated copies of a batch are stacked


def _rotate_blocks(D: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """``D_k B_k D_k^T`` for matching leading dims."""
    return D @ blocks @ D.transpose(-1, -2)


def rotate_batch(batch: dict, basis: OrbitalBasis, rotations) -> dict:
    """A copy of ``batch`` with molecule ``m`` rotated by ``rotations[m]`` (``(n_mol, 3, 3)``).

    Positions go to ``R x``; target blocks, if present, to ``D B D^T`` with ``D`` the
    padded rotation of ``R`` -- exactly the data of the rotated molecule, because
    ``F(R x) = D F(x) D^T`` for a Fock matrix (tested against PySCF in test_basis).
    """
    R = torch.as_tensor(rotations, dtype=torch.float64)
    n_mol = len(batch[GK.PTR]) - 1
    if R.shape != (n_mol, 3, 3):
        raise ValueError(f"rotate_batch needs one 3x3 rotation per molecule ({n_mol}), got {tuple(R.shape)}")
    out = dict(batch)
    mol_of_atom = batch[GK.BATCH].cpu()
    pos = batch[GK.POS]
    Ra = R[mol_of_atom].to(device=pos.device, dtype=pos.dtype)  # [n_atoms, 3, 3]
    out[GK.POS] = (Ra @ pos.unsqueeze(-1)).squeeze(-1)
    if GK.TARGET_DIAG in batch or GK.TARGET_OFFDIAG in batch:
        D = padded_rotations(basis, R)  # [n_mol, n_pad, n_pad]
        mol_of_pair = mol_of_atom[batch[GK.PAIR_INDEX][0].cpu()]
        for key, mol in ((GK.TARGET_DIAG, mol_of_atom), (GK.TARGET_OFFDIAG, mol_of_pair)):
            if key in batch:
                t = batch[key]
                out[key] = _rotate_blocks(D[mol].to(device=t.device, dtype=t.dtype), t)
    return out


def _replicate(batch: dict, positions: Sequence[torch.Tensor]) -> dict:
    """``len(positions)`` copies of an input batch, copy ``k`` with positions ``positions[k]``."""
    k = len(positions)
    n_atoms, n_pairs, n_mol = len(batch[GK.Z]), batch[GK.PAIR_INDEX].shape[1], len(batch[GK.PTR]) - 1
    ar = torch.arange(k, device=batch[GK.Z].device)
    return {
        GK.Z: batch[GK.Z].repeat(k),
        GK.POS: torch.cat(list(positions)),
        GK.BATCH: (batch[GK.BATCH][None] + n_mol * ar[:, None]).reshape(-1),
        GK.PTR: torch.cat([batch[GK.PTR][:1], (batch[GK.PTR][1:][None] + n_atoms * ar[:, None]).reshape(-1)]),
        GK.PAIR_PTR: torch.cat(
            [batch[GK.PAIR_PTR][:1], (batch[GK.PAIR_PTR][1:][None] + n_pairs * ar[:, None]).reshape(-1)]
        ),
        GK.PAIR_INDEX: (batch[GK.PAIR_INDEX][:, None] + n_atoms * ar[None, :, None]).reshape(2, -1),
        GK.PAIR_REVERSE: (batch[GK.PAIR_REVERSE][None] + n_pairs * ar[:, None]).reshape(-1),
    }


def back_rotated(model, batch: dict, rotations: np.ndarray, D: torch.Tensor):
    """Blocks of ``model`` on copies of ``batch`` rotated by ``rotations`` (``(k, 3, 3)``),
    rotated back: ``D^T B(R x) D``. Returns (diag ``(k, n_atoms, ...)``, offdiag ``(k, n_pairs, ...)``, out)."""
    pos = batch[GK.POS].to(model.dtype)
    Rt = torch.as_tensor(rotations, dtype=pos.dtype, device=pos.device)
    rep = _replicate(batch, [pos @ R.T for R in Rt])
    out = model(rep)
    k = len(rotations)
    Dk = D.to(device=pos.device, dtype=out[GK.DIAG].dtype)[:, None]  # [k, 1, n_pad, n_pad]
    n_pad = out[GK.DIAG].shape[-1]
    diag = out[GK.DIAG].reshape(k, -1, n_pad, n_pad)
    off = out[GK.OFFDIAG].reshape(k, -1, n_pad, n_pad)
    DkT = Dk.transpose(-1, -2)
    return DkT @ diag @ Dk, DkT @ off @ Dk, out
