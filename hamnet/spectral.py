"""Spectral training losses: what the SCF needs from a predicted Hamiltonian.

An SCF started from a predicted Fock matrix ``H`` only sees its occupied subspace (the
guess density) and, through the gap, its lowest virtual orbitals. Two losses train for
those directly, batched over molecules without a Python loop in the step:

* orbital energies: the ``nocc`` occupied and ``n_virtual`` lowest virtual eigenvalues
  of ``H C = S C eps``, mean absolute error in Hartree (the unit of the reported
  ``eps_occ_mae``, and like the block MAE robust to a few large errors);
* the occupied-subspace projector ``P = C_occ C_occ^T`` in the Löwdin-orthogonal basis
  (equivalently the AO density ``X P X^T``, ``X = S^-1/2``):
  ``L_P = ||P_pred - P_ref||_F^2 / (2 nocc)`` per molecule, averaged over molecules.
  For two rank-``nocc`` projectors this equals ``1 - tr(P_pred P_ref) / nocc``, the mean
  squared sine of the principal angles between the two occupied subspaces: dimensionless,
  in ``[0, 1]`` whatever the molecule's size, 0 only for the right subspace. It is computed
  in the difference form, which keeps its precision near 0 where ``nocc - tr`` cancels.

How (:class:`SpectralLoss`): the padded atom-pair blocks of the prediction, the target
and ``X`` are scattered into ``(n_mol, nao_max, nao_max)`` tensors with index maps made
when the graphs are built (:func:`padded_matrices`, keys
:data:`hamnet.graph_keys.SPECTRAL_KEYS`); ``X^T H X`` is diagonalized by one batched
``torch.linalg.eigh``. Padding rows and columns hold ``X = 1`` and, in ``X^T H X``, a
diagonal value above a Gershgorin bound of the molecule's spectrum, so padded eigenvalues
sort above every real one and never enter the loss. Everything runs in float64.

Gradients (:class:`OccupiedEigh`): eigenvalue gradients ``C diag(g) C^T`` are finite at
degeneracies; the projector's backward uses only occupied-virtual pairs, whose
denominators ``e_a - e_i`` are at least the HOMO-LUMO gap, clamped from below by
:data:`GAP_EPS`. Degenerate occupied orbitals (CH4, N2), where the textbook eigenvector
gradient divides by zero, are harmless: ``P`` is smooth there.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from hamnet import graph_keys as GK
from hamnet.errors import HamnetError

__all__ = [
    "GAP_EPS",
    "SpectralError",
    "lowdin",
    "padded_matrices",
    "orthogonalized",
    "OccupiedEigh",
    "occupied_eigh",
    "SpectralLoss",
    "rotate_lowdin",
]

#: Hartree. Lower bound of the HOMO-LUMO gap in the projector's backward: bounds its
#: gradient by ``|dL/dP| / GAP_EPS`` for a nearly gapless prediction (early training). The
#: closed-shell molecules hamnet trains on have gaps of ~0.1-0.5 Ha, so a correct gap is
#: never clamped.
GAP_EPS = 1e-2
#: Overlap eigenvalues below this make ``S^-1/2`` meaningless (a near-linearly dependent basis).
MIN_OVERLAP_EIG = 1e-8


class SpectralError(HamnetError, ValueError):
    """Inputs the spectral losses cannot use (no overlap in the batch, a singular overlap)."""


def lowdin(S: np.ndarray, min_eig: float = MIN_OVERLAP_EIG) -> np.ndarray:
    """Symmetric (Löwdin) orthogonalizer ``X = S^-1/2``.

    Parameters
    ----------
    S : (nao, nao) float
        AO overlap, dimensionless, symmetric positive definite.
    min_eig : float
        Smallest overlap eigenvalue accepted.

    Returns
    -------
    (nao, nao) float64, symmetric, with ``X S X = 1``.
    """
    S = np.asarray(S, dtype=np.float64)
    asym = np.abs(S - S.T).max() if S.size else 0.0
    if asym > 1e-8:
        raise SpectralError(f"overlap matrix is not symmetric (max |S - S^T| = {asym:.2e})")
    s, U = np.linalg.eigh(S)
    if s[0] < min_eig:
        raise SpectralError(f"overlap matrix is (nearly) singular: smallest eigenvalue {s[0]:.2e} < {min_eig:g}")
    return (U / np.sqrt(s)) @ U.T


def padded_matrices(diag: torch.Tensor, offdiag: torch.Tensor, batch: dict) -> torch.Tensor:
    """Full AO matrices of a batch as one zero-padded tensor, by a single index_put.

    Parameters
    ----------
    diag : (n_atoms, n_pad, n_pad), offdiag : (n_pairs, n_pad, n_pad)
        Padded atom-pair blocks in the layout of the batch (model output, targets, ``X``).
    batch : dict
        With :data:`hamnet.graph_keys.NAO`, ``AO_SRC``, ``AO_DST`` (graphs built with ``overlap``).

    Returns
    -------
    (n_mol, nao_max, nao_max)
        Molecule ``m`` in ``[m, :nao_m, :nao_m]`` (PySCF AO order), zero elsewhere;
        differentiable with respect to the blocks.
    """
    nao = batch[GK.NAO]
    n_mol, nmax = int(nao.shape[0]), int(nao.max())
    flat = torch.cat([diag.reshape(-1), offdiag.reshape(-1)])  # [(n_atoms + n_pairs) n_pad^2]
    src, dst = batch[GK.AO_SRC].to(flat.device), batch[GK.AO_DST].to(flat.device)
    out = flat.new_zeros(n_mol * nmax * nmax).index_put((dst,), flat[src])  # [n_mol nmax^2]
    return out.reshape(n_mol, nmax, nmax)


def _ao_mask(batch: dict, nmax: int, device) -> torch.Tensor:
    """``(n_mol, nmax)`` bool: AO ``k`` exists in molecule ``m``."""
    return torch.arange(nmax, device=device)[None, :] < batch[GK.NAO].to(device)[:, None]


def orthogonalized(H: torch.Tensor, X: torch.Tensor, ao_mask: torch.Tensor) -> torch.Tensor:
    """``X^T H X`` with padding rows/columns decoupled and pushed above the real spectrum.

    Parameters
    ----------
    H : (n_mol, n, n) zero-padded AO matrices, Hartree
    X : (n_mol, n, n) Löwdin orthogonalizers, identity on the padding
    ao_mask : (n_mol, n) bool, real AOs

    Returns
    -------
    (n_mol, n, n), Hartree: real block ``X^T H X``; padding diagonal ``b_m + 1`` with ``b_m``
    a Gershgorin bound of molecule ``m``'s eigenvalues (no gradient), zero elsewhere.
    """
    A = X.transpose(-1, -2) @ H @ X  # [n_mol, n, n]
    bound = A.detach().abs().sum(-1).amax(-1)  # [n_mol] >= max |eigenvalue|
    shift = (~ao_mask).to(A.dtype) * (bound + 1.0)[:, None]  # [n_mol, n]
    return A + torch.diag_embed(shift)


class OccupiedEigh(torch.autograd.Function):
    """Eigenvalues and the occupied-subspace projector of a batch of symmetric matrices.

    ``forward(A, occ, gap_eps)`` diagonalizes ``sym(A) = (A + A^T) / 2`` of shape
    ``(B, n, n)``; ``occ`` is a ``(B, n)`` bool mask of the occupied orbitals in ascending
    order (the ``nocc_m`` lowest). Returns ``e`` ``(B, n)`` ascending and
    ``P = C diag(occ) C^T`` ``(B, n, n)``.

    Backward: ``dL/dA = sym(C (diag(g_e) + Z) C^T)`` with
    ``Z_ai = (C^T (G + G^T) C)_ai / (e_i - e_a)`` for ``a`` virtual, ``i`` occupied and 0
    otherwise (``G = dL/dP``); ``e_a - e_i`` is clamped to at least ``gap_eps`` Hartree.
    Occupied-occupied pairs never appear (``P`` does not depend on rotations inside the
    occupied subspace), so degenerate occupied orbitals give finite gradients.
    Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, A, occ, gap_eps):
        e, C = torch.linalg.eigh(0.5 * (A + A.transpose(-1, -2)))  # [B, n], [B, n, n]
        occf = occ.to(C.dtype)
        P = (C * occf[:, None, :]) @ C.transpose(-1, -2)  # [B, n, n]
        ctx.save_for_backward(e, C, occ)
        ctx.gap_eps = float(gap_eps)
        return e, P

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_e, g_P):
        e, C = ctx.saved_tensors[0], ctx.saved_tensors[1]
        occ = ctx.saved_tensors[2]
        M = torch.zeros_like(C)  # [B, n, n] gradient in the eigenbasis
        if g_e is not None:
            M = M + torch.diag_embed(g_e)
        if g_P is not None:
            Ct = C.transpose(-1, -2)
            Q = Ct @ (g_P + g_P.transpose(-1, -2)) @ C  # [B, n, n]
            gap = (e[:, :, None] - e[:, None, :]).clamp_min(ctx.gap_eps)  # [B, a, i]: e_a - e_i
            pair = (~occ)[:, :, None] & occ[:, None, :]  # a virtual, i occupied
            M = M - torch.where(pair, Q / gap, torch.zeros_like(Q))
        grad = C @ M @ C.transpose(-1, -2)
        return 0.5 * (grad + grad.transpose(-1, -2)), None, None


