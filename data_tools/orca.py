"""ORCA's AO order and signs <-> PySCF's, derived from hamnet's orbital layout.

ORCA orders the ``2l+1`` real spherical functions of a shell by ``m = 0, +1, -1, +2,
-2, ...`` (so ``p`` is ``pz, px, py`` and ``d`` is ``dz2, dxz, dyz, dx2-y2, dxy``); shells
of an atom come in the order of the basis set, which for the def2 family is PySCF's
order too. PySCF orders ``p`` as ``px, py, pz`` and ``l >= 2`` as ``m = -l..l``
(:class:`hamnet.basis.MoleculeLayout` gives each AO's ``l`` and ``m``). The real
spherical functions themselves agree, except that ORCA's functions with ``|m| = 3``
(``f``) and ``|m| = 3, 4`` (``g``) have the opposite sign.

Sources checked: SchNOrb's ORCA parser (``m_range``: 0, 1, -1, 2, -2, ...); QHNet's
MD17 loader, whose index maps (``new[i] = orca[map[i]]``, no sign changes up to ``d``)
are ``d: [4, 2, 0, 1, 3]``, ORCA -> PySCF's ``m = -2..2``, and ``p: [2, 0, 1]``, which
takes ORCA's ``(pz, px, py)`` to QHNet's own ``(py, pz, px)`` (e3nn's ``m = -1, 0, 1``),
not to PySCF's ``(px, py, pz)``, which is ``[1, 2, 0]``; IOData's ``_fix_obasis_orca``
(``-c3, -s3`` for ``f``; ``-c3, -s3, -c4, -s4`` for ``g``) and the same rule in OCC's
ORCA reader. Shells with ``l >= 5`` are refused: those sources disagree or are silent
about them.

A matrix transforms as ``M_pyscf = s_i s_j M_orca[perm_i, perm_j]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hamnet.errors import HamnetError

#: l -> the |m| whose sign ORCA flips relative to PySCF's real spherical functions.
ORCA_FLIPPED_ABS_M = {0: (), 1: (), 2: (), 3: (3,), 4: (3, 4)}
MAX_L = max(ORCA_FLIPPED_ABS_M)


class OrcaConventionError(HamnetError, ValueError):
    """A shell whose ORCA convention hamnet does not know (l >= 5)."""


def orca_m_order(l: int) -> list[int]:
    """ORCA's order of ``m`` within a shell: ``[0, 1, -1, 2, -2, ..., l, -l]``."""
    out = [0]
    for k in range(1, l + 1):
        out += [k, -k]
    return out


def orca_sign(l: int, m: int) -> int:
    """Sign of ORCA's ``(l, m)`` function relative to PySCF's."""
    if l > MAX_L:
        raise OrcaConventionError(
            f"ORCA's sign convention for l={l} shells is not verified; hamnet converts "
            f"ORCA matrices with l <= {MAX_L} only"
        )
    return -1 if abs(m) in ORCA_FLIPPED_ABS_M[l] else 1


def orca_to_pyscf_index(layout) -> tuple[np.ndarray, np.ndarray]:
    """Permutation and signs from ORCA's AO order to PySCF's for one molecule.

    Parameters
    ----------
    layout : hamnet.basis.MoleculeLayout
        ``OrbitalBasis(basis, ...).layout(Z)``.

    Returns
    -------
    perm : (nao,) int
        ``perm[i]`` is the ORCA position of PySCF AO ``i``.
    sign : (nao,) float
        ``+1`` or ``-1``; ``M_pyscf = M_orca[perm][:, perm] * outer(sign, sign)``.
    """
    nao = layout.nao
    perm = np.empty(nao, dtype=np.int64)
    sign = np.empty(nao)
    i = 0
    while i < nao:  # one shell (atom, radial function) at a time
        l = int(layout.ao_l[i])
        width = 2 * l + 1
        order = orca_m_order(l)
        for j in range(i, i + width):
            m = int(layout.ao_m[j])
            perm[j] = i + order.index(m)
            sign[j] = orca_sign(l, m)
        i += width
    return perm, sign


def orca_to_pyscf(M, layout) -> np.ndarray:
    """ORCA-order AO matrix ``(nao, nao)`` -> PySCF order (float64)."""
    M = np.asarray(M, dtype=np.float64)
    perm, sign = orca_to_pyscf_index(layout)
    _check_shape(M, len(perm))
    return M[np.ix_(perm, perm)] * np.outer(sign, sign)


def pyscf_to_orca(M, layout) -> np.ndarray:
    """Inverse of :func:`orca_to_pyscf`."""
    M = np.asarray(M, dtype=np.float64)
    perm, sign = orca_to_pyscf_index(layout)
    _check_shape(M, len(perm))
    out = np.empty_like(M)
    out[np.ix_(perm, perm)] = M * np.outer(sign, sign)
    return out


def orca_basisdef(radial_ls: Sequence[int]) -> list[tuple[int, int]]:
    """``(l, m)`` of each AO of one atom in ORCA order (SchNOrb's ``basisdef`` columns)."""
    return [(l, m) for l in radial_ls for m in orca_m_order(l)]


def _check_shape(M: np.ndarray, nao: int) -> None:
    if M.shape != (nao, nao):
        raise ValueError(f"AO matrix has shape {M.shape}; this molecule has {nao} AOs")
