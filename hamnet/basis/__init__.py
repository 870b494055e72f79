"""Atomic-orbital bases: the one place that knows both PySCF's AO order and e3nn's irreps.

Everything here is derived from :mod:`pyscf.gto` for the named basis; nothing is
tabulated by hand. Conventions:

* A *radial function* is one contracted function of one PySCF shell. A PySCF shell with
  ``nctr`` contractions gives ``nctr`` radial functions of the same ``l``. Within an atom,
  AOs are ordered radial function by radial function, ``m`` fastest, exactly as PySCF
  orders them (``p`` as ``x, y, z``; ``l >= 2`` as PySCF's real spherical ``m = -l..l``).
* :func:`change_of_basis` gives, per ``l``, the orthogonal ``Q_l`` with
  ``x_e3nn = Q_l @ x_pyscf``. For ``l >= 2`` it is not a permutation; it is fitted to
  PySCF's own AO values on the sphere and checked to be orthogonal.
* Under a rotation ``R`` (3x3, proper or improper) of the molecule, every AO matrix
  transforms as ``F(R x) = D F(x) D^T`` with ``D = ao_rotation(mol, R)``.
* An atom's orbitals are embedded in a *padded* layout shared by all elements of an
  :class:`OrbitalBasis` (for each ``l``, as many slots as the element with the most
  radial functions of that ``l``). Blocks of any atom pair are then
  ``(n_pad, n_pad)`` tensors with a mask, and map linearly and orthonormally to the
  irreps :attr:`OrbitalBasis.block_irreps`.

One module per idea: :mod:`~hamnet.basis.wigner` (per-l change of basis, Wigner D,
AO rotations), :mod:`~hamnet.basis.clebsch_gordan` (block <-> irreps) and
:mod:`~hamnet.basis.layout` (element and molecule layouts, split/assemble);
:mod:`~hamnet.basis.elements` names elements.
"""

from hamnet.basis.clebsch_gordan import block_irreps, block_to_irreps, irreps_to_block
from hamnet.basis.elements import BasisError, atomic_number
from hamnet.basis.layout import MoleculeLayout, OrbitalBasis
from hamnet.basis.wigner import ao_rotation, change_of_basis, wigner_D_e3nn, wigner_D_pyscf

__all__ = [
    "BasisError",
    "OrbitalBasis",
    "MoleculeLayout",
    "change_of_basis",
    "wigner_D_e3nn",
    "wigner_D_pyscf",
    "ao_rotation",
    "block_irreps",
    "block_to_irreps",
    "irreps_to_block",
    "atomic_number",
]