def occupied_eigh(A: torch.Tensor, occ: torch.Tensor, gap_eps: float = GAP_EPS):
    """``(e, P)`` of :class:`OccupiedEigh` (``A`` ``(B, n, n)``, ``occ`` ``(B, n)`` bool)."""
    return OccupiedEigh.apply(A, occ, gap_eps)


class SpectralLoss(nn.Module):
    """Orbital-energy and occupied-subspace losses of a model output (see the module docstring).

    Parameters
    ----------
    n_virtual : int
        Lowest virtual orbitals included in the orbital-energy loss (per molecule, at most
        ``nao - nocc``).
    gap_eps : float
        Hartree; :data:`GAP_EPS`.

    The batch must come from graphs built with ``overlap`` (and targets); the returned
    :data:`hamnet.graph_keys.LOSS_EIG` (Hartree) and :data:`~hamnet.graph_keys.LOSS_DENSITY`
    (dimensionless) are differentiable and unweighted; they have the model's dtype.
    """

    def __init__(self, n_virtual: int = 2, gap_eps: float = GAP_EPS):
        super().__init__()
        if not isinstance(n_virtual, int) or n_virtual < 0:
            raise SpectralError(f"n_virtual must be an int >= 0, got {n_virtual!r}")
        if not gap_eps > 0:
            raise SpectralError(f"gap_eps must be > 0 Hartree, got {gap_eps!r}")
        self.n_virtual = n_virtual
        self.gap_eps = float(gap_eps)

    def forward(self, out: dict, batch: dict) -> dict:
        missing = [k for k in GK.SPECTRAL_KEYS + GK.TARGET_KEYS if k not in batch]
        if missing:
            raise SpectralError(
                f"batch has no {missing}: build graphs with molecule_graph(..., basis=, fock=, overlap=) "
                "(GraphDataset(..., spectral=True))")
        f64 = torch.float64
        pd, po = out[GK.DIAG], out[GK.OFFDIAG]
        dev = pd.device
        blocks = lambda k: batch[k].to(device=dev, dtype=f64)  # noqa: E731
        H_pred = padded_matrices(pd.to(f64), po.to(f64), batch)  # [B, n, n] Hartree
        n_mol, nmax = H_pred.shape[0], H_pred.shape[-1]
        ao = _ao_mask(batch, nmax, dev)  # [B, n]
        X = padded_matrices(blocks(GK.LOWDIN_DIAG), blocks(GK.LOWDIN_OFFDIAG), batch)
        X = X + torch.diag_embed((~ao).to(f64))  # identity on the padding
        nocc = batch[GK.NOCC].to(dev)
        k = torch.arange(nmax, device=dev)[None, :]
        occ = k < nocc[:, None]  # [B, n]
        e_p, P_p = occupied_eigh(orthogonalized(H_pred, X, ao), occ, self.gap_eps)
        with torch.no_grad():
            H_ref = padded_matrices(blocks(GK.TARGET_DIAG), blocks(GK.TARGET_OFFDIAG), batch)
            e_r, C_r = torch.linalg.eigh(orthogonalized(H_ref, X, ao))
            P_r = (C_r * occ.to(f64)[:, None, :]) @ C_r.transpose(-1, -2)
        n_sel = nocc + torch.minimum(torch.full_like(nocc, self.n_virtual), batch[GK.NAO].to(dev) - nocc)
        sel = k < n_sel[:, None]  # [B, n] occupied + n_virtual lowest virtual orbitals
        loss_eig = (e_p - e_r).abs()[sel].mean()  # Hartree
        loss_p = ((P_p - P_r) ** 2).sum((-1, -2)) / (2 * nocc.to(f64))  # [B] mean sin^2 of principal angles
        return {GK.LOSS_EIG: loss_eig.to(pd.dtype), GK.LOSS_DENSITY: loss_p.mean().to(pd.dtype)}


def rotate_lowdin(batch: dict, basis, rotations) -> dict:
    """The Löwdin blocks of a batch rotated like its targets (``X -> D X D^T`` per molecule).

    The companion of :func:`hamnet.symmetry.rotate_batch` for rotation augmentation: with
    ``S(R x) = D S(x) D^T`` (``D`` orthogonal), ``X(R x) = D X(x) D^T``. A batch without
    Löwdin blocks is returned unchanged.
    """
    if GK.LOWDIN_DIAG not in batch:
        return batch
    from hamnet.symmetry.grids import padded_rotations

    R = torch.as_tensor(rotations, dtype=torch.float64)
    D = padded_rotations(basis, R)  # [n_mol, n_pad, n_pad]
    mol_of_atom = batch[GK.BATCH].cpu()
    mol_of_pair = mol_of_atom[batch[GK.PAIR_INDEX][0].cpu()]
    out = dict(batch)
    for key, mol in ((GK.LOWDIN_DIAG, mol_of_atom), (GK.LOWDIN_OFFDIAG, mol_of_pair)):
        t = batch[key]
        Dm = D[mol].to(device=t.device, dtype=t.dtype)
        out[key] = Dm @ t @ Dm.transpose(-1, -2)
    return out
